//! `tessera-bench`: the product's costs measured beside their floors, in one run, on a stack
//! started by the same code as `tessera-dev up`.
//!
//! Order: floors first (the servers alone, trivial responders on the product's subjects),
//! then the workers start and each scenario runs at each concurrency for a warm-up and a
//! measured window. Everything stays on loopback and stops by itself.

mod cluster;
mod cpu;
mod data_access;
mod floors;
mod login_package;
mod measure;
mod processes;
mod report;
mod soak;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use tessera_bus_config::Role;
use tessera_runtime::Shutdown;
use tessera_runtime::config::ProcessEnv;
use tessera_sdk::{Client, PluginScope, TokenInfo, TokenStore};

use measure::{Figures, closed_loop, per_call};
use report::{Memory, Report, Scenario};
use tessera_devstack::stack::{DevStack, StackOptions};

/// See the workspace Cargo.toml: the workers run in this process, with the allocator the
/// `tessera` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measure issuance, plugin-server authentication, data access and logins beside their
/// floors, on a stack of its own (bounded: ~2 minutes, --quick under 30 s).
#[derive(Parser)]
#[command(name = "tessera-bench", version)]
pub struct BenchArgs {
    /// A short run (under 30 s): shorter windows, same scenarios.
    #[arg(long)]
    quick: bool,
    /// Write every figure, with the machine and the settings, to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Requests in flight for the concurrency sweeps (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    concurrency: Vec<usize>,
    /// Unrecorded time before each measurement (default 1s; 200ms with --quick).
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Recorded time of each measurement (default 4s; 1s with --quick).
    #[arg(long, value_parser = parse_duration)]
    measure: Option<Duration>,
    /// Instead of the scenarios: issuance at 64 in flight for this long (e.g. 60s), with
    /// 20 s tokens so stores turn over, reporting rate, errors, memory, Redis keys (and
    /// whether each expires) and the distribution stream every tenth of the run. Shows
    /// whether the load is held with bounded state; also the run to profile issuance alone.
    #[arg(long, value_parser = parse_duration)]
    soak: Option<Duration>,
    /// Instead of the scenarios: issuance on a three-node NATS cluster in containers, once
    /// per number of distribution shards listed (e.g. 1,3), at each --concurrency, on a
    /// fresh cluster each time; the shard counts alternate within each round.
    #[arg(long, value_delimiter = ',')]
    cluster_shards: Vec<u32>,
    /// Rounds of --cluster-shards (each runs every shard count once).
    #[arg(long, default_value_t = 3)]
    cluster_rounds: usize,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    tessera_runtime::config::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration (e.g. 500ms, 4s)"))
}

pub(crate) async fn redis_connection(url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    Ok(redis::aio::ConnectionManager::new(redis::Client::open(url)?).await?)
}

const PLUGIN: &str = "bench";
const SERVERS: [&str; 2] = ["bench-a", "bench-b"];
const PASSWORD: &str = "correct horse battery";

fn main() -> std::process::ExitCode {
    tessera_runtime::telemetry::init("warn");
    let args = BenchArgs::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: BenchArgs) -> anyhow::Result<()> {
    // Before anything of ours runs: what else the machine was doing decides what the
    // figures are worth.
    report::note_load_at_start();
    let warmup = args.warmup.unwrap_or(if args.quick {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(1)
    });
    let window = args.measure.unwrap_or(if args.quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(4)
    });
    let conc = args.concurrency.clone();
    anyhow::ensure!(
        !conc.is_empty() && conc.iter().all(|&c| c > 0 && c <= 4096),
        "--concurrency: give 1-4096 per level"
    );

    if !args.cluster_shards.is_empty() {
        let json = args.json.as_deref();
        let shards = &args.cluster_shards;
        return cluster::run(shards, args.cluster_rounds, &conc, warmup, window, json).await;
    }
    let data = tempfile::tempdir().context("creating a temporary data directory")?;
    let shutdown = Shutdown::new();
    let opts = StackOptions {
        data_dir: data.path().to_path_buf(),
        nats_port: None,
        redis_port: None,
        persist: false,
        plugin_servers: Vec::new(),
        subjects: tessera_runtime::config::prefix(&ProcessEnv)?,
        token_ttl: args.soak.map(|_| Duration::from_secs(20)),
        // The login scenarios measure capacity (many logins of one user from one
        // connection), not the login limits, which would refuse most of them.
        login_limits: tessera_auth::limits::LoginLimitsConfig {
            per_connection: 0,
            per_username: 0,
            queue: 0,
        },
    };
    let mut stack = DevStack::servers(opts, shutdown.clone()).await?;
    if let Some(total) = args.soak {
        let result = soak::run(&mut stack, total).await;
        stack.stop().await;
        return result;
    }
    let result = run_on(&mut stack, &conc, warmup, window).await;
    stack.stop().await;
    let report = result?;
    report.print();
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("figures written to {}", path.display());
    }
    Ok(())
}

async fn connect(stack: &DevStack, role: Role) -> anyhow::Result<async_nats::Client> {
    Ok(
        tessera_protocol::bus::connect(&stack.url(role), "tessera-bench", Duration::from_secs(10))
            .await?,
    )
}

