//! The dev stack as a value: nats-server and redis-server children plus in-process workers.
//! `tessera-dev up` runs one until Ctrl-C; `tessera-bench` runs one for its measurements,
//! so both exercise exactly the same code.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::{LocalNats, LocalRedis, NatsOptions, RedisOptions};
use anyhow::Context as _;
use tessera_bus_config::redis_acl::{RedisCredentials, RedisUser};
use tessera_bus_config::roles::PLUGIN_SERVER_URL_ENV;
use tessera_bus_config::{Credentials, Role, ServerConfig};
use tessera_protocol::signing::SigningKey;
use tessera_runtime::Shutdown;
use tessera_runtime::config::registry;
use tessera_schemas::Subjects;
use tessera_sdk::{PluginServer, PluginServerBuilder};

use tessera_runtime::env_file;

pub struct StackOptions {
    pub data_dir: PathBuf,
    pub nats_port: Option<u16>,
    pub redis_port: Option<u16>,
    /// Keep Redis data across restarts (the dev stack does; the benchmark does not).
    pub persist: bool,
    /// Demo plugin servers to run (each with the `echo` operation).
    pub plugin_servers: Vec<String>,
    pub subjects: Subjects,
    /// Plugin-token lifetime (default: the broker's, 15 minutes).
    pub token_ttl: Option<Duration>,
    /// The auth node's login limits (the benchmark turns them off: it measures capacity).
    pub login_limits: tessera_auth::limits::LoginLimitsConfig,
    /// nats-server's monitoring endpoint on a free loopback port (the benchmark reads its
    /// message counts from `/varz`).
    pub nats_monitor: bool,
}

/// One worker replica with its own shutdown, so it can be stopped alone.
struct Replica<W> {
    shutdown: Shutdown,
    worker: W,
}

pub struct DevStack {
    pub nats: LocalNats,
    pub redis: LocalRedis,
    pub subjects: Subjects,
    pub data: PathBuf,
    credentials: Credentials,
    redis_credentials: RedisCredentials,
    broker_key: Arc<SigningKey>,
    auth_key: Arc<SigningKey>,
    shutdown: Shutdown,
    token_ttl: Option<Duration>,
    login_limits: tessera_auth::limits::LoginLimitsConfig,
    auth: Vec<Replica<tessera_auth::Auth>>,
    brokers: Vec<Replica<tessera_broker::Broker>>,
    gateways: Vec<Replica<tessera_gateway::Gateway>>,
    plugin_servers: Vec<Replica<PluginServer>>,
    /// The URL of each plugin server started here (its own credentials, issued at start).
    plugin_server_urls: Vec<(String, String)>,
}

/// Credentials are kept in the data dir, so a restarted stack keeps its URLs. A data dir
/// from before the Redis users gets Redis passwords added, its NATS ones kept.
fn load_or_create_credentials(path: &Path) -> anyhow::Result<(Credentials, RedisCredentials)> {
    let saved = std::fs::read_to_string(path)
        .map(|text| env_file::parse(&text))
        .unwrap_or_default();
    let nats = Credentials::from_saved(|key| saved.get(key).cloned());
    let redis = RedisCredentials::from_passwords(|u| saved.get(&redis_key(u)).cloned());
    if let (Some(n), Some(r)) = (&nats, &redis) {
        return Ok((n.clone(), r.clone()));
    }
    let nats = nats.unwrap_or_else(Credentials::generate);
    let redis = redis.unwrap_or_else(RedisCredentials::generate);
    let mut pairs: Vec<(String, String)> = nats
        .saved_pairs()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    pairs.extend(
        RedisUser::ALL
            .into_iter()
            .map(|u| (redis_key(u), redis.password(u).to_owned())),
    );
    let pairs: Vec<(&str, String)> = pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    env_file::write(path, &pairs)?;
    Ok((nats, redis))
}

fn redis_key(user: RedisUser) -> String {
    format!("redis-{}", user.name())
}

