//! Gateway settings, from the environment.

use std::time::Duration;

use tessera_bus_config::Role;
use tessera_bus_config::provision::Durability;
use tessera_runtime::config::{self, ConfigError, Source};
use tessera_schemas::Subjects;

pub const ENV_REDIS_URL: &str = "REDIS_URL";
/// The gateway's own Redis URL (its Redis user may only read token records and claim
/// nonces); `REDIS_URL` when unset. The dev stack's env file sets both.
pub const ENV_GATEWAY_REDIS_URL: &str = "TESSERA_GATEWAY_REDIS_URL";
/// How far a packet's timestamp may be from the gateway's clock (either way).
pub const ENV_SKEW: &str = "TESSERA_DATA_SKEW";
/// Bound on the forward to the plugin server; shorter than a client's request timeout, so
/// a silent plugin server is an `unavailable` reply, never a client-side timeout.
pub const ENV_FORWARD_TIMEOUT: &str = "TESSERA_DATA_FORWARD_TIMEOUT";
pub const ENV_MAX_IN_FLIGHT: &str = "TESSERA_MAX_IN_FLIGHT";
pub const ENV_GRACE: &str = "TESSERA_GRACE";
pub const ENV_JS_REPLICAS: &str = "TESSERA_JS_REPLICAS";

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
            skew: Duration::from_secs(30),
            clock_leeway: tessera_protocol::jwt::DEFAULT_LEEWAY,
            forward_timeout: Duration::from_secs(3),
            max_in_flight: 256,
            grace: Duration::from_secs(10),
            redis_timeout: Duration::from_millis(1000),
            connect_wait: Duration::from_secs(30),
            durability: Durability::default(),
        }
    }

    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        let subjects = config::prefix(src)?;
        let nats_url = config::first_of(src, &[Role::Gateway.url_env(), Role::Client.url_env()])?;
        let redis_url = config::first_of(src, &[ENV_GATEWAY_REDIS_URL, ENV_REDIS_URL])?;
        let mut c = GatewayConfig::new(nats_url, redis_url, subjects);
        c.skew = config::duration(src, ENV_SKEW, c.skew)?;
        if c.skew < Duration::from_secs(1) || c.skew > Duration::from_secs(3600) {
            return Err(ConfigError::new(ENV_SKEW, "must be between 1s and 1h"));
        }
        c.clock_leeway = config::clock_leeway(src)?;
        c.forward_timeout = config::duration(src, ENV_FORWARD_TIMEOUT, c.forward_timeout)?;
        if c.forward_timeout < Duration::from_millis(10)
            || c.forward_timeout > Duration::from_secs(60)
        {
            return Err(ConfigError::new(
                ENV_FORWARD_TIMEOUT,
                "must be between 10ms and 60s",
            ));
        }
        c.max_in_flight = config::parsed(src, ENV_MAX_IN_FLIGHT, c.max_in_flight)?;
        if c.max_in_flight == 0 {
            return Err(ConfigError::new(ENV_MAX_IN_FLIGHT, "must be at least 1"));
        }
        c.grace = config::duration(src, ENV_GRACE, c.grace)?;
        c.durability.replicas = config::parsed(src, ENV_JS_REPLICAS, 1usize)?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

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
        let ok = env(&[("NATS_URL", "nats://x"), ("REDIS_URL", "redis://y")]);
        let c = GatewayConfig::from_env(&ok).unwrap();
        assert_eq!(c.skew, Duration::from_secs(30));
        assert!(
            c.forward_timeout < Duration::from_secs(5),
            "below a client's timeout"
        );

        let mut bad = ok.clone();
        bad.insert(ENV_SKEW.into(), "0s".into());
        assert_eq!(GatewayConfig::from_env(&bad).unwrap_err().key, ENV_SKEW);
        let mut bad = ok.clone();
        bad.insert(ENV_FORWARD_TIMEOUT.into(), "soon".into());
        assert_eq!(
            GatewayConfig::from_env(&bad).unwrap_err().key,
            ENV_FORWARD_TIMEOUT
        );
        let missing = env(&[("NATS_URL", "nats://x")]);
        assert_eq!(
            GatewayConfig::from_env(&missing).unwrap_err().key,
            ENV_GATEWAY_REDIS_URL
        );
        // Its own URL first, the shared one otherwise.
        let mut both = ok.clone();
        both.insert(ENV_GATEWAY_REDIS_URL.into(), "redis://gateway".into());
        assert_eq!(
            GatewayConfig::from_env(&both).unwrap().redis_url,
            "redis://gateway"
        );
    }
}
