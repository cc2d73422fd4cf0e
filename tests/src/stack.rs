//! A whole Tessera: [`Servers`], one auth worker and N broker replicas running in-process,
//! plus what tests need around them (clients per role, demo plugin servers, users).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tessera_auth::AuthConfig;
use tessera_broker::BrokerConfig;
use tessera_bus_config::Role;
use tessera_bus_config::redis_acl::RedisUser;
use tessera_protocol::signing::SigningKey;
use tessera_runtime::Shutdown;
use tessera_schemas::Subjects;
use tessera_schemas::messages::LoginResponse;
use tessera_sdk::operator::PluginServerSecret;
use tessera_sdk::operator::packages::PublisherKey;
use tessera_sdk::{Client, PluginServer, PluginServerBuilder, TokenStore};

use crate::{ServerErrors, Servers};

mod builder;
pub use builder::StackBuilder;

/// Grace period of every worker and plugin server the harness starts: nothing is in flight
/// when a test stops one, so stopping should never take long.
const GRACE: Duration = Duration::from_secs(2);
/// Bound on connecting, on a worker's drain, and on a plugin server catching up.
const BOUND: Duration = Duration::from_secs(10);

/// One running worker replica and the means to stop it.
struct Worker {
    shutdown: Shutdown,
    join: Option<BoxFuture<'static, ()>>,
}

impl Worker {
    /// Cancels its shutdown and waits (bounded) until it has drained.
    async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(join) = self.join.take()
            && tokio::time::timeout(BOUND, join).await.is_err()
        {
            panic!("worker did not stop within {BOUND:?}");
        }
    }
}

/// Servers plus an auth worker and broker replicas. On drop the workers are told to stop
/// first, then the servers are killed; [`Stack::shutdown`] also waits for the drain.
pub struct Stack {
    // Drop cancels these before `servers` (declared last) kills the servers.
    gateways: Vec<Worker>,
    brokers: Vec<Worker>,
    auth: Vec<Worker>,
    /// Per auth node (same order as `auth`): its config (plugin path, node id) and the
    /// directory behind its plugin path, kept across a restart.
    auth_nodes: Vec<(AuthConfig, tempfile::TempDir)>,
    publisher: PublisherKey,
    broker_key: Arc<SigningKey>,
    auth_key: Arc<SigningKey>,
    /// Bus credentials of every plugin server id registered so far (replicas share them).
    plugin_server_secrets: Mutex<HashMap<String, PluginServerSecret>>,
    config: StackBuilder,
    servers: Servers,
}

impl Stack {
    /// One auth worker and one broker on fresh servers, with the defaults.
    pub async fn start() -> Stack {
        Stack::builder().start().await
    }

    pub fn builder() -> StackBuilder {
        StackBuilder::default()
    }

    pub fn servers(&self) -> &Servers {
        &self.servers
    }

    /// To stop, kill or restart a local server.
    pub fn servers_mut(&mut self) -> &mut Servers {
        &mut self.servers
    }

    pub fn subjects(&self) -> &Subjects {
        self.servers.subjects()
    }

    pub fn url(&self, role: Role) -> String {
        self.servers.url(role)
    }

    /// The key the broker replicas sign plugin tokens with (brokers started from now on).
    pub fn broker_key(&self) -> &Arc<SigningKey> {
        &self.broker_key
    }

    /// Key rotation as an operator does it: a new key file for the brokers started from now
    /// on (running ones keep signing with the old key until they are stopped). Returns the
    /// new key.
    pub fn rotate_broker_key(&mut self) -> Arc<SigningKey> {
        self.broker_key = Arc::new(SigningKey::generate());
        self.broker_key.clone()
    }

    /// The clock leeway every verifier was given.
    pub fn clock_leeway(&self) -> Duration {
        self.config.clock_leeway
    }

    /// The key the auth worker signs account tokens with (to craft expired ones).
    pub fn auth_key(&self) -> &Arc<SigningKey> {
        &self.auth_key
    }

    /// The plugin-token lifetime the brokers were given.
    pub fn pending_deadline(&self) -> Duration {
        self.config.pending_deadline
    }

    pub fn token_ttl(&self) -> Duration {
        self.config.token_ttl
    }

    /// On a cluster, a worker may start while JetStream is still placing a fresh stream's
    /// replicas ("no stream found" for a moment); an orchestrator would restart it, the harness
    /// tries again (bounded). On one server a failed start is a failure at once.
    fn start_attempts(&self) -> usize {
        if self.config.nats_nodes > 1 { 5 } else { 1 }
    }

    /// The package-publisher key every auth node of this stack trusts.
    pub fn publisher(&self) -> &PublisherKey {
        &self.publisher
    }

    /// Auth node `i`'s plugin path (where it installs packages).
    pub fn auth_plugin_path(&self, i: usize) -> &std::path::Path {
        &self.auth_nodes[i].0.plugin_path
    }

