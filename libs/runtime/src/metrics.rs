//! The metrics every worker records, in one place, and the Prometheus recorder that the health
//! server renders on `/metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `tessera_requests_total` | counter | `endpoint`, `outcome` (`ok` or the error code) |
//! | `tessera_request_duration_seconds` | histogram | `endpoint` |
//! | `tessera_tokens_issued_total` | counter | |
//! | `tessera_distributions_acked_total` | counter | (one per plugin server a token reached) |
//! | `tessera_tokens_rejected_total` | counter | `verifier` (`plugin_server`, `gateway`, `broker`, `auth`), `reason` (see [`crate::jwt::Reason`]) |
//! | `tessera_audit_events_total` | counter | `outcome` (`published`, `failed`, `dropped`) |
//! | `tessera_replies_refused_total` | counter | (requests not answered: no reply inbox, see [`crate::service`]) |
//!
//! Requests are recorded by the request loop ([`crate::service`]), for every service alike.
//! Without an installed recorder (no health server) every update returns at once.
//!
//! **Every label value comes from a closed set**: request metrics are labelled by the
//! endpoint's name (`token-request`, `data`, `operations`, ...: fixed per worker by its
//! `ServiceSpec`), never by the message subject. A subject holds caller-chosen tokens
//! (`data.<anything>`, `svc.<id>.<anything>`), so labelling by it let anyone who may publish
//! there add series to `/metrics` without bound.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS: &str = "tessera_requests_total";
pub const REQUEST_DURATION: &str = "tessera_request_duration_seconds";
pub const TOKENS_ISSUED: &str = "tessera_tokens_issued_total";
pub const DISTRIBUTIONS_ACKED: &str = "tessera_distributions_acked_total";
/// Recorded by [`crate::jwt::count`] (also from the plugin-server SDK).
pub use tessera_protocol::jwt::TOKENS_REJECTED;
pub const AUDIT_EVENTS: &str = "tessera_audit_events_total";
/// Tokens the broker revoked before anyone received them (an idempotency race lost, or a
/// replica that died before committing).
pub const TOKENS_WITHDRAWN: &str = "tessera_tokens_withdrawn_total";

/// Requests left unanswered because their reply subject was not a reply inbox.
pub const REPLIES_REFUSED: &str = "tessera_replies_refused_total";

/// Every metric this module and [`tessera_protocol::jwt`] record, by the name `/metrics`
/// shows (a histogram also as `<name>_bucket`, `_sum` and `_count`). The Grafana dashboard
/// and the alert rules in docker/k8s/observability use only these (tests below).
pub const ALL: &[&str] = &[
    REQUESTS,
    REQUEST_DURATION,
    TOKENS_ISSUED,
    DISTRIBUTIONS_ACKED,
    TOKENS_REJECTED,
    AUDIT_EVENTS,
    TOKENS_WITHDRAWN,
    REPLIES_REFUSED,
];

/// Latency buckets (seconds): sub-millisecond local answers up to the 2 s auth timeout.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Whether [`install`] ran: until then recording is skipped before building any label (the
/// dev stack, the tests and the benchmark run without a recorder).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the Prometheus recorder once per process; returns its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), BUCKETS)
                .expect("non-empty buckets")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
            }
            metrics::describe_counter!(REQUESTS, "Requests answered, by endpoint and outcome");
            metrics::describe_histogram!(
                REQUEST_DURATION,
                metrics::Unit::Seconds,
                "Time from receipt to reply, by endpoint"
            );
            metrics::describe_counter!(TOKENS_ISSUED, "Plugin tokens issued");
            metrics::describe_counter!(
                DISTRIBUTIONS_ACKED,
                "Token distributions acknowledged by JetStream (one per plugin server)"
            );
            metrics::describe_counter!(
                TOKENS_REJECTED,
                "Tokens refused, by verifier and reason (alg, kid, signature, expired, ...)"
            );
            metrics::describe_counter!(
                AUDIT_EVENTS,
                "Audit events by outcome: published (acked), failed (not stored), dropped (queue full)"
            );
            metrics::describe_counter!(
                TOKENS_WITHDRAWN,
                "Tokens revoked before anyone received them (a lost idempotency race, or swept after their replica died)"
            );
            metrics::describe_counter!(
                REPLIES_REFUSED,
                "Requests not served because their reply subject was not a reply inbox (_R_. or _INBOX.)"
            );
            INSTALLED.store(true, Ordering::Release);
            handle
        })
        .clone()
}

