//! CPU time per operation over a measured window, from `/proc/<pid>/stat` (user + system
//! time of every thread, in ticks of 1/100 s): of this process (the in-process workers, the
//! load generator and the stub identity provider together: they share one process and one
//! runtime, so they cannot be told apart here), of nats-server and of redis-server.

use std::sync::OnceLock;

use serde::Serialize;

/// Linux reports `/proc` times in USER_HZ, 100 on every architecture we run on.
const TICK_US: u64 = 10_000;

static SERVERS: OnceLock<(Option<u32>, Option<u32>)> = OnceLock::new();

/// Which nats-server and redis-server to account (the dev stack's); once per run.
pub fn watch(nats_server: Option<u32>, redis_server: Option<u32>) {
    let _ = SERVERS.set((nats_server, redis_server));
}

/// CPU microseconds used so far by each process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    bench: u64,
    nats_server: u64,
    redis_server: u64,
}

/// CPU microseconds per operation.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuPerOp {
    /// This process: the workers, the load generator and the stub identity provider.
    pub bench_process_us: f64,
    pub nats_server_us: f64,
    pub redis_server_us: f64,
    pub total_us: f64,
}

pub fn sample() -> Sample {
    let (nats, redis) = SERVERS.get().copied().unwrap_or_default();
    Sample {
        bench: cpu_us("self"),
        nats_server: nats.map_or(0, |p| cpu_us(&p.to_string())),
        redis_server: redis.map_or(0, |p| cpu_us(&p.to_string())),
    }
}

/// `None` without operations (nothing to divide by).
pub fn per_op(before: Sample, after: Sample, ops: u64) -> Option<CpuPerOp> {
    if ops == 0 {
        return None;
    }
    let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / ops as f64;
    let bench = per(after.bench, before.bench);
    let nats = per(after.nats_server, before.nats_server);
    let redis = per(after.redis_server, before.redis_server);
    Some(CpuPerOp {
        bench_process_us: bench,
        nats_server_us: nats,
        redis_server_us: redis,
        total_us: bench + nats + redis,
    })
}

/// utime + stime of `/proc/<pid>/stat`, in microseconds; 0 when unreadable.
fn cpu_us(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command name (field 2) may hold spaces and parentheses: fields resume after the
    // last ')'. utime and stime are fields 14 and 15, so 11 and 12 from there.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) * TICK_US
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_cpu_and_it_is_divided_per_op() {
        let before = sample();
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        while t0.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = sample();
        let per = per_op(before, after, 10).unwrap();
        assert!(per.bench_process_us >= 1_000.0, "{per:?}");
        assert_eq!(per.total_us, per.bench_process_us);
        assert!(per_op(before, after, 0).is_none());
    }
}
