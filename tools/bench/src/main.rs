//! `tessera-bench`: the product's costs measured beside their floors, in one run, on stacks
//! started by the same code as `tessera-dev up`.
//!
//! Three stacks (nats-server and redis-server each): the floors' (no worker: trivial
//! responders take the workers' subjects), the product's with the workers in this process,
//! and the product's with the workers as `tessera` processes. Each closed-loop figure is
//! measured `--repeat` times, interleaved with its floor. Everything stays on loopback and
//! stops by itself.
//!
//! # Layout
//! - `scenarios.rs`: the interleaved schedule of floors and scenarios.
//! - `floors.rs`: the floors; `data_access.rs`, `login_package.rs`: scenarios with set-up.
//! - `measure.rs`: the closed loop; `probe.rs` and `cpu.rs`: what a window cost (CPU by
//!   process, nats-server messages, Redis commands); `spread.rs`: repetitions.
//! - `processes.rs`: workers as processes; `soak.rs` and `redis_state.rs`: `--soak`;
//!   `report.rs`: output.

mod cluster;
mod cpu;
mod data_access;
mod floors;
mod login_package;
mod measure;
mod probe;
mod processes;
mod redis_state;
mod report;
mod scenarios;
mod soak;
mod spread;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tessera_bus_config::Role;
use tessera_bus_config::redis_acl::RedisUser;
use tessera_runtime::Shutdown;
use tessera_runtime::config::ProcessEnv;
use tessera_sdk::Client;

use cpu::{Part, Role as CpuRole};
use measure::{Figures, Timing, closed_loop};
use probe::Probe;
use report::{Memory, Report};
use tessera_devstack::stack::{DevStack, StackOptions};