/// Whether a recorder is installed (callers can skip work done only for a metric).
pub fn enabled() -> bool {
    INSTALLED.load(Ordering::Acquire)
}

/// One answered request on the endpoint named `endpoint` (an [`crate::service::Endpoint`]'s
/// name, never a subject: see the module doc); `outcome` is `ok` or the error code.
pub fn record_request(endpoint: &Arc<str>, outcome: &'static str, elapsed: Duration) {
    if !INSTALLED.load(Ordering::Acquire) {
        return;
    }
    metrics::counter!(REQUESTS, "endpoint" => endpoint.clone(), "outcome" => outcome).increment(1);
    metrics::histogram!(REQUEST_DURATION, "endpoint" => endpoint.clone())
        .record(elapsed.as_secs_f64());
}

/// One request left unanswered: its reply subject was not a reply inbox.
pub fn count_reply_refused() {
    if !INSTALLED.load(Ordering::Acquire) {
        return;
    }
    metrics::counter!(REPLIES_REFUSED).increment(1);
}

/// One issued token, distributed to `servers` plugin servers.
pub fn record_token_issued(servers: usize) {
    if !INSTALLED.load(Ordering::Acquire) {
        return;
    }
    metrics::counter!(TOKENS_ISSUED).increment(1);
    metrics::counter!(DISTRIBUTIONS_ACKED).increment(servers as u64);
}

/// One token withdrawn before anyone received it.
pub fn record_token_withdrawn() {
    if !INSTALLED.load(Ordering::Acquire) {
        return;
    }
    metrics::counter!(TOKENS_WITHDRAWN).increment(1);
}

/// One audit event settled: `published`, `failed` or `dropped` (see [`crate::audit`]).
pub fn record_audit(outcome: &'static str) {
    record_audit_n(outcome, 1);
}

/// `n` audit events with one outcome (a batch published or failed together).
pub fn record_audit_n(outcome: &'static str, n: u64) {
    if !INSTALLED.load(Ordering::Acquire) {
        return;
    }
    metrics::counter!(AUDIT_EVENTS, "outcome" => outcome).increment(n);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The `tessera_*` names in `text`, histogram series names folded into their metric's.
    fn metric_names(text: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let mut rest = text;
        while let Some(at) = rest.find("tessera_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            if name.len() == "tessera_".len() {
                // Prose such as `tessera_*`, not a name.
                continue;
            }
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    ALL.contains(&base).then(|| base.to_owned())
                })
                .unwrap_or(name);
            names.insert(name);
        }
        names
    }

    /// Every metric in [`ALL`] is on `/metrics` once recorded, and nothing else is.
    #[test]
    fn all_lists_every_metric_the_recorder_renders() {
        let handle = install();
        let endpoint: Arc<str> = "token-request".into();
        record_request(&endpoint, "ok", Duration::from_millis(3));
        count_reply_refused();
        record_token_issued(2);
        record_token_withdrawn();
        record_audit("published");
        tessera_protocol::jwt::count(
            tessera_protocol::jwt::Verifier::Gateway,
            tessera_protocol::jwt::Reason::Expired,
        );
        let rendered = metric_names(&handle.render());
        let declared: BTreeSet<String> = ALL.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(rendered, declared);
    }

    /// The Grafana dashboard and the alert rules shipped beside the Kubernetes manifests
    /// use only metrics the workers export: a renamed or removed metric fails here instead
    /// of leaving an empty panel or an alert that can never fire.
    #[test]
    fn the_dashboard_and_the_alert_rules_use_only_exported_metrics() {
        let files = [
            (
                "tessera-dashboard.json",
                include_str!("../../../docker/k8s/observability/tessera-dashboard.json"),
            ),
            (
                "tessera-alerts.yaml",
                include_str!("../../../docker/k8s/observability/tessera-alerts.yaml"),
            ),
        ];
        for (file, text) in files {
            let used = metric_names(text);
            // Each file uses a good part of them (the scan itself is not broken).
            assert!(used.len() >= 6, "{file}: {used:?}");
            for name in &used {
                assert!(
                    ALL.contains(&name.as_str()),
                    "{file} uses {name}, which no worker exports (metrics::ALL)"
                );
            }
        }
        // The dashboard is JSON Grafana can import.
        let dashboard: serde_json::Value = serde_json::from_str(files[0].1).expect("JSON");
        assert!(
            dashboard["panels"]
                .as_array()
                .is_some_and(|p| !p.is_empty())
        );
    }
}