async fn run_on(
    stack: &mut DevStack,
    conc: &[usize],
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<Report> {
    let steps = (2 * conc.len() + 4) + conc.len() + 1 + conc.len() + 1 + conc.len() + 1 + 1;
    let bar = report::progress(steps as u64);
    let mut memory = Memory::default();
    memory.sample_start(stack);
    cpu::watch(stack.nats.pid(), stack.redis.pid());

    // 1. Floors, before any worker runs (the auth callout alone admits the client).
    stack.admit_clients().await?;
    let key = Arc::new(tessera_protocol::signing::SigningKey::generate());
    let subjects = stack.subjects.clone();
    let env = floors::Env {
        subjects: &subjects,
        client: connect(stack, Role::Client).await?,
        broker: connect(stack, Role::Broker).await?,
        auth: connect(stack, Role::Auth).await?,
        redis_url: stack.redis_url(tessera_bus_config::redis_acl::RedisUser::Admin),
        key,
        warmup,
        window,
        concurrency: conc,
    };
    let floors = floors::measure(&env, |what| report::step(&bar, what)).await?;

    // The product: auth, one broker, two plugin servers, one user, one route.
    let servers: Vec<String> = SERVERS.iter().map(|s| s.to_string()).collect();
    stack.start_workers(&servers).await?;
    let admin = Client::new(connect(stack, Role::Admin).await?, stack.subjects.clone());
    admin.add_user("bench", PASSWORD).await?;
    admin.set_route(PLUGIN, &servers).await?;
    let client = Client::new(env.client.clone(), stack.subjects.clone());
    let account_token = client.login("bench", PASSWORD).await?.account_token;
    let mut scenarios = Vec::new();

    // 2. Issuance.
    for (i, &c) in conc.iter().enumerate() {
        let f = issuance(&client, &account_token, c, warmup, window).await;
        scenarios.push(Scenario::against(
            "issuance",
            f,
            &floors.composed_issuance[i],
            "composed issuance floor",
        ));
        report::step(&bar, "issuance");
    }

    // 3. Plugin-server authentication: in process, then over the bus.
    let token = client
        .request_token(&account_token, PLUGIN, None)
        .await?
        .token;
    let store = TokenStore::default();
    let info = TokenInfo {
        token_id: "t".into(),
        account_id: "a".into(),
        plugin_id: PLUGIN.into(),
        expires_at: u64::MAX,
    };
    store.insert(&token, info);
    let now = tessera_protocol::now_unix();
    let iterations = (window.as_millis() as u64 * 1000).max(100_000);
    let auth_in_process = per_call(iterations, || {
        let _ = std::hint::black_box(store.authenticate(
            std::hint::black_box(&token),
            &PluginScope::Any,
            now,
        ));
    });
    scenarios.push(Scenario::alone(
        "plugin-server auth, in process",
        auth_in_process,
        "one SHA-256 and one map lookup",
    ));
    report::step(&bar, "plugin-server auth in process");
    for (i, &c) in conc.iter().enumerate() {
        let (client, token) = (client.clone(), token.clone());
        let f = closed_loop(c, warmup, window, move || {
            let (client, token) = (client.clone(), token.clone());
            async move {
                client
                    .call_raw(SERVERS[0], "echo", &token, Bytes::from_static(b"ping"))
                    .await
                    .map(drop)
            }
        })
        .await;
        scenarios.push(Scenario::against(
            "plugin-server echo over the bus",
            f,
            &floors.nats_request_reply[i],
            "NATS request-reply floor",
        ));
        report::step(&bar, "plugin-server echo");
    }

    // 4. Logins (argon2id is deliberately slow: as many in flight as cores).
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let login_client = client.clone();
    let logins = closed_loop(cores, warmup, window, move || {
        let c = login_client.clone();
        async move { c.login("bench", PASSWORD).await.map(drop) }
    })
    .await;
    let argon_floor_per_sec = cores as f64 * 1e6 / floors.argon2id_verify.p50_us.max(1.0);
    scenarios.push(Scenario::against_rate(
        "local login",
        logins.clone(),
        argon_floor_per_sec,
        "argon2id verify x cores",
    ));
    report::step(&bar, "login");
    let (f, _idp) = login_package::measure(stack, &admin, &client, 32, warmup, window).await?;
    scenarios.push(Scenario::against(
        "package login (http-password)",
        f,
        &logins,
        "local login",
    ));
    report::step(&bar, "package login");

    // 5. Data access: signed packet -> gateway -> plugin-server echo, beside the NATS floor.
    scenarios.extend(
        data_access::scenarios(
            &admin,
            &client,
            PLUGIN,
            SERVERS[0],
            &token,
            conc,
            &floors.nats_request_reply,
            warmup,
            window,
            || report::step(&bar, "data access"),
        )
        .await?,
    );
    // 6. Scale-out: two broker replicas at 64 in flight (or the largest level below it).
    let c = conc
        .iter()
        .copied()
        .filter(|&c| c <= 64)
        .max()
        .unwrap_or(conc[0]);
    let one = scenarios
        .iter()
        .find(|s| s.name == "issuance" && s.figures.in_flight == c)
        .map(|s| s.figures.clone());
    stack.add_broker().await?;
    let two = issuance(&client, &account_token, c, warmup, window).await;
    stack.remove_broker().await;
    if let Some(one) = one {
        scenarios.push(Scenario::against(
            "issuance, two broker replicas",
            two,
            &one,
            "issuance with one broker",
        ));
    }
    report::step(&bar, "scale-out");
    bar.finish_and_clear();

    memory.sample_end(stack);
    Ok(Report::new(
        stack, warmup, window, conc, floors, scenarios, memory,
    ))
}

async fn issuance(
    client: &Client,
    account_token: &str,
    c: usize,
    warmup: Duration,
    window: Duration,
) -> Figures {
    let (client, token) = (client.clone(), account_token.to_owned());
    closed_loop(c, warmup, window, move || {
        let (client, token) = (client.clone(), token.clone());
        async move { client.request_token(&token, PLUGIN, None).await.map(drop) }
    })
    .await
}
