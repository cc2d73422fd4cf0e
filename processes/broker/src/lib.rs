//! The broker worker: the business server that issues, distributes and revokes plugin tokens.
//!
//! # Layout
//!
//! - [`config`]: settings from the environment.
//! - `issue`: `token.request`: auth result, mint, record, distribute, reply.
//! - `auth_cache`: auth results already received, reused for a short time per account token.
//! - `revoke`: `token.revoke`: by token id or by account, distributed like tokens.
//! - `introspect`: `token.introspect`: is this token live (for not-yet-distributed tokens).
//! - `keys`: `keys`: the public JWKS of every broker signing key still published.
//! - `keyring`: our signing key in the keys bucket: published before use, renewed while
//!   used, lapsed keys removed (key rotation).
//! - the Redis token ledger is `tessera_ledger` (records, account index, idempotent replies).
//! - `distribute`: JetStream publishes to `dist.<server_id>`, tokens gathered per server.
//! - `dist_open`: `distribution.open.<server_id>`: a pull consumer of one plugin server's
//!   distributions, created for it (plugin servers cannot create consumers themselves).
//! - `assets`: `assets.publish` (check the uploaded blobs, sign the plugin's asset manifest,
//!   move its version pointer) and `plugins.key` (a plugin's registered public key).
//!
//! Every issued, refused and revoked token is also an event on the audit stream
//! (`tessera_runtime::audit`), queued without delaying the reply.
//!
//! [`start`] connects, provisions what the broker owns (the distribution stream, the routes
//! and keys buckets; the audit stream, shared with the auth worker), publishes its public
//! key and starts serving; [`run`] also waits for the shutdown to finish draining.

#![forbid(unsafe_code)]

mod assets;
mod auth_cache;
pub mod config;
mod dist_open;
mod distribute;
mod introspect;
mod issue;
mod keyring;
mod keys;
mod revoke;
/// Public for the fault tests, which play a replica that died mid-request.
use std::sync::Arc;

use anyhow::Context as _;
use async_nats::jetstream;
use tessera_bus_config::provision;
use tessera_ledger::LedgerWriter;
use tessera_protocol::bus;
use tessera_runtime::Shutdown;
use tessera_runtime::audit::Auditor;
use tessera_runtime::service::{self, endpoint_with};
use tessera_runtime::watched::WatchedKv;
use tessera_schemas::messages::Route;
use tessera_schemas::{Subjects, codec};

pub use config::BrokerConfig;

/// Everything a handler needs, shared by all requests.
pub(crate) struct State {
    pub config: BrokerConfig,
    pub subjects: Subjects,
    pub nats: async_nats::Client,
    /// Distribution (`distribute`): JetStream on a connection of its own, so the hot path's
    /// publishes and acks do not queue behind requests and replies in one connection's
    /// reader and writer (measured in BENCHMARKS.md), and one queue per plugin server.
    pub dist: distribute::Distribution,
    pub ledger: LedgerWriter,
    pub routes: WatchedKv<Route>,
    pub keys: WatchedKv<tessera_protocol::signing::PublishedKey>,
    /// Until when our signing key is published (see `keyring`): we mint only within it.
    pub published: Arc<keyring::Published>,
    // Assets and plugin keys.
    pub assets: jetstream::object_store::ObjectStore,
    pub asset_versions: jetstream::kv::Store,
    pub plugin_keys: WatchedKv<tessera_schemas::assets::PluginKeyRecord>,
    pub auth_cache: auth_cache::AuthCache,
    /// Issued, refused and revoked tokens go to the audit stream through this queue.
    pub auditor: Auditor,
}

/// A running broker replica.
pub struct Broker {
    task: tokio::task::JoinHandle<()>,
    auditor: Auditor,
    grace: std::time::Duration,
}

impl Broker {
    /// Waits until the broker has drained after shutdown, then until the audit events of
    /// the drained requests are stored (bounded by the grace period).
    pub async fn join(self) {
        let _ = self.task.await;
        self.auditor.flush(self.grace).await;
    }
}

