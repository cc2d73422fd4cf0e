//! What `tessera-bench` prints and writes: a table with each figure beside its floor, and
//! the same as JSON with the machine and the settings.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::floors::Floors;
use super::measure::Figures;
use tessera_devstack::stack::DevStack;

#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    pub figures: Figures,
    /// Operations per second of the floor this scenario is read against.
    pub floor_ops_per_sec: Option<f64>,
    pub floor: String,
    /// `ops_per_sec / floor_ops_per_sec`.
    pub ratio: Option<f64>,
}

impl Scenario {
    pub fn against(name: &str, figures: Figures, floor: &Figures, floor_name: &str) -> Scenario {
        Self::against_rate(name, figures, floor.ops_per_sec, floor_name)
    }

    pub fn against_rate(name: &str, figures: Figures, floor: f64, floor_name: &str) -> Scenario {
        let ratio = (floor > 0.0).then(|| figures.ops_per_sec / floor);
        Scenario {
            name: name.into(),
            figures,
            floor_ops_per_sec: Some(floor),
            floor: floor_name.into(),
            ratio,
        }
    }

    pub fn alone(name: &str, figures: Figures, what: &str) -> Scenario {
        Scenario {
            name: name.into(),
            figures,
            floor_ops_per_sec: None,
            floor: what.into(),
            ratio: None,
        }
    }
}

/// Resident memory (KiB) at the start and the end of the run. The workers run inside the
/// bench process (as in `tessera-dev up`), so their memory is that process's.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Memory {
    pub bench_process_with_workers_kib: (u64, u64),
    pub nats_server_kib: (u64, u64),
    pub redis_server_kib: (u64, u64),
}

pub(super) fn rss_kib(pid: Option<u32>) -> u64 {
    let path = pid.map_or_else(
        || "/proc/self/status".to_owned(),
        |p| format!("/proc/{p}/status"),
    );
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

impl Memory {
    pub fn sample_start(&mut self, stack: &DevStack) {
        self.bench_process_with_workers_kib.0 = rss_kib(None);
        self.nats_server_kib.0 = rss_kib(stack.nats.pid());
        self.redis_server_kib.0 = rss_kib(stack.redis.pid());
    }

    pub fn sample_end(&mut self, stack: &DevStack) {
        self.bench_process_with_workers_kib.1 = rss_kib(None);
        self.nats_server_kib.1 = rss_kib(stack.nats.pid());
        self.redis_server_kib.1 = rss_kib(stack.redis.pid());
    }
}

/// `/proc/loadavg`'s 1, 5 and 15 minute load averages when the bench started.
static LOAD_AT_START: std::sync::OnceLock<[f64; 3]> = std::sync::OnceLock::new();

pub fn note_load_at_start() {
    let _ = LOAD_AT_START.set(load_average());
}

fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut v = text.split_whitespace().map(|f| f.parse().unwrap_or(0.0));
    [(); 3].map(|_| v.next().unwrap_or(0.0))
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    /// 1, 5 and 15 minute load averages before the bench started anything: a figure taken
    /// on a busy machine is not comparable with one taken on an idle one.
    pub load_average_at_start: [f64; 3],
    pub os: String,
    pub tessera: &'static str,
    pub nats_server: String,
    pub redis_server: String,
    pub unix_time: u64,
}

#[derive(Debug, Serialize)]
pub struct Settings {
    pub warmup_ms: u128,
    pub measure_ms: u128,
    pub concurrency: Vec<usize>,
    pub plugin_servers_on_the_route: usize,
    pub argon2id: &'static str,
    pub note: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub settings: Settings,
    pub floors: Floors,
    pub scenarios: Vec<Scenario>,
    pub memory: Memory,
}

