//! What one measurement accounts for, sampled at the window's start and end: CPU by process
//! ([`cpu`](super::cpu)), nats-server's message counts (`/varz` of its monitoring port) and
//! redis-server's command counts (`INFO commandstats`, on the admin connection). Each stack
//! the bench runs has a probe of its own, so a row counts exactly its stack's servers.
//!
//! The counters are exact (server-side totals), not sampled; what else the stack did in the
//! window counts too (a worker's timers, JetStream heartbeats), which is small and is part
//! of serving anyway.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::Serialize;

use super::cpu::{self, CpuPerOp, Part};

/// A bound for one counter read: a probe never stalls a measurement.
const READ_BOUND: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Probe(Arc<Inner>);

struct Inner {
    parts: Vec<Part>,
    nats_monitor: Option<String>,
    redis: Option<ConnectionManager>,
}

/// Counters at one instant.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    cpu: cpu::Sample,
    nats: Option<NatsCounters>,
    redis: Option<BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct NatsCounters {
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
}

/// nats-server's `/varz` deltas per operation: messages (and bytes) it received from
/// clients (`in`) and delivered to them (`out`), JetStream's API and acks included.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct NatsPerOp {
    pub in_msgs: f64,
    pub out_msgs: f64,
    pub in_bytes: f64,
    pub out_bytes: f64,
}

/// redis-server's `INFO commandstats` deltas per operation (the probe's own `INFO` left
/// out). A pipeline counts each command; a script counts `evalsha` and each command it runs.
#[derive(Debug, Clone, Serialize)]
pub struct RedisPerOp {
    pub commands: f64,
    pub by_command: BTreeMap<String, f64>,
}

/// Everything one window cost, per operation.
#[derive(Debug, Clone, Default)]
pub struct PerOp {
    pub cpu: Option<CpuPerOp>,
    pub nats: Option<NatsPerOp>,
    pub redis: Option<RedisPerOp>,
}

impl Probe {
    /// `parts`: the processes to account; `nats_monitor`: the server's monitoring URL;
    /// `redis`: an admin connection to the stack's Redis.
    pub fn new(
        parts: Vec<Part>,
        nats_monitor: Option<String>,
        redis: Option<ConnectionManager>,
    ) -> Probe {
        Probe(Arc::new(Inner {
            parts,
            nats_monitor,
            redis,
        }))
    }

    pub async fn sample(&self) -> Sample {
        let cpu = cpu::sample(&self.0.parts);
        let nats = match &self.0.nats_monitor {
            Some(url) => varz(url).await,
            None => None,
        };
        let redis = match &self.0.redis {
            Some(conn) => command_calls(&mut conn.clone()).await,
            None => None,
        };
        Sample { cpu, nats, redis }
    }

    pub fn per_op(&self, before: &Sample, after: &Sample, ops: u64) -> PerOp {
        if ops == 0 {
            return PerOp::default();
        }
        let n = ops as f64;
        let nats = before.nats.zip(after.nats).map(|(b, a)| NatsPerOp {
            in_msgs: a.in_msgs.saturating_sub(b.in_msgs) as f64 / n,
            out_msgs: a.out_msgs.saturating_sub(b.out_msgs) as f64 / n,
            in_bytes: a.in_bytes.saturating_sub(b.in_bytes) as f64 / n,
            out_bytes: a.out_bytes.saturating_sub(b.out_bytes) as f64 / n,
        });
        let redis = before
            .redis
            .as_ref()
            .zip(after.redis.as_ref())
            .map(|(b, a)| {
                let by_command: BTreeMap<String, f64> = a
                    .iter()
                    .map(|(cmd, &calls)| {
                        let d = calls.saturating_sub(b.get(cmd).copied().unwrap_or(0));
                        (cmd.clone(), d as f64 / n)
                    })
                    .filter(|(_, per)| *per > 0.0)
                    .collect();
                RedisPerOp {
                    commands: by_command.values().sum(),
                    by_command,
                }
            });
        PerOp {
            cpu: cpu::per_op(&self.0.parts, &before.cpu, &after.cpu, ops),
            nats,
            redis,
        }
    }
}

async fn varz(url: &str) -> Option<NatsCounters> {
    let url = format!("{url}/varz");
    let read = tokio::task::spawn_blocking(move || -> anyhow::Result<serde_json::Value> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(READ_BOUND))
            .build()
            .into();
        let text = agent.get(&url).call()?.body_mut().read_to_string()?;
        Ok(serde_json::from_str(&text)?)
    });
    match read.await {
        Ok(Ok(v)) => {
            let n = |k: &str| v[k].as_u64().unwrap_or(0);
            Some(NatsCounters {
                in_msgs: n("in_msgs"),
                out_msgs: n("out_msgs"),
                in_bytes: n("in_bytes"),
                out_bytes: n("out_bytes"),
            })
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "reading nats-server's /varz");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading nats-server's /varz");
            None
        }
    }
}

/// Calls per command so far, without `info` (the probe's own).
async fn command_calls(redis: &mut ConnectionManager) -> Option<BTreeMap<String, u64>> {
    let text = info(redis, "commandstats").await?;
    Some(
        parse_commandstats(&text)
            .into_iter()
            .filter(|(cmd, _)| cmd != "info")
            .collect(),
    )
}

/// `INFO <section>`, bounded; `None` (and a warning) when Redis does not answer in time.
pub async fn info(redis: &mut ConnectionManager, section: &str) -> Option<String> {
    let mut cmd = redis::cmd("INFO");
    cmd.arg(section);
    match tokio::time::timeout(READ_BOUND, cmd.query_async::<String>(redis)).await {
        Ok(Ok(text)) => Some(text),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, section, "reading redis INFO");
            None
        }
        Err(_) => {
            tracing::warn!(section, "redis INFO timed out");
            None
        }
    }
}

/// `cmdstat_set:calls=12,usec=34,...` -> `set: 12` (subcommands as `config|get`).
fn parse_commandstats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// One numeric field of an `INFO` reply (`used_memory:1234`).
pub fn info_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_are_read_per_command() {
        let text = "# Commandstats\r\ncmdstat_set:calls=12,usec=34,usec_per_call=2.83,rejected_calls=0,failed_calls=0\r\ncmdstat_config|get:calls=3,usec=1\r\ncmdstat_bad:usec=1\r\n";
        let m = parse_commandstats(text);
        assert_eq!(m.get("set"), Some(&12));
        assert_eq!(m.get("config|get"), Some(&3));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn an_info_field_is_found_by_its_whole_name() {
        let text = "# Memory\r\nused_memory:1000\r\nused_memory_rss:4000\r\n";
        assert_eq!(info_field(text, "used_memory"), Some(1000));
        assert_eq!(info_field(text, "used_memory_rss"), Some(4000));
        assert_eq!(info_field(text, "used_memory_peak"), None);
    }
}
