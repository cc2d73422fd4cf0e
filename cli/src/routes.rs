//! `tessera routes set|delete|list`: which plugin servers serve a plugin (admin).

use clap::Subcommand;
use tessera_bus_config::Role;
use tessera_sdk::RoutePolicy;

use crate::connect::connect;
use crate::env::Settings;

#[derive(Subcommand)]
pub enum RoutesCmd {
    /// Route a plugin to one or more plugin servers.
    Set {
        plugin_id: String,
        #[arg(required = true)]
        servers: Vec<String>,
        /// Bind the plugin's tokens to the device id given at token request time.
        #[arg(long)]
        bind_device: bool,
        /// Bind the plugin's tokens to the user IP given at token request time.
        #[arg(long)]
        bind_ip: bool,
    },
    /// Remove a plugin's route.
    Delete { plugin_id: String },
    /// List every route.
    List,
}

/// " (binds device, ip)" for a bound route, nothing for an unbound one.
fn binds(p: &RoutePolicy) -> String {
    let fields: Vec<&str> = [(p.bind_device, "device"), (p.bind_ip, "ip")]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
    if fields.is_empty() {
        String::new()
    } else {
        format!(" (binds {})", fields.join(", "))
    }
}

pub async fn run(settings: &Settings, cmd: RoutesCmd) -> anyhow::Result<()> {
    let client = connect(settings, Role::Admin).await?;
    match cmd {
        RoutesCmd::Set {
            plugin_id,
            servers,
            bind_device,
            bind_ip,
        } => {
            let policy = RoutePolicy {
                bind_device,
                bind_ip,
            };
            client.set_route_with(&plugin_id, &servers, policy).await?;
            eprintln!("{plugin_id} -> {}{}", servers.join(", "), binds(&policy));
            Ok(())
        }
        RoutesCmd::Delete { plugin_id } => {
            client.delete_route(&plugin_id).await?;
            eprintln!("route of {plugin_id} removed");
            Ok(())
        }
        RoutesCmd::List => {
            for (plugin, route) in client.routes().await? {
                let policy = RoutePolicy {
                    bind_device: route.bind_device,
                    bind_ip: route.bind_ip,
                };
                println!("{plugin}\t{}{}", route.servers.join(","), binds(&policy));
            }
            Ok(())
        }
    }
}
