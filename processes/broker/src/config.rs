//! Broker settings, from the environment.

use std::sync::Arc;
use std::time::Duration;

use tessera_bus_config::provision::Durability;
use tessera_protocol::signing::SigningKey;
use tessera_runtime::audit::AuditConfig;
use tessera_runtime::config::registry::{
    AUTH_CACHE_TTL, BROKER_KEY_FILE, BROKER_URL, DIST_SHARDS, GRACE, MAX_IN_FLIGHT,
    PENDING_DEADLINE, REDIS_REPLICA_ACK_TIMEOUT, REDIS_REPLICA_ACKS, REDIS_URL, TOKEN_TTL,
};
use tessera_runtime::config::{ConfigError, Reader, Source, WorkerSettings, keys};
use tessera_schemas::Subjects;
use tessera_schemas::dist_shards::MAX_DIST_SHARDS;

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
    /// Redis replicas that must acknowledge a commit and a revocation (`WAIT`; 0: none).
    pub redis_replica_acks: u32,
    /// How long to wait for them.
    pub redis_replica_ack_timeout: Duration,
    /// Distribution streams (`TESSERA_DIST_SHARDS`, 1 ..= `MAX_DIST_SHARDS`; see
    /// `tessera_schemas::dist_shards`).
    pub dist_shards: u32,
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
            token_ttl: TOKEN_TTL.default_duration(),
            dist_margin: Duration::from_secs(60),
            max_in_flight: MAX_IN_FLIGHT.default_parsed(),
            grace: GRACE.default_duration(),
            auth_timeout: Duration::from_secs(2),
            auth_cache_ttl: AUTH_CACHE_TTL.default_duration(),
            redis_timeout: Duration::from_millis(1000),
            connect_wait: Duration::from_secs(30),
            durability: Durability::default(),
            clock_leeway: tessera_protocol::jwt::DEFAULT_LEEWAY,
            key_renew: Duration::from_secs(60),
            audit: AuditConfig::default(),
            pending_deadline: PENDING_DEADLINE.default_duration(),
            redis_replica_acks: REDIS_REPLICA_ACKS.default_parsed(),
            redis_replica_ack_timeout: REDIS_REPLICA_ACK_TIMEOUT.default_duration(),
            dist_shards: DIST_SHARDS.default_parsed(),
        }
    }

    /// From the environment; every bad setting is in the error.
    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        let mut r = Reader::new(src);
        let shared = WorkerSettings::read(&mut r, &BROKER_URL);
        let redis_url = r.required(&REDIS_URL);
        let signing_key = keys::signing_key(&mut r, &BROKER_KEY_FILE);
        let token_ttl = r.duration(&TOKEN_TTL);
        r.check(
            &TOKEN_TTL,
            token_ttl >= Duration::from_secs(10) && token_ttl <= Duration::from_secs(24 * 3600),
            "must be between 10s and 24h",
        );
        let auth_cache_ttl = r.duration(&AUTH_CACHE_TTL);
        r.check(
            &AUTH_CACHE_TTL,
            auth_cache_ttl <= Duration::from_secs(3600),
            "must be at most 1h",
        );
        let audit = AuditConfig::read(&mut r);
        // Never past a token's life by default (a short-lived token needs no longer watch).
        let default_deadline = PENDING_DEADLINE.default_duration().min(token_ttl);
        let pending_deadline = r.duration_or(&PENDING_DEADLINE, default_deadline);
        r.check(
            &PENDING_DEADLINE,
            pending_deadline >= Duration::from_secs(1) && pending_deadline <= token_ttl,
            "must be between 1s and the token TTL",
        );
        let redis_replica_acks: u32 = r.parsed(&REDIS_REPLICA_ACKS);
        r.check(
            &REDIS_REPLICA_ACKS,
            redis_replica_acks <= 16,
            "must be 0-16",
        );
        let redis_replica_ack_timeout = r.duration(&REDIS_REPLICA_ACK_TIMEOUT);
        r.check(
            &REDIS_REPLICA_ACK_TIMEOUT,
            redis_replica_ack_timeout >= Duration::from_millis(10)
                && redis_replica_ack_timeout <= Duration::from_millis(800),
            "must be between 10ms and 800ms (a WAIT must end before the 1 s bound on the command)",
        );
        let dist_shards: u32 = r.parsed(&DIST_SHARDS);
        r.check(
            &DIST_SHARDS,
            (1..=MAX_DIST_SHARDS).contains(&dist_shards),
            "must be between 1 and 8 (the shard streams nats.conf allows)",
        );
        r.finish()?;
        // `finish` reported an unusable key; this only keeps the types honest.
        let signing_key =
            signing_key.ok_or_else(|| ConfigError::new(BROKER_KEY_FILE.name, "no key"))?;
        let mut c = BrokerConfig::new(
            shared.nats_url,
            redis_url,
            shared.subjects,
            Arc::new(signing_key),
        );
        c.max_in_flight = shared.max_in_flight;
        c.grace = shared.grace;
        c.durability.replicas = shared.js_replicas;
        c.clock_leeway = shared.clock_leeway;
        c.token_ttl = token_ttl;
        c.auth_cache_ttl = auth_cache_ttl;
        c.audit = audit;
        c.pending_deadline = pending_deadline;
        c.redis_replica_acks = redis_replica_acks;
        c.redis_replica_ack_timeout = redis_replica_ack_timeout;
        c.dist_shards = dist_shards;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use tessera_runtime::config::from_pairs as env;

    #[test]
    fn defaults_come_from_the_registry_and_every_bad_setting_is_reported() {
        let ok = env(&[
            ("NATS_URL", "nats://x"),
            ("REDIS_URL", "redis://y"),
            ("TESSERA_DEV_EPHEMERAL_KEYS", "1"),
        ]);
        let c = BrokerConfig::from_env(&ok).unwrap();
        assert_eq!(c.token_ttl, Duration::from_secs(15 * 60));
        assert_eq!(c.pending_deadline, Duration::from_secs(30));
        assert_eq!(c.max_in_flight, 256);
        assert_eq!(c.redis_replica_acks, 0);
        assert_eq!(c.redis_replica_ack_timeout, Duration::from_millis(250));
        assert_eq!(c.dist_shards, 1);

        let bad = env(&[
            ("TESSERA_TOKEN_TTL", "5s"),
            ("TESSERA_AUTH_CACHE_TTL", "2h"),
            ("TESSERA_GRACE", "later"),
            ("TESSERA_REDIS_REPLICA_ACKS", "17"),
            ("TESSERA_REDIS_REPLICA_ACK_TIMEOUT", "1s"),
            ("TESSERA_DIST_SHARDS", "9"),
        ]);
        assert_eq!(
            BrokerConfig::from_env(&bad).unwrap_err().keys(),
            [
                "TESSERA_BROKER_URL",
                "TESSERA_GRACE",
                "REDIS_URL",
                "TESSERA_BROKER_KEY_FILE",
                "TESSERA_TOKEN_TTL",
                "TESSERA_AUTH_CACHE_TTL",
                "TESSERA_REDIS_REPLICA_ACKS",
                "TESSERA_REDIS_REPLICA_ACK_TIMEOUT",
                "TESSERA_DIST_SHARDS",
            ]
        );
    }
}