    /// Auth node `i`'s node id (as `auth.nodes.status` reports it).
    pub fn auth_node_id(&self, i: usize) -> &str {
        &self.auth_nodes[i].0.node_id
    }

    /// Stops auth node `i` and waits until it has drained.
    pub async fn stop_auth_node(&mut self, i: usize) {
        self.auth[i].stop().await;
    }

    /// Starts auth node `i` again (same node id and plugin path) after
    /// [`Stack::stop_auth_node`]. Returns once it serves, i.e. after it installed every
    /// stored package.
    pub async fn restart_auth_node(&mut self, i: usize) {
        let config = self.auth_nodes[i].0.clone();
        self.auth[i] = self.launch_auth(config).await;
    }

    /// Starts one more auth node with a fresh plugin path. Returns once it serves, i.e.
    /// after it installed every stored package (node join).
    pub async fn start_auth(&mut self) {
        let dir = tempfile::tempdir().expect("a temporary plugin path");
        let mut config = AuthConfig::new(
            self.url(Role::Auth),
            self.subjects().clone(),
            self.auth_key.clone(),
        );
        config.account_token_ttl = self.config.account_token_ttl;
        config.clock_leeway = self.config.clock_leeway;
        config.external_issuers = self.config.external_issuers.clone();
        config.durability.replicas = self.config.nats_nodes;
        config.grace = GRACE;
        config.connect_wait = BOUND;
        config.plugin_path = dir.path().join("plugins");
        config.node_id = format!("auth-{}", self.auth_nodes.len() + 1);
        config.trusted_keys =
            tessera_auth::config::parse_trusted_keys(&self.publisher.public_key())
                .expect("the harness key parses");
        config.reconcile_interval = self.config.reconcile_interval;
        config.login_limits = self.config.login_limits;
        // Every auth node answers the auth callout (one queue group): client apps and plugin
        // servers connect through it.
        config.callout_issuer = self.servers.callout_issuer_seed().map(|seed| {
            tessera_auth::config::IssuerSeed::new(&seed).expect("the harness's issuer seed")
        });
        config.client_password = self.servers.client_password().map(|p| {
            tessera_auth::config::ClientPassword::new(&p).expect("the harness's client password")
        });
        let worker = self.launch_auth(config.clone()).await;
        self.auth.push(worker);
        self.auth_nodes.push((config, dir));
    }

    async fn launch_auth(&self, config: AuthConfig) -> Worker {
        let shutdown = Shutdown::new();
        let attempts = self.start_attempts();
        let auth = retry_start(attempts, "the auth worker", || {
            tessera_auth::start(config.clone(), shutdown.clone())
        })
        .await;
        Worker {
            shutdown,
            join: Some(Box::pin(auth.join())),
        }
    }

    /// Starts one more broker replica (same signing key as the others).
    pub async fn start_broker(&mut self) {
        let config = self.broker_config();
        let shutdown = Shutdown::new();
        let attempts = self.start_attempts();
        let broker = retry_start(attempts, "a broker", || {
            tessera_broker::start(config.clone(), shutdown.clone())
        })
        .await;
        self.brokers.push(Worker {
            shutdown,
            join: Some(Box::pin(broker.join())),
        });
    }

    /// The `TESSERA_DIST_SHARDS` of brokers started from now on (a change of the number:
    /// stop every broker and record it first, docs/reliability.md).
    pub fn set_broker_dist_shards(&mut self, n: u32) {
        self.config.dist_shards = n;
    }

    /// What [`Stack::start_broker`] starts a replica with.
    pub fn broker_config(&self) -> BrokerConfig {
        let mut config = BrokerConfig::new(
            self.url(Role::Broker),
            self.servers.redis_url_as(RedisUser::Broker),
            self.subjects().clone(),
            self.broker_key.clone(),
        );
        config.token_ttl = self.config.token_ttl;
        config.clock_leeway = self.config.clock_leeway;
        config.key_renew = self.config.key_renew;
        config.pending_deadline = self.config.pending_deadline;
        (config.redis_replica_acks, config.redis_replica_ack_timeout) = self.config.replica_acks;
        if let Some(ttl) = self.config.auth_cache_ttl {
            config.auth_cache_ttl = ttl;
        }
        config.durability.replicas = self.config.nats_nodes;
        config.grace = GRACE;
        config.connect_wait = BOUND;
        config.dist_shards = self.config.dist_shards;
        config
    }

