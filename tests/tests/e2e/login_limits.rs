//! Login floods (docs/security.md, "A client app"): a flood of logins cannot hold up token
//! requests, whose auth results come from a service of their own; logins beyond what a node
//! takes on at once, per client connection or per username are refused at once with
//! `rate_limited` (retryable, with a retry hint), before any password is hashed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tessera_auth::limits::LoginLimitsConfig;
use tessera_schemas::ErrorCode;
use tessera_sdk::Error;
use tessera_tests::{Stack, assert_eventually};

const PASSWORD: &str = "correct horse battery";

fn code<T: std::fmt::Debug>(r: &Result<T, Error>) -> Option<ErrorCode> {
    r.as_ref().err().and_then(Error::wire).map(|w| w.code)
}

/// 64 tasks on 8 connections send wrong passwords as fast as they are answered (bounded:
/// 1,000 each, and stopped once the token requests are done) while one client asks for plugin tokens with the auth-result cache off, so each
/// token request needs `auth.verify`. Every token request succeeds, and most of them while
/// the node was turning logins away for lack of room: they did not wait for a login's
/// slot. Counted, not timed. On a single shared pool (the auth worker before its verify
/// service was split off) logins were never refused, so this fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_does_not_hold_up_token_requests() {
    let stack = Stack::builder()
        .auth_cache_ttl(Duration::ZERO)
        .login_limits(LoginLimitsConfig {
            per_connection: 0,
            per_username: 0,
            queue: 4,
        })
        .start()
        .await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let _ps1 = stack.plugin_server("ps1").await;
    let client = stack.client().await;
    // Latencies without the flood, printed beside the ones with it (not asserted: speed
    // belongs to the benchmark).
    let quiet = token_latencies(&client, &ann.account_token, 40).await;

    let busy = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut flood = Vec::new();
    for _ in 0..8 {
        let conn = stack.client().await;
        for _ in 0..8 {
            let (conn, busy, wrong, other, stop) = (
                conn.clone(),
                busy.clone(),
                wrong.clone(),
                other.clone(),
                stop.clone(),
            );
            flood.push(tokio::spawn(async move {
                for _ in 0..1_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = conn.login("ann", "not her password at all").await;
                    let counter = match code(&r) {
                        Some(ErrorCode::RateLimited) => &busy,
                        Some(ErrorCode::Unauthenticated) => &wrong,
                        _ => &other,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    assert_eventually!(
        busy.load(Ordering::Relaxed) > 0,
        "the flood filled the node's login room"
    );

    let mut while_full = 0;
    let mut flooded = Vec::new();
    for _ in 0..40 {
        let before = busy.load(Ordering::Relaxed);
        let started = std::time::Instant::now();
        client
            .request_token(&ann.account_token, "weather", None)
            .await
            .expect("token requests succeed during the flood");
        flooded.push(started.elapsed());
        if busy.load(Ordering::Relaxed) > before {
            while_full += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the flood ends")
            .unwrap();
    }
    let (busy, wrong, other) = (
        busy.load(Ordering::Relaxed),
        wrong.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
    );
    eprintln!(
        "flood: {busy} rate_limited, {wrong} unauthenticated, {other} other; \
         {while_full} of 40 token requests answered while logins were refused for room; \
         token requests p50/max without the flood {:?}/{:?}, with it {:?}/{:?}",
        percentile(&quiet, 50),
        percentile(&quiet, 100),
        percentile(&flooded, 50),
        percentile(&flooded, 100),
    );
    assert_eq!(other, 0, "every login got a typed refusal");
    assert!(wrong > 0, "some wrong passwords were checked");
    assert!(
        while_full >= 10,
        "token requests were served while the login room was full: {while_full} of 40"
    );
}

async fn token_latencies(
    client: &tessera_sdk::Client,
    account_token: &str,
    n: usize,
) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = std::time::Instant::now();
        client
            .request_token(account_token, "weather", None)
            .await
            .expect("a token");
        out.push(started.elapsed());
    }
    out
}

fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) * p) / 100]
}

/// Per connection: a burst of twice the rate, then `rate_limited` with a retry hint;
/// another connection is not affected. Per username: every attempt counts, from any
/// connection, and past the limit even the right password is refused for now; another
/// username is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_limited_per_connection_and_per_username() {
    let stack = Stack::builder()
        .login_limits(LoginLimitsConfig {
            per_connection: 2,
            per_username: 3,
            queue: 0,
        })
        .start()
        .await;
    // Each adds the user (admin) and logs in once (a client connection of its own).
    stack.user("ann", PASSWORD).await;
    stack.user("bob", PASSWORD).await;

    // Six at once on one connection (a burst of four is allowed): they arrive within
    // milliseconds, long before the limiter refills (one login per 500 ms), however slow the
    // machine is at hashing. One after the other, slow hashes would let it refill.
    let conn = stack.client().await;
    let results = futures::future::join_all((0..6).map(|i| {
        let conn = conn.clone();
        async move { conn.login(&format!("nobody{i}"), "wrong password!").await }
    }))
    .await;
    let limited: Vec<_> = results
        .iter()
        .filter_map(|r| match r {
            Err(e) => e.wire().filter(|w| w.code == ErrorCode::RateLimited),
            _ => None,
        })
        .collect();
    assert!(
        !limited.is_empty(),
        "six logins at once on one connection: {results:?}"
    );
    for e in &limited {
        assert!(e.retryable);
        assert!(e.retry_after_ms.is_some_and(|ms| ms > 0), "{e:?}");
    }
    for r in &results {
        assert!(
            matches!(
                code(r),
                Some(ErrorCode::Unauthenticated | ErrorCode::RateLimited)
            ),
            "{r:?}"
        );
    }
    let fresh = stack.client().await;
    let r = fresh.login("nobody10", "wrong password!").await;
    assert_eq!(code(&r), Some(ErrorCode::Unauthenticated), "{r:?}");

    // ann: one login so far (stack.user); two wrong ones from fresh connections ...
    for _ in 0..2 {
        let r = stack.client().await.login("ann", "wrong password!").await;
        assert_eq!(code(&r), Some(ErrorCode::Unauthenticated), "{r:?}");
    }
    // ... and now even her right password waits.
    let r = stack.client().await.login("ann", PASSWORD).await;
    assert_eq!(code(&r), Some(ErrorCode::RateLimited), "{r:?}");
    // bob is not affected.
    stack
        .client()
        .await
        .login("bob", PASSWORD)
        .await
        .expect("another username logs in");
}
