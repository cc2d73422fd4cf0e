//! What every worker reads the same way, read by one function ([`WorkerSettings::read`]) that
//! each worker's config calls: the bus connection, the drain, the concurrency bound, the
//! JetStream replicas, the clock leeway, and the process-wide health, log and trace settings.

use std::time::Duration;

use tessera_schemas::Subjects;

use super::Reader;
use super::registry::{CLOCK_LEEWAY, GRACE, JS_REPLICAS, MAX_IN_FLIGHT, NATS_URL, PREFIX, Setting};

/// JetStream's bound on a stream's replicas.
const MAX_JS_REPLICAS: usize = 5;
/// Beyond this a clock leeway keeps expired tokens alive for too long.
const MAX_CLOCK_LEEWAY: Duration = Duration::from_secs(300);

/// The settings every worker shares.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub nats_url: String,
    pub subjects: Subjects,
    pub grace: Duration,
    pub max_in_flight: usize,
    pub js_replicas: usize,
    pub clock_leeway: Duration,
}

impl WorkerSettings {
    /// Reads them; `own_url` is the worker's own NATS URL setting, `NATS_URL` its fallback.
    /// Also checks the health endpoint's, the log's and the traces' settings: the worker does not keep
    /// them (the process serves health and logs), but must not start with them bad.
    pub fn read(r: &mut Reader, own_url: &'static Setting) -> WorkerSettings {
        let subjects = prefix_of(r);
        let nats_url = r.first_of(&[own_url, &NATS_URL]);
        let grace = r.duration(&GRACE);
        let max_in_flight: usize = r.parsed(&MAX_IN_FLIGHT);
        r.check(&MAX_IN_FLIGHT, max_in_flight >= 1, "must be at least 1");
        let js_replicas = js_replicas_of(r);
        let clock_leeway = clock_leeway_of(r);
        crate::health::HealthSettings::read(r);
        crate::telemetry::LogFormat::read(r);
        crate::telemetry::TraceSettings::read(r, "");
        WorkerSettings {
            nats_url,
            subjects,
            grace,
            max_in_flight,
            js_replicas,
            clock_leeway,
        }
    }
}

/// `TESSERA_PREFIX`, validated.
pub fn prefix_of(r: &mut Reader) -> Subjects {
    let p: String = r.parsed(&PREFIX);
    if let Err(e) = tessera_schemas::ids::check_prefix(&p) {
        r.report(&PREFIX, e.to_string());
        return Subjects::new(PREFIX.default_parsed::<String>());
    }
    Subjects::new(p)
}

/// `TESSERA_CLOCK_LEEWAY`: whole seconds, at most 5 minutes.
pub fn clock_leeway_of(r: &mut Reader) -> Duration {
    let d = r.duration(&CLOCK_LEEWAY);
    r.check(
        &CLOCK_LEEWAY,
        d.subsec_nanos() == 0 && d <= MAX_CLOCK_LEEWAY,
        "must be whole seconds, at most 5m",
    );
    d
}

/// `TESSERA_JS_REPLICAS`: what the worker, or an admin command run before the workers,
/// creates its streams and buckets with.
pub fn js_replicas_of(r: &mut Reader) -> usize {
    let n: usize = r.parsed(&JS_REPLICAS);
    r.check(
        &JS_REPLICAS,
        (1..=MAX_JS_REPLICAS).contains(&n),
        "must be between 1 and 5 (JetStream's bound)",
    );
    n
}
