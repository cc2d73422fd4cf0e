//! Logging and traces. `RUST_LOG` filters; logs go to stderr, as text, or as one JSON object
//! per line with `TESSERA_LOG_FORMAT=json` (for log collectors: the request span's fields,
//! such as `subject`, `request_id` and `outcome`, are included).
//!
//! Traces: with the `otel` feature and an OTLP endpoint configured
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, [`TraceSettings`]), the same spans are exported to an
//! OpenTelemetry collector over OTLP/HTTP ([`otel`]); trace context travels in message
//! headers (`tessera_protocol::trace`), so one token request is one trace across processes.
//! Off unless configured. A build without the feature that finds an endpoint configured
//! says so at start instead of dropping the traces silently.
//!
//! # Layout
//! - this file: the subscriber ([`init`]), [`LogFormat`], [`TraceSettings`];
//! - `otel.rs` (`otel` feature): the exporter and the tracing layer that feeds it.

use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::registry::{
    LOG_FORMAT, OTEL_BSP_SCHEDULE_DELAY, OTEL_ENDPOINT, OTEL_SERVICE_NAME, OTEL_TRACES_ENDPOINT,
};
use crate::config::{ProcessEnv, Reader, Source};

#[cfg(feature = "otel")]
pub mod otel;

/// How log lines look (`TESSERA_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json".to_owned()),
        }
    }
}

impl LogFormat {
    pub fn read(r: &mut Reader) -> LogFormat {
        r.parsed(&LOG_FORMAT)
    }
}

/// Where spans are exported, from the standard OpenTelemetry variables; `None` from
/// [`TraceSettings::read`] means traces are off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSettings {
    /// The full URL spans are posted to (OTLP/HTTP, protobuf).
    pub endpoint: String,
    /// `service.name` of every span this process exports.
    pub service_name: String,
    /// How often batched spans are sent.
    pub export_interval: Duration,
}

impl TraceSettings {
    /// Reads them; `default_service` names the process when `OTEL_SERVICE_NAME` is unset
    /// (`tessera-broker`, ...). Off (`None`) unless an endpoint is set.
    pub fn read(r: &mut Reader, default_service: &str) -> Option<TraceSettings> {
        // Plain HTTP only: the exporter has no TLS of its own; spans go to a collector
        // beside the process (an agent or sidecar), which forwards them onwards.
        let checked = |v: &str| -> Result<String, String> {
            let rest = v.strip_prefix("http://").ok_or_else(|| {
                format!("{v:?}: expected an http:// URL (a collector beside the process; no TLS)")
            })?;
            if rest.is_empty() || rest.starts_with('/') {
                return Err(format!("{v:?}: the URL names no host"));
            }
            Ok(v.to_owned())
        };
        let traces = r.optional(&OTEL_TRACES_ENDPOINT, checked);
        let base = r.optional(&OTEL_ENDPOINT, checked);
        let service_name = r
            .get(&OTEL_SERVICE_NAME)
            .unwrap_or_else(|| default_service.to_owned());
        let delay_ms: u64 = r.parsed(&OTEL_BSP_SCHEDULE_DELAY);
        r.check(
            &OTEL_BSP_SCHEDULE_DELAY,
            (1..=600_000).contains(&delay_ms),
            "must be 1 to 600000 (milliseconds)",
        );
        // The signal's own URL is used as it is; the base URL gets the OTLP path for traces
        // (the OpenTelemetry exporter specification's rule).
        let endpoint =
            traces.or_else(|| base.map(|b| format!("{}/v1/traces", b.trim_end_matches('/'))))?;
        Some(TraceSettings {
            endpoint,
            service_name,
            export_interval: Duration::from_millis(delay_ms),
        })
    }
}

/// What [`init`] started: keep it until the process ends. Dropping it sends the spans
/// still batched (bounded by the exporter's timeout).
#[must_use = "dropping it stops the trace exporter"]
#[derive(Debug, Default)]
pub struct Telemetry {
    /// Held for its `Drop`, which flushes.
    #[cfg(feature = "otel")]
    _exporter: Option<otel::Exporter>,
}

