//! The distribution in shards (`TESSERA_DIST_SHARDS`, `tessera_schemas::dist_shards`):
//!
//! - with three shards each plugin server's tokens and revocations go to its shard's
//!   stream only, and reach it;
//! - a broker refuses to start against streams laid out for another number, the number is
//!   changed only while no broker runs, and a plugin server that ran through the change
//!   moves to its new stream and gets what is published there (docs/reliability.md).
//!
//! (A plugin server reading another's shard: `permissions::dist_shards`.)

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use tessera_schemas::ErrorCode;
use tessera_schemas::dist_shards::dist_shard;
use tessera_schemas::messages::TokenResponse;
use tessera_sdk::{Client, ErrorKind};
use tessera_tests::{Backend, Role, Stack, assert_eventually};

const PASSWORD: &str = "correct horse battery";
/// Three ids in three different shards of three (FNV-1a; `dist_shards` unit tests).
const SERVERS: [&str; 3] = ["ps1", "ps2", "ps3"];

async fn tokens(client: &Client, account_token: &str, n: usize) -> Vec<TokenResponse> {
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

/// Messages stored in `stream`, and how many of them are on `subject`.
async fn stored(js: &jetstream::Context, stream: &str, subject: &str) -> (u64, u64) {
    let mut s = js.get_stream(stream).await.unwrap();
    let info = s.info().await.unwrap();
    let total = info.state.messages;
    let on_subject = s
        .info_with_subjects(subject)
        .await
        .unwrap()
        .next()
        .await
        .map(|r| r.unwrap().1 as u64)
        .unwrap_or(0);
    (total, on_subject)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_three_shards_each_server_gets_its_tokens_and_revocations_from_its_own_stream() {
    let shards: Vec<u32> = SERVERS.iter().map(|id| dist_shard(id, 3)).collect();
    assert_eq!(
        shards,
        [2, 0, 1],
        "the ids must land in three different shards"
    );
    let stack = Stack::builder()
        .backend(Backend::Local)
        .dist_shards(3)
        .brokers(2)
        .start()
        .await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &SERVERS).await;
    let mut servers = Vec::new();
    for id in SERVERS {
        servers.push(stack.plugin_server(id).await);
    }
    let client = stack.client().await;
    let issued = tokens(&client, &ann.account_token, 4).await;
    for t in &issued {
        for id in SERVERS {
            assert!(t.servers.iter().any(|s| s == id));
        }
    }
    for (id, ps) in SERVERS.iter().zip(&servers) {
        assert_eventually!(
            issued.iter().all(|t| ps.tokens().contains(&t.token_id)),
            "{id} received every token"
        );
        for t in &issued {
            client.echo(id, &t.token, b"x".to_vec()).await.unwrap();
        }
    }

    // Each stream holds its own server's events and nobody else's.
    let s = stack.subjects();
    let js = jetstream::new(stack.nats(Role::Admin).await);
    for (id, k) in SERVERS.iter().zip(&shards) {
        let (total, own) = stored(&js, &s.dist_stream_in(*k), &s.dist_in(*k, id)).await;
        assert_eq!((total, own), (4, 4), "{id}: shard {k}");
    }
    assert_eq!(
        stack.admin().await.dist_shards().await.unwrap(),
        Some(3),
        "the layout is recorded"
    );

    // A revocation reaches every server through its own shard, and only that token stops.
    let admin = stack.admin().await;
    assert_eq!(
        admin
            .revoke_token(&issued[0].token_id)
            .await
            .unwrap()
            .revoked,
        1
    );
    for (id, ps) in SERVERS.iter().zip(&servers) {
        assert_eventually!(
            ps.tokens().is_revoked(&issued[0].token_id),
            "{id} applied the revocation"
        );
        let r = client.echo(id, &issued[0].token, b"x".to_vec()).await;
        assert!(
            matches!(&r, Err(e) if e.wire().is_some_and(|w| w.code == ErrorCode::Unauthenticated)),
            "{id}: {r:?}"
        );
        client
            .echo(id, &issued[1].token, b"x".to_vec())
            .await
            .unwrap();
    }
    for (id, k) in SERVERS.iter().zip(&shards) {
        let (total, own) = stored(&js, &s.dist_stream_in(*k), &s.dist_in(*k, id)).await;
        assert_eq!((total, own), (5, 5), "{id}: shard {k} after the revocation");
    }
}

/// Replicas of two layouts never run at once: a broker started with another number than
/// the recorded one refuses to start, and the record changes only while no broker answers.
/// A plugin server that ran through the change keeps the tokens it had, moves to its new
/// stream (after its consumer's silence) and applies what is published there, revocations
/// of earlier tokens included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_number_of_shards_changes_only_with_every_broker_stopped_and_servers_follow() {
    let mut stack = Stack::builder().backend(Backend::Local).start().await;
    let ann = stack.user("ann", PASSWORD).await;
    // ps1 is in shard 2 of 3: it has to move from the single stream.
    stack.route("weather", &["ps1"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let client = stack.client().await;
    let admin = stack.admin().await;
    let before = tokens(&client, &ann.account_token, 2).await;
    assert_eventually!(before.iter().all(|t| ps1.tokens().contains(&t.token_id)));
    assert_eq!(admin.dist_shards().await.unwrap(), Some(1));

    // A replica with another number refuses to start while the streams say 1 ...
    let mut three = stack.broker_config();
    three.dist_shards = 3;
    let refused = tessera_broker::start(three.clone(), tessera_runtime::Shutdown::new()).await;
    let e = refused
        .err()
        .expect("a broker with 3 shards refuses a layout of 1");
    assert!(format!("{e:#}").contains("laid out for 1 shard"), "{e:#}");
    // ... and the number cannot change while a broker runs.
    let e = admin.set_dist_shards(3).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Rejected, "{e}");
    assert_eq!(e.wire().map(|w| w.code), Some(ErrorCode::Conflict), "{e}");
    assert_eq!(
        admin
            .set_dist_shards(9)
            .await
            .unwrap_err()
            .wire()
            .map(|w| w.code),
        Some(ErrorCode::BadRequest)
    );

    stack.stop_broker(0).await;
    assert_eventually!(admin.running_brokers().await.unwrap() == 0);
    assert_eq!(admin.set_dist_shards(3).await.unwrap(), 1);
    // The old number is refused now.
    let mut one = stack.broker_config();
    one.dist_shards = 1;
    let refused = tessera_broker::start(one, tessera_runtime::Shutdown::new()).await;
    assert!(
        refused.is_err(),
        "a broker with 1 shard refuses a layout of 3"
    );
    stack.set_broker_dist_shards(3);
    stack.start_broker().await;

    // After the change: a new token and the revocation of an earlier one, both published
    // in shard 2's stream, reach ps1, which still holds the earlier tokens.
    let after = tokens(&client, &ann.account_token, 1).await;
    assert_eq!(
        admin
            .revoke_token(&before[0].token_id)
            .await
            .unwrap()
            .revoked,
        1
    );
    let deadline = Duration::from_secs(40);
    assert!(
        tessera_tests::eventually(deadline, || async {
            ps1.tokens().contains(&after[0].token_id)
                && ps1.tokens().is_revoked(&before[0].token_id)
        })
        .await,
        "ps1 moved to its new stream and applied what was published there"
    );
    assert!(ps1.tokens().contains(&before[1].token_id));
    client
        .echo("ps1", &before[1].token, b"x".to_vec())
        .await
        .unwrap();
    client
        .echo("ps1", &after[0].token, b"x".to_vec())
        .await
        .unwrap();
    let s = stack.subjects();
    let js = jetstream::new(stack.nats(Role::Admin).await);
    let (_, moved) = stored(&js, &s.dist_stream_in(2), &s.dist_in(2, "ps1")).await;
    assert_eq!(moved, 2, "the new token and the revocation, in shard 2");
}
