//! Gateway settings, from the environment.

use std::time::Duration;

use tessera_bus_config::provision::Durability;
use tessera_runtime::config::registry::{
    DATA_FORWARD_TIMEOUT, DATA_SKEW, GATEWAY_REDIS_URL, GATEWAY_URL, GRACE, MAX_IN_FLIGHT,
    REDIS_URL,
};
use tessera_runtime::config::{ConfigError, Reader, Source, WorkerSettings};
use tessera_schemas::Subjects;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub nats_url: String,
    pub redis_url: String,
    pub subjects: Subjects,
    /// Allowed difference between a packet's timestamp and the gateway's clock, either
    /// way. Nonces are remembered for [`GatewayConfig::nonce_ttl`].
    pub skew: Duration,
    /// Clock leeway on plugin-token times (`TESSERA_CLOCK_LEEWAY`): also how far apart the
    /// replicas' clocks may be, which the nonce's lifetime covers.
    pub clock_leeway: Duration,
    pub forward_timeout: Duration,
    pub max_in_flight: usize,
    pub grace: Duration,
    /// Bound on each Redis command, so a Redis outage is a prompt `unavailable`.
    pub redis_timeout: Duration,
    /// How long to keep trying the first NATS connection.
    pub connect_wait: Duration,
    pub durability: Durability,
}

impl GatewayConfig {
    /// How long a claimed nonce is remembered: `2 x skew + clock leeway`.
    ///
    /// A packet stamped `t` is accepted while a gateway's clock reads within `t ± skew`.
    /// The first replica to accept it can do so as early as its clock reads `t - skew`;
    /// from then on the packet stays acceptable for `2 x skew` *by that clock*, but a
    /// replica whose clock runs behind accepts it until its own clock reads `t + skew`,
    /// i.e. up to the clock difference later. Remembering the nonce for exactly
    /// `2 x skew` (as before) left that difference as a window in which the same signed
    /// packet was accepted again by the slower replica. The clock leeway is the
    /// deployment's stated bound on how far clocks differ (the same one every token
    /// verifier applies), so the nonce outlives the last moment any replica within it
    /// accepts the packet. Redis counts the TTL from when it runs the `SET`, after this
    /// replica read its clock, which only lengthens it. The cost: one small key per packet
    /// kept `clock leeway` longer (5 s on 65 s with the defaults).
    pub fn nonce_ttl(&self) -> Duration {
        self.skew * 2 + self.clock_leeway
    }

    /// Defaults for everything but the endpoints.
    pub fn new(nats_url: String, redis_url: String, subjects: Subjects) -> Self {
        GatewayConfig {
            nats_url,
            redis_url,
            subjects,
            skew: DATA_SKEW.default_duration(),
            clock_leeway: tessera_protocol::jwt::DEFAULT_LEEWAY,
            forward_timeout: DATA_FORWARD_TIMEOUT.default_duration(),
            max_in_flight: MAX_IN_FLIGHT.default_parsed(),
            grace: GRACE.default_duration(),
            redis_timeout: Duration::from_millis(1000),
            connect_wait: Duration::from_secs(30),
            durability: Durability::default(),
        }
    }

    /// From the environment; every bad setting is in the error.
    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        let mut r = Reader::new(src);
        let shared = WorkerSettings::read(&mut r, &GATEWAY_URL);
        let redis_url = r.first_of(&[&GATEWAY_REDIS_URL, &REDIS_URL]);
        let skew = r.duration(&DATA_SKEW);
        r.check(
            &DATA_SKEW,
            skew >= Duration::from_secs(1) && skew <= Duration::from_secs(3600),
            "must be between 1s and 1h",
        );
        let forward_timeout = r.duration(&DATA_FORWARD_TIMEOUT);
        r.check(
            &DATA_FORWARD_TIMEOUT,
            forward_timeout >= Duration::from_millis(10)
                && forward_timeout <= Duration::from_secs(60),
            "must be between 10ms and 60s",
        );
        r.finish()?;
        let mut c = GatewayConfig::new(shared.nats_url, redis_url, shared.subjects);
        c.max_in_flight = shared.max_in_flight;
        c.grace = shared.grace;
        c.durability.replicas = shared.js_replicas;
        c.clock_leeway = shared.clock_leeway;
        c.skew = skew;
        c.forward_timeout = forward_timeout;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {

    use tessera_runtime::config::registry::NATS_URL;

    use super::*;
    use tessera_runtime::config::from_pairs as env;

    /// The claim at the earliest moment (the claiming replica's clock at `t - skew`), the
    /// replay at the latest (a replica whose clock lags by up to the leeway, at its own
    /// `t + skew`): the nonce is still there. With `2 x skew` it was not.
    #[test]
    fn a_nonce_outlives_every_replicas_acceptance_window() {
        let c = GatewayConfig::new("n".into(), "r".into(), Subjects::new("t"));
        let t = Duration::from_secs(1_000_000);
        let claimed = t - c.skew;
        for lag_ms in [0, 1, 1000, c.clock_leeway.as_millis() as u64] {
            let last_acceptance = t + c.skew + Duration::from_millis(lag_ms);
            assert!(
                claimed + c.nonce_ttl() >= last_acceptance,
                "lag {lag_ms} ms"
            );
        }
        let old_expiry = claimed + c.skew * 2;
        assert!(old_expiry < t + c.skew + c.clock_leeway);
    }

    #[test]
    fn defaults_and_bad_values_name_their_key() {
        let ok = env(&[(NATS_URL.name, "nats://x"), (REDIS_URL.name, "redis://y")]);
        let c = GatewayConfig::from_env(&ok).unwrap();
        assert_eq!(c.skew, Duration::from_secs(30));
        assert!(
            c.forward_timeout < Duration::from_secs(5),
            "below a client's timeout"
        );

        // Both bad at once: both reported, each with its reason.
        let mut bad = ok.clone();
        bad.insert(DATA_SKEW.name.into(), "0s".into());
        bad.insert(DATA_FORWARD_TIMEOUT.name.into(), "soon".into());
        let err = GatewayConfig::from_env(&bad).unwrap_err();
        assert_eq!(err.keys(), [DATA_SKEW.name, DATA_FORWARD_TIMEOUT.name]);
        assert!(
            err.to_string().contains("must be between 1s and 1h"),
            "{err}"
        );
        let missing = env(&[(NATS_URL.name, "nats://x")]);
        assert_eq!(
            GatewayConfig::from_env(&missing).unwrap_err().keys(),
            [GATEWAY_REDIS_URL.name]
        );
        // Its own URL first, the shared one otherwise.
        let mut both = ok.clone();
        both.insert(GATEWAY_REDIS_URL.name.into(), "redis://gateway".into());
        assert_eq!(
            GatewayConfig::from_env(&both).unwrap().redis_url,
            "redis://gateway"
        );
    }
}
