//! `tessera-bench --soak DURATION`: issuance held at 64 in flight, with the figures that show
//! whether the load is held: errors, memory of each process, Redis
//! key count and whether every key expires, and the distribution stream's size and the age
//! of its oldest message against the stream's max age; at the end, the audit stream's size.
//!
//! Tokens last 20 s here so stores turn over within a short run. Idempotent replies (5 min,
//! `IDEMPOTENCY_WINDOW`) outlive any run shorter than that, so the Redis key count keeps
//! rising for 5 minutes; what bounds it is that every key has an expiry, which is checked.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use tessera_bus_config::Role;
use tessera_sdk::Client;

use super::processes::WorkerProcess;
use super::report::Memory;
use super::{PASSWORD, PLUGIN, SERVERS, connect, issuance, redis_connection};
use tessera_devstack::stack::DevStack;

/// Keys checked for an expiry at each sample (SCAN batches); enough to catch a key kind
/// that never expires, as every kind is written for every token.
const TTL_SAMPLE: usize = 2_000;

/// One tenth of the run.
struct Sample {
    /// RSS of each worker process, in the order given to `soak`.
    workers_kib: Vec<u64>,
    elapsed: Duration,
    ops_per_sec: f64,
    errors: u64,
    p99_us: f64,
    memory: Memory,
    redis_keys: u64,
    keys_without_expiry: u64,
    stream_messages: u64,
    stream_bytes: u64,
    oldest_age: Duration,
}

pub(super) async fn run(stack: &mut DevStack, total: Duration) -> anyhow::Result<()> {
    // The broker and the auth worker run as processes of their own, so each one's memory is
    // its own RSS; the plugin servers and the load run here.
    let auth = WorkerProcess::spawn(stack, "auth", &[]).await?;
    let ttl = (
        tessera_runtime::config::registry::TOKEN_TTL.name,
        "20s".to_owned(),
    );
    let broker = WorkerProcess::spawn(stack, "broker", &[ttl]).await?;
    let result = soak(stack, total, &[&broker, &auth]).await.map_err(|e| {
        e.context(format!(
            "broker log:\n{}\nauth log:\n{}",
            broker.log_tail(),
            auth.log_tail()
        ))
    });
    broker.stop().await;
    auth.stop().await;
    result
}

