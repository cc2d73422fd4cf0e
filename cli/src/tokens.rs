//! `tessera token request|revoke|introspect`.

use anyhow::bail;
use clap::Subcommand;
use tessera_bus_config::Role;
use tessera_runtime::config::registry;
use tessera_sdk::Binding;

use crate::connect::connect;
use crate::env::Settings;
use crate::output::{print_json, to_json};

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Ask the broker for a plugin token; prints the reply as JSON.
    Request {
        plugin_id: String,
        /// The account token (default: $TESSERA_ACCOUNT_TOKEN).
        #[arg(long, env = registry::ACCOUNT_TOKEN.name, hide_env_values = true)]
        account_token: String,
        /// Same key, same account, same plugin within 5 minutes: the same token.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// The end user's device id; required if the plugin's route binds devices.
        #[arg(long)]
        device_id: Option<String>,
        /// The end user's IP address; required if the plugin's route binds IPs.
        #[arg(long)]
        user_ip: Option<String>,
        /// Print only the token.
        #[arg(long)]
        token_only: bool,
    },
    /// Revoke one token or every token of an account (admin).
    Revoke {
        #[arg(
            long,
            conflicts_with = "account_id",
            required_unless_present = "account_id"
        )]
        token_id: Option<String>,
        #[arg(long)]
        account_id: Option<String>,
    },
    /// Ask the broker whether a plugin token is live (admin).
    Introspect { token: String },
}

pub async fn run(settings: &Settings, cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Request {
            plugin_id,
            account_token,
            idempotency_key,
            device_id,
            user_ip,
            token_only,
        } => {
            let client = connect(settings, Role::Client).await?;
            let binding = Binding { device_id, user_ip };
            let reply = client
                .request_token_bound(
                    &account_token,
                    &plugin_id,
                    idempotency_key.as_deref(),
                    binding,
                )
                .await?;
            if token_only {
                println!("{}", reply.token);
                Ok(())
            } else {
                print_json(&reply)
            }
        }
        TokenCmd::Revoke {
            token_id,
            account_id,
        } => {
            let client = connect(settings, Role::Admin).await?;
            let reply = match (token_id, account_id) {
                (Some(id), _) => client.revoke_token(&id).await?,
                (None, Some(acct)) => client.revoke_account(&acct).await?,
                (None, None) => bail!("give --token-id or --account-id"),
            };
            print_json(&reply)
        }
        TokenCmd::Introspect { token } => print_json(
            &connect(settings, Role::Admin)
                .await?
                .introspect(&token)
                .await?,
        ),
    }
}

/// `tessera call SERVER OPERATION`: our services answer MessagePack, shown as JSON; anything
/// else is shown as text.
pub async fn call(
    settings: &Settings,
    server: &str,
    operation: &str,
    token: &str,
    data: String,
) -> anyhow::Result<()> {
    let client = connect(settings, Role::Client).await?;
    let reply = client
        .call_raw(server, operation, token, data.into_bytes().into())
        .await?;
    match rmpv::decode::read_value(&mut &reply[..]) {
        Ok(v) if !reply.is_empty() => print_json(&to_json(v)),
        _ => {
            println!("{}", String::from_utf8_lossy(&reply));
            Ok(())
        }
    }
}

/// `tessera keys`: the broker's public keys (JWKS).
pub async fn keys(settings: &Settings) -> anyhow::Result<()> {
    print_json(&connect(settings, Role::Client).await?.keys().await?)
}