impl DevStack {
    /// Starts the servers, then the auth worker, one broker and the plugin servers.
    /// `shutdown` stops every worker (each also has its own, child of it).
    pub async fn start(opts: StackOptions, shutdown: Shutdown) -> anyhow::Result<DevStack> {
        let plugin_servers = opts.plugin_servers.clone();
        let mut stack = DevStack::servers(opts, shutdown).await?;
        if let Err(e) = stack.start_workers(&plugin_servers).await {
            stack.stop().await;
            return Err(e);
        }
        Ok(stack)
    }

    /// The auth worker, one broker, one gateway and the given plugin servers.
    pub async fn start_workers(&mut self, plugin_servers: &[String]) -> anyhow::Result<()> {
        self.add_auth().await?;
        self.add_broker().await?;
        self.add_gateway().await?;
        for id in plugin_servers {
            self.add_plugin_server(id).await?;
        }
        Ok(())
    }

    /// Only the servers (nats-server, redis-server), no workers yet.
    pub async fn servers(opts: StackOptions, shutdown: Shutdown) -> anyhow::Result<DevStack> {
        for s in &opts.plugin_servers {
            tessera_schemas::ids::check("plugin server id", s)?;
        }
        let data = opts.data_dir.clone();
        for dir in ["jetstream", "redis", "keys", "nats"] {
            std::fs::create_dir_all(data.join(dir))
                .with_context(|| format!("creating {}", data.join(dir).display()))?;
        }
        let data = data.canonicalize()?;
        let (credentials, redis_credentials) =
            load_or_create_credentials(&data.join("credentials"))?;
        let nats_config = ServerConfig {
            host: "127.0.0.1".into(),
            port: opts.nats_port,
            store_dir: data.join("jetstream"),
            server_name: "tessera-dev".into(),
            subjects: opts.subjects.clone(),
            credentials: credentials.clone(),
        };
        let nats = LocalNats::start(NatsOptions {
            monitor: opts.nats_monitor,
            ..NatsOptions::new(nats_config, data.join("nats"))
        })
        .await?;
        let mut redis_opts = RedisOptions::new(data.join("redis"));
        redis_opts.port = opts.redis_port;
        redis_opts.persist = opts.persist;
        redis_opts.acl = redis_credentials.acl_lines(opts.subjects.prefix());
        let redis = LocalRedis::start(redis_opts).await?;
        let broker_key = Arc::new(SigningKey::load_or_generate(&data.join("keys/broker.pem"))?);
        let auth_key = Arc::new(SigningKey::load_or_generate(&data.join("keys/auth.pem"))?);

        Ok(DevStack {
            nats,
            redis,
            subjects: opts.subjects,
            data,
            credentials,
            redis_credentials,
            broker_key,
            auth_key,
            shutdown,
            token_ttl: opts.token_ttl,
            login_limits: opts.login_limits,
            auth: Vec::new(),
            brokers: Vec::new(),
            gateways: Vec::new(),
            plugin_servers: Vec::new(),
            plugin_server_urls: Vec::new(),
        })
    }

    /// The URL (with credentials) of one role.
    pub fn url(&self, role: Role) -> String {
        self.credentials
            .url(role, self.nats.host(), self.nats.port())
    }

    pub fn broker_key_file(&self) -> PathBuf {
        self.data.join("keys/broker.pem")
    }

    pub fn auth_key_file(&self) -> PathBuf {
        self.data.join("keys/auth.pem")
    }

