//! A replica that dies between recording a token and committing it: no token is stored
//! without being distributed or distributed without being stored. The replica is played
//! here with the broker's own ledger writer, so the moment of death is exact rather than
//! the luck of a SIGKILL: the token is recorded and distributed, never committed.

use std::time::Duration;

use async_nats::HeaderMap;
use tessera_ledger::{Commit, LedgerWriter as Store, Remember, TokenRecord};
use tessera_schemas::claims::{PLUGIN_TOKEN_ISSUER, PluginClaims};
use tessera_schemas::messages::{DIST_EVENT, DistEvent};
use tessera_schemas::{ErrorCode, codec, headers};
use tessera_tests::{Backend, Role, Servers, Stack, assert_eventually};

use super::PASSWORD;

const DEADLINE: Duration = Duration::from_secs(1);
/// Bound on the sweep: the deadline, a sweep interval, the withdrawal (generous).
const SWEPT: Duration = Duration::from_secs(15);

async fn store(redis_url: &str, prefix: &str) -> Store {
    let conn = tessera_ledger::connect(redis_url, Duration::from_secs(2))
        .await
        .expect("connecting to Redis");
    Store::new(conn, prefix, DEADLINE)
}

/// Sweeps until something is claimed (at most [`SWEPT`]).
async fn claim_overdue(s: &Store) -> Vec<(String, Option<TokenRecord>)> {
    let until = std::time::Instant::now() + SWEPT;
    loop {
        let claimed = s.sweep(10).await.unwrap();
        if !claimed.is_empty() || std::time::Instant::now() > until {
            return claimed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn record(account_id: &str, expires_at: u64) -> TokenRecord {
    TokenRecord {
        account_id: account_id.into(),
        plugin_id: "weather".into(),
        servers: vec!["ps1".into()],
        token_hash: "0".repeat(64),
        expires_at,
        issued_at: expires_at - 600,
        device_id: None,
        user_ip: None,
    }
}

/// The ledger's idempotency memory for key `key`, unbound.
fn remember(key: &str) -> Option<Remember<'_>> {
    Some(Remember {
        key,
        binding: "",
        ttl: Duration::from_secs(600),
    })
}

/// A retry's reply: only the id matters here (the broker signs the token again).
fn reproduce(id: &str, _record: &TokenRecord) -> Option<String> {
    Some(id.to_owned())
}

/// Recorded, distributed to ps1, never committed: once overdue, a live replica's sweeper
/// withdraws it. ps1 drops it, Redis forgets it, and it no longer opens anything. A token
/// issued normally beside it is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_its_replica_never_committed_is_withdrawn() {
    let stack = Stack::builder()
        .backend(Backend::Local)
        .pending_deadline(DEADLINE)
        .start()
        .await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let client = stack.client().await;
    let kept = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();

    // The dying replica: mint, record (pending), distribute, and stop there.
    let now = tessera_protocol::now_unix();
    let token_id = uuid::Uuid::new_v4().to_string();
    let claims = PluginClaims {
        iss: PLUGIN_TOKEN_ISSUER.to_owned(),
        sub: ann.account_id.clone(),
        plugin_id: "weather".into(),
        aud: vec!["ps1".into()],
        jti: token_id.clone(),
        iat: now,
        exp: now + 600,
        device_id: None,
        user_ip: None,
    };
    let token = stack.broker_key().sign(&claims).unwrap();
    let redis = stack.servers().redis_url();
    let dying = store(&redis, stack.subjects().prefix()).await;
    let rec = record(&ann.account_id, claims.exp);
    let ttl = Duration::from_secs(600);
    assert_eq!(
        dying
            .record(&token_id, &rec, ttl, ttl, None, reproduce)
            .await
            .unwrap(),
        None
    );
    let js = async_nats::jetstream::new(stack.nats(Role::Broker).await);
    let mut h = HeaderMap::new();
    h.insert(headers::SCHEMA, DIST_EVENT.header_value().as_str());
    h.insert(headers::MSG_ID, format!("{token_id}.ps1").as_str());
    let event = DistEvent::Token {
        token: token.clone(),
    };
    js.publish_with_headers(
        stack.subjects().dist("ps1"),
        h,
        codec::encode(&event).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    assert_eventually!(ps1.tokens().contains(&token_id), "ps1 got the token");

    assert_eventually!(
        timeout = SWEPT,
        !ps1.tokens().contains(&token_id),
        "the sweeper withdrew the uncommitted token from ps1"
    );
    assert_eq!(
        dying.reader().get(&token_id).await.unwrap(),
        None,
        "its record is gone"
    );
    let err = client.echo("ps1", &token, b"x".to_vec()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthenticated, "{err}");
    // The committed one stays.
    assert!(ps1.tokens().contains(&kept.token_id));
    assert!(client.echo("ps1", &kept.token, b"x".to_vec()).await.is_ok());
}

/// The commit and the sweep race for the pending id, and exactly one wins: a commit after
/// the sweep claimed the token is `Withdrawn` (the broker answers `unavailable` and hands
/// nothing out, nor remembers it as an idempotent reply); a committed token is never
/// claimed by a sweep. No broker runs on this prefix, so only this test sweeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_and_a_sweep_never_both_win() {
    let servers = Servers::start_with(Backend::Local, None).await;
    let prefix = format!("solo{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let s = store(&servers.redis_url(), &prefix).await;
    let exp = tessera_protocol::now_unix() + 600;
    let ttl = Duration::from_secs(600);

    // Swept first, then committed (with an idempotency key): withdrawn, not remembered.
    let late = uuid::Uuid::new_v4().to_string();
    s.record(
        &late,
        &record("acct", exp),
        ttl,
        ttl,
        remember("k1"),
        reproduce,
    )
    .await
    .unwrap();
    let claimed = claim_overdue(&s).await;
    assert!(!claimed.is_empty(), "the overdue token is claimed");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].0, late);
    assert_eq!(claimed[0].1, Some(record("acct", exp)));
    assert_eq!(
        s.commit(&late, &record("acct", exp), remember("k1"), reproduce)
            .await
            .unwrap(),
        Commit::Withdrawn
    );
    // A retry with k1 is not handed the withdrawn token: its record goes with the
    // withdrawal, and the remembered reply (none here) would be dropped as dead.
    let retry = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        s.record(
            &retry,
            &record("acct", exp),
            ttl,
            ttl,
            remember("k1"),
            reproduce
        )
        .await
        .unwrap(),
        None
    );

    // Committed first: the sweep can never claim it.
    let on_time = uuid::Uuid::new_v4().to_string();
    s.record(&on_time, &record("acct", exp), ttl, ttl, None, reproduce)
        .await
        .unwrap();
    let on_time_record = record("acct", exp);
    let commit = || s.commit(&on_time, &on_time_record, None, reproduce);
    assert_eq!(commit().await.unwrap(), Commit::Committed);
    assert_eq!(commit().await.unwrap(), Commit::Withdrawn);
    // `retry` is still pending (never committed): once overdue it is the only one claimed.
    let claimed = claim_overdue(&s).await;
    assert!(!claimed.is_empty(), "the uncommitted retry is claimed");
    let ids: Vec<&str> = claimed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, [retry.as_str()]);
}