/// See the workspace Cargo.toml: the workers run in this process, with the allocator the
/// `tessera` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measure issuance, plugin-server authentication, data access and logins beside their
/// floors, on stacks of their own (bounded: ~5 minutes by default, --quick under a minute).
#[derive(Parser)]
#[command(name = "tessera-bench", version)]
pub struct BenchArgs {
    /// A short run: shorter windows, one repetition, same scenarios.
    #[arg(long)]
    quick: bool,
    /// Write every figure, with the machine and the settings, to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Requests in flight for the concurrency sweeps (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    concurrency: Vec<usize>,
    /// Unrecorded time before each measurement (default 500ms; 200ms with --quick).
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Recorded time of each measurement (default 2s; 1s with --quick).
    #[arg(long, value_parser = parse_duration)]
    measure: Option<Duration>,
    /// How many times each figure is measured, interleaved with its floor (default 3; 1
    /// with --quick). Rows show the median and the range.
    #[arg(long)]
    repeat: Option<usize>,
    /// Skip issuance with the workers as `tessera` processes (which needs the `tessera`
    /// binary beside this one).
    #[arg(long)]
    no_processes: bool,
    /// Instead of the scenarios: issuance at 64 in flight for this long (e.g. 120s), with
    /// 20 s tokens so stores turn over, the workers as processes, after the composed floor
    /// on the same servers; rate, p99, memory, Redis keys and memory by key kind, and the
    /// distribution stream every 5 s. Shows whether the load is held with bounded state.
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
/// The name of the issuance rows with the workers as processes.
const ISSUANCE_PROCESSES: &str = "issuance, workers as processes";

fn main() -> std::process::ExitCode {
    let _telemetry = tessera_runtime::telemetry::init("warn", "tessera-bench");
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

/// Servers only, in `<root>/<name>`, with nats-server's monitoring port on (for message
/// counts); `token_ttl` for in-process brokers.
pub(crate) async fn new_stack(
    root: &Path,
    name: &str,
    token_ttl: Option<Duration>,
) -> anyhow::Result<DevStack> {
    let opts = StackOptions {
        data_dir: root.join(name),
        nats_port: None,
        redis_port: None,
        persist: false,
        plugin_servers: Vec::new(),
        subjects: tessera_runtime::config::prefix(&ProcessEnv)?,
        token_ttl,
        // The login scenarios measure capacity (many logins of one user from one
        // connection), not the login limits, which would refuse most of them.
        login_limits: tessera_auth::limits::LoginLimitsConfig {
            per_connection: 0,
            per_username: 0,
            queue: 0,
        },
        nats_monitor: true,
    };
    // Each stack its own shutdown: stopping one must not stop another's workers.
    DevStack::servers(opts, Shutdown::new()).await
}

/// This process, the stack's servers and their counters.
pub(crate) async fn stack_probe(stack: &DevStack, mut parts: Vec<Part>) -> anyhow::Result<Probe> {
    if parts.is_empty() {
        parts.push(Part {
            name: CpuRole::Bench,
            pids: vec![None],
        });
        parts.push(Part {
            name: CpuRole::NatsServer,
            pids: vec![stack.nats.pid()],
        });
        parts.push(Part {
            name: CpuRole::RedisServer,
            pids: vec![stack.redis.pid()],
        });
    }
    let redis = redis_connection(&stack.redis_url(RedisUser::Admin)).await?;
    Ok(Probe::new(parts, stack.nats.monitor_url(), Some(redis)))
}

/// The floors' connections on `stack` (servers only; the clients admitted by a callout of
/// this process).
pub(crate) async fn floor_env(stack: &DevStack) -> anyhow::Result<floors::Env> {
    stack.admit_clients().await?;
    let env = floors::Env {
        subjects: stack.subjects.clone(),
        client: connect(stack, Role::Client).await?,
        broker: connect(stack, Role::Broker).await?,
        auth: connect(stack, Role::Auth).await?,
        redis: redis_connection(&stack.redis_url(RedisUser::Admin)).await?,
        key: Arc::new(tessera_protocol::signing::SigningKey::generate()),
        probe: stack_probe(stack, Vec::new()).await?,
    };
    floors::prepare(&env).await?;
    Ok(env)
}

async fn run(args: BenchArgs) -> anyhow::Result<()> {
    // Before anything of ours runs: what else the machine was doing decides what the
    // figures are worth.
    report::note_load_at_start();
    let timing = Timing {
        warmup: args.warmup.unwrap_or(if args.quick {
            Duration::from_millis(200)
        } else {
            Duration::from_millis(500)
        }),
        window: args.measure.unwrap_or(if args.quick {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(2)
        }),
    };
    let repeat = args.repeat.unwrap_or(if args.quick { 1 } else { 3 });
    anyhow::ensure!((1..=50).contains(&repeat), "--repeat: give 1-50");
    let conc = args.concurrency.clone();
    anyhow::ensure!(
        !conc.is_empty() && conc.iter().all(|&c| c > 0 && c <= 4096),
        "--concurrency: give 1-4096 per level"
    );
    if !args.cluster_shards.is_empty() {
        let json = args.json.as_deref();
        let shards = &args.cluster_shards;
        return cluster::run(
            shards,
            args.cluster_rounds,
            &conc,
            timing.warmup,
            timing.window,
            json,
        )
        .await;
    }
    let data = tempfile::tempdir().context("creating a temporary data directory")?;
    if let Some(total) = args.soak {
        return soak::run(data.path(), total, timing, repeat, args.json.as_deref()).await;
    }

    let floor = new_stack(data.path(), "floors", None).await?;
    let mut product = new_stack(data.path(), "in-process", None).await?;
    let mut on_processes = None;
    let result = async {
        let env = floor_env(&floor).await?;
        let servers: Vec<String> = SERVERS.iter().map(|s| s.to_string()).collect();
        product.start_workers(&servers).await?;
        let probe = stack_probe(&product, Vec::new()).await?;
        let skipped = if args.no_processes {
            Some("--no-processes".to_owned())
        } else {
            match processes::tessera_binary() {
                Err(e) => Some(format!("{e:#}")),
                Ok(_) => {
                    let stack = new_stack(data.path(), "processes", None).await?;
                    let deployment = processes::Deployment::start(&stack, &servers, &[]).await;
                    match deployment {
                        Ok(d) => {
                            let probe = stack_probe(&stack, d.parts(&stack)).await?;
                            on_processes = Some((stack, d, probe));
                        }
                        Err(e) => {
                            stack.stop().await;
                            return Err(e);
                        }
                    }
                    None
                }
            }
        };
        let bar = report::progress(scenarios::steps(conc.len(), repeat, on_processes.is_some()));
        let mut memory = Memory::default();
        memory.sample_start(&product);
        let plan = scenarios::Plan {
            floor: &env,
            product: &mut product,
            probe,
            processes: on_processes
                .as_ref()
                .map(|(_, deployment, probe)| scenarios::OnProcesses {
                    deployment,
                    probe: probe.clone(),
                }),
            conc: &conc,
            timing,
            repeat,
        };
        let (floors, rows) =
            scenarios::run(plan, &mut memory, |what| report::step(&bar, what)).await?;
        bar.finish_and_clear();
        memory.sample_end(&product);
        anyhow::Ok(Report {
            machine: report::machine(),
            settings: report::Settings::new(timing, repeat, &conc, skipped),
            floors,
            scenarios: rows,
            memory,
        })
    }
    .await;
    if let Some((stack, deployment, _)) = on_processes {
        deployment.stop().await;
        stack.stop().await;
    }
    product.stop().await;
    floor.stop().await;
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

async fn issuance(
    probe: &Probe,
    client: &Client,
    account_token: &str,
    c: usize,
    timing: Timing,
) -> Figures {
    let (client, token) = (client.clone(), account_token.to_owned());
    closed_loop(probe, c, timing, move || {
        let (client, token) = (client.clone(), token.clone());
        async move { client.request_token(&token, PLUGIN, None).await.map(drop) }
    })
    .await
}
