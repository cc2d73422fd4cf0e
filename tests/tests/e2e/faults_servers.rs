//! Faults of the servers and plugin servers: Redis restarted under
//! load, nats-server killed and restarted, a plugin server down while tokens are issued and
//! revoked. Servers are local processes (restarted on the same port; NATS with the same
//! JetStream store). Broker replicas killed or stopped: `faults.rs`.

use std::time::{Duration, Instant};

use tessera_protocol::rpc::RpcError;
use tessera_schemas::ErrorCode;
use tessera_schemas::messages::TokenResponse;
use tessera_sdk::Client;
use tessera_tests::load::{self, Load, Outcome, Target};
use tessera_tests::{Backend, Role, Stack, assert_eventually};

const PASSWORD: &str = "correct horse battery";

async fn issue(client: &Client, account_token: &str, n: usize) -> Vec<TokenResponse> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(
            client
                .request_token(account_token, "weather", None)
                .await
                .expect("token request"),
        );
    }
    out
}

/// Why an echo with `token` was not served as its account, if it was not.
async fn echo_refused(client: &Client, server: &str, token: &TokenResponse) -> Option<String> {
    match client.echo(server, &token.token, b"x".to_vec()).await {
        Ok(r) if r.account_id == token.account_id => None,
        Ok(r) => Some(format!("served as account {}", r.account_id)),
        Err(e) => Some(e.to_string()),
    }
}

/// Redis stopped under load: every request answers at once with `unavailable` (typed,
/// retryable), none hangs; Redis back on the same port: requests succeed again within 2 s,
/// with the same workers. (`bad_input.rs` checks revocation and introspection say
/// `unavailable` too.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restart_under_load() {
    let mut stack = Stack::builder().backend(Backend::Local).start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let target = Target {
        subjects: stack.subjects().clone(),
        account_token: ann.account_token.clone(),
        plugin: "weather".into(),
        raw_timeout: Duration::from_secs(5),
    };
    let probe = stack.nats(Role::Client).await;
    let load = Load::start(
        target.clone(),
        stack.client().await,
        2,
        stack.nats(Role::Client).await,
        2,
    );
    load.wait_for(100, Duration::from_secs(30)).await;

    stack.servers_mut().redis_mut().expect("local").stop().await;
    // While it is down: each request is refused promptly, with a typed, retryable error.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let r = load::raw_request(
            &probe,
            &target,
            &uuid::Uuid::new_v4().to_string(),
            target.raw_timeout,
        )
        .await;
        slowest = slowest.max(started.elapsed());
        match r {
            Err(RpcError::Wire(w)) => {
                assert_eq!(w.code, ErrorCode::Unavailable);
                assert!(w.retryable, "unavailable is retryable");
            }
            other => panic!("while Redis is down: {other:?}"),
        }
    }
    // The broker bounds each Redis command (1 s); "promptly" is within that plus the work.
    assert!(
        slowest < Duration::from_secs(2),
        "slowest refusal took {slowest:?}"
    );

    stack
        .servers_mut()
        .redis_mut()
        .expect("local")
        .restart()
        .await
        .expect("restarting Redis");
    let back = Instant::now();
    let recovered = tessera_tests::eventually(Duration::from_secs(2), || async {
        load::raw_request(
            &probe,
            &target,
            &uuid::Uuid::new_v4().to_string(),
            Duration::from_secs(2),
        )
        .await
        .is_ok()
    })
    .await;
    let recovered_in = back.elapsed();
    assert!(recovered, "no token within 2 s of Redis being back");
    let after = load.done();
    load.wait_for(after + 100, Duration::from_secs(30)).await;
    let report = load.stop().await;

    for o in report.sdk.iter().chain(&report.raw) {
        assert!(
            matches!(
                o,
                Outcome::Token { .. } | Outcome::Typed(ErrorCode::Unavailable)
            ),
            "under a Redis outage a request ended with {o:?}"
        );
    }
    let refused = report.count(|o| matches!(o, Outcome::Typed(_)));
    println!(
        "redis restart: {} load requests, {refused} refused with unavailable, {} untyped; \
         20 probes while down, slowest refusal {slowest:?}; first token {recovered_in:?} \
         after Redis was back",
        report.sdk.len() + report.raw.len(),
        report.count(|o| matches!(o, Outcome::Untyped(_))),
    );
}

