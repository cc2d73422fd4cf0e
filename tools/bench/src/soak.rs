//! `tessera-bench --soak DURATION`: issuance held at 64 in flight with the workers as
//! `tessera` processes, after the composed floor on the same servers. Every slice (5 s):
//! rate, errors, p99, each process's memory, Redis memory and keys (and whether every key
//! expires), the distribution stream. At the end: how steady it was (worst slice p99 over
//! the median slice's, rate against the floor), Redis memory from start to peak to end per
//! token issued within the idempotency window, Redis memory by key kind, and what a token
//! cost (CPU by process, NATS messages, Redis commands) in the median slice.
//!
//! Tokens last 20 s here so stores turn over within a short run. Idempotent replies last
//! `IDEMPOTENCY_WINDOW` (5 min), longer than most runs, so the Redis key count keeps
//! rising for 5 minutes; what bounds it is that every key has an expiry, which is checked.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tessera_ledger::IDEMPOTENCY_WINDOW;

use super::measure::{Figures, Timing};
use super::processes::Deployment;
use super::redis_state::{self, KindUsage, RedisMemory, TTL_SAMPLE};
use super::report::{self, Machine, rss_kib};
use super::spread::{Repeated, Spread};
use super::{SERVERS, floor_env, floors, issuance, new_stack, redis_connection, stack_probe};
use tessera_bus_config::redis_acl::RedisUser;
use tessera_devstack::stack::DevStack;

const IN_FLIGHT: usize = 64;
const TOKEN_TTL: &str = "20s";
/// The slice the soak reports; shorter runs get four slices.
const SLICE: Duration = Duration::from_secs(5);

/// One slice of the run.
#[derive(Debug, Serialize)]
pub struct Slice {
    pub t_s: f64,
    pub ops_per_sec: f64,
    pub errors: u64,
    pub p99_us: f64,
    /// `(process, RSS KiB)`: bench (the load generator), nats-server, redis-server, then
    /// the worker processes.
    pub rss_kib: Vec<(String, u64)>,
    pub redis_memory: RedisMemory,
    pub redis_keys: u64,
    pub keys_without_expiry: u64,
    pub dist_messages: u64,
    pub dist_bytes: u64,
    pub oldest_dist_message_s: f64,
    #[serde(skip)]
    figures: Figures,
}

#[derive(Debug, Serialize)]
pub struct RedisSummary {
    pub start: RedisMemory,
    /// The largest of the slices' samples.
    pub peak: RedisMemory,
    pub end: RedisMemory,
    /// Tokens issued within the last `IDEMPOTENCY_WINDOW` of the run (all of them in a
    /// shorter run): the ones whose idempotent reply Redis may still hold.
    pub tokens_in_idempotency_window: u64,
    /// `(end.used - start.used) / tokens_in_idempotency_window`.
    pub used_bytes_per_token: f64,
    pub by_kind: Vec<KindUsage>,
}

#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub machine: Machine,
    pub in_flight: usize,
    pub token_ttl: &'static str,
    pub slice_ms: u128,
    pub total_ms: u128,
    pub floor: Repeated,
    pub slices: Vec<Slice>,
    pub tokens: u64,
    pub errors: u64,
    pub ops_per_sec: Spread,
    /// Median slice rate over the floor's median rate.
    pub rate_vs_floor: f64,
    pub p99_us: Spread,
    /// Worst slice p99 over the median slice p99.
    pub worst_p99_over_median: f64,
    /// The median-rate slice's figures: CPU by process, NATS messages and Redis commands
    /// per token.
    pub median_slice: Figures,
    pub redis: RedisSummary,
    pub dist_stream_max_age_s: f64,
    pub audit_messages: u64,
    pub audit_bytes: u64,
}

pub(super) async fn run(
    root: &Path,
    total: Duration,
    timing: Timing,
    repeat: usize,
    json: Option<&Path>,
) -> anyhow::Result<()> {
    let stack = new_stack(root, "soak", None).await?;
    let result = async {
        // The floor first, on the same servers, before any worker takes its subjects.
        let env = floor_env(&stack).await?;
        let mut runs = Vec::new();
        for _ in 0..repeat {
            runs.push(floors::composed_issuance(&env, IN_FLIGHT, timing).await?);
        }
        floors::clean_up(&env).await?;
        let floor = Repeated::new(runs);
        let servers: Vec<String> = SERVERS.iter().map(|s| s.to_string()).collect();
        let ttl = (
            tessera_runtime::config::registry::TOKEN_TTL.name,
            TOKEN_TTL.to_owned(),
        );
        let d = Deployment::start(&stack, &servers, &[ttl]).await?;
        let r = soak(&stack, &d, total, floor).await;
        let r = r.map_err(|e| e.context(d.logs()));
        d.stop().await;
        r
    }
    .await;
    stack.stop().await;
    let report = result?;
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
        eprintln!("figures written to {}", path.display());
    }
    Ok(())
}

