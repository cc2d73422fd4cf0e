//! `tessera worker NAME` and `tessera plugin-server --id ID`: the long-running processes.

use clap::ValueEnum;
use tessera_runtime::Shutdown;

use crate::env::Settings;

#[derive(Clone, Copy, ValueEnum)]
pub enum WorkerName {
    Broker,
    Auth,
    /// Signed data-access packets.
    Gateway,
}

/// The health and metrics server when `TESSERA_HEALTH_ADDR` is set; it answers until the
/// returned token is cancelled (after the drain: liveness holds while draining).
async fn start_health(settings: &Settings) -> anyhow::Result<Shutdown> {
    let stop = Shutdown::new();
    tessera_runtime::health::serve_from_env(settings, stop.clone()).await?;
    Ok(stop)
}

/// `tessera plugin-server --id ID`.
pub async fn run_plugin_server(settings: &Settings, id: &str) -> anyhow::Result<()> {
    let shutdown = tessera_runtime::signal::shutdown_on_signal();
    let health = start_health(settings).await?;
    let result = tessera_plugin_server::run(settings, id, shutdown).await;
    health.cancel();
    result
}

/// A worker's settings, read (and refused, all bad ones at once) before anything starts.
enum WorkerConfig {
    Broker(tessera_broker::BrokerConfig),
    Auth(tessera_auth::AuthConfig),
    Gateway(tessera_gateway::GatewayConfig),
}

pub async fn run_worker(settings: &Settings, name: WorkerName) -> anyhow::Result<()> {
    let config = match name {
        WorkerName::Broker => {
            WorkerConfig::Broker(tessera_broker::BrokerConfig::from_env(settings)?)
        }
        WorkerName::Auth => WorkerConfig::Auth(tessera_auth::AuthConfig::from_env(settings)?),
        WorkerName::Gateway => {
            WorkerConfig::Gateway(tessera_gateway::GatewayConfig::from_env(settings)?)
        }
    };
    let shutdown = tessera_runtime::signal::shutdown_on_signal();
    let health = start_health(settings).await?;
    let result = match config {
        WorkerConfig::Broker(c) => tessera_broker::run(c, shutdown).await,
        WorkerConfig::Auth(c) => tessera_auth::run(c, shutdown).await,
        WorkerConfig::Gateway(c) => tessera_gateway::run(c, shutdown).await,
    };
    health.cancel();
    result
}