/// nats-server killed (SIGKILL) and started again on the same port and store: the workers,
/// the client and the plugin server reconnect by themselves; tokens issued before are still
/// held and served, tokens issued after reach the plugin server, and a plugin-server
/// replica started afterwards replays all of them from the stream (JetStream kept it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_restart_workers_and_plugin_servers_reconnect() {
    let mut stack = Stack::builder().backend(Backend::Local).start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let client = stack.client().await;
    let before = issue(&client, &ann.account_token, 5).await;

    let nats = stack.servers_mut().nats_mut().expect("local");
    nats.kill().await;
    nats.restart().await.expect("restarting nats-server");
    let back = Instant::now();

    // Nobody is restarted: the first token after the restart comes from the same broker,
    // auth worker and client connection.
    assert_eventually!(
        timeout = Duration::from_secs(20),
        client
            .request_token(&ann.account_token, "weather", None)
            .await
            .is_ok(),
        "token requests work again after nats-server is back"
    );
    let reissued_in = back.elapsed();
    let after = issue(&client, &ann.account_token, 5).await;
    let all: Vec<_> = before.iter().chain(&after).collect();
    // Bounded below the consumer's 10 s stall renewal: the reconnect itself must renew it.
    assert_eventually!(
        timeout = Duration::from_secs(8),
        all.iter().all(|t| ps1.tokens().contains(&t.token_id)),
        "ps1 holds every token, issued before and after the restart"
    );
    let held_in = back.elapsed();
    // The plugin server's serving connection reconnects on its own schedule, apart from the
    // distribution connection that brought the tokens; until it is back a call gets the
    // typed `unavailable` (no service listening). Wait, bounded, for it to serve again.
    assert_eventually!(
        timeout = Duration::from_secs(10),
        echo_refused(&client, "ps1", all[0]).await.is_none(),
        "ps1 serves again after nats-server is back"
    );
    let serving_in = back.elapsed();
    for t in &all {
        if let Some(why) = echo_refused(&client, "ps1", t).await {
            panic!("ps1 does not serve {}: {why}", t.token_id);
        }
    }

    // The stream survived: a fresh replica of ps1 replays every one of them.
    let replica = stack.plugin_server("ps1").await; // waits until caught up
    for t in &all {
        assert!(
            replica.tokens().contains(&t.token_id),
            "replayed {}",
            t.token_id
        );
    }
    let stored =
        load::redis_token_ids(&stack.servers().redis_url(), stack.subjects().prefix()).await;
    let distributed =
        load::distributed_token_ids(&stack.nats(Role::Admin).await, stack.subjects(), "ps1").await;
    for t in &all {
        assert!(stored.contains(&t.token_id) && distributed.contains(&t.token_id));
    }
    println!(
        "nats restart: {} tokens before, {} after, none lost; first token {reissued_in:?} \
         after nats-server was back, ps1 held all of them {held_in:?} after and served \
         {serving_in:?} after",
        before.len(),
        after.len()
    );
}

/// A plugin server down while tokens for it are issued and revoked comes back with every
/// still-valid token for its id and none of the revoked ones, whether they were issued
/// before or during its absence. (`distribution.rs` has the simpler case of a revocation
/// it had already seen.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_server_down_comes_back_with_live_tokens_only() {
    let stack = Stack::builder().backend(Backend::Local).start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let client = stack.client().await;
    let admin = stack.admin().await;
    let ps1 = stack.plugin_server("ps1").await;
    let before = issue(&client, &ann.account_token, 4).await;
    assert_eventually!(before.iter().all(|t| ps1.tokens().contains(&t.token_id)));
    ps1.stop().await;

    // While it is down: more tokens, and revocations of old and new ones.
    let during = issue(&client, &ann.account_token, 4).await;
    let revoked = [&before[0], &before[1], &during[0]];
    for t in revoked {
        assert_eq!(admin.revoke_token(&t.token_id).await.unwrap().revoked, 1);
    }

    let ps1 = stack.plugin_server("ps1").await; // waits until caught up
    let live: Vec<_> = before[2..].iter().chain(&during[1..]).collect();
    for t in &live {
        assert!(
            ps1.tokens().contains(&t.token_id),
            "live {} is held",
            t.token_id
        );
        assert_eq!(echo_refused(&client, "ps1", t).await, None);
    }
    for t in revoked {
        assert!(
            !ps1.tokens().contains(&t.token_id),
            "revoked {} is not held",
            t.token_id
        );
        assert!(ps1.tokens().is_revoked(&t.token_id));
        assert!(matches!(
            client.echo("ps1", &t.token, b"x".to_vec()).await,
            Err(e) if e.wire().is_some_and(|w| w.code == ErrorCode::Unauthenticated)
        ));
    }
    assert_eq!(ps1.tokens().len(), live.len());
}
