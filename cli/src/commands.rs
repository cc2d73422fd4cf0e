//! Every subcommand but `up`.

use std::io::BufRead;

use anyhow::{Context as _, bail};
use clap::{Subcommand, ValueEnum};
use tessera_bus_config::Role;
use tessera_runtime::Shutdown;
use tessera_runtime::config::registry;
use tessera_sdk::{Binding, Client, RoutePolicy};

use crate::env::Settings;
use crate::{Cli, Command};

#[derive(Clone, Copy, ValueEnum)]
pub enum WorkerName {
    Broker,
    Auth,
    /// Signed data-access packets.
    Gateway,
}

#[derive(Subcommand)]
pub enum UsersCmd {
    /// Create a local account.
    Add {
        username: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

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

/// Connects with the URL of `role` from the settings.
pub(crate) async fn connect(settings: &Settings, role: Role) -> anyhow::Result<Client> {
    let url = settings.require(crate::env::url_setting(role))?;
    let subjects = tessera_runtime::config::prefix(settings)?;
    let nats =
        tessera_protocol::bus::connect(&url, "tessera-cli", std::time::Duration::from_secs(5))
            .await?;
    // An admin command run before the workers creates the buckets it writes: with the
    // cluster's replicas (`TESSERA_JS_REPLICAS`), as the workers would.
    let replicas =
        tessera_runtime::config::read(settings, tessera_runtime::config::worker::js_replicas_of)?;
    Ok(Client::new(nats, subjects)
        .with_durability(tessera_bus_config::provision::Durability { replicas }))
}

fn read_password(password_stdin: bool) -> anyhow::Result<String> {
    if !password_stdin {
        bail!("give the password on standard input with --password-stdin");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        bail!("the password on standard input is empty");
    }
    Ok(pw)
}

/// MessagePack as JSON for display: binary shown as text when it is UTF-8.
fn to_json(v: rmpv::Value) -> serde_json::Value {
    use rmpv::Value as M;
    use serde_json::Value as J;
    match v {
        M::Nil => J::Null,
        M::Boolean(b) => J::Bool(b),
        M::Integer(i) => i
            .as_i64()
            .map(J::from)
            .or_else(|| i.as_u64().map(J::from))
            .unwrap_or(J::Null),
        M::F32(f) => J::from(f64::from(f)),
        M::F64(f) => J::from(f),
        M::String(s) => J::String(s.into_str().unwrap_or_default()),
        M::Binary(b) => match String::from_utf8(b) {
            Ok(s) => J::String(s),
            Err(e) => J::Array(e.into_bytes().into_iter().map(J::from).collect()),
        },
        M::Array(a) => J::Array(a.into_iter().map(to_json).collect()),
        M::Map(m) => J::Object(
            m.into_iter()
                .map(|(k, v)| {
                    (
                        k.as_str().map_or_else(|| k.to_string(), str::to_owned),
                        to_json(v),
                    )
                })
                .collect(),
        ),
        M::Ext(_, b) => J::Array(b.into_iter().map(J::from).collect()),
    }
}

pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    // Renders files only: no settings needed.
    if let Command::BusConfig(cmd) = cli.command {
        return crate::deploy::run(cmd);
    }
    let settings = Settings::load(cli.env_file.as_deref())?;
    match cli.command {
        Command::BusConfig(_) => {
            unreachable!("handled above")
        }
        Command::Worker { name } => run_worker(&settings, name).await,
        Command::PluginServer { id } => {
            let shutdown = tessera_runtime::signal::shutdown_on_signal();
            let health = start_health(&settings).await?;
            let result = tessera_plugin_server::run(&settings, &id, shutdown).await;
            health.cancel();
            result
        }
        Command::PluginServers(cmd) => crate::plugin_servers::run(&settings, cmd).await,
        Command::CheckConfig { list } => crate::check_config::run(&settings, list),
        Command::Users(UsersCmd::Add {
            username,
            password_stdin,
        }) => {
            let password = read_password(password_stdin)?;
            let reply = connect(&settings, Role::Admin)
                .await?
                .add_user(&username, &password)
                .await?;
            eprintln!("user {username} created");
            print_json(&reply)
        }
        Command::Login {
            username,
            app,
            params,
            password_stdin,
            json,
        } => {
            let reply = if let Some(app) = app {
                crate::packages::login_app(&settings, &app, &params).await?
            } else {
                let username = username.context("give a username")?;
                let password = read_password(password_stdin)?;
                connect(&settings, Role::Client)
                    .await?
                    .login(&username, &password)
                    .await?
            };
            if json {
                print_json(&reply)
            } else {
                println!("{}", reply.account_token);
                eprintln!(
                    "account {} logged in; token expires at {} (unix)",
                    reply.account_id, reply.expires_at
                );
                Ok(())
            }
        }
        Command::Token(cmd) => token(&settings, cmd).await,
        Command::Routes(cmd) => routes(&settings, cmd).await,
        Command::Apps(cmd) => crate::packages::apps(&settings, cmd).await,
        Command::Packages(cmd) => crate::packages::packages(&settings, cmd).await,
        Command::Nodes { expect, json } => crate::packages::nodes(&settings, expect, json).await,
        Command::Audit(cmd) => crate::audit::run(&settings, cmd).await,
        Command::Call {
            server,
            operation,
            token,
            data,
        } => {
            let client = connect(&settings, Role::Client).await?;
            let reply = client
                .call_raw(&server, &operation, &token, data.into_bytes().into())
                .await?;
            // Our services answer MessagePack; show it as JSON, anything else as text.
            match rmpv::decode::read_value(&mut &reply[..]) {
                Ok(v) if !reply.is_empty() => print_json(&to_json(v)),
                _ => {
                    println!("{}", String::from_utf8_lossy(&reply));
                    Ok(())
                }
            }
        }
        Command::Keys => print_json(&connect(&settings, Role::Client).await?.keys().await?),
        Command::ClientApps(cmd) => client_apps(&settings, cmd).await,
        Command::DataRoutes(cmd) => data_routes(&settings, cmd).await,
        Command::Data(args) => data_request(&settings, args).await,
        Command::Assets(cmd) => crate::assets::assets(&settings, cmd).await,
        Command::Plugins(cmd) => crate::assets::plugins(&settings, cmd).await,
    }
}

async fn client_apps(settings: &Settings, cmd: ClientAppsCmd) -> anyhow::Result<()> {
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

async fn data_routes(settings: &Settings, cmd: DataRoutesCmd) -> anyhow::Result<()> {
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

async fn data_request(settings: &Settings, a: DataArgs) -> anyhow::Result<()> {
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

async fn token(settings: &Settings, cmd: TokenCmd) -> anyhow::Result<()> {
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

async fn routes(settings: &Settings, cmd: RoutesCmd) -> anyhow::Result<()> {
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

/// The health and metrics server when `TESSERA_HEALTH_ADDR` is set; it answers until the
/// returned token is cancelled (after the drain: liveness holds while draining).
pub(crate) async fn start_health(settings: &Settings) -> anyhow::Result<Shutdown> {
    let stop = Shutdown::new();
    tessera_runtime::health::serve_from_env(settings, stop.clone()).await?;
    Ok(stop)
}

/// A worker's settings, read (and refused, all bad ones at once) before anything starts.
enum WorkerConfig {
    Broker(tessera_broker::BrokerConfig),
    Auth(tessera_auth::AuthConfig),
    Gateway(tessera_gateway::GatewayConfig),
}

async fn run_worker(settings: &Settings, name: WorkerName) -> anyhow::Result<()> {
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
