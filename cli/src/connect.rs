//! The connection every client and operator command makes: the URL of its role from the
//! settings, as a [`Client`].

use tessera_bus_config::Role;
use tessera_sdk::Client;

use crate::env::Settings;

/// Connects with the URL of `role` from the settings.
pub async fn connect(settings: &Settings, role: Role) -> anyhow::Result<Client> {
    let url = settings.require(crate::env::url_setting(role))?;
    let subjects = tessera_runtime::config::prefix(settings)?;
    // The SDK's connection: a command the role may not run fails at once as forbidden.
    let client = Client::connect_named(&url, "tessera-cli").await?;
    // An admin command run before the workers creates the buckets it writes: with the
    // cluster's replicas (`TESSERA_JS_REPLICAS`), as the workers would.
    let replicas =
        tessera_runtime::config::read(settings, tessera_runtime::config::worker::js_replicas_of)?;
    Ok(client
        .with_subjects(subjects)
        .with_durability(tessera_bus_config::provision::Durability { replicas }))
}
