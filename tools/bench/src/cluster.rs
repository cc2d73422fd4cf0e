//! `--cluster-shards 1,3`: issuance on a three-node NATS cluster in containers, once per
//! number of distribution shards, interleaved over `--cluster-rounds` rounds so that every
//! shard count sees the same machine load in turn.
//!
//! Each run is a fresh stack of the integration harness (`tessera-tests`: three NATS
//! containers on a network of their own with three JetStream replicas, Redis in a
//! container, two broker replicas and one auth node in this process), three plugin servers
//! in three different shards of three (`ps1`, `ps2`, `ps3`), and closed-loop token requests
//! for a plugin routed to all three: three distribution publishes per token, on one stream
//! or spread over three. It reports rate and latency per run, where each shard's stream
//! leader was, and the spread per shard count. Containers only: the point is the cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use serde::Serialize;
use tessera_schemas::dist_shards::dist_shard;
use tessera_tests::{Backend, Role, Stack};

use crate::measure::{Figures, closed_loop};

const SERVERS: [&str; 3] = ["ps1", "ps2", "ps3"];
const PLUGIN: &str = "bench";
const PASSWORD: &str = "correct horse battery";

/// One measured run: a fresh cluster, one shard count, one concurrency.
#[derive(Debug, Serialize)]
pub struct ClusterRun {
    pub round: usize,
    pub dist_shards: u32,
    pub figures: Figures,
    /// Each distribution stream's Raft leader (server name) after the run.
    pub leaders: BTreeMap<String, String>,
}

pub async fn run(
    shards: &[u32],
    rounds: usize,
    concurrency: &[usize],
    warmup: Duration,
    window: Duration,
    json: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        shards.iter().all(|&n| (1..=8).contains(&n)),
        "--cluster-shards: each between 1 and 8"
    );
    anyhow::ensure!((1..=20).contains(&rounds), "--cluster-rounds: 1-20");
    let backend = Backend::from_env();
    anyhow::ensure!(
        matches!(backend, Backend::Containers(_)),
        "--cluster-shards needs a container engine and the local images \
         (docker/build-local-images.sh nats redis); got {backend:?}"
    );
    let mut runs = Vec::new();
    for round in 1..=rounds {
        for &n in shards {
            for &c in concurrency {
                let run = one(backend.clone(), round, n, c, warmup, window).await?;
                let f = &run.figures;
                println!(
                    "round {round} shards {n} in flight {c}: {:.0} tokens/s, p50 {:.1} ms, \
                     p99 {:.1} ms, errors {}, leaders {:?}",
                    f.ops_per_sec,
                    f.p50_us / 1000.0,
                    f.p99_us / 1000.0,
                    f.errors,
                    run.leaders
                );
                runs.push(run);
            }
        }
    }
    println!("\nper shard count and in flight, over {rounds} round(s): median [min-max]");
    for &n in shards {
        for &c in concurrency {
            let of = |get: fn(&Figures) -> f64| {
                let mut v: Vec<f64> = runs
                    .iter()
                    .filter(|r| r.dist_shards == n && r.figures.in_flight == c)
                    .map(|r| get(&r.figures))
                    .collect();
                v.sort_by(f64::total_cmp);
                (v[v.len() / 2], v[0], v[v.len() - 1])
            };
            let (rate, rate_lo, rate_hi) = of(|f| f.ops_per_sec);
            let (p99, p99_lo, p99_hi) = of(|f| f.p99_us / 1000.0);
            println!(
                "shards {n}, {c} in flight: {rate:.0} [{rate_lo:.0}-{rate_hi:.0}] tokens/s, \
                 p99 {p99:.1} [{p99_lo:.1}-{p99_hi:.1}] ms"
            );
        }
    }
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_vec_pretty(&runs)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn one(
    backend: Backend,
    round: usize,
    shards: u32,
    in_flight: usize,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<ClusterRun> {
    let stack = Stack::builder()
        .backend(backend)
        .nats_nodes(3)
        .brokers(2)
        .dist_shards(shards)
        .start()
        .await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route(PLUGIN, &SERVERS).await;
    let mut servers = Vec::new();
    for id in SERVERS {
        servers.push(stack.plugin_server(id).await);
    }
    let client = stack.client().await;
    let token = ann.account_token.clone();
    let load = client.clone();
    // No process accounting here: the servers are containers (the rate and latency are
    // what this compares).
    let probe = crate::probe::Probe::new(Vec::new(), None, None);
    let timing = crate::measure::Timing { warmup, window };
    let figures = closed_loop(&probe, in_flight, timing, move || {
        let (client, token) = (load.clone(), token.clone());
        async move { client.request_token(&token, PLUGIN, None).await.map(drop) }
    })
    .await;

    let js = jetstream::new(stack.nats(Role::Admin).await);
    let mut leaders = BTreeMap::new();
    let mut streams: Vec<u32> = SERVERS.iter().map(|id| dist_shard(id, shards)).collect();
    streams.sort_unstable();
    streams.dedup();
    for k in streams {
        let name = stack.subjects().dist_stream_in(k);
        let mut stream = js.get_stream(&name).await?;
        let leader = stream
            .info()
            .await?
            .cluster
            .as_ref()
            .and_then(|c| c.leader.clone())
            .unwrap_or_else(|| "none".to_owned());
        leaders.insert(name, leader);
    }
    drop(client);
    for s in servers {
        s.stop().await;
    }
    stack.shutdown().await;
    Ok(ClusterRun {
        round,
        dist_shards: shards,
        figures,
        leaders,
    })
}