    /// Starts one more gateway replica (same queue group as the others).
    pub async fn start_gateway(&mut self) {
        let mut config = tessera_gateway::GatewayConfig::new(
            self.url(Role::Gateway),
            self.servers.redis_url_as(RedisUser::Gateway),
            self.subjects().clone(),
        );
        config.skew = self.config.data_skew;
        config.clock_leeway = self.config.clock_leeway;
        config.durability.replicas = self.config.nats_nodes;
        config.grace = GRACE;
        config.connect_wait = BOUND;
        let shutdown = Shutdown::new();
        let attempts = self.start_attempts();
        let gateway = retry_start(attempts, "a gateway", || {
            tessera_gateway::start(config.clone(), shutdown.clone())
        })
        .await;
        self.gateways.push(Worker {
            shutdown,
            join: Some(Box::pin(gateway.join())),
        });
    }

    /// Stops gateway replica `i` (in start order) and waits until it has drained.
    pub async fn stop_gateway(&mut self, i: usize) {
        self.gateways[i].stop().await;
    }

    /// Stops broker replica `i` (in start order) and waits until it has drained.
    pub async fn stop_broker(&mut self, i: usize) {
        self.brokers[i].stop().await;
    }

    /// Stops every auth worker and waits until they have drained.
    pub async fn stop_auth(&mut self) {
        for w in &mut self.auth {
            w.stop().await;
        }
    }

    /// Stops every worker (waiting for their drain), then the servers.
    pub async fn shutdown(mut self) {
        for w in self
            .gateways
            .iter_mut()
            .chain(self.brokers.iter_mut())
            .chain(self.auth.iter_mut())
        {
            w.stop().await;
        }
        if let Some(n) = self.servers.nats_mut() {
            n.stop().await;
        }
        if let Some(r) = self.servers.redis_mut() {
            r.stop().await;
        }
    }

    /// A raw NATS connection with `role`'s credentials.
    pub async fn nats(&self, role: Role) -> async_nats::Client {
        self.servers.connect(role).await
    }

    /// Options carrying `role`'s credentials (see [`Servers::connect_options`]).
    pub fn connect_options(&self, role: Role) -> async_nats::ConnectOptions {
        self.servers.connect_options(role)
    }

    /// A raw NATS connection with `role`'s credentials that records the errors the server
    /// sends it (permission violations).
    pub async fn nats_recording(&self, role: Role) -> (async_nats::Client, ServerErrors) {
        self.servers.connect_recording(role).await
    }

    /// An SDK client with `role`'s credentials.
    pub async fn client_as(&self, role: Role) -> Client {
        Client::new(self.nats(role).await, self.subjects().clone())
    }

    /// An SDK client with the client role (what a client app has).
    pub async fn client(&self) -> Client {
        self.client_as(Role::Client).await
    }

    /// An SDK client with the admin role.
    pub async fn admin(&self) -> Client {
        self.client_as(Role::Admin).await
    }

    /// Adds a local user (admin) and logs in (client); returns the login reply, which holds
    /// the account token and account id.
    pub async fn user(&self, name: &str, password: &str) -> LoginResponse {
        let added = self
            .admin()
            .await
            .add_user(name, password)
            .await
            .unwrap_or_else(|e| panic!("adding user {name}: {e}"));
        let login = self
            .client()
            .await
            .login(name, password)
            .await
            .unwrap_or_else(|e| panic!("logging in as {name}: {e}"));
        assert_eq!(login.account_id, added.account_id);
        login
    }

    /// Routes `plugin` to `servers` (admin).
    pub async fn route(&self, plugin: &str, servers: &[&str]) {
        let servers: Vec<String> = servers.iter().map(|s| (*s).to_owned()).collect();
        self.admin()
            .await
            .set_route(plugin, &servers)
            .await
            .unwrap_or_else(|e| panic!("routing {plugin}: {e}"));
    }

    /// Plugin server `id`'s bus credentials: registered through the admin client the first
    /// time (as `tessera plugin-servers add` does), the same for every later replica.
    pub async fn plugin_server_secret(&self, id: &str) -> PluginServerSecret {
        if let Some(s) = self.plugin_server_secrets.lock().unwrap().get(id) {
            return s.clone();
        }
        // Rotate: a test may have registered the id itself (the latest secret wins).
        let secret = self
            .admin()
            .await
            .add_plugin_server(id, true)
            .await
            .unwrap_or_else(|e| panic!("registering plugin server {id}: {e}"));
        self.plugin_server_secrets
            .lock()
            .unwrap()
            .insert(id.to_owned(), secret.clone());
        secret
    }

    /// The URL plugin server `id` connects with (its own credentials).
    pub async fn plugin_server_url(&self, id: &str) -> String {
        let secret = self.plugin_server_secret(id).await;
        self.servers.plugin_server_url(&secret)
    }

    /// A raw NATS connection as plugin server `id` (registered if need be), on its own
    /// inbox prefix, as the SDK connects.
    pub async fn plugin_server_nats(&self, id: &str) -> async_nats::Client {
        let url = self.plugin_server_url(id).await;
        tessera_sdk::plugin_server::connect(&url, self.subjects(), id)
            .await
            .unwrap_or_else(|e| panic!("connecting as plugin server {id}: {e}"))
    }

