//! `tessera worker NAME`, `tessera plugin-server --id ID` and `tessera check-config`: the
//! long-running processes and the check of their settings.

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

pub async fn run_worker(settings: &Settings, name: WorkerName) -> anyhow::Result<()> {
    let shutdown = tessera_runtime::signal::shutdown_on_signal();
    let health = start_health(settings).await?;
    let result = match name {
        WorkerName::Broker => {
            tessera_broker::run(tessera_broker::BrokerConfig::from_env(settings)?, shutdown).await
        }
        WorkerName::Auth => {
            tessera_auth::run(tessera_auth::AuthConfig::from_env(settings)?, shutdown).await
        }
        WorkerName::Gateway => {
            tessera_gateway::run(
                tessera_gateway::GatewayConfig::from_env(settings)?,
                shutdown,
            )
            .await
        }
    };
    health.cancel();
    result
}

pub fn check_config(settings: &Settings) -> anyhow::Result<()> {
    if let Some(p) = &settings.file_path {
        println!("env file: {}", p.display());
    }
    if let Some(addr) = tessera_runtime::health::addr_from_env(settings)? {
        let limits = tessera_runtime::health::Limits::from_env(settings)?;
        println!(
            "health: http://{addr}/healthz /readyz /metrics (at most {} connections, request head within {:?})",
            limits.max_connections, limits.read_timeout
        );
    }
    let b = tessera_broker::BrokerConfig::from_env(settings)?;
    println!(
        "broker: nats {} redis {} prefix {} key {} token ttl {:?} auth cache {:?}",
        tessera_protocol::bus::redact(&b.nats_url),
        tessera_protocol::bus::redact(&b.redis_url),
        b.subjects.prefix(),
        b.signing_key.kid(),
        b.token_ttl,
        b.auth_cache_ttl
    );
    let a = tessera_auth::AuthConfig::from_env(settings)?;
    println!(
        "auth:   nats {} issuer {} key {} external issuers {} callout {} (client apps {})",
        tessera_protocol::bus::redact(&a.nats_url),
        a.issuer,
        a.signing_key.kid(),
        a.external_issuers.len(),
        a.callout_issuer
            .as_ref()
            .map_or("off".to_owned(), |seed| format!(
                "issuer {}",
                seed.public_key()
            )),
        if a.callout_issuer.is_some() && a.client_password.is_some() {
            "admitted"
        } else {
            "not admitted"
        }
    );
    let g = tessera_gateway::GatewayConfig::from_env(settings)?;
    println!(
        "gateway: nats {} redis {} skew {:?} forward timeout {:?}",
        tessera_protocol::bus::redact(&g.nats_url),
        tessera_protocol::bus::redact(&g.redis_url),
        g.skew,
        g.forward_timeout
    );
    println!("ok");
    Ok(())
}
