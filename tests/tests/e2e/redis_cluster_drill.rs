//! The Redis Cluster failover drill: a master SIGKILLed under a steady load of token
//! requests and revocations, its replica taking over. Prints what failed (typed or not), how
//! long the affected shards took to serve again, and what was lost: tokens handed out whose
//! record is gone, tokens live at the plugin server without a record, revocations reported
//! done whose record came back. `#[ignore]`d (a minute of load): `make redis-cluster-drill`
//! (replica acks from `TESSERA_DRILL_ACKS`, default 1; 0 shows what the acks buy).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_ledger::keys::RedisKeys;
use tessera_schemas::ErrorCode;
use tessera_tests::load::{Target, distributed_token_ids, raw_request};
use tessera_tests::{RedisClusterSpec, Role};
use tokio::sync::Mutex;

use super::redis_cluster::{World, cluster_builder};

const PASSWORD: &str = "correct horse battery";
const ACCOUNTS: usize = 6;
const ATTEMPT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
enum Ended {
    Token(String),
    Typed(ErrorCode),
    Untyped(String),
}

#[derive(Debug, Clone)]
struct Sample {
    account: usize,
    /// Since the start of the load.
    sent: Duration,
    took: Duration,
    ended: Ended,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a minute of load; run with `make redis-cluster-drill`"]
async fn redis_cluster_failover_drill() {
    let acks: u32 = std::env::var("TESSERA_DRILL_ACKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut w = World::start(
        cluster_builder(RedisClusterSpec::default())
            .replica_acks(acks, Duration::from_millis(250))
            .gateways(0),
    )
    .await;
    let keys = RedisKeys::new(w.stack.subjects().prefix());
    let mut users = Vec::new();
    for i in 0..ACCOUNTS {
        users.push(w.stack.user(&format!("drill{i}"), PASSWORD).await);
    }
    // The victim: the master of the first account's shard.
    let victim = w
        .master_of(&keys.account_tokens(&users[0].account_id))
        .await;
    let mut affected = BTreeSet::new();
    for (i, u) in users.iter().enumerate() {
        if w.master_of(&keys.account_tokens(&u.account_id)).await == victim {
            affected.insert(i);
        }
    }
    let nats = w.stack.servers().connect(Role::Client).await;
    let start = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let target = Target {
            subjects: w.stack.subjects().clone(),
            account_token: u.account_token.clone(),
            plugin: "weather".into(),
            raw_timeout: ATTEMPT,
        };
        let (nats, samples, stop) = (nats.clone(), samples.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = uuid::Uuid::new_v4().to_string();
                let sent = start.elapsed();
                let ended = match raw_request(&nats, &target, &key, ATTEMPT).await {
                    Ok(t) => Ended::Token(t.token_id),
                    Err(tessera_protocol::rpc::RpcError::Wire(e)) => Ended::Typed(e.code),
                    Err(e) => Ended::Untyped(e.to_string()),
                };
                samples.lock().await.push(Sample {
                    account: i,
                    sent,
                    took: start.elapsed() - sent,
                    ended,
                });
            }
        }));
    }
    // Revocations beside the load: every fifth token handed out, by id.
    // Every revocation tried, and whether it was reported done (a failed one may have
    // deleted the record anyway: the admin would retry it).
    let revoked_ok = Arc::new(Mutex::new(Vec::<(String, bool)>::new()));
    let revoker = {
        let (admin, samples, stop, revoked_ok) = (
            w.admin.clone(),
            samples.clone(),
            stop.clone(),
            revoked_ok.clone(),
        );
        tokio::spawn(async move {
            let mut seen = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let ids: Vec<String> = {
                    let s = samples.lock().await;
                    let ids = s[seen..]
                        .iter()
                        .filter_map(|x| match &x.ended {
                            Ended::Token(id) => Some(id.clone()),
                            _ => None,
                        })
                        .step_by(5)
                        .collect();
                    seen = s.len();
                    ids
                };
                for id in ids {
                    let ok = admin.revoke_token(&id).await.is_ok();
                    revoked_ok.lock().await.push((id, ok));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let warm = tessera_tests::eventually(Duration::from_secs(60), || async {
        samples.lock().await.len() >= 1000
    })
    .await;
    assert!(warm, "the load did not get going");
    let killed_at = start.elapsed();
    let replica = {
        let cluster = w.stack.servers().redis_cluster().unwrap();
        cluster
            .replica_of((victim + 1) % cluster.len(), victim)
            .await
            .unwrap()
    };
    w.stack
        .servers_mut()
        .redis_cluster_mut()
        .unwrap()
        .node_mut(victim)
        .kill()
        .await;
    // The replica takes over; then the killed node comes back, as an orchestrator would
    // restart it, and rejoins as the new master's replica (with acks asked for, the shard
    // takes writes again only then: its new master has no replica before).
    let promoted_in = {
        let cluster = w.stack.servers().redis_cluster().unwrap();
        let promoted = tessera_tests::eventually(Duration::from_secs(30), || async {
            cluster.is_master(replica).await.unwrap_or(false)
        })
        .await;
        assert!(promoted, "the replica was not promoted within 30 s");
        start.elapsed() - killed_at
    };
    w.stack
        .servers_mut()
        .redis_cluster_mut()
        .unwrap()
        .node_mut(victim)
        .restart()
        .await
        .expect("restarting the killed node");
    let restarted_in = start.elapsed() - killed_at;
    // Until every affected account has been served for 5 s after the kill, at most 60 s.
    let recovered = tessera_tests::eventually(Duration::from_secs(60), || async {
        let s = samples.lock().await;
        affected.iter().all(|a| {
            let mine: Vec<&Sample> = s
                .iter()
                .filter(|x| x.account == *a && x.sent > killed_at)
                .collect();
            let last_fail = mine
                .iter()
                .filter(|x| !matches!(x.ended, Ended::Token(_)))
                .map(|x| x.sent)
                .max()
                .unwrap_or(killed_at);
            mine.iter().any(|x| {
                matches!(x.ended, Ended::Token(_)) && x.sent > last_fail + Duration::from_secs(5)
            })
        })
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    revoker.await.unwrap();
    let samples = samples.lock().await.clone();
    let promoted = w
        .stack
        .servers()
        .redis_cluster()
        .unwrap()
        .is_master(replica)
        .await
        .unwrap_or(false);

    // What failed.
    let after: Vec<&Sample> = samples.iter().filter(|s| s.sent >= killed_at).collect();
    let failed: Vec<&&Sample> = after
        .iter()
        .filter(|s| !matches!(s.ended, Ended::Token(_)))
        .collect();
    let typed = failed
        .iter()
        .filter(|s| matches!(s.ended, Ended::Typed(ErrorCode::Unavailable)))
        .count();
    let untyped: Vec<&&&Sample> = failed
        .iter()
        .filter(|s| matches!(s.ended, Ended::Untyped(_)))
        .collect();
    let slowest_failure = failed.iter().map(|s| s.took).max().unwrap_or_default();
    // An account's recovery: its first token sent after its last failure.
    let first_success_after = |a: usize| {
        let last_fail = samples
            .iter()
            .filter(|s| s.account == a && s.sent > killed_at)
            .filter(|s| !matches!(s.ended, Ended::Token(_)))
            .map(|s| s.sent)
            .max()
            .unwrap_or(killed_at);
        samples
            .iter()
            .filter(|s| s.account == a && s.sent > last_fail)
            .filter(|s| matches!(s.ended, Ended::Token(_)))
            .map(|s| s.sent + s.took)
            .min()
    };
    // What was lost: every token handed out must still be recorded (or revoked on purpose).
    let conn = tessera_ledger::connect(&w.stack.servers().redis_url(), Duration::from_secs(2))
        .await
        .unwrap();
    let handed: BTreeSet<String> = samples
        .iter()
        .filter_map(|s| match &s.ended {
            Ended::Token(id) => Some(id.clone()),
            _ => None,
        })
        .collect();
    let tried = revoked_ok.lock().await.clone();
    let revoked: BTreeSet<String> = tried
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(id, _)| id.clone())
        .collect();
    let revoke_failed: BTreeSet<String> = tried
        .iter()
        .filter(|(_, ok)| !*ok)
        .map(|(id, _)| id.clone())
        .collect();
    let mut lost = Vec::new();
    let mut revived = Vec::new();
    for id in &handed {
        let mut c = conn.clone();
        let present: bool = redis::cmd("EXISTS")
            .arg(keys.token(id))
            .query_async(&mut c)
            .await
            .unwrap();
        match (present, revoked.contains(id)) {
            (false, false) if !revoke_failed.contains(id) => lost.push(id.clone()),
            (true, true) => revived.push(id.clone()),
            _ => {}
        }
    }
    let admin_nats = w.stack.servers().connect(Role::Admin).await;
    let live_at_ps1 = distributed_token_ids(&admin_nats, w.stack.subjects(), "ps1").await;
    let mut half_valid = Vec::new();
    for id in &live_at_ps1 {
        let mut c = conn.clone();
        let present: bool = redis::cmd("EXISTS")
            .arg(keys.token(id))
            .query_async(&mut c)
            .await
            .unwrap();
        if !present {
            half_valid.push(id.clone());
        }
    }

    println!(
        "redis cluster drill: replica acks {acks}; victim node {victim} (replica {replica} promoted: {promoted}, {:.2} s after the kill; the killed node restarted {:.2} s after it); accounts on it: {affected:?} of {ACCOUNTS}",
        promoted_in.as_secs_f64(),
        restarted_in.as_secs_f64()
    );
    println!(
        "  requests: {} ({} after the kill at {:.2}s); failed after the kill: {} ({} typed unavailable, {} other typed, {} untyped); slowest failure {} ms",
        samples.len(),
        after.len(),
        killed_at.as_secs_f64(),
        failed.len(),
        typed,
        failed.len() - typed - untyped.len(),
        untyped.len(),
        slowest_failure.as_millis()
    );
    for a in &affected {
        println!(
            "  account {a}: served again {:?} s after the kill; its last failure ended {:?} s after it",
            first_success_after(*a).map(|t| (t - killed_at).as_secs_f64()),
            samples
                .iter()
                .filter(|s| s.account == *a
                    && s.sent > killed_at
                    && !matches!(s.ended, Ended::Token(_)))
                .map(|s| (s.sent + s.took - killed_at).as_secs_f64())
                .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))))
        );
    }
    println!(
        "  lost: {} handed-out tokens without a record (no revocation tried); {} live at ps1 without a record (half-valid); {} revocations reported done whose record is back (of {} revoked; {} revocations answered unavailable, for the admin to retry)",
        lost.len(),
        half_valid.len(),
        revived.len(),
        revoked.len(),
        revoke_failed.len()
    );
    // What the acks cost while all is well: token latencies before the kill.
    let mut before: Vec<Duration> = samples
        .iter()
        .filter(|s| s.sent + s.took < killed_at && matches!(s.ended, Ended::Token(_)))
        .map(|s| s.took)
        .collect();
    before.sort();
    let pct = |p: usize| {
        before
            .get(before.len() * p / 100)
            .map(|d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "  before the kill: {} tokens in {:.2} s ({:.0}/s), latency p50 {:.1?} ms, p99 {:.1?} ms",
        before.len(),
        killed_at.as_secs_f64(),
        before.len() as f64 / killed_at.as_secs_f64(),
        pct(50),
        pct(99)
    );
    for s in untyped.iter().take(5) {
        if let Ended::Untyped(message) = &s.ended {
            println!("  untyped after {} ms: {message}", s.took.as_millis());
        }
    }
    assert!(
        recovered,
        "the affected shards did not serve again within 60 s"
    );
    assert!(promoted, "the replica was not promoted");
    assert!(
        untyped.is_empty(),
        "requests without a typed answer: {}",
        untyped.len()
    );
    if acks > 0 {
        assert!(lost.is_empty(), "tokens handed out and lost: {lost:?}");
        assert!(revived.is_empty(), "revocations undone: {revived:?}");
    }
}
