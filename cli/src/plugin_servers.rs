//! `tessera plugin-servers add|list|remove` (admin): per-plugin-server bus credentials. `add` prints the credentials once, as the
//! URL the plugin server connects with; only their hash is stored.

use clap::Subcommand;
use tessera_bus_config::Role;
use tessera_runtime::config::registry::PLUGIN_SERVER_URL;

use crate::connect::connect;
use crate::env::Settings;

#[derive(Subcommand)]
pub enum PluginServersCmd {
    /// Register a plugin server id; prints the URL it connects with (its own credentials),
    /// once: only a hash is stored.
    Add {
        id: String,
        /// Replace the secret of an id that exists (connections made with the old one stay
        /// up until they reconnect).
        #[arg(long)]
        rotate: bool,
        /// `host:port` list (comma-separated) for the printed URL (default: the servers of
        /// TESSERA_ADMIN_URL). Inside compose: nats-1:4222,nats-2:4222,nats-3:4222.
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<String>,
        /// Print `TESSERA_PLUGIN_SERVER_URL=<url>` (an env-file line) instead of the URL.
        #[arg(long)]
        env: bool,
    },
    /// Remove a plugin server id: new connections with its credentials are refused.
    Remove { id: String },
    /// List the registered plugin server ids.
    List,
}

pub async fn run(settings: &Settings, cmd: PluginServersCmd) -> anyhow::Result<()> {
    let client = connect(settings, Role::Admin).await?;
    match cmd {
        PluginServersCmd::Add {
            id,
            rotate,
            hosts,
            env,
        } => {
            let hosts = if hosts.is_empty() {
                hosts_of(&settings.require(crate::env::url_setting(Role::Admin))?)
            } else {
                hosts
            };
            let secret = client.add_plugin_server(&id, rotate).await?;
            let url = secret.url(&hosts);
            if env {
                println!("{PLUGIN_SERVER_URL}={url}");
            } else {
                println!("{url}");
            }
            eprintln!(
                "plugin server {id} registered; keep the URL above (run it with \
                 {PLUGIN_SERVER_URL}=<url> tessera plugin-server --id {id}): \
                 its secret is not shown again"
            );
            Ok(())
        }
        PluginServersCmd::Remove { id } => {
            client.remove_plugin_server(&id).await?;
            eprintln!(
                "plugin server {id} removed: new connections with its credentials are refused \
                 (connections already made stay up until they reconnect)"
            );
            Ok(())
        }
        PluginServersCmd::List => {
            for id in client.plugin_servers().await? {
                println!("{id}");
            }
            Ok(())
        }
    }
}

/// `host:port` of each server in a (comma-separated) NATS URL, credentials dropped.
fn hosts_of(url: &str) -> Vec<String> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            let rest = u.split_once("://").map_or(u, |(_, r)| r);
            rest.rsplit_once('@').map_or(rest, |(_, h)| h).to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts_drop_credentials() {
        assert_eq!(
            super::hosts_of("nats://admin:pw@127.0.0.1:4222,nats://admin:pw@127.0.0.1:4223"),
            ["127.0.0.1:4222", "127.0.0.1:4223"]
        );
        assert_eq!(super::hosts_of("nats://nats:4222"), ["nats:4222"]);
    }
}
