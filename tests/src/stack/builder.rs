//! [`StackBuilder`]: what a [`Stack`] starts with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_auth::ExternalIssuer;
use tessera_protocol::signing::SigningKey;
use tessera_sdk::operator::packages::PublisherKey;

use super::Stack;
use crate::servers::RedisClusterSpec;
use crate::{Backend, Servers};

/// Configures a [`Stack`].
#[derive(Debug, Clone)]
pub struct StackBuilder {
    pub(super) backend: Option<Backend>,
    pub(super) prefix: Option<String>,
    pub(super) nats_nodes: usize,
    pub(super) brokers: usize,
    pub(super) gateways: usize,
    pub(super) data_skew: Duration,
    pub(super) token_ttl: Duration,
    pub(super) account_token_ttl: Duration,
    pub(super) external_issuers: Vec<ExternalIssuer>,
    pub(super) auth_nodes: usize,
    pub(super) reconcile_interval: Duration,
    pub(super) clock_leeway: Duration,
    pub(super) key_renew: Duration,
    pub(super) pending_deadline: Duration,
    pub(super) auth_cache_ttl: Option<Duration>,
    pub(super) login_limits: tessera_auth::limits::LoginLimitsConfig,
    pub(super) redis_cluster: Option<RedisClusterSpec>,
    /// Replica acks (`WAIT`) the brokers ask of commits and revocations, and how long.
    pub(super) replica_acks: (u32, Duration),
    pub(super) dist_shards: u32,
}

impl Default for StackBuilder {
    fn default() -> Self {
        StackBuilder {
            backend: None,
            prefix: None,
            nats_nodes: 1,
            brokers: 1,
            gateways: 0,
            data_skew: Duration::from_secs(30),
            token_ttl: Duration::from_secs(15 * 60),
            account_token_ttl: Duration::from_secs(3600),
            external_issuers: Vec::new(),
            auth_nodes: 1,
            reconcile_interval: Duration::from_secs(30),
            clock_leeway: tessera_protocol::jwt::DEFAULT_LEEWAY,
            key_renew: Duration::from_secs(60),
            pending_deadline: Duration::from_secs(30),
            auth_cache_ttl: None,
            login_limits: Default::default(),
            redis_cluster: None,
            replica_acks: (0, Duration::from_millis(250)),
            dist_shards: 1,
        }
    }
}

impl StackBuilder {
    /// Where the servers come from (default: [`Backend::from_env`]). Tests that stop servers
    /// or rely on role permissions ask for [`Backend::Local`].
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Subject and Redis key prefix (default: see [`Servers::start_with`]).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = Some(prefix.to_owned());
        self
    }

    /// A NATS cluster of `n` members instead of one server (container backend only); the
    /// workers then keep their streams and buckets with `n` replicas.
    pub fn nats_nodes(mut self, n: usize) -> Self {
        self.nats_nodes = n;
        self
    }

    /// Broker replicas, all with the same signing key (default 1).
    /// The brokers' `TESSERA_DIST_SHARDS` (default 1).
    pub fn dist_shards(mut self, n: u32) -> Self {
        self.dist_shards = n;
        self
    }

    pub fn brokers(mut self, n: usize) -> Self {
        self.brokers = n;
        self
    }

    /// Gateway replicas (signed data-access packets; default 0).
    pub fn gateways(mut self, n: usize) -> Self {
        self.gateways = n;
        self
    }

    /// The gateways' allowed timestamp skew (default 30 s).
    pub fn data_skew(mut self, skew: Duration) -> Self {
        self.data_skew = skew;
        self
    }

    /// Plugin-token lifetime (default 15 minutes).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// Account-token lifetime (default 1 hour).
    pub fn account_token_ttl(mut self, ttl: Duration) -> Self {
        self.account_token_ttl = ttl;
        self
    }

    /// An external identity provider the auth worker trusts.
    pub fn external_issuer(mut self, issuer: ExternalIssuer) -> Self {
        self.external_issuers.push(issuer);
        self
    }

    /// Auth nodes, each with its own plugin path (default 1).
    pub fn auth_nodes(mut self, n: usize) -> Self {
        self.auth_nodes = n;
        self
    }

    /// How often auth nodes reconcile their packages without a broadcast (default 30 s).
    pub fn reconcile_interval(mut self, every: Duration) -> Self {
        self.reconcile_interval = every;
        self
    }

    /// The clock leeway of every token verifier (default 5 s).
    pub fn clock_leeway(mut self, leeway: Duration) -> Self {
        self.clock_leeway = leeway;
        self
    }

    /// How often brokers renew their key's publication (default 60 s; key rotation tests
    /// shorten it, since a retired key lapses `token_ttl + leeway + 2 x renew` after its
    /// last use).
    pub fn key_renew(mut self, every: Duration) -> Self {
        self.key_renew = every;
        self
    }

    /// How long a broker's token may stay recorded but uncommitted before a sweeper
    /// withdraws it (default 30 s; fault tests shorten it to see the sweep).
    pub fn pending_deadline(mut self, deadline: Duration) -> Self {
        self.pending_deadline = deadline;
        self
    }

    /// How long brokers reuse an auth result (default: the broker's, 30 s; zero: every
    /// token request asks `auth.verify`).
    pub fn auth_cache_ttl(mut self, ttl: Duration) -> Self {
        self.auth_cache_ttl = Some(ttl);
        self
    }

    /// The auth nodes' login limits (default: the product's defaults).
    pub fn login_limits(mut self, limits: tessera_auth::limits::LoginLimitsConfig) -> Self {
        self.login_limits = limits;
        self
    }

    /// Workers on a local Redis Cluster of this shape instead of a single Redis (local
    /// servers).
    pub fn redis_cluster(mut self, spec: RedisClusterSpec) -> Self {
        self.redis_cluster = Some(spec);
        self.backend = Some(Backend::Local);
        self
    }

    /// Replica acks the brokers ask of every commit and revocation
    /// (`TESSERA_REDIS_REPLICA_ACKS`, `TESSERA_REDIS_REPLICA_ACK_TIMEOUT`; default none).
    pub fn replica_acks(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replica_acks = (replicas, timeout);
        self
    }

    pub async fn start(self) -> Stack {
        let backend = self.backend.clone().unwrap_or_else(Backend::from_env);
        let mut servers =
            Servers::start_nodes(backend, self.prefix.as_deref(), self.nats_nodes).await;
        if let Some(spec) = self.redis_cluster {
            servers.start_redis_cluster(spec).await;
        }
        let mut stack = Stack {
            gateways: Vec::new(),
            brokers: Vec::new(),
            auth: Vec::new(),
            auth_nodes: Vec::new(),
            publisher: PublisherKey::generate(),
            broker_key: Arc::new(SigningKey::generate()),
            auth_key: Arc::new(SigningKey::generate()),
            plugin_server_secrets: Mutex::new(HashMap::new()),
            config: self,
            servers,
        };
        for _ in 0..stack.config.auth_nodes.max(1) {
            stack.start_auth().await;
        }
        for _ in 0..stack.config.brokers {
            stack.start_broker().await;
        }
        for _ in 0..stack.config.gateways {
            stack.start_gateway().await;
        }
        stack
    }
}
