//! Faults of a broker replica under load: SIGKILL one of two replicas,
//! SIGTERM one of two. The replica that is signalled runs in a process of its own
//! (`tessera-test-broker`, the same settings, signal handling and drain as `tessera worker
//! broker`); the other runs in the test. Servers are local processes.
//! Redis, NATS and plugin-server outages: `faults_servers.rs`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tessera_sdk::Client;
use tessera_tests::child::ChildBroker;
use tessera_tests::load::{self, Load, Outcome, Report, Target};
use tessera_tests::{Backend, PluginServerHandle, Role, Stack, assert_eventually};

const PASSWORD: &str = "correct horse battery";

/// A replica dead between record and commit, played exactly.
mod pending;
const CHILD: &str = env!("CARGO_BIN_EXE_tessera-test-broker");
/// Load tasks of each kind: each keeps one request in flight.
const SDK_TASKS: usize = 4;
const RAW_TASKS: usize = 4;
/// Requests before the fault, and in all.
const BEFORE: usize = 150;
const TOTAL: usize = 450;
/// Bound on the load reaching a count (generous: it bounds a failure).
const LOAD_BOUND: Duration = Duration::from_secs(60);

/// Servers, one broker in the test, ann, `weather` routed to ps1, ps1 running; tokens
/// left uncommitted are withdrawn after `pending_deadline`.
async fn setup(pending_deadline: Duration) -> (Stack, PluginServerHandle, Target, Client) {
    let stack = Stack::builder()
        .backend(Backend::Local)
        .pending_deadline(pending_deadline)
        .start()
        .await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let target = Target {
        subjects: stack.subjects().clone(),
        account_token: ann.account_token,
        plugin: "weather".into(),
        raw_timeout: Duration::from_secs(2),
    };
    let client = stack.client().await.with_timeout(Duration::from_secs(2));
    (stack, ps1, target, client)
}

async fn start_load(stack: &Stack, target: &Target, client: &Client) -> Load {
    Load::start(
        target.clone(),
        client.clone(),
        SDK_TASKS,
        stack.nats(Role::Client).await,
        RAW_TASKS,
    )
}

/// What the fault left behind that no client received.
#[derive(Debug)]
struct Leftovers {
    /// Recorded, not (or no longer) distributed: a replica killed between the two steps.
    undistributed: BTreeSet<String>,
    /// Recorded and distributed, but no client got it (a replica killed after committing,
    /// before its reply left).
    unreceived: BTreeSet<String>,
}

/// Every token a client received is recorded in Redis, was distributed to ps1, and ps1
/// holds it; every live distributed token is recorded.
async fn check_stored_and_distributed(
    stack: &Stack,
    ps1: &PluginServerHandle,
    report: &Report,
) -> Leftovers {
    let received = report.token_ids();
    let admin = stack.nats(Role::Admin).await;
    let stored =
        load::redis_token_ids(&stack.servers().redis_url(), stack.subjects().prefix()).await;
    let distributed = load::distributed_token_ids(&admin, stack.subjects(), "ps1").await;
    let missing: Vec<_> = received.difference(&stored).collect();
    assert!(missing.is_empty(), "received but not stored: {missing:?}");
    let missing: Vec<_> = received.difference(&distributed).collect();
    assert!(
        missing.is_empty(),
        "received but not distributed: {missing:?}"
    );
    let unrecorded: Vec<_> = distributed.difference(&stored).collect();
    assert!(
        unrecorded.is_empty(),
        "distributed but not stored: {unrecorded:?}"
    );
    assert_eventually!(
        received.iter().all(|id| ps1.tokens().contains(id)),
        "ps1 holds every token a client received"
    );
    Leftovers {
        undistributed: stored.difference(&distributed).cloned().collect(),
        unreceived: distributed.difference(&received).cloned().collect(),
    }
}

fn summary(what: &str, report: &Report, extra: &str) {
    let tokens = report.count(|o| matches!(o, Outcome::Token { .. }));
    let typed = report.count(|o| matches!(o, Outcome::Typed(_)));
    let untyped = report.count(|o| matches!(o, Outcome::Untyped(_)));
    let retried = report.count(|o| matches!(o, Outcome::Token { retried: true, .. }));
    // The figures docs/reliability.md reports (run with --nocapture to see them).
    println!(
        "{what}: {} requests ({} sdk, {} raw): {tokens} tokens, {typed} typed errors, \
         {untyped} untyped; raw first-attempt timeouts {} ({retried} answered by the retry \
         with the same key){extra}",
        report.sdk.len() + report.raw.len(),
        report.sdk.len(),
        report.raw.len(),
        report.raw_timeouts,
    );
}

