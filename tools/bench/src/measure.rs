//! Closed-loop load: `n` tasks, each sending its next request as soon as the previous one
//! is answered, for a warm-up then a measured window. Latency goes into an HDR histogram.

use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::cpu::CpuPerOp;
use super::probe::{NatsPerOp, Probe, RedisPerOp};

/// The unrecorded warm-up and the recorded window of one measurement.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub window: Duration,
}

/// One measured run at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub in_flight: usize,
    pub ops: u64,
    pub errors: u64,
    pub ops_per_sec: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// CPU per operation over the window (closed-loop runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_per_op: Option<CpuPerOp>,
    /// nats-server's messages per operation over the window (closed-loop runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_per_op: Option<NatsPerOp>,
    /// redis-server's commands per operation over the window (closed-loop runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_per_op: Option<RedisPerOp>,
}

/// Latencies recorded in nanoseconds, reported in microseconds. Two significant digits (1%)
/// keep each of up to thousands of per-task histograms near 70 KiB.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 2).expect("valid histogram bounds")
}

pub fn figures(
    in_flight: usize,
    ops: u64,
    errors: u64,
    window: Duration,
    h: &Histogram<u64>,
) -> Figures {
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Figures {
        in_flight,
        ops,
        errors,
        ops_per_sec: ops as f64 / window.as_secs_f64(),
        p50_us: us(0.5),
        p90_us: us(0.9),
        p99_us: us(0.99),
        p999_us: us(0.999),
        max_us: h.max() as f64 / 1000.0,
        cpu_per_op: None,
        nats_per_op: None,
        redis_per_op: None,
    }
}

/// How long a task may run past the window to complete its first operation.
const FIRST_OP_BOUND: Duration = Duration::from_secs(10);

/// Runs `op` from `in_flight` tasks: `warmup` unrecorded, then `window` recorded; `probe`
/// is sampled at the window's start and end.
///
/// Counted are operations that start and finish inside the window, except that a task with
/// nothing counted yet when the window closes keeps going (up to [`FIRST_OP_BOUND`]) until its
/// first operation completes: slow operations (an argon2 login takes tens of milliseconds,
/// far more on a loaded machine) would otherwise report nothing from a short window. The
/// rate divides by the span actually measured, so stretching it does not inflate the rate.
pub async fn closed_loop<F, Fut, E>(
    probe: &Probe,
    in_flight: usize,
    timing: Timing,
    op: F,
) -> Figures
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Send,
{
    let start = Instant::now() + timing.warmup;
    let end = start + timing.window;
    // Counters from the window's start (a timer, not a synchronisation: the load runs
    // regardless).
    let at_start = {
        let probe = probe.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            probe.sample().await
        })
    };
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut h = histogram();
                let (mut ops, mut errors) = (0u64, 0u64);
                let mut last = end;
                loop {
                    let t0 = Instant::now();
                    let counted = ops + errors > 0;
                    if t0 >= end && (counted || t0 >= end + FIRST_OP_BOUND) {
                        break;
                    }
                    let ok = op().await.is_ok();
                    let t1 = Instant::now();
                    if t0 >= start && (t1 <= end || !counted) {
                        last = last.max(t1);
                        if ok {
                            ops += 1;
                            let _ = h.record((t1 - t0).as_nanos().max(1) as u64);
                        } else {
                            errors += 1;
                        }
                    }
                }
                (h, ops, errors, last)
            })
        })
        .collect();
    let mut total = histogram();
    let (mut ops, mut errors, mut last) = (0, 0, end);
    for t in tasks {
        let (h, o, e, l) = t.await.expect("load task panicked");
        total.add(&h).expect("same bounds");
        ops += o;
        errors += e;
        last = last.max(l);
    }
    let at_end = probe.sample().await;
    let mut f = figures(in_flight, ops, errors, last - start, &total);
    if let Ok(before) = at_start.await {
        let per = probe.per_op(&before, &at_end, ops);
        f.cpu_per_op = per.cpu;
        f.nats_per_op = per.nats;
        f.redis_per_op = per.redis;
    }
    f
}

/// Times a synchronous operation `iterations` times, one call per sample (for per-call
/// costs of a few microseconds or less).
pub fn per_call(iterations: u64, mut op: impl FnMut()) -> Figures {
    let mut h = histogram();
    let started = Instant::now();
    for _ in 0..iterations {
        let t0 = Instant::now();
        op();
        let _ = h.record(t0.elapsed().as_nanos().max(1) as u64);
    }
    figures(1, iterations, 0, started.elapsed(), &h)
}
