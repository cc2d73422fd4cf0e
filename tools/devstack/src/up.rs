//! `tessera-dev up`: a whole development stack in one process tree.
//!
//! nats-server (JetStream, the accounts and permissions from bus-config) and redis-server run
//! as child processes; the broker, the auth worker, the gateway and a demo plugin server run in this
//! process. State lives in the data directory, so a restart keeps users, routes, keys,
//! issued tokens and credentials. Ctrl-C (or SIGTERM) drains the workers, then stops the
//! servers.

use std::path::PathBuf;

use clap::Args;
use tessera_runtime::config::ProcessEnv;

use tessera_runtime::env_file;

use crate::stack::{DevStack, StackOptions};

#[derive(Args)]
pub struct UpArgs {
    /// Where state, logs, keys and tessera.env go.
    #[arg(long, default_value = env_file::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// NATS client port (default: a free one).
    #[arg(long)]
    nats_port: Option<u16>,
    /// Redis port (default: a free one).
    #[arg(long)]
    redis_port: Option<u16>,
    /// Id of the demo plugin server.
    #[arg(long, default_value = "demo")]
    plugin_server_id: String,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let opts = StackOptions {
        data_dir: args.data_dir,
        nats_port: args.nats_port,
        redis_port: args.redis_port,
        persist: true,
        plugin_servers: vec![args.plugin_server_id.clone()],
        subjects: tessera_runtime::config::prefix(&ProcessEnv)?,
        token_ttl: None,
        login_limits: Default::default(),
        nats_monitor: false,
    };
    let shutdown = tessera_runtime::signal::shutdown_on_signal();
    let stack = DevStack::start(opts, shutdown.clone()).await?;
    let env_path = stack.data.join(env_file::ENV_FILE_NAME);
    env_file::write(&env_path, &stack.env_pairs())?;

    let ps = &args.plugin_server_id;
    let (host, port) = (stack.nats.host(), stack.nats.port());
    println!("Tessera dev stack is up.");
    println!(
        "  nats-server   nats://{host}:{port}  (JetStream store {})",
        stack.data.join("jetstream").display()
    );
    println!("  redis-server  redis://127.0.0.1:{}", stack.redis.port());
    println!("  workers       broker, auth, gateway, plugin server \"{ps}\" (operation: echo)");
    println!("  settings      {}", env_path.display());
    println!();
    // From another shell the settings are found only in the default data dir; anywhere else
    // every command needs the env file named.
    let default_dir = std::path::Path::new(env_file::DEFAULT_DATA_DIR)
        .canonicalize()
        .ok();
    let t = if default_dir.as_deref() == Some(stack.data.as_path()) {
        "tessera".to_owned()
    } else {
        format!("tessera --env-file {}", env_path.display())
    };
    println!("In another shell, from this directory:");
    println!("  echo 'correct horse battery' | {t} users add ann --password-stdin");
    println!(
        "  export TESSERA_ACCOUNT_TOKEN=$(echo 'correct horse battery' | {t} login ann --password-stdin)"
    );
    println!("  {t} routes set weather {ps}");
    println!("  export TESSERA_PLUGIN_TOKEN=$({t} token request weather --token-only)");
    println!("  {t} call {ps} echo --data hello");
    println!("Data access through the gateway (signed packets):");
    println!("  export TESSERA_APP_ID=demo-app TESSERA_APP_SECRET=$({t} client-apps add demo-app)");
    println!("  {t} data-routes set weather now {ps} echo");
    println!("  {t} data weather now --data hello");
    println!();
    println!("Third-party logins (auth packages, docs/auth-packages.md):");
    println!(
        "  {t} packages sign PKG.wasm --name http-password --version 1.0.0 --key {} > M.json",
        stack.publisher_key_file().display()
    );
    println!("  {t} packages upload PKG.wasm --manifest M.json");
    println!("  {t} apps put APP.json && {t} nodes");
    println!();
    println!("Ctrl-C stops everything.");

    shutdown.cancelled().await;
    eprintln!("stopping: draining workers");
    stack.stop().await;
    eprintln!("stopped");
    Ok(())
}
