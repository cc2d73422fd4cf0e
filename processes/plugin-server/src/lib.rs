//! The plugin server process (`tessera plugin-server --id ID`): the SDK's plugin-server
//! runtime serving the demo [`echo`] operation with the id's own bus credentials.
//!
//! A real plugin server is an application of its own built on `tessera_sdk::PluginServer`;
//! this one is what the dev stack, the compose/Kubernetes examples and the tests run.

#![forbid(unsafe_code)]

pub mod echo;

use tessera_runtime::Shutdown;
use tessera_runtime::config::registry::PLUGIN_SERVER_URL;
use tessera_runtime::config::{Source, clock_leeway_of, prefix_of};
use tessera_sdk::PluginServerBuilder;

pub use echo::with_echo;

/// Runs the demo plugin server `id` until `shutdown`, with the credentials of
/// `TESSERA_PLUGIN_SERVER_URL` (as `tessera plugin-servers add` printed them).
pub async fn run(settings: &dyn Source, id: &str, shutdown: Shutdown) -> anyhow::Result<()> {
    let (url, subjects, clock_leeway) = tessera_runtime::config::read(settings, |r| {
        let url = r.get(&PLUGIN_SERVER_URL).unwrap_or_else(|| {
            r.report(
                &PLUGIN_SERVER_URL,
                format!(
                    "is not set: register the id with `tessera plugin-servers add {id}` \
                     (admin) and set it to the URL that prints"
                ),
            );
            String::new()
        });
        (url, prefix_of(r), clock_leeway_of(r))
    })?;
    let builder = PluginServerBuilder::connect(&url, subjects, id).await?;
    tessera_runtime::health::Readiness::global().register_nats(
        "plugin-server/nats",
        &shutdown,
        builder.nats().clone(),
    );
    let builder = builder.clock_leeway(clock_leeway);
    let server = with_echo(builder, id).start(shutdown).await?;
    eprintln!("plugin server {id} serving; Ctrl-C stops it");
    server.join().await;
    Ok(())
}