/// Retries `f` while the answer is `unavailable` (a worker still starting), for at most
/// [`READY`]; anything else is returned.
async fn when_served<T, F, Fut>(mut f: F) -> Result<T, tessera_sdk::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tessera_sdk::Error>>,
{
    let until = std::time::Instant::now() + READY;
    loop {
        match f().await {
            Err(e)
                if e.kind() == tessera_sdk::ErrorKind::Unavailable
                    && std::time::Instant::now() < until =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// How long worker processes may take to serve.
const READY: Duration = Duration::from_secs(30);

async fn soak(
    stack: &mut DevStack,
    total: Duration,
    workers: &[&WorkerProcess],
) -> anyhow::Result<()> {
    let servers: Vec<String> = SERVERS.iter().map(|s| s.to_string()).collect();
    // A client connects once the auth worker's callout answers; the broker serves `keys`
    // once it has provisioned its streams, which the plugin servers read.
    let client = Client::new(connect(stack, Role::Client).await?, stack.subjects.clone());
    when_served(|| client.keys()).await?;
    for id in &servers {
        stack.add_plugin_server(id).await?;
    }
    let admin_nats = connect(stack, Role::Admin).await?;
    let admin = Client::new(admin_nats.clone(), stack.subjects.clone());
    when_served(|| admin.add_user("bench", PASSWORD)).await?;
    admin.set_route(PLUGIN, &servers).await?;
    let account_token = when_served(|| client.login("bench", PASSWORD))
        .await?
        .account_token;
    when_served(|| client.request_token(&account_token, PLUGIN, None)).await?;
    let start_kib: Vec<u64> = workers.iter().map(|w| w.rss_kib()).collect();
    let mut redis =
        redis_connection(&stack.redis_url(tessera_bus_config::redis_acl::RedisUser::Admin)).await?;
    let js = async_nats::jetstream::new(admin_nats);
    let mut stream = js.get_stream(stack.subjects.dist_stream()).await?;
    let max_age = stream.info().await?.config.max_age;

    let slice = total / 10;
    println!(
        "soak: issuance at 64 in flight, 20 s tokens; RSS in KiB (bench: the load and the \
         plugin servers; broker and auth: their own processes); DIST max age {max_age:?}"
    );
    println!(
        "worker RSS KiB once serving: {}",
        workers
            .iter()
            .zip(&start_kib)
            .map(|(w, k)| format!("{} {k}", w.name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "{:>5} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {:>6} {:>8} {:>9} {:>7}",
        "t(s)",
        "tokens/s",
        "errors",
        "p99 us",
        "bench",
        "broker",
        "auth",
        "nats",
        "redis",
        "keys",
        "no-ttl",
        "dist msg",
        "dist KiB",
        "oldest"
    );
    let mut samples = Vec::with_capacity(10);
    for _ in 0..10 {
        let f = issuance(&client, &account_token, 64, Duration::ZERO, slice).await;
        let mut memory = Memory::default();
        memory.sample_end(stack);
        let (redis_keys, keys_without_expiry) = redis_keys(&mut redis).await?;
        let state = stream.info().await?.state.clone();
        let oldest_ns = state.first_timestamp.unix_timestamp_nanos();
        let s = Sample {
            workers_kib: workers.iter().map(|w| w.rss_kib()).collect(),
            elapsed: samples.last().map_or(slice, |p: &Sample| p.elapsed + slice),
            ops_per_sec: f.ops_per_sec,
            errors: f.errors,
            p99_us: f.p99_us,
            memory,
            redis_keys,
            keys_without_expiry,
            stream_messages: state.messages,
            stream_bytes: state.bytes,
            oldest_age: age(oldest_ns),
        };
        println!(
            "{:>5.0} {:>8.0} {:>6} {:>8.0} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {:>6} {:>8} {:>9} {:>6.0}s",
            s.elapsed.as_secs_f64(),
            s.ops_per_sec,
            s.errors,
            s.p99_us,
            s.memory.bench_process_with_workers_kib.1,
            s.workers_kib.first().copied().unwrap_or(0),
            s.workers_kib.get(1).copied().unwrap_or(0),
            s.memory.nats_server_kib.1,
            s.memory.redis_server_kib.1,
            s.redis_keys,
            s.keys_without_expiry,
            s.stream_messages,
            s.stream_bytes / 1024,
            s.oldest_age.as_secs_f64()
        );
        samples.push(s);
    }
    summary(&samples, max_age, workers, &start_kib);
    // Every token issued is also an audit event (a background publish after the reply).
    let audit = js
        .get_stream(stack.subjects.audit_stream())
        .await?
        .info()
        .await?
        .clone();
    println!(
        "audit stream: {} events, {} KiB (bounded by max age {:?} and {} MiB)",
        audit.state.messages,
        audit.state.bytes / 1024,
        audit.config.max_age,
        audit.config.max_bytes / (1024 * 1024)
    );
    Ok(())
}

/// The verdicts a reader would otherwise work out from the table.
fn summary(samples: &[Sample], max_age: Duration, workers: &[&WorkerProcess], start_kib: &[u64]) {
    let errors: u64 = samples.iter().map(|s| s.errors).sum();
    let no_ttl: u64 = samples.iter().map(|s| s.keys_without_expiry).sum();
    let oldest = samples
        .iter()
        .map(|s| s.oldest_age)
        .max()
        .unwrap_or_default();
    let rss = |f: fn(&Memory) -> u64| {
        let half = samples.len() / 2;
        let at = |i: usize| samples.get(i).map_or(0, |s| f(&s.memory));
        (at(half.saturating_sub(1)), at(samples.len() - 1))
    };
    let bench = rss(|m| m.bench_process_with_workers_kib.1);
    let nats = rss(|m| m.nats_server_kib.1);
    let redis = rss(|m| m.redis_server_kib.1);
    println!("errors: {errors}");
    println!("redis keys without an expiry (sampled up to {TTL_SAMPLE} per slice): {no_ttl}");
    println!(
        "oldest distribution message: {:.0} s (stream max age {:.0} s; JetStream expires \
         messages in batches, so a few seconds over is expected)",
        oldest.as_secs_f64(),
        max_age.as_secs_f64()
    );
    for (i, (w, start)) in workers.iter().zip(start_kib).enumerate() {
        let at = |j: usize| samples.get(j).and_then(|s| s.workers_kib.get(i).copied());
        println!(
            "RSS KiB of the {} process: {start} once serving, {} in the middle, {} at the end",
            w.name,
            at(samples.len() / 2 - 1).unwrap_or(0),
            at(samples.len() - 1).unwrap_or(0)
        );
    }
    println!(
        "RSS KiB, middle -> end of the run: bench (load, plugin servers) {} -> {}, \
         nats-server {} -> {}, redis-server {} -> {}",
        bench.0, bench.1, nats.0, nats.1, redis.0, redis.1
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

/// The key count, and how many of up to [`TTL_SAMPLE`] scanned keys have no expiry.
async fn redis_keys(redis: &mut ConnectionManager) -> anyhow::Result<(u64, u64)> {
    let total: u64 = redis::cmd("DBSIZE").query_async(redis).await?;
    let mut cursor = 0u64;
    let mut checked = 0usize;
    let mut without_expiry = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(500)
            .query_async(redis)
            .await?;
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("PTTL").arg(k);
            }
            let ttls: Vec<i64> = pipe.query_async(redis).await?;
            // -1: no expiry; -2: gone since the scan (expired), which is fine.
            without_expiry += ttls.iter().filter(|&&t| t == -1).count() as u64;
            checked += keys.len();
        }
        cursor = next;
        if cursor == 0 || checked >= TTL_SAMPLE {
            return Ok((total, without_expiry));
        }
    }
}
