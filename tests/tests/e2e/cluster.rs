//! Tessera on a three-node NATS cluster (containers on a network of the test's own, JetStream
//! streams and buckets with three replicas), one node stopped while tokens are being issued:
//!
//! - `issuance_survives_losing_one_of_three_nats_nodes`: every logical request gets exactly
//!   one token, and every token is served by every plugin server it was issued for;
//! - `plugin_servers_receive_every_distribution_despite_node_loss`: and every distribution
//!   reaches the plugin servers' stores. A plugin server whose ordered consumer lived on the
//!   lost node used to stop receiving for good (async-nats 0.51's ordered pull consumer
//!   returns `Pending` without a wake-up after its first missed heartbeat); the SDK now renews
//!   a silent consumer from the last applied sequence (docker/README.md, "Known gaps").
//!
//! Both need the container backend; without a usable engine (or with
//! `TESSERA_TEST_BACKEND=local`) they say so and pass without running.

use std::collections::BTreeSet;
use std::time::Duration;

use tessera_schemas::messages::TokenResponse;
use tessera_sdk::Client;
use tessera_tests::{Backend, PluginServerHandle, Stack, assert_eventually};

const PASSWORD: &str = "correct horse battery";
/// Logical token requests: each retried (same idempotency key) until it succeeds or the bound.
const REQUESTS: usize = 120;
/// Pause between one client's requests, so the issuance spans the node loss.
const PACE: Duration = Duration::from_millis(100);
/// How long one logical request may keep retrying: covers the node loss, the reconnects and a
/// JetStream leader election, with room to spare.
const REQUEST_BOUND: Duration = Duration::from_secs(45);

/// What a client app does: retry one logical request under one idempotency key, so however
/// many attempts it takes, it yields one token.
async fn request_until_issued(
    client: &Client,
    account_token: &str,
    key: &str,
    failed_attempts: &std::sync::atomic::AtomicUsize,
) -> TokenResponse {
    let deadline = tokio::time::Instant::now() + REQUEST_BOUND;
    loop {
        match client
            .request_token(account_token, "weather", Some(key))
            .await
        {
            Ok(t) => return t,
            Err(e) if e.is_retryable() && tokio::time::Instant::now() < deadline => {
                failed_attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("token request {key} failed for good: {e}"),
        }
    }
}

/// A cluster, tokens issued across the loss of node 1 of 3. `None` without containers.
async fn issue_across_node_loss() -> Option<(
    Stack,
    PluginServerHandle,
    PluginServerHandle,
    Client,
    Vec<TokenResponse>,
)> {
    let backend = Backend::from_env();
    if !matches!(backend, Backend::Containers(_)) {
        eprintln!("skipped: a NATS cluster needs the container backend (got {backend:?})");
        return None;
    }
    let stack = Stack::builder()
        .backend(backend)
        .nats_nodes(3)
        .brokers(2)
        .start()
        .await;
    assert_eq!(stack.servers().nats_nodes(), 3);
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1", "ps2"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let ps2 = stack.plugin_server("ps2").await;
    let client = stack.client().await;
    let failed_attempts = std::sync::atomic::AtomicUsize::new(0);

    // Four clients issue concurrently; node 1 of 3 stops once a quarter of the tokens are out.
    let issued = std::sync::Mutex::new(Vec::<TokenResponse>::new());
    let issue = |lane: usize| {
        let (client, ann, issued, failed) = (&client, &ann, &issued, &failed_attempts);
        async move {
            for i in (lane..REQUESTS).step_by(4) {
                let t =
                    request_until_issued(client, &ann.account_token, &format!("req-{i}"), failed)
                        .await;
                issued.lock().unwrap().push(t);
                tokio::time::sleep(PACE).await;
            }
        }
    };
    let stop_one = async {
        assert_eventually!(
            timeout = Duration::from_secs(60),
            issued.lock().unwrap().len() >= REQUESTS / 4
        );
        eprintln!(
            "stopping NATS node 1 of 3 after {} tokens",
            issued.lock().unwrap().len()
        );
        stack.servers().stop_nats_container(0, 2).await;
        let at_stop = issued.lock().unwrap().len();
        eprintln!("NATS node 1 of 3 stopped after {at_stop} tokens");
        at_stop
    };
    let ((), (), (), (), at_stop) = tokio::join!(issue(0), issue(1), issue(2), issue(3), stop_one);
    assert!(
        at_stop <= REQUESTS * 3 / 4,
        "the node stopped during issuance ({at_stop} of {REQUESTS} were out by then)"
    );

    let issued = issued.into_inner().unwrap();
    let distinct = issued
        .iter()
        .map(|t| t.token_id.as_str())
        .collect::<BTreeSet<_>>();
    assert_eq!(
        distinct.len(),
        REQUESTS,
        "one token per logical request, however many attempts"
    );
    assert!(issued.iter().all(|t| t.account_id == ann.account_id));
    eprintln!(
        "{REQUESTS} tokens issued; {} attempts failed retryably on the way",
        failed_attempts.load(std::sync::atomic::Ordering::Relaxed)
    );
    Some((stack, ps1, ps2, client, issued))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuance_survives_losing_one_of_three_nats_nodes() {
    let Some((_stack, _ps1, _ps2, client, issued)) = issue_across_node_loss().await else {
        return;
    };
    // Every token is served by both plugin servers (from their stores, or after asking the
    // broker when a distribution has not arrived).
    for t in &issued {
        for server in ["ps1", "ps2"] {
            let reply = client
                .echo(server, &t.token, b"x".to_vec())
                .await
                .unwrap_or_else(|e| panic!("echo of {} on {server}: {e}", t.token_id));
            assert_eq!(reply.account_id, t.account_id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_servers_receive_every_distribution_despite_node_loss() {
    let Some((_stack, ps1, ps2, client, issued)) = issue_across_node_loss().await else {
        return;
    };
    let ids: BTreeSet<&str> = issued.iter().map(|t| t.token_id.as_str()).collect();
    // Plugin servers lose none: every token reaches both, and is served.
    for ps in [&ps1, &ps2] {
        assert_eventually!(
            timeout = Duration::from_secs(60),
            ids.iter().all(|id| ps.tokens().contains(id)),
            "{} holds {} of {REQUESTS} tokens",
            ps.id,
            ids.iter().filter(|id| ps.tokens().contains(id)).count()
        );
    }
    for t in [&issued[0], &issued[REQUESTS / 2], &issued[REQUESTS - 1]] {
        for server in ["ps1", "ps2"] {
            let reply = client
                .echo(server, &t.token, b"x".to_vec())
                .await
                .unwrap_or_else(|e| panic!("echo on {server} after the node loss: {e}"));
            assert_eq!(reply.account_id, t.account_id);
        }
    }
}