fn version_of(binary: Result<std::path::PathBuf, tessera_devstack::DevstackError>) -> String {
    binary
        .ok()
        .and_then(|b| std::process::Command::new(b).arg("--version").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

impl Report {
    pub fn new(
        _stack: &DevStack,
        warmup: Duration,
        window: Duration,
        conc: &[usize],
        floors: Floors,
        scenarios: Vec<Scenario>,
        memory: Memory,
    ) -> Report {
        let os = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|r| format!("{} {}", std::env::consts::OS, r.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_owned());
        Report {
            machine: Machine {
                cores: std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(0),
                load_average_at_start: LOAD_AT_START.get().copied().unwrap_or_default(),
                os,
                tessera: env!("CARGO_PKG_VERSION"),
                nats_server: version_of(tessera_devstack::find_nats_server()),
                redis_server: version_of(tessera_devstack::find_redis_server()),
                unix_time: tessera_protocol::now_unix(),
            },
            settings: Settings {
                warmup_ms: warmup.as_millis(),
                measure_ms: window.as_millis(),
                concurrency: conc.to_vec(),
                plugin_servers_on_the_route: super::SERVERS.len(),
                argon2id: "m=19456 KiB, t=2, p=1 (argon2 crate defaults)",
                note: "everything on this machine: nats-server, redis-server, the workers and the load generator share its cores",
            },
            floors,
            scenarios,
            memory,
        }
    }

    pub fn print(&self) {
        let m = &self.machine;
        println!(
            "tessera-bench: {} cores, {}, {}, {}",
            m.cores, m.os, m.nats_server, m.redis_server
        );
        let [one, five, fifteen] = m.load_average_at_start;
        println!("load average at the start: {one:.2} {five:.2} {fifteen:.2} (1, 5, 15 min)");
        println!(
            "windows: {} ms warm-up, {} ms measured per row; latencies in microseconds",
            self.settings.warmup_ms, self.settings.measure_ms
        );
        println!();
        println!(
            "{:<34} {:>5} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>6} {:>9}",
            "scenario",
            "c",
            "ops/s",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "floor/s",
            "ratio",
            "cpu us/op"
        );
        let row = |name: &str, f: &Figures, floor: Option<f64>, ratio: Option<f64>| {
            println!(
                "{:<34} {:>5} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10} {:>6} {:>9}",
                name,
                f.in_flight,
                f.ops_per_sec,
                f.p50_us,
                f.p90_us,
                f.p99_us,
                f.p999_us,
                f.max_us,
                floor.map_or("-".into(), |v| format!("{v:.0}")),
                ratio.map_or("-".into(), |r| format!("{r:.2}")),
                f.cpu_per_op
                    .map_or("-".into(), |c| format!("{:.0}", c.total_us)),
            );
            if f.errors > 0 {
                println!("{:<34} {} errors", "", f.errors);
            }
        };
        let fl = &self.floors;
        for f in &fl.nats_request_reply {
            row("floor: NATS request-reply", f, None, None);
        }
        for f in &fl.composed_issuance {
            row("floor: composed issuance", f, None, None);
        }
        row(
            "floor: JetStream publish+ack",
            &fl.jetstream_publish_ack,
            None,
            None,
        );
        row("floor: Redis SET PX", &fl.redis_set_px, None, None);
        row("floor: EdDSA sign", &fl.eddsa_sign, None, None);
        row("floor: EdDSA verify", &fl.eddsa_verify, None, None);
        row("floor: argon2id verify", &fl.argon2id_verify, None, None);
        println!();
        for s in &self.scenarios {
            row(&s.name, &s.figures, s.floor_ops_per_sec, s.ratio);
        }
        println!();
        println!(
            "cpu us/op: CPU time per operation over the window, this process (workers, load generator, stub identity provider) + nats-server + redis-server; the parts are in the JSON"
        );
        let mem = &self.memory;
        println!(
            "memory (RSS KiB, start -> end): bench process with workers {} -> {}, nats-server {} -> {}, redis-server {} -> {}",
            mem.bench_process_with_workers_kib.0,
            mem.bench_process_with_workers_kib.1,
            mem.nats_server_kib.0,
            mem.nats_server_kib.1,
            mem.redis_server_kib.0,
            mem.redis_server_kib.1
        );
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress(steps: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

pub fn step(bar: &ProgressBar, what: &str) {
    bar.set_message(what.to_owned());
    bar.inc(1);
}
