//! The plugin server process (`tessera plugin-server --id ID`): the SDK's plugin-server
//! runtime serving the demo [`echo`] operation with the id's own bus credentials.
//!
//! A real plugin server is an application of its own built on `tessera_sdk::PluginServer`;
//! this one is what the dev stack, the compose/Kubernetes examples and the tests run.

#![forbid(unsafe_code)]

pub mod echo;

use anyhow::Context as _;
use tessera_bus_config::roles::PLUGIN_SERVER_URL_ENV;
use tessera_runtime::Shutdown;
use tessera_runtime::config::Source;
use tessera_sdk::PluginServerBuilder;

pub use echo::with_echo;

/// Runs the demo plugin server `id` until `shutdown`, with the credentials of
/// `TESSERA_PLUGIN_SERVER_URL` (as `tessera plugin-servers add` printed them).
pub async fn run(settings: &dyn Source, id: &str, shutdown: Shutdown) -> anyhow::Result<()> {
    let url = settings.get(PLUGIN_SERVER_URL_ENV).with_context(|| {
        format!(
            "{PLUGIN_SERVER_URL_ENV} is not set: register the id with `tessera plugin-servers add {id}` \
             (admin) and set it to the URL that prints"
        )
    })?;
    let subjects = tessera_runtime::config::prefix(settings)?;
    let builder = PluginServerBuilder::connect(&url, subjects, id).await?;
    tessera_runtime::health::Readiness::global().register_nats(
        "plugin-server/nats",
        &shutdown,
        builder.nats().clone(),
    );
    let builder = builder.clock_leeway(tessera_runtime::config::clock_leeway(settings)?);
    let server = with_echo(builder, id).start(shutdown).await?;
    eprintln!("plugin server {id} serving; Ctrl-C stops it");
    server.join().await;
    Ok(())
}