    /// The settings a client of this stack needs, as `KEY=VALUE` pairs.
    pub fn env_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs: Vec<(&'static str, String)> = [
            Role::Client,
            Role::Admin,
            Role::Broker,
            Role::Auth,
            Role::Gateway,
        ]
        .into_iter()
        .map(|r| (r.url_env(), self.url(r)))
        .collect();
        // The first demo plugin server's own credentials (`tessera plugin-server --id` with
        // this file runs another replica of it).
        if let Some((_, url)) = self.plugin_server_urls.first() {
            pairs.push((PLUGIN_SERVER_URL_ENV, url.clone()));
        }
        pairs.push((
            registry::CALLOUT_ISSUER_SEED.name,
            self.credentials.callout_issuer_seed().to_owned(),
        ));
        pairs.push((
            registry::CLIENT_PASSWORD.name,
            self.credentials.password(Role::Client).to_owned(),
        ));
        pairs.extend([
            (registry::REDIS_URL.name, self.redis_url(RedisUser::Broker)),
            (
                registry::GATEWAY_REDIS_URL.name,
                self.redis_url(RedisUser::Gateway),
            ),
            (registry::PREFIX.name, self.subjects.prefix().to_owned()),
            (
                registry::BROKER_KEY_FILE.name,
                self.broker_key_file().display().to_string(),
            ),
            (
                registry::AUTH_KEY_FILE.name,
                self.auth_key_file().display().to_string(),
            ),
            (
                registry::AUTH_PLUGIN_PATH.name,
                self.plugin_path().display().to_string(),
            ),
        ]);
        if let Ok(key) = self.publisher_key() {
            pairs.push((registry::PACKAGE_TRUSTED_KEYS.name, key.public_key()));
        }
        pairs
    }

    /// `user`'s URL to this stack's Redis (`Admin`: every key and command, for inspection).
    pub fn redis_url(&self, user: RedisUser) -> String {
        self.redis_credentials.url(user, &self.redis.host_port())
    }

    pub fn plugin_path(&self) -> PathBuf {
        self.data.join("plugins")
    }

    /// The dev stack's package-publisher key (made on first start); its auth node trusts it.
    pub fn publisher_key_file(&self) -> PathBuf {
        self.data.join("keys/publisher.key")
    }

    pub fn publisher_key(&self) -> anyhow::Result<tessera_sdk::operator::packages::PublisherKey> {
        use tessera_sdk::operator::packages::PublisherKey;
        let path = self.publisher_key_file();
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Ok(PublisherKey::from_file_text(&text)?);
        }
        let key = PublisherKey::generate();
        crate::write_private(&path, &key.to_file_text())?;
        Ok(key)
    }

    pub async fn add_auth(&mut self) -> anyhow::Result<()> {
        let shutdown = self.shutdown.child_token();
        let mut cfg = tessera_auth::AuthConfig::new(
            self.url(Role::Auth),
            self.subjects.clone(),
            self.auth_key.clone(),
        );
        cfg.plugin_path = self.plugin_path();
        cfg.login_limits = self.login_limits;
        // The dev key, plus any the operator lists in the environment.
        let mut keys = self.publisher_key()?.public_key();
        if let Ok(more) = std::env::var(registry::PACKAGE_TRUSTED_KEYS.name) {
            keys = format!("{keys},{more}");
        }
        cfg.trusted_keys = tessera_auth::config::parse_trusted_keys(&keys)
            .map_err(|e| anyhow::anyhow!("{}: {e}", registry::PACKAGE_TRUSTED_KEYS.name))?;
        // The auth node admits client apps and plugin servers (the auth callout of this
        // stack's nats.conf).
        cfg.callout_issuer = Some(tessera_auth::config::IssuerSeed::new(
            self.credentials.callout_issuer_seed(),
        )?);
        cfg.client_password = Some(tessera_auth::config::ClientPassword::new(
            self.credentials.password(Role::Client),
        )?);
        let worker = tessera_auth::start(cfg, shutdown.clone())
            .await
            .context("starting the auth worker")?;
        self.auth.push(Replica { shutdown, worker });
        Ok(())
    }

    /// Answers the auth callout without an auth worker, so client apps can connect to the
    /// servers alone (the benchmark's floors run before any worker). It stops with the
    /// stack; an auth worker started later answers in the same queue group.
    pub async fn admit_clients(&self) -> anyhow::Result<()> {
        let nats = tessera_protocol::bus::connect(
            &self.url(Role::Auth),
            "tessera-dev-callout",
            Duration::from_secs(10),
        )
        .await?;
        let callout = tessera_auth::callout::Callout::new(
            &nats,
            self.subjects.clone(),
            &tessera_auth::callout::IssuerSeed::new(self.credentials.callout_issuer_seed())?,
            Some(tessera_auth::callout::ClientPassword::new(
                self.credentials.password(Role::Client),
            )?),
            Default::default(),
        )
        .await?;
        tessera_auth::callout::start(nats, callout, self.shutdown.child_token()).await?;
        Ok(())
    }

    /// Starts another broker replica (they share the signing key and the queue group).
    pub async fn add_broker(&mut self) -> anyhow::Result<()> {
        let shutdown = self.shutdown.child_token();
        let mut cfg = tessera_broker::BrokerConfig::new(
            self.url(Role::Broker),
            self.redis_url(RedisUser::Broker),
            self.subjects.clone(),
            self.broker_key.clone(),
        );
        if let Some(ttl) = self.token_ttl {
            cfg.token_ttl = ttl;
        }
        // The one broker setting the dev stack and the benchmark take from the environment,
        // so the benchmark can be run with the auth-result cache off for comparison.
        cfg.auth_cache_ttl =
            tessera_runtime::config::read(&tessera_runtime::config::ProcessEnv, |r| {
                r.duration(&registry::AUTH_CACHE_TTL)
            })?;
        let worker = tessera_broker::start(cfg, shutdown.clone())
            .await
            .context("starting the broker")?;
        self.brokers.push(Replica { shutdown, worker });
        Ok(())
    }

    /// Stops the newest broker replica and waits for it to drain.
    pub async fn remove_broker(&mut self) {
        if let Some(r) = self.brokers.pop() {
            r.shutdown.cancel();
            r.worker.join().await;
        }
    }

    /// Starts a gateway replica (signed data-access packets).
    pub async fn add_gateway(&mut self) -> anyhow::Result<()> {
        let shutdown = self.shutdown.child_token();
        let cfg = tessera_gateway::GatewayConfig::new(
            self.url(Role::Gateway),
            self.redis_url(RedisUser::Gateway),
            self.subjects.clone(),
        );
        let worker = tessera_gateway::start(cfg, shutdown.clone())
            .await
            .context("starting the gateway")?;
        self.gateways.push(Replica { shutdown, worker });
        Ok(())
    }

    /// Issues plugin server `id` fresh credentials (rotating any earlier ones: the dev stack
    /// keeps no secret across restarts) and starts a demo replica with them.
    pub async fn add_plugin_server(&mut self, id: &str) -> anyhow::Result<()> {
        let shutdown = self.shutdown.child_token();
        let admin = tessera_protocol::bus::connect(
            &self.url(Role::Admin),
            "tessera-dev-admin",
            Duration::from_secs(10),
        )
        .await?;
        let secret = tessera_sdk::Client::new(admin, self.subjects.clone())
            .add_plugin_server(id, true)
            .await
            .with_context(|| format!("registering plugin server {id}"))?;
        let url = secret.url(&[format!("{}:{}", self.nats.host(), self.nats.port())]);
        let builder = PluginServerBuilder::connect(&url, self.subjects.clone(), id).await?;
        self.plugin_server_urls.push((id.to_owned(), url));
        let worker = tessera_plugin_server::with_echo(builder, id)
            .start(shutdown.clone())
            .await?;
        self.plugin_servers.push(Replica { shutdown, worker });
        Ok(())
    }

    /// Drains every worker, then stops the servers.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for r in self.plugin_servers.drain(..) {
            r.worker.join().await;
        }
        for r in self.gateways.drain(..) {
            r.worker.join().await;
        }
        for r in self.brokers.drain(..) {
            r.worker.join().await;
        }
        for r in self.auth.drain(..) {
            r.worker.join().await;
        }
        self.nats.stop().await;
        self.redis.stop().await;
    }
}
