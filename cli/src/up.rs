//! `tessera up`: a whole development stack in one process tree.
//!
//! nats-server (JetStream, the accounts and permissions from bus-config) and redis-server run
//! as child processes; the broker, the auth worker and a demo plugin server run in this
//! process. State lives in the data directory, so a restart keeps users, routes, keys,
//! issued tokens and credentials. Ctrl-C (or SIGTERM) drains the workers, then stops the
//! servers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tessera_bus_config::{Credentials, Role, ServerConfig};
use tessera_core::config::ProcessEnv;
use tessera_core::signing::SigningKey;
use tessera_devstack::{LocalNats, LocalRedis, NatsOptions, RedisOptions};
use tessera_sdk::PluginServerBuilder;

use crate::env;

#[derive(Args)]
pub struct UpArgs {
    /// Where state, logs, keys and tessera.env go.
    #[arg(long, default_value = env::DEFAULT_DATA_DIR)]
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

/// Credentials are kept in the data dir, so a restarted stack keeps its URLs.
fn load_or_create_credentials(path: &Path) -> anyhow::Result<Credentials> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let map = env::parse(&text);
        if let Some(c) = Credentials::from_passwords(|role| map.get(role.user()).cloned()) {
            return Ok(c);
        }
    }
    let c = Credentials::generate();
    let pairs: Vec<(&str, String)> = Role::ALL
        .iter()
        .map(|r| (r.user(), c.password(*r).to_owned()))
        .collect();
    env::write(path, &pairs)?;
    Ok(c)
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    tessera_schemas::ids::check("plugin server id", &args.plugin_server_id)?;
    let subjects = tessera_core::config::prefix(&ProcessEnv)?;
    let data = args.data_dir.clone();
    for dir in ["jetstream", "redis", "keys", "nats"] {
        std::fs::create_dir_all(data.join(dir))
            .with_context(|| format!("creating {}", data.join(dir).display()))?;
    }
    let data = data.canonicalize()?;
    let credentials = load_or_create_credentials(&data.join("credentials"))?;

    let nats_config = ServerConfig {
        host: "127.0.0.1".into(),
        port: args.nats_port,
        store_dir: data.join("jetstream"),
        server_name: "tessera-dev".into(),
        subjects: subjects.clone(),
        credentials: credentials.clone(),
    };
    let mut nats = LocalNats::start(NatsOptions::new(nats_config, data.join("nats"))).await?;
    let mut redis_opts = RedisOptions::new(data.join("redis"));
    redis_opts.port = args.redis_port;
    redis_opts.persist = true;
    let mut redis = LocalRedis::start(redis_opts).await?;

    let broker_key_file = data.join("keys/broker.pem");
    let auth_key_file = data.join("keys/auth.pem");
    let broker_key = Arc::new(SigningKey::load_or_generate(&broker_key_file)?);
    let auth_key = Arc::new(SigningKey::load_or_generate(&auth_key_file)?);

    let shutdown = crate::commands::shutdown_on_signal();
    let workers = async {
        let auth_cfg =
            tessera_auth::AuthConfig::new(nats.url_for(Role::Auth), subjects.clone(), auth_key);
        let auth = tessera_auth::start(auth_cfg, shutdown.clone())
            .await
            .context("starting the auth worker")?;
        let broker_cfg = tessera_broker::BrokerConfig::new(
            nats.url_for(Role::Broker),
            redis.url(),
            subjects.clone(),
            broker_key,
        );
        let broker = tessera_broker::start(broker_cfg, shutdown.clone())
            .await
            .context("starting the broker")?;
        let ps_nats = tessera_core::bus::connect(
            &nats.url_for(Role::PluginServer),
            "tessera-demo-plugin-server",
            Duration::from_secs(10),
        )
        .await?;
        let builder =
            PluginServerBuilder::new(ps_nats, subjects.clone(), args.plugin_server_id.clone());
        let plugin_server = tessera_sdk::demo::with_echo(builder, &args.plugin_server_id)
            .start(shutdown.clone())
            .await?;
        anyhow::Ok((auth, broker, plugin_server))
    };
    let (auth, broker, plugin_server) = match workers.await {
        Ok(w) => w,
        Err(e) => {
            shutdown.cancel();
            nats.stop().await;
            redis.stop().await;
            return Err(e);
        }
    };

    let env_path = data.join(env::ENV_FILE_NAME);
    let host = nats.host().to_owned();
    let port = nats.port();
    let pairs = vec![
        (
            Role::Client.url_env(),
            credentials.url(Role::Client, &host, port),
        ),
        (
            Role::Admin.url_env(),
            credentials.url(Role::Admin, &host, port),
        ),
        (
            Role::PluginServer.url_env(),
            credentials.url(Role::PluginServer, &host, port),
        ),
        (
            Role::Broker.url_env(),
            credentials.url(Role::Broker, &host, port),
        ),
        (
            Role::Auth.url_env(),
            credentials.url(Role::Auth, &host, port),
        ),
        (tessera_broker::config::ENV_REDIS_URL, redis.url()),
        (
            tessera_core::config::ENV_PREFIX,
            subjects.prefix().to_owned(),
        ),
        (
            tessera_broker::config::ENV_KEY_FILE,
            broker_key_file.display().to_string(),
        ),
        (
            tessera_auth::config::ENV_KEY_FILE,
            auth_key_file.display().to_string(),
        ),
    ];
    env::write(&env_path, &pairs)?;

    let ps = &args.plugin_server_id;
    println!("Tessera dev stack is up.");
    println!(
        "  nats-server   nats://{host}:{port}  (JetStream store {})",
        data.join("jetstream").display()
    );
    println!("  redis-server  redis://127.0.0.1:{}", redis.port());
    println!("  workers       broker, auth, plugin server \"{ps}\" (operation: echo)");
    println!("  settings      {}", env_path.display());
    println!();
    println!("In another shell, from this directory:");
    println!("  echo 'correct horse battery' | tessera users add ann --password-stdin");
    println!(
        "  export TESSERA_ACCOUNT_TOKEN=$(echo 'correct horse battery' | tessera login ann --password-stdin)"
    );
    println!("  tessera routes set weather {ps}");
    println!("  export TESSERA_PLUGIN_TOKEN=$(tessera token request weather --token-only)");
    println!("  tessera call {ps} echo --data hello");
    println!();
    println!("Ctrl-C stops everything.");

    shutdown.cancelled().await;
    eprintln!("stopping: draining workers");
    tokio::join!(auth.join(), broker.join(), plugin_server.join());
    nats.stop().await;
    redis.stop().await;
    eprintln!("stopped");
    Ok(())
}
