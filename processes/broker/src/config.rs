//! Broker settings, from the environment.

use std::sync::Arc;
use std::time::Duration;

use tessera_bus_config::Role;
use tessera_bus_config::provision::Durability;
use tessera_protocol::signing::SigningKey;
use tessera_runtime::audit::AuditConfig;
use tessera_runtime::config::{self, ConfigError, Source};
use tessera_schemas::Subjects;

pub const ENV_REDIS_URL: &str = "REDIS_URL";
/// PEM file of the broker's Ed25519 signing key; created if missing. Replicas share it.
pub const ENV_KEY_FILE: &str = "TESSERA_BROKER_KEY_FILE";
pub const ENV_TOKEN_TTL: &str = "TESSERA_TOKEN_TTL";
pub const ENV_MAX_IN_FLIGHT: &str = "TESSERA_MAX_IN_FLIGHT";
pub const ENV_GRACE: &str = "TESSERA_GRACE";
pub const ENV_JS_REPLICAS: &str = "TESSERA_JS_REPLICAS";
/// How long the broker reuses an auth result for the same account token (0s: never).
pub const ENV_AUTH_CACHE_TTL: &str = "TESSERA_AUTH_CACHE_TTL";
/// How long a recorded token may stay uncommitted before a sweeper withdraws it (see
/// `tessera_ledger::LedgerWriter::commit`).
pub const ENV_PENDING_DEADLINE: &str = "TESSERA_BROKER_PENDING_DEADLINE";

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub nats_url: String,
    pub redis_url: String,
    pub subjects: Subjects,
    pub signing_key: Arc<SigningKey>,
    /// Lifetime of a plugin token.
    pub token_ttl: Duration,
    /// Extra time the distribution stream keeps events beyond the token lifetime.
    pub dist_margin: Duration,
    pub max_in_flight: usize,
    pub grace: Duration,
    /// How long to wait for the auth worker's answer.
    pub auth_timeout: Duration,
    /// How long an auth result is reused for the same account token (see `auth_cache`).
    pub auth_cache_ttl: Duration,
    /// Bound on each Redis command, so a Redis outage is a prompt `unavailable`.
    pub redis_timeout: Duration,
    /// How long to keep trying the first NATS connection.
    pub connect_wait: Duration,
    pub durability: Durability,
    /// Clock leeway of introspection, and part of a key's publication (`TESSERA_CLOCK_LEEWAY`).
    pub clock_leeway: Duration,
    /// How often a replica renews its key's publication (see `keyring`).
    pub key_renew: Duration,
    /// The audit stream's bounds and this replica's audit queue.
    pub audit: AuditConfig,
    /// How long a token may stay recorded but uncommitted (its distribution not yet
    /// acknowledged, or its replica dead) before a sweeper withdraws it.
    pub pending_deadline: Duration,
}

impl BrokerConfig {
    /// Defaults for everything but the endpoints and the key.
    pub fn new(
        nats_url: String,
        redis_url: String,
        subjects: Subjects,
        signing_key: Arc<SigningKey>,
    ) -> Self {
        BrokerConfig {
            nats_url,
            redis_url,
            subjects,
            signing_key,
            token_ttl: Duration::from_secs(15 * 60),
            dist_margin: Duration::from_secs(60),
            max_in_flight: 256,
            grace: Duration::from_secs(10),
            auth_timeout: Duration::from_secs(2),
            auth_cache_ttl: Duration::from_secs(30),
            redis_timeout: Duration::from_millis(1000),
            connect_wait: Duration::from_secs(30),
            durability: Durability::default(),
            clock_leeway: tessera_protocol::jwt::DEFAULT_LEEWAY,
            key_renew: Duration::from_secs(60),
            audit: AuditConfig::default(),
            pending_deadline: Duration::from_secs(30),
        }
    }

    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        let subjects = config::prefix(src)?;
        let nats_url = config::first_of(src, &[Role::Broker.url_env(), Role::Client.url_env()])?;
        let redis_url = config::required(src, ENV_REDIS_URL)?;
        let signing_key = config::signing_key(src, ENV_KEY_FILE)?;
        let mut c = BrokerConfig::new(nats_url, redis_url, subjects, Arc::new(signing_key));
        c.token_ttl = config::duration(src, ENV_TOKEN_TTL, c.token_ttl)?;
        if c.token_ttl < Duration::from_secs(10) || c.token_ttl > Duration::from_secs(24 * 3600) {
            return Err(ConfigError::new(
                ENV_TOKEN_TTL,
                "must be between 10s and 24h",
            ));
        }
        c.max_in_flight = config::parsed(src, ENV_MAX_IN_FLIGHT, c.max_in_flight)?;
        if c.max_in_flight == 0 {
            return Err(ConfigError::new(ENV_MAX_IN_FLIGHT, "must be at least 1"));
        }
        c.grace = config::duration(src, ENV_GRACE, c.grace)?;
        c.durability.replicas = config::parsed(src, ENV_JS_REPLICAS, 1usize)?;
        c.clock_leeway = config::clock_leeway(src)?;
        c.auth_cache_ttl = config::duration(src, ENV_AUTH_CACHE_TTL, c.auth_cache_ttl)?;
        if c.auth_cache_ttl > Duration::from_secs(3600) {
            return Err(ConfigError::new(ENV_AUTH_CACHE_TTL, "must be at most 1h"));
        }
        c.audit = AuditConfig::from_env(src)?;
        // Never past a token's life by default (a short-lived token needs no longer watch).
        let default_deadline = c.pending_deadline.min(c.token_ttl);
        c.pending_deadline = config::duration(src, ENV_PENDING_DEADLINE, default_deadline)?;
        if c.pending_deadline < Duration::from_secs(1) || c.pending_deadline > c.token_ttl {
            return Err(ConfigError::new(
                ENV_PENDING_DEADLINE,
                "must be between 1s and the token TTL",
            ));
        }
        Ok(c)
    }
}
