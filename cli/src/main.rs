//! `tessera`: the one binary the image ships: the workers, the demo plugin server, and the
//! client and operator commands. Each subcommand lives in its own module; this file only
//! parses. The dev stack (`tessera-dev up`) and the benchmark (`tessera-bench`) are tools of
//! their own (tools/).

#![forbid(unsafe_code)]

mod accounts;
mod assets;
mod audit;
mod check_config;
mod connect;
mod data;
mod deploy;
mod dist_shards;
mod env;
mod output;
mod packages;
mod plugin_servers;
mod routes;
mod tokens;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// See the workspace Cargo.toml for why (measured in BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Plugin credentials over a NATS bus: issue, distribute and check plugin tokens",
    after_help = "Settings come from the environment, then from --env-file (default: .tessera/tessera.env, \
                  written by `tessera-dev up`).\nStart here: `tessera-dev up`, then in another shell `tessera users add`, \
                  `tessera login`, `tessera routes set`, `tessera token request`, `tessera call`."
)]
struct Cli {
    /// Read settings (NATS_URL, TESSERA_ADMIN_URL, ...) from this KEY=VALUE file.
    #[arg(long, global = true, env = tessera_runtime::config::registry::ENV_FILE.name)]
    env_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one worker (settings from the environment).
    Worker {
        #[arg(value_enum)]
        name: workers::WorkerName,
    },
    /// Run the demo plugin server: an `echo` operation serving every plugin routed to it,
    /// with the id's own credentials (TESSERA_PLUGIN_SERVER_URL, from `plugin-servers add`).
    PluginServer {
        /// Plugin server id (the `dist.<id>` and `svc.<id>.*` subjects).
        #[arg(long)]
        id: String,
    },
    /// Validate the worker settings from the environment and print them (exit 64 if bad,
    /// listing every bad one). Reads only: a missing key file is reported, never created.
    CheckConfig {
        /// Print every setting a Tessera process reads (a Markdown table) instead.
        #[arg(long)]
        list: bool,
    },
    /// Local accounts (admin).
    #[command(subcommand)]
    Users(accounts::UsersCmd),
    /// Log in with a local account, or through a third-party app (`--app APP --param
    /// username=ann ...`); prints the account token.
    Login {
        #[arg(required_unless_present = "app")]
        username: Option<String>,
        /// A third-party app id: its authentication package checks the --param values.
        #[arg(long)]
        app: Option<String>,
        /// KEY=VALUE handed to the app's package (repeatable).
        #[arg(long = "param", requires = "app")]
        params: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Print the whole reply as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Plugin tokens.
    #[command(subcommand)]
    Token(tokens::TokenCmd),
    /// Plugin servers' bus credentials: add (prints them once), list, remove (admin).
    #[command(subcommand)]
    PluginServers(plugin_servers::PluginServersCmd),
    /// Plugin routes: which plugin servers serve a plugin (admin).
    #[command(subcommand)]
    Routes(routes::RoutesCmd),
    /// Third-party app configs in the shared store (admin).
    #[command(subcommand)]
    Apps(packages::AppsCmd),
    /// Authentication packages: publisher keys, signing, upload, the stored list.
    #[command(subcommand)]
    Packages(packages::PackagesCmd),
    /// Every auth node with its installed packages and whether they match the store (admin).
    Nodes {
        /// Stop waiting once this many nodes answered.
        #[arg(long)]
        expect: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Call an operation on a plugin server with a plugin token.
    Call {
        server: String,
        operation: String,
        /// The plugin token (default: $TESSERA_PLUGIN_TOKEN).
        #[arg(long, env = tessera_runtime::config::registry::PLUGIN_TOKEN.name, hide_env_values = true)]
        token: String,
        /// Request body.
        #[arg(long, default_value = "")]
        data: String,
    },
    /// Print the broker's public keys (JWKS).
    Keys,
    /// Client apps allowed to send signed data-access packets (admin).
    #[command(subcommand)]
    ClientApps(data::ClientAppsCmd),
    /// Data routes: which plugin-server operation serves a plugin's operation address (admin).
    #[command(subcommand)]
    DataRoutes(data::DataRoutesCmd),
    /// Send a signed data-access packet through the gateway; prints the plugin server's reply.
    Data(data::DataArgs),
    /// The bus configuration of a deployed cluster (Docker Compose, Kubernetes).
    #[command(subcommand)]
    BusConfig(deploy::BusConfigCmd),
    /// The number of distribution streams the brokers publish to (admin): show, or set
    /// while no broker runs.
    #[command(subcommand)]
    DistShards(dist_shards::DistShardsCmd),

    /// Plugin static assets: publish a directory (admin), fetch the verified bundle into a
    /// cache, get one file, list the signed manifest.
    #[command(subcommand)]
    Assets(assets::AssetsCmd),
    /// Plugin keys for sealed data: register (admin), generate, show; seal and open.
    #[command(subcommand)]
    Plugins(assets::PluginsCmd),

    /// The audit stream: issuances, revocations, login decisions, package changes (admin).
    #[command(subcommand)]
    Audit(audit::AuditCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let long_running = matches!(
        cli.command,
        Command::Worker { .. } | Command::PluginServer { .. }
    );
    // The process's name in traces (unless OTEL_SERVICE_NAME says otherwise). Kept to the
    // end of main: dropping it sends the spans still batched.
    let service = match &cli.command {
        Command::Worker { name } => match name {
            workers::WorkerName::Broker => "tessera-broker",
            workers::WorkerName::Auth => "tessera-auth",
            workers::WorkerName::Gateway => "tessera-gateway",
        },
        Command::PluginServer { .. } => "tessera-plugin-server",
        _ => "tessera-cli",
    };
    let _telemetry =
        tessera_runtime::telemetry::init(if long_running { "info" } else { "warn" }, service);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<tessera_runtime::config::ConfigError>()
                .is_some()
            {
                // EX_USAGE: a bad setting, not a runtime failure.
                ExitCode::from(64)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    // Renders files only: no settings needed.
    if let Command::BusConfig(cmd) = cli.command {
        return deploy::run(cmd);
    }
    let settings = env::Settings::load(cli.env_file.as_deref())?;
    let s = &settings;
    match cli.command {
        Command::BusConfig(_) => unreachable!("handled above"),
        Command::Worker { name } => workers::run_worker(s, name).await,
        Command::PluginServer { id } => workers::run_plugin_server(s, &id).await,
        Command::CheckConfig { list } => check_config::run(s, list),
        Command::Users(cmd) => accounts::users(s, cmd).await,
        Command::Login {
            username,
            app,
            params,
            password_stdin,
            json,
        } => accounts::login(s, username, app, &params, password_stdin, json).await,
        Command::Token(cmd) => tokens::run(s, cmd).await,
        Command::Call {
            server,
            operation,
            token,
            data,
        } => tokens::call(s, &server, &operation, &token, data).await,
        Command::Keys => tokens::keys(s).await,
        Command::PluginServers(cmd) => plugin_servers::run(s, cmd).await,
        Command::DistShards(cmd) => dist_shards::run(s, cmd).await,
        Command::Routes(cmd) => routes::run(s, cmd).await,
        Command::Apps(cmd) => packages::apps(s, cmd).await,
        Command::Packages(cmd) => packages::packages(s, cmd).await,
        Command::Nodes { expect, json } => packages::nodes(s, expect, json).await,
        Command::Audit(cmd) => audit::run(s, cmd).await,
        Command::ClientApps(cmd) => data::client_apps(s, cmd).await,
        Command::DataRoutes(cmd) => data::data_routes(s, cmd).await,
        Command::Data(args) => data::request(s, args).await,
        Command::Assets(cmd) => assets::assets(s, cmd).await,
        Command::Plugins(cmd) => assets::plugins(s, cmd).await,
    }
}