/// Connects, provisions and starts serving. Returns once requests are being served.
pub async fn start(config: BrokerConfig, shutdown: Shutdown) -> anyhow::Result<Broker> {
    let subjects = config.subjects.clone();
    let nats = bus::connect(&config.nats_url, "tessera-broker", config.connect_wait).await?;
    let js = jetstream::new(nats.clone());
    let dist_nats =
        bus::connect(&config.nats_url, "tessera-broker-dist", config.connect_wait).await?;
    let dist = distribute::Distribution::new(
        jetstream::new(dist_nats),
        subjects.clone(),
        config.dist_shards,
    );
    let d = config.durability;
    // Refuses to start if the streams are laid out for another number of shards: replicas
    // that disagree would publish a server's revocations where its consumer does not read.
    let dist_retention = config.token_ttl + config.dist_margin;
    provision::dist_streams(&js, &subjects, config.dist_shards, dist_retention, d).await?;
    let routes_kv = provision::routes_bucket(&js, &subjects, d).await?;
    let keys_kv = provision::keys_bucket(&js, &subjects, d).await?;
    let assets = provision::assets_store(&js, &subjects, d).await?;
    let asset_versions = provision::asset_versions_bucket(&js, &subjects, d).await?;
    let plugin_keys_kv = provision::plugin_keys_bucket(&js, &subjects, d).await?;
    let audit = config.audit;
    provision::audit_stream(&js, &subjects, audit.max_age, audit.max_bytes, d).await?;
    let node = format!("broker-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let auditor = Auditor::start(js.clone(), subjects.clone(), "broker", node, audit.queue);

    // Publish our public key before minting with it, so a verifier never sees a kid it
    // cannot find; keep it published while we sign with it (`keyring`).
    let key_lifetime = keyring::lifetime(config.token_ttl, config.clock_leeway, config.key_renew);
    let published = Arc::new(keyring::Published::default());
    keyring::publish_initial(&keys_kv, &config.signing_key, key_lifetime, &published)
        .await
        .map_err(|e| anyhow::anyhow!("publishing the public signing key: {e}"))?;

    let ledger = LedgerWriter::new(
        tessera_ledger::connect(&config.redis_url, config.redis_timeout).await?,
        subjects.prefix(),
        config.pending_deadline,
    )
    .with_replica_acks(
        &config.redis_url,
        config.redis_timeout,
        config.redis_replica_acks,
        config.redis_replica_ack_timeout,
    )
    .await?;
    let routes = WatchedKv::start(routes_kv, decode_route, shutdown.clone())
        .await
        .context("watching routes")?;
    let keys = WatchedKv::start(
        keys_kv.clone(),
        tessera_protocol::signing::PublishedKey::from_json,
        shutdown.clone(),
    )
    .await
    .context("watching keys")?;
    tokio::spawn(keyring::maintain(
        keys_kv,
        keys.clone(),
        config.signing_key.clone(),
        key_lifetime,
        config.key_renew,
        published.clone(),
        shutdown.clone(),
    ));
    let plugin_keys = WatchedKv::start(plugin_keys_kv, assets::decode_key_record, shutdown.clone())
        .await
        .context("watching plugin keys")?;

    let state = Arc::new(State {
        auth_cache: auth_cache::AuthCache::new(config.auth_cache_ttl),
        config,
        subjects: subjects.clone(),
        nats: nats.clone(),
        dist,
        ledger,
        routes,
        keys,
        published,
        assets,
        asset_versions,
        plugin_keys,
        auditor: auditor.clone(),
    });
    // Withdraw what dead replicas left pending (every replica sweeps; each id is claimed
    // once), a few times per deadline.
    tokio::spawn(issue::sweep(
        state.clone(),
        state.config.pending_deadline / 3,
        shutdown.clone(),
    ));
    let spec = service::ServiceSpec {
        name: subjects.service_name("broker"),
        description: "Tessera broker: plugin tokens".into(),
        queue_group: tessera_schemas::subjects::QUEUE_BROKER.into(),
        max_in_flight: state.config.max_in_flight,
        grace: state.config.grace,
        endpoints: vec![
            endpoint_with(
                &state,
                "token-request",
                subjects.token_request(),
                issue::handle,
            ),
            endpoint_with(
                &state,
                "token-revoke",
                subjects.token_revoke(),
                revoke::handle,
            ),
            endpoint_with(
                &state,
                "token-introspect",
                subjects.token_introspect(),
                introspect::handle,
            ),
            endpoint_with(&state, "keys", subjects.keys(), keys::handle),
            endpoint_with(
                &state,
                "distribution-open",
                subjects.dist_open_all(),
                dist_open::handle,
            ),
            endpoint_with(
                &state,
                "assets-publish",
                subjects.assets_publish(),
                assets::publish,
            ),
            endpoint_with(
                &state,
                "plugins-key",
                subjects.plugins_key(),
                assets::plugin_key,
            ),
        ],
    };
    // Readiness (the health server's /readyz): NATS connected and Redis answering.
    let readiness = tessera_runtime::health::Readiness::global();
    readiness.register_nats("broker/nats", &shutdown, nats.clone());
    let ledger = state.ledger.reader().clone();
    readiness.register("broker/redis", &shutdown, move || {
        let ledger = ledger.clone();
        async move { ledger.get("readyz").await.map(drop).map_err(|e| e.message) }
    });
    let task = service::start(nats, spec, shutdown)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let grace = state.config.grace;
    Ok(Broker {
        task,
        auditor,
        grace,
    })
}

/// Runs a broker replica until `shutdown`, then drains.
pub async fn run(config: BrokerConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    start(config, shutdown).await?.join().await;
    Ok(())
}

/// A route whose server ids could not be subjects is ignored (and logged by the view).
fn decode_route(bytes: &[u8]) -> Result<Route, String> {
    let route: Route = codec::decode(bytes).map_err(|e| e.to_string())?;
    for server in &route.servers {
        tessera_schemas::ids::check("server id", server).map_err(|e| e.to_string())?;
    }
    Ok(route)
}