/// Installs the global subscriber once; later calls install nothing (tests call it freely).
/// `default` applies when `RUST_LOG` is unset (servers: `info`; one-shot commands: `warn`);
/// `service` is the process's name in traces unless `OTEL_SERVICE_NAME` says otherwise.
pub fn init(default: &str, service: &str) -> Telemetry {
    // async-nats logs every connection event at info without the connection's name
    // ("event: disconnected"); `tessera_protocol::bus::log_event` logs them with it, so the
    // library's own lines are kept to warnings unless RUST_LOG asks for more.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},async_nats=warn")));
    // Logging starts before the settings are read, so a bad value is not reported here:
    // it logs as text (and traces stay off), and the worker's settings read refuses it
    // (exit 64).
    let json = ProcessEnv
        .get(LOG_FORMAT.name)
        .is_some_and(|v| v.parse() == Ok(LogFormat::Json));
    let traces = crate::config::read(&ProcessEnv, |r| TraceSettings::read(r, service))
        .ok()
        .flatten();
    let text_layer = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
    });
    let json_layer = json.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
    });
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(text_layer)
        .with(json_layer);

    #[cfg(feature = "otel")]
    {
        let (exporter, failed) = match traces.as_ref().map(otel::Exporter::start) {
            Some(Ok(exporter)) => (Some(exporter), None),
            Some(Err(e)) => (None, Some(e)),
            None => (None, None),
        };
        let layer = exporter.as_ref().map(otel::Exporter::layer);
        if registry.with(layer).try_init().is_err() {
            // A subscriber was installed before (a test's): this one's spans would go
            // nowhere, so nothing is exported.
            return Telemetry::default();
        }
        if let Some(e) = failed {
            tracing::warn!(error = %e, "traces are off: the OTLP exporter could not start");
        }
        if let (Some(t), Some(_)) = (&traces, &exporter) {
            tracing::info!(endpoint = %t.endpoint, service = %t.service_name, "exporting traces");
        }
        Telemetry {
            _exporter: exporter,
        }
    }
    #[cfg(not(feature = "otel"))]
    {
        if registry.try_init().is_ok() && traces.is_some() {
            tracing::warn!(
                "an OTLP endpoint is set ({} or {}), but this build has no trace exporter \
                 (built without the `otel` feature): no traces are sent",
                OTEL_ENDPOINT.name,
                OTEL_TRACES_ENDPOINT.name
            );
        }
        Telemetry::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{from_pairs, read};

    fn settings(pairs: &[(&str, &str)]) -> Result<Option<TraceSettings>, Vec<String>> {
        read(&from_pairs(pairs), |r| {
            TraceSettings::read(r, "tessera-broker")
        })
        .map_err(|e| e.keys().into_iter().map(str::to_owned).collect())
    }

    #[test]
    fn traces_are_off_unless_an_endpoint_is_set() {
        assert_eq!(settings(&[]), Ok(None));
        assert_eq!(settings(&[("OTEL_SERVICE_NAME", "x")]), Ok(None));
    }

    #[test]
    fn the_base_url_gets_the_traces_path_and_the_signal_url_is_used_as_it_is() {
        let on = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")])
            .unwrap()
            .unwrap();
        assert_eq!(on.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(on.service_name, "tessera-broker");
        assert_eq!(on.export_interval, Duration::from_secs(5));
        let on = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://agent:9999/spans",
            ),
            ("OTEL_SERVICE_NAME", "broker-eu"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(on.endpoint, "http://agent:9999/spans");
        assert_eq!(on.service_name, "broker-eu");
        assert_eq!(on.export_interval, Duration::from_millis(250));
    }

    #[test]
    fn a_bad_endpoint_or_delay_is_a_bad_setting() {
        for (key, value) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http:///v1/traces"),
            ("OTEL_BSP_SCHEDULE_DELAY", "0"),
            ("OTEL_BSP_SCHEDULE_DELAY", "5s"),
        ] {
            let other = if key == "OTEL_BSP_SCHEDULE_DELAY" {
                vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    (key, value),
                ]
            } else {
                vec![(key, value)]
            };
            assert_eq!(settings(&other), Err(vec![key.to_owned()]), "{key}={value}");
        }
    }
}
