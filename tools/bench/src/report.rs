//! What `tessera-bench` prints and writes: a table with each figure beside its floor, and
//! the same as JSON with the machine and the settings.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::floors::Floors;
use super::measure::{Figures, Timing};
use super::spread::{Repeated, Spread};
use tessera_devstack::stack::DevStack;

#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    pub in_flight: usize,
    /// The repetition whose rate is the median (every repetition is in `spread.runs`).
    pub figures: Figures,
    /// Median, min and max of each figure over the repetitions, and the repetitions.
    pub spread: Repeated,
    /// What this scenario is read against.
    pub floor: String,
    /// Operations per second of that floor, over its repetitions.
    pub floor_ops_per_sec: Option<Spread>,
    /// `ops_per_sec / floor ops_per_sec`, per repetition pair (each run over the floor run
    /// measured just before it), summarised.
    pub ratio: Option<Spread>,
    pub ratios: Vec<f64>,
}

impl Scenario {
    /// Read against `floor`, run by run.
    pub fn paired(name: &str, runs: Vec<Figures>, floor: &Repeated, floor_name: &str) -> Scenario {
        let rates: Vec<f64> = floor.runs.iter().map(|f| f.ops_per_sec).collect();
        Self::paired_rates(name, runs, rates, floor_name)
    }

    /// Read against a floor rate per run (`floor_rates[i]` pairs with `runs[i]`).
    pub fn paired_rates(
        name: &str,
        runs: Vec<Figures>,
        floor_rates: Vec<f64>,
        floor_name: &str,
    ) -> Scenario {
        let ratios: Vec<f64> = runs
            .iter()
            .zip(&floor_rates)
            .filter(|(_, f)| **f > 0.0)
            .map(|(r, f)| r.ops_per_sec / f)
            .collect();
        let mut s = Self::alone(name, runs, floor_name);
        s.floor_ops_per_sec = Spread::of(floor_rates);
        s.ratio = Spread::of(ratios.iter().copied());
        s.ratios = ratios;
        s
    }

    pub fn alone(name: &str, runs: Vec<Figures>, what: &str) -> Scenario {
        let spread = Repeated::new(runs);
        Scenario {
            name: name.into(),
            in_flight: spread.in_flight,
            figures: spread.median_run().clone(),
            spread,
            floor: what.into(),
            floor_ops_per_sec: None,
            ratio: None,
            ratios: Vec::new(),
        }
    }
}

/// Resident memory (KiB) at the start and the end of the run, of the stack with the
/// workers in the bench process (as in `tessera-dev up`), so their memory is that
/// process's; and at the end, of each worker process of the processes scenario.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Memory {
    pub bench_process_with_workers_kib: (u64, u64),
    pub nats_server_kib: (u64, u64),
    pub redis_server_kib: (u64, u64),
    /// `(process, RSS KiB)` at the end of the run (workers as processes).
    pub worker_processes_kib: Vec<(String, u64)>,
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
    /// How many times each closed-loop figure was measured, interleaved with its floor.
    pub repeat: usize,
    pub concurrency: Vec<usize>,
    pub plugin_servers_on_the_route: usize,
    pub argon2id: &'static str,
    /// Why the processes scenario did not run, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes_skipped: Option<String>,
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

/// The machine as the bench found it.
pub fn machine() -> Machine {
    let os = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| format!("{} {}", std::env::consts::OS, r.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.to_owned());
    Machine {
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        load_average_at_start: LOAD_AT_START.get().copied().unwrap_or_default(),
        os,
        tessera: env!("CARGO_PKG_VERSION"),
        nats_server: version_of(tessera_devstack::find_nats_server()),
        redis_server: version_of(tessera_devstack::find_redis_server()),
        unix_time: tessera_protocol::now_unix(),
    }
}

pub const NOTE: &str = "everything on this machine: nats-server, redis-server, the workers and the load generator share its cores";

impl Settings {
    pub fn new(
        timing: Timing,
        repeat: usize,
        conc: &[usize],
        processes_skipped: Option<String>,
    ) -> Settings {
        Settings {
            warmup_ms: timing.warmup.as_millis(),
            measure_ms: timing.window.as_millis(),
            repeat,
            concurrency: conc.to_vec(),
            plugin_servers_on_the_route: super::SERVERS.len(),
            argon2id: "m=19456 KiB, t=2, p=1 (argon2 crate defaults)",
            processes_skipped,
            note: NOTE,
        }
    }
}

/// `median (min-max)` of a spread, or `-`.
fn show(s: Option<&Spread>, digits: usize) -> String {
    s.map_or("-".into(), |s| s.show(digits))
}

