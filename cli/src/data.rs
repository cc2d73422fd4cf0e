//! `tessera client-apps`, `tessera data-routes` (admin) and `tessera data`: signed
//! data-access packets through the gateway.

use clap::Subcommand;
use tessera_bus_config::Role;
use tessera_runtime::config::registry;

use crate::connect::connect;
use crate::env::Settings;
use crate::output::{print_json, to_json};

#[derive(Subcommand)]
pub enum ClientAppsCmd {
    /// Register a client app; prints its signing secret (base64url) once, never again.
    Add { app_id: String },
    /// Remove a client app: the gateway refuses its packets from then on.
    Delete { app_id: String },
    /// List the client app ids (secrets are never shown).
    List,
}

#[derive(Subcommand)]
pub enum DataRoutesCmd {
    /// Route a plugin's operation address to a plugin-server operation.
    Set {
        plugin_id: String,
        operation: String,
        server_id: String,
        server_operation: String,
    },
    /// Remove a data route.
    Delete {
        plugin_id: String,
        operation: String,
    },
    /// List every data route.
    List,
}

pub async fn client_apps(settings: &Settings, cmd: ClientAppsCmd) -> anyhow::Result<()> {
    let client = connect(settings, Role::Admin).await?;
    match cmd {
        ClientAppsCmd::Add { app_id } => {
            let app = client.add_client_app(&app_id).await?;
            println!("{}", app.secret_base64());
            eprintln!(
                "client app {app_id} registered; keep the secret above: it is not shown again"
            );
            Ok(())
        }
        ClientAppsCmd::Delete { app_id } => {
            client.delete_client_app(&app_id).await?;
            eprintln!("client app {app_id} removed");
            Ok(())
        }
        ClientAppsCmd::List => {
            for app in client.client_apps().await? {
                println!("{app}");
            }
            Ok(())
        }
    }
}

pub async fn data_routes(settings: &Settings, cmd: DataRoutesCmd) -> anyhow::Result<()> {
    let client = connect(settings, Role::Admin).await?;
    match cmd {
        DataRoutesCmd::Set {
            plugin_id,
            operation,
            server_id,
            server_operation,
        } => {
            client
                .set_data_route(&plugin_id, &operation, &server_id, &server_operation)
                .await?;
            eprintln!("{plugin_id}.{operation} -> svc.{server_id}.{server_operation}");
            Ok(())
        }
        DataRoutesCmd::Delete {
            plugin_id,
            operation,
        } => {
            client.delete_data_route(&plugin_id, &operation).await?;
            eprintln!("data route {plugin_id}.{operation} removed");
            Ok(())
        }
        DataRoutesCmd::List => {
            for (plugin, op, r) in client.data_routes().await? {
                println!("{plugin}\t{op}\t{}\t{}", r.server_id, r.server_operation);
            }
            Ok(())
        }
    }
}

/// Arguments of `tessera data`.
#[derive(clap::Args)]
pub struct DataArgs {
    plugin_id: String,
    operation: String,
    /// The client app id (default: $TESSERA_APP_ID).
    #[arg(long, env = registry::APP_ID.name)]
    app_id: String,
    /// The client app's secret (default: $TESSERA_APP_SECRET).
    #[arg(long, env = registry::APP_SECRET.name, hide_env_values = true)]
    app_secret: String,
    /// The plugin token (default: $TESSERA_PLUGIN_TOKEN).
    #[arg(long, env = registry::PLUGIN_TOKEN.name, hide_env_values = true)]
    token: String,
    #[arg(long, default_value = "")]
    query: String,
    /// Request body.
    #[arg(long, default_value = "")]
    data: String,
    /// Verification info: the user's IP address.
    #[arg(long, default_value = "127.0.0.1")]
    user_ip: String,
    /// Verification info: the device id.
    #[arg(long, default_value = "cli")]
    device_id: String,
}

pub async fn request(settings: &Settings, a: DataArgs) -> anyhow::Result<()> {
    use tessera_sdk::data::{ClientAppCredentials, DataCall};
    let app = ClientAppCredentials::from_base64(&a.app_id, &a.app_secret)?;
    let call = DataCall::new(
        &a.plugin_id,
        &a.token,
        &a.operation,
        &a.user_ip,
        &a.device_id,
    )
    .query(&a.query)
    .body(a.data.into_bytes());
    let reply = connect(settings, Role::Client)
        .await?
        .data_request(&app, &call)
        .await?;
    match rmpv::decode::read_value(&mut &reply.body[..]) {
        Ok(v) if !reply.body.is_empty() => print_json(&to_json(v)),
        _ => {
            println!("{}", String::from_utf8_lossy(&reply.body));
            Ok(())
        }
    }
}
