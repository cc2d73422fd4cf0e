//! Logging set-up. `RUST_LOG` filters; logs go to stderr, as text, or as one JSON object per
//! line with `TESSERA_LOG_FORMAT=json` (for log collectors: the request span's fields, such
//! as `subject`, `request_id` and `outcome`, are included).

use tracing_subscriber::EnvFilter;

use crate::config::registry::LOG_FORMAT;
use crate::config::{ProcessEnv, Reader, Source};

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

/// Installs the global subscriber once; later calls are no-ops (tests call it freely).
/// `default` applies when `RUST_LOG` is unset (servers: `info`; one-shot commands: `warn`).
pub fn init(default: &str) {
    // async-nats logs every connection event at info without the connection's name
    // ("event: disconnected"); `tessera_protocol::bus::log_event` logs them with it, so the
    // library's own lines are kept to warnings unless RUST_LOG asks for more.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},async_nats=warn")));
    // Logging starts before the settings are read, so a bad value is not reported here:
    // it logs as text, and the worker's settings read refuses it (exit 64).
    let json = ProcessEnv
        .get(LOG_FORMAT.name)
        .is_some_and(|v| v.parse() == Ok(LogFormat::Json));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}