fn row(name: &str, r: &Repeated, floor: Option<&Spread>, ratio: Option<&Spread>) {
    println!(
        "{:<36} {:>4} {:>22} {:>8.0} {:>22} {:>8} {:>18} {:>9}",
        name,
        r.in_flight,
        r.ops_per_sec.show(0),
        r.p50_us.median,
        r.p99_us.show(0),
        floor.map_or("-".into(), |f| format!("{:.0}", f.median)),
        show(ratio, 2),
        r.cpu_us_per_op
            .map_or("-".into(), |c| format!("{:.0}", c.median)),
    );
    if r.errors > 0 {
        println!("{:<36} {} errors", "", r.errors);
    }
}

/// The median over the runs of one figure of each run (`None` when no run has it).
fn median_of(runs: &[Figures], f: impl Fn(&Figures) -> Option<f64>) -> Option<f64> {
    Spread::of(runs.iter().filter_map(f)).map(|s| s.median)
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

impl Report {
    pub fn print(&self) {
        let m = &self.machine;
        println!(
            "tessera-bench: {} cores, {}, {}, {}",
            m.cores, m.os, m.nats_server, m.redis_server
        );
        let [one, five, fifteen] = m.load_average_at_start;
        println!("load average at the start: {one:.2} {five:.2} {fifteen:.2} (1, 5, 15 min)");
        println!(
            "windows: {} ms warm-up, {} ms measured; each row {} time(s), interleaved with its \
             floor; median (min-max) over the repetitions; latencies in microseconds",
            self.settings.warmup_ms, self.settings.measure_ms, self.settings.repeat
        );
        if let Some(why) = &self.settings.processes_skipped {
            println!("workers as processes: not measured ({why})");
        }
        println!();
        println!(
            "{:<36} {:>4} {:>22} {:>8} {:>22} {:>8} {:>18} {:>9}",
            "scenario", "c", "ops/s", "p50", "p99", "floor/s", "ratio (per pair)", "cpu us/op"
        );
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
        let once = |name: &str, f: &Figures| row(name, &Repeated::new(vec![f.clone()]), None, None);
        once("floor: EdDSA sign", &fl.eddsa_sign);
        once("floor: EdDSA verify", &fl.eddsa_verify);
        row("floor: argon2id verify", &fl.argon2id_verify, None, None);
        println!();
        for s in &self.scenarios {
            row(
                &s.name,
                &s.spread,
                s.floor_ops_per_sec.as_ref(),
                s.ratio.as_ref(),
            );
        }
        println!();
        println!(
            "cpu us/op: CPU time per operation over the window: the bench process (load \
             generator, and the workers when in process) + nats-server + redis-server (+ the \
             worker processes); the parts are in the JSON"
        );
        self.print_split();
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
        if !mem.worker_processes_kib.is_empty() {
            let list: Vec<String> = mem
                .worker_processes_kib
                .iter()
                .map(|(n, k)| format!("{n} {k}"))
                .collect();
            println!("worker processes at the end (RSS KiB): {}", list.join(", "));
        }
    }

    /// Per issued token with the workers as processes: CPU by process, nats-server
    /// messages and Redis commands (medians over the repetitions).
    fn print_split(&self) {
        let rows: Vec<&Scenario> = self
            .scenarios
            .iter()
            .filter(|s| s.name == super::ISSUANCE_PROCESSES)
            .collect();
        if rows.is_empty() {
            return;
        }
        println!();
        println!(
            "per issued token, workers as processes (median of the repetitions): CPU us by \
             process, nats-server messages in/out, Redis commands"
        );
        println!(
            "{:>4} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7} {:>7}",
            "c",
            "broker",
            "auth",
            "plugin",
            "nats",
            "redis",
            "served",
            "load gen",
            "msg in",
            "msg out",
            "redis"
        );
        for s in rows {
            let runs = &s.spread.runs;
            let cpu = |f: fn(&crate::cpu::CpuPerOp) -> Option<f64>| {
                cell(median_of(runs, |r| r.cpu_per_op.as_ref().and_then(f)), 0)
            };
            println!(
                "{:>4} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7} {:>7}",
                s.in_flight,
                cpu(|c| c.broker_us),
                cpu(|c| c.auth_us),
                cpu(|c| c.plugin_servers_us),
                cpu(|c| Some(c.nats_server_us)),
                cpu(|c| Some(c.redis_server_us)),
                cpu(|c| c.served_us),
                cpu(|c| Some(c.bench_process_us)),
                cell(median_of(runs, |r| r.nats_per_op.map(|n| n.in_msgs)), 1),
                cell(median_of(runs, |r| r.nats_per_op.map(|n| n.out_msgs)), 1),
                cell(
                    median_of(runs, |r| r.redis_per_op.as_ref().map(|n| n.commands)),
                    1
                ),
            );
        }
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
