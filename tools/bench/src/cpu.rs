//! CPU time per operation over a measured window, from `/proc/<pid>/stat` (user + system
//! time of every thread, in ticks of 1/100 s), split by process: this one (the load
//! generator, and the workers when they run in it), nats-server, redis-server and, when
//! the workers run as processes of their own, the broker, the auth worker and the plugin
//! servers.

use serde::Serialize;

/// Linux reports `/proc` times in USER_HZ, 100 on every architecture we run on.
const TICK_US: u64 = 10_000;

/// One accounted part: a name and the processes whose CPU it sums (`None`: this process).
#[derive(Debug, Clone)]
pub struct Part {
    pub name: Role,
    pub pids: Vec<Option<u32>>,
}

/// What a part is; the names of [`CpuPerOp`]'s fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This process.
    Bench,
    NatsServer,
    RedisServer,
    Broker,
    Auth,
    PluginServers,
}

/// CPU microseconds used so far by each part, in the order of the parts.
#[derive(Debug, Clone, Default)]
pub struct Sample(Vec<u64>);

/// CPU microseconds per operation.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuPerOp {
    /// This process: the load generator, plus the workers, the plugin servers and the stub
    /// identity provider when the row's stack runs them in process (`workers_in_process`).
    pub bench_process_us: f64,
    pub nats_server_us: f64,
    pub redis_server_us: f64,
    /// The `tessera worker broker` process (workers as processes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_us: Option<f64>,
    /// The `tessera worker auth` process (workers as processes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_us: Option<f64>,
    /// Every `tessera plugin-server` process together (workers as processes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_servers_us: Option<f64>,
    /// Everything but this process: what serving the load costs, without the load
    /// generator (workers as processes only; in process they cannot be told apart).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_us: Option<f64>,
    /// Every part, this process included.
    pub total_us: f64,
    pub workers_in_process: bool,
}

pub fn sample(parts: &[Part]) -> Sample {
    Sample(
        parts
            .iter()
            .map(|p| {
                p.pids
                    .iter()
                    .map(|pid| pid.map_or_else(|| cpu_us("self"), |p| cpu_us(&p.to_string())))
                    .sum()
            })
            .collect(),
    )
}

/// `None` without operations (nothing to divide by).
pub fn per_op(parts: &[Part], before: &Sample, after: &Sample, ops: u64) -> Option<CpuPerOp> {
    if ops == 0 {
        return None;
    }
    let mut out = CpuPerOp {
        workers_in_process: true,
        ..CpuPerOp::default()
    };
    for (i, part) in parts.iter().enumerate() {
        let (a, b) = (
            after.0.get(i).copied().unwrap_or(0),
            before.0.get(i).copied().unwrap_or(0),
        );
        let us = a.saturating_sub(b) as f64 / ops as f64;
        out.total_us += us;
        match part.name {
            Role::Bench => out.bench_process_us += us,
            Role::NatsServer => out.nats_server_us += us,
            Role::RedisServer => out.redis_server_us += us,
            Role::Broker => *out.broker_us.get_or_insert(0.0) += us,
            Role::Auth => *out.auth_us.get_or_insert(0.0) += us,
            Role::PluginServers => *out.plugin_servers_us.get_or_insert(0.0) += us,
        }
    }
    if out.broker_us.is_some() {
        out.workers_in_process = false;
        out.served_us = Some(out.total_us - out.bench_process_us);
    }
    Some(out)
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

    fn spin(ms: u64) {
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        while t0.elapsed() < std::time::Duration::from_millis(ms) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
    }

    #[test]
    fn this_process_uses_cpu_and_it_is_divided_per_op() {
        let parts = [Part {
            name: Role::Bench,
            pids: vec![None],
        }];
        let before = sample(&parts);
        spin(50);
        let after = sample(&parts);
        let per = per_op(&parts, &before, &after, 10).unwrap();
        assert!(per.bench_process_us >= 1_000.0, "{per:?}");
        assert_eq!(per.total_us, per.bench_process_us);
        assert!(per.workers_in_process && per.served_us.is_none());
        assert!(per_op(&parts, &before, &after, 0).is_none());
    }

    #[test]
    fn workers_as_processes_are_split_out_and_served_excludes_the_load_generator() {
        // This process stands in for the broker: its CPU lands in `broker_us` and in
        // `served_us`, the bench part (no pid that exists) in neither.
        let me = std::process::id();
        let parts = [
            Part {
                name: Role::Bench,
                pids: vec![Some(u32::MAX)],
            },
            Part {
                name: Role::Broker,
                pids: vec![Some(me)],
            },
        ];
        let before = sample(&parts);
        spin(50);
        let after = sample(&parts);
        let per = per_op(&parts, &before, &after, 10).unwrap();
        let broker = per.broker_us.unwrap();
        assert!(broker >= 1_000.0, "{per:?}");
        assert_eq!(per.served_us, Some(broker));
        assert_eq!(per.bench_process_us, 0.0);
        assert!(!per.workers_in_process);
        assert!(per.auth_us.is_none() && per.plugin_servers_us.is_none());
    }
}