async fn soak(
    stack: &DevStack,
    d: &Deployment,
    total: Duration,
    floor: Repeated,
) -> anyhow::Result<SoakReport> {
    let probe = stack_probe(stack, d.parts(stack)).await?;
    let mut redis = redis_connection(&stack.redis_url(RedisUser::Admin)).await?;
    let js =
        async_nats::jetstream::new(super::connect(stack, tessera_bus_config::Role::Admin).await?);
    let mut stream = js.get_stream(stack.subjects.dist_stream()).await?;
    let max_age = stream.info().await?.config.max_age;
    let start = redis_state::memory(&mut redis).await?;
    let slice = if total >= SLICE * 4 { SLICE } else { total / 4 };
    let count = (total.as_secs_f64() / slice.as_secs_f64()).round().max(1.0) as usize;
    println!(
        "soak: issuance at {IN_FLIGHT} in flight, {TOKEN_TTL} tokens, broker, auth and plugin \
         servers as processes; composed floor on the same servers before: {} tokens/s",
        floor.ops_per_sec.show(0)
    );
    println!(
        "{:>5} {:>8} {:>6} {:>8} {:>9} {:>9} {:>9} {:>8} {:>6} {:>8} {:>9} {:>7}",
        "t(s)",
        "tokens/s",
        "errors",
        "p99 us",
        "broker",
        "nats",
        "redis MiB",
        "keys",
        "no-ttl",
        "dist msg",
        "dist KiB",
        "oldest"
    );
    let timing = Timing {
        warmup: Duration::ZERO,
        window: slice,
    };
    let mut slices: Vec<Slice> = Vec::with_capacity(count);
    let mut peak = start;
    for i in 0..count {
        let f = issuance(&probe, &d.client, &d.account_token, IN_FLIGHT, timing).await;
        let redis_memory = redis_state::memory(&mut redis).await?;
        peak.used = peak.used.max(redis_memory.used);
        peak.rss = peak.rss.max(redis_memory.rss);
        let (redis_keys, keys_without_expiry) = redis_state::keys_and_expiry(&mut redis).await?;
        let state = stream.info().await?.state.clone();
        let mut rss = vec![
            ("bench".to_owned(), rss_kib(None)),
            ("nats-server".to_owned(), rss_kib(stack.nats.pid())),
            ("redis-server".to_owned(), rss_kib(stack.redis.pid())),
        ];
        rss.extend(d.processes().iter().map(|w| (w.name.clone(), w.rss_kib())));
        let s = Slice {
            t_s: slice.as_secs_f64() * (i + 1) as f64,
            ops_per_sec: f.ops_per_sec,
            errors: f.errors,
            p99_us: f.p99_us,
            rss_kib: rss,
            redis_memory,
            redis_keys,
            keys_without_expiry,
            dist_messages: state.messages,
            dist_bytes: state.bytes,
            oldest_dist_message_s: age(state.first_timestamp.unix_timestamp_nanos()).as_secs_f64(),
            figures: f,
        };
        println!(
            "{:>5.0} {:>8.0} {:>6} {:>8.0} {:>9} {:>9} {:>9.1} {:>8} {:>6} {:>8} {:>9} {:>6.0}s",
            s.t_s,
            s.ops_per_sec,
            s.errors,
            s.p99_us,
            s.rss_kib.get(3).map_or(0, |r| r.1),
            s.rss_kib[1].1,
            s.redis_memory.used as f64 / (1024.0 * 1024.0),
            s.redis_keys,
            s.keys_without_expiry,
            s.dist_messages,
            s.dist_bytes / 1024,
            s.oldest_dist_message_s
        );
        slices.push(s);
    }
    let end = redis_state::memory(&mut redis).await?;
    let by_kind = redis_state::by_kind(&mut redis).await?;
    let audit = js
        .get_stream(stack.subjects.audit_stream())
        .await?
        .info()
        .await?
        .clone();
    let report = summarise(
        slices, floor, start, peak, end, by_kind, max_age, slice, total,
    );
    let report = SoakReport {
        audit_messages: audit.state.messages,
        audit_bytes: audit.state.bytes,
        ..report
    };
    print_summary(&report);
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn summarise(
    slices: Vec<Slice>,
    floor: Repeated,
    start: RedisMemory,
    peak: RedisMemory,
    end: RedisMemory,
    by_kind: Vec<KindUsage>,
    max_age: Duration,
    slice: Duration,
    total: Duration,
) -> SoakReport {
    let tokens: u64 = slices.iter().map(|s| s.figures.ops).sum();
    let run_end = slices.last().map_or(0.0, |s| s.t_s);
    let window = IDEMPOTENCY_WINDOW.as_secs_f64();
    let in_window: u64 = slices
        .iter()
        .filter(|s| s.t_s - slice.as_secs_f64() >= run_end - window)
        .map(|s| s.figures.ops)
        .sum();
    let rates = Spread::of(slices.iter().map(|s| s.ops_per_sec)).unwrap_or(Spread {
        median: 0.0,
        min: 0.0,
        max: 0.0,
    });
    let p99 = Spread::of(slices.iter().map(|s| s.p99_us)).unwrap_or(rates);
    let median_slice = {
        let mut order: Vec<&Slice> = slices.iter().collect();
        order.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
        order[(order.len() - 1) / 2].figures.clone()
    };
    SoakReport {
        machine: report::machine(),
        in_flight: IN_FLIGHT,
        token_ttl: TOKEN_TTL,
        slice_ms: slice.as_millis(),
        total_ms: total.as_millis(),
        rate_vs_floor: rates.median / floor.ops_per_sec.median.max(f64::MIN_POSITIVE),
        floor,
        tokens,
        errors: slices.iter().map(|s| s.errors).sum(),
        ops_per_sec: rates,
        worst_p99_over_median: p99.max / p99.median.max(f64::MIN_POSITIVE),
        p99_us: p99,
        median_slice,
        redis: RedisSummary {
            start,
            peak,
            end,
            tokens_in_idempotency_window: in_window,
            used_bytes_per_token: end.used.saturating_sub(start.used) as f64
                / in_window.max(1) as f64,
            by_kind,
        },
        dist_stream_max_age_s: max_age.as_secs_f64(),
        slices,
        audit_messages: 0,
        audit_bytes: 0,
    }
}

fn print_summary(r: &SoakReport) {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let no_ttl: u64 = r.slices.iter().map(|s| s.keys_without_expiry).sum();
    let oldest = r
        .slices
        .iter()
        .map(|s| s.oldest_dist_message_s)
        .fold(0.0, f64::max);
    println!("tokens issued: {}, errors: {}", r.tokens, r.errors);
    println!(
        "rate per slice: {} tokens/s; {:.2} of the composed floor ({} tokens/s)",
        r.ops_per_sec.show(0),
        r.rate_vs_floor,
        r.floor.ops_per_sec.show(0)
    );
    println!(
        "p99 per slice: {} us; worst slice over the median slice: {:.2}",
        r.p99_us.show(0),
        r.worst_p99_over_median
    );
    println!("redis keys without an expiry (sampled up to {TTL_SAMPLE} per slice): {no_ttl}");
    let (s, p, e) = (&r.redis.start, &r.redis.peak, &r.redis.end);
    println!(
        "redis used_memory MiB: {:.1} at the start, {:.1} peak, {:.1} at the end (RSS {:.1}, \
         {:.1}, {:.1}); {} tokens in the idempotency window ({} s): {:.0} bytes per token",
        mib(s.used),
        mib(p.used),
        mib(e.used),
        mib(s.rss),
        mib(p.rss),
        mib(e.rss),
        r.redis.tokens_in_idempotency_window,
        IDEMPOTENCY_WINDOW.as_secs(),
        r.redis.used_bytes_per_token
    );
    for k in &r.redis.by_kind {
        println!(
            "  {:<20} {:>8} keys x {:>6.0} bytes (MEMORY USAGE of {}) = {:>7.1} MiB",
            k.kind,
            k.keys,
            k.mean_bytes,
            k.sampled,
            k.estimated_bytes / (1024.0 * 1024.0)
        );
    }
    if let Some(c) = &r.median_slice.cpu_per_op {
        println!(
            "per token (median slice): CPU us broker {:.0}, auth {:.0}, plugin servers {:.0}, \
             nats-server {:.0}, redis-server {:.0}: {:.0} served; load generator {:.0}",
            c.broker_us.unwrap_or(0.0),
            c.auth_us.unwrap_or(0.0),
            c.plugin_servers_us.unwrap_or(0.0),
            c.nats_server_us,
            c.redis_server_us,
            c.served_us.unwrap_or(0.0),
            c.bench_process_us
        );
    }
    if let (Some(n), Some(rc)) = (&r.median_slice.nats_per_op, &r.median_slice.redis_per_op) {
        println!(
            "per token (median slice): nats-server {:.1} messages in, {:.1} out; redis {:.1} \
             commands",
            n.in_msgs, n.out_msgs, rc.commands
        );
    }
    println!(
        "oldest distribution message: {oldest:.0} s (stream max age {:.0} s; JetStream \
         expires messages in batches, so a few seconds over is expected)",
        r.dist_stream_max_age_s
    );
    if let Some(last) = r.slices.last() {
        let list: Vec<String> = last
            .rss_kib
            .iter()
            .map(|(n, k)| format!("{n} {k}"))
            .collect();
        println!("RSS KiB at the end: {}", list.join(", "));
    }
    println!(
        // Messages: a worker publishes its events gathered, several to a message.
        "audit stream: {} messages, {} KiB",
        r.audit_messages,
        r.audit_bytes / 1024
    );
}

/// Seconds since a JetStream timestamp (0 when the stream is empty).
fn age(unix_ns: i128) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i128;
    if unix_ns <= 0 || unix_ns > now {
        return Duration::ZERO;
    }
    Duration::from_nanos((now - unix_ns) as u64)
}