/// SIGKILL one of two broker replicas while token requests run through both. Through the
/// SDK every request ends with a token or a typed error; raw, at most the requests in flight
/// at the killed replica time out, and the retry with the same key returns a token (the
/// same one if the killed replica had issued it: the idempotent reply). Nothing a client
/// received is missing from Redis, the stream or the plugin server.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_of_a_broker_replica_under_load() {
    let deadline = Duration::from_secs(3);
    let (stack, ps1, target, client) = setup(deadline).await;
    let mut child = ChildBroker::start(CHILD, &stack, Duration::from_secs(5)).await;
    let load = start_load(&stack, &target, &client).await;
    load.wait_for(BEFORE, LOAD_BOUND).await;
    child.kill().await;
    let killed_at = load.done();
    load.wait_for(TOTAL, LOAD_BOUND).await;
    let report = load.stop().await;

    for o in report.sdk.iter().chain(&report.raw) {
        assert!(
            matches!(o, Outcome::Token { .. } | Outcome::Typed(_)),
            "a request ended without a token or a typed error: {o:?}"
        );
    }
    assert!(
        report.raw_timeouts <= RAW_TASKS,
        "{} raw requests timed out; at most the {RAW_TASKS} in flight may",
        report.raw_timeouts
    );
    let first = check_stored_and_distributed(&stack, &ps1, &report).await;
    let first_undistributed = first.undistributed.len();
    // A replica killed mid-request leaves tokens no client received. Those it had not
    // committed stay pending, and the surviving replica's sweeper withdraws them after the
    // deadline (revoked, record deleted): then nothing is recorded without being
    // distributed. Left: at most the ones committed whose reply never left (one per request
    // in flight there), which expire with their TTL.
    let swept_at = Instant::now();
    let mut left = first;
    while !left.undistributed.is_empty() && swept_at.elapsed() < deadline * 5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        left = check_stored_and_distributed(&stack, &ps1, &report).await;
    }
    assert!(
        left.undistributed.is_empty(),
        "recorded but not distributed after the sweep: {left:?}"
    );
    assert!(
        left.unreceived.len() <= SDK_TASKS + RAW_TASKS,
        "{} tokens left behind by the killed replica",
        left.unreceived.len()
    );
    summary(
        "sigkill",
        &report,
        &format!(
            "; killed after {killed_at}; left behind: {} recorded but undistributed before \
             the sweep, 0 after it ({:?}); {} distributed but received by nobody",
            first_undistributed,
            swept_at.elapsed(),
            left.unreceived.len()
        ),
    );
}

/// SIGTERM one of two broker replicas under load: it stops taking work, answers what it
/// received, and exits (status 0) within its grace period; no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_of_a_broker_replica_under_load() {
    let grace = Duration::from_secs(5);
    let (stack, ps1, target, client) = setup(Duration::from_secs(30)).await;
    let mut child = ChildBroker::start(CHILD, &stack, grace).await;
    let load = start_load(&stack, &target, &client).await;
    load.wait_for(BEFORE, LOAD_BOUND).await;
    let signalled = Instant::now();
    child.terminate().await;
    let status = child.wait(grace + Duration::from_secs(2)).await;
    let exited_in = signalled.elapsed();
    let status = status.expect("the replica exits within its grace period");
    assert!(status.success(), "the replica exited with {status}");
    assert!(
        exited_in <= grace,
        "exited after {exited_in:?}, grace {grace:?}"
    );
    load.wait_for(TOTAL, LOAD_BOUND).await;
    let report = load.stop().await;

    let failed: Vec<_> = report
        .sdk
        .iter()
        .chain(&report.raw)
        .filter(|o| !matches!(o, Outcome::Token { .. }))
        .collect();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    // Raw requests the server routed to the replica just before it processed the UNSUB are
    // dropped by async-nats 0.51 (see `tessera_runtime::service`): at most those in flight.
    assert!(
        report.raw_timeouts <= RAW_TASKS,
        "{} raw requests timed out",
        report.raw_timeouts
    );
    let left = check_stored_and_distributed(&stack, &ps1, &report).await;
    assert!(
        left.undistributed.is_empty() && left.unreceived.is_empty(),
        "a drained replica left tokens behind: {:?} {:?}",
        left.undistributed,
        left.unreceived
    );
    summary(
        "sigterm",
        &report,
        &format!("; exited in {exited_in:?} (grace {grace:?})"),
    );
}
