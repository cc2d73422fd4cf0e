//! The gateway worker: signed data-access packets.
//!
//! # Layout
//!
//! - [`config`]: settings from the environment.
//! - `packet`: `data.<plugin_id>`: the checks, in order (signature, timestamp, nonce,
//!   token, verification info, route), then the forward.
//! - `replay`: Redis: the shared nonce cache and the broker's token records.
//! - `token`: plugin-token signature and expiry, with a cache of verified tokens.
//! - `forward`: the request to `svc.<server_id>.<server_operation>` and its answer.
//!
//! The gateway is stateless: every replica serves `data.*` in one queue group, reads the
//! client apps, data routes and broker keys from watched KV views, and shares the replay
//! cache through Redis. [`start`] connects, provisions the buckets it reads (idempotent)
//! and starts serving; [`run`] also waits for the drain after shutdown.

#![forbid(unsafe_code)]

pub mod config;
mod forward;
mod packet;
mod replay;
mod token;

use std::sync::Arc;

use anyhow::Context as _;
use async_nats::jetstream;
use tessera_bus_config::provision;
use tessera_protocol::bus;
use tessera_runtime::Shutdown;
use tessera_runtime::service::{self, endpoint_with};
use tessera_runtime::watched::WatchedKv;
use tessera_schemas::data::{CLIENT_SECRET_LEN, ClientApp, DataRoute};
use tessera_schemas::{Subjects, codec, ids};

pub use config::GatewayConfig;

/// Everything a handler needs, shared by all requests.
pub(crate) struct State {
    pub config: GatewayConfig,
    pub subjects: Subjects,
    /// `<prefix>.data.`, to read the plugin id off a request's subject.
    pub data_subject_prefix: String,
    pub nats: async_nats::Client,
    pub replay: replay::ReplayCache,
    pub apps: WatchedKv<ClientApp>,
    pub routes: WatchedKv<DataRoute>,
    pub tokens: token::Verifier,
}

/// A running gateway replica.
pub struct Gateway {
    task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    /// Waits until the gateway has drained after shutdown.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Connects, provisions and starts serving. Returns once requests are being served.
pub async fn start(config: GatewayConfig, shutdown: Shutdown) -> anyhow::Result<Gateway> {
    let subjects = config.subjects.clone();
    let nats = bus::connect(&config.nats_url, "tessera-gateway", config.connect_wait).await?;
    let js = jetstream::new(nats.clone());
    let d = config.durability;
    let apps_kv = provision::client_apps_bucket(&js, &subjects, d).await?;
    let routes_kv = provision::data_routes_bucket(&js, &subjects, d).await?;
    let keys_kv = provision::keys_bucket(&js, &subjects, d).await?;
    let replay =
        replay::ReplayCache::connect(&config.redis_url, subjects.prefix(), config.redis_timeout)
            .await?;
    let apps = WatchedKv::start(apps_kv, decode_app, shutdown.clone())
        .await
        .context("watching client apps")?;
    let routes = WatchedKv::start(routes_kv, decode_route, shutdown.clone())
        .await
        .context("watching data routes")?;
    let keys = WatchedKv::start(
        keys_kv,
        tessera_protocol::signing::PublishedKey::from_json,
        shutdown.clone(),
    )
    .await
    .context("watching keys")?;

    let leeway = config.clock_leeway;
    let state = Arc::new(State {
        data_subject_prefix: format!("{}.data.", subjects.prefix()),
        config,
        subjects: subjects.clone(),
        nats: nats.clone(),
        replay,
        apps,
        routes,
        tokens: token::Verifier::new(keys, leeway),
    });
    let spec = service::ServiceSpec {
        name: subjects.service_name("gateway"),
        description: "Tessera gateway: signed data-access packets".into(),
        queue_group: tessera_schemas::subjects::QUEUE_GATEWAY.into(),
        max_in_flight: state.config.max_in_flight,
        grace: state.config.grace,
        endpoints: vec![endpoint_with(
            &state,
            "data",
            subjects.data_all(),
            packet::handle,
        )],
    };
    let readiness = tessera_runtime::health::Readiness::global();
    readiness.register_nats("gateway/nats", &shutdown, nats.clone());
    let replay = state.replay.clone();
    readiness.register("gateway/redis", &shutdown, move || {
        let replay = replay.clone();
        async move { replay.ping().await }
    });
    let task = service::start(nats, spec, shutdown)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(Gateway { task })
}

/// Runs a gateway replica until `shutdown`, then drains.
pub async fn run(config: GatewayConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    start(config, shutdown).await?.join().await;
    Ok(())
}

/// A client app whose secret is not 32 bytes is ignored (and logged by the view).
fn decode_app(bytes: &[u8]) -> Result<ClientApp, String> {
    let app: ClientApp = codec::decode(bytes).map_err(|e| e.to_string())?;
    if app.secret.len() != CLIENT_SECRET_LEN {
        return Err(format!("secret is {} bytes, not 32", app.secret.len()));
    }
    Ok(app)
}

/// A route whose target could not be a subject is ignored (and logged by the view).
fn decode_route(bytes: &[u8]) -> Result<DataRoute, String> {
    let route: DataRoute = codec::decode(bytes).map_err(|e| e.to_string())?;
    ids::check("server id", &route.server_id).map_err(|e| e.to_string())?;
    ids::check("server operation", &route.server_operation).map_err(|e| e.to_string())?;
    Ok(route)
}