    /// Plugin server `id`'s distribution connection (user `plugin-server-dist.<id>`), as
    /// the SDK connects it, recording the errors the server sends it.
    pub async fn plugin_server_dist_nats_recording(
        &self,
        id: &str,
    ) -> (async_nats::Client, ServerErrors) {
        let secret = self.plugin_server_secret(id).await;
        let url = self.servers.plugin_server_url(&secret);
        // The URL's host(s), with the distribution user and the same secret.
        let url = url.replace(
            &format!("{}:", secret.user()),
            &format!("{}:", tessera_schemas::plugin_servers::dist_user_name(id)),
        );
        let opts = async_nats::ConnectOptions::new()
            .name(format!("tessera-test-plugin-server-{id}-dist-recording"))
            .custom_inbox_prefix(self.subjects().plugin_server_inbox(id));
        crate::servers::connect_recording_with(opts, &url)
            .await
            .unwrap_or_else(|e| panic!("connecting plugin server {id}'s distribution: {e}"))
    }

    /// [`Stack::plugin_server_nats`] that also records the errors the server sends it
    /// (permission violations).
    pub async fn plugin_server_nats_recording(
        &self,
        id: &str,
    ) -> (async_nats::Client, ServerErrors) {
        let url = self.plugin_server_url(id).await;
        let opts = async_nats::ConnectOptions::new()
            .name(format!("tessera-test-plugin-server-{id}-recording"))
            .custom_inbox_prefix(self.subjects().plugin_server_inbox(id));
        crate::servers::connect_recording_with(opts, &url)
            .await
            .unwrap_or_else(|e| panic!("connecting as plugin server {id}: {e}"))
    }

    /// An SDK client with plugin server `id`'s credentials (introspection, keys).
    pub async fn plugin_server_client(&self, id: &str) -> Client {
        Client::new(self.plugin_server_nats(id).await, self.subjects().clone())
    }

    /// Starts a demo plugin server replica `id` (the `echo` operation of
    /// [`tessera_plugin_server::with_echo`]) with its own credentials (registered through the
    /// admin client the first time), and waits until it has applied every distribution
    /// already in the stream.
    pub async fn plugin_server(&self, id: &str) -> PluginServerHandle {
        let url = self.plugin_server_url(id).await;
        let builder = PluginServerBuilder::connect(&url, self.subjects().clone(), id)
            .await
            .unwrap_or_else(|e| panic!("connecting as plugin server {id}: {e}"))
            .grace(GRACE)
            .clock_leeway(self.config.clock_leeway);
        let shutdown = Shutdown::new();
        let server = tessera_plugin_server::with_echo(builder, id)
            .start(shutdown.clone())
            .await
            .unwrap_or_else(|e| panic!("starting plugin server {id}: {e}"));
        assert!(
            server.wait_caught_up(BOUND).await,
            "plugin server {id} did not catch up with its distributions within {BOUND:?}"
        );
        PluginServerHandle {
            id: id.to_owned(),
            shutdown,
            server: Some(server),
        }
    }
}

/// Runs `start` up to `attempts` times, a second apart; panics with the last error.
async fn retry_start<T, F, Fut>(attempts: usize, what: &str, mut start: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut attempt = 1;
    loop {
        match start().await {
            Ok(t) => return t,
            Err(e) if attempt < attempts => {
                tracing::warn!(attempt, error = %format!("{e:#}"), "starting {what} failed; trying again");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => panic!("starting {what}: {e:#}"),
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Tell every worker to stop before the servers (dropped after this) are killed.
        for w in self
            .gateways
            .iter()
            .chain(self.brokers.iter())
            .chain(self.auth.iter())
        {
            w.shutdown.cancel();
        }
    }
}

/// One running demo plugin server replica. Dropping it stops it (without waiting).
pub struct PluginServerHandle {
    pub id: String,
    shutdown: Shutdown,
    server: Option<PluginServer>,
}

impl PluginServerHandle {
    fn server(&self) -> &PluginServer {
        self.server.as_ref().expect("running until stopped")
    }

    /// The tokens this replica holds.
    pub fn tokens(&self) -> &Arc<TokenStore> {
        self.server().tokens()
    }

    /// Waits (bounded) until every distribution in the stream at its start is applied.
    pub async fn wait_caught_up(&self, timeout: Duration) -> bool {
        self.server().wait_caught_up(timeout).await
    }

    /// Stops this replica and waits until it has drained.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take()
            && tokio::time::timeout(BOUND, server.join()).await.is_err()
        {
            panic!("plugin server {} did not stop within {BOUND:?}", self.id);
        }
    }
}

impl Drop for PluginServerHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
