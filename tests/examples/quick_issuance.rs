//! A rough issuance rate: `cargo run --release -p tessera-tests --example quick_issuance`.
//!
//! One broker, one auth worker, two plugin servers on the plugin's route, all in this
//! process against a local nats-server and redis-server; `$IN_FLIGHT` (default 64) token
//! requests at a time through the SDK for `SECONDS`. Not the benchmark (`tessera-bench` is): no warm-up
//! separation, no floors, one concurrency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tessera_tests::Stack;

const SECONDS: u64 = 5;

#[tokio::main]
async fn main() {
    let stack = Stack::start().await;
    let ann = stack.user("ann", "correct horse battery").await;
    stack.route("weather", &["ps1", "ps2"]).await;
    let _ps1 = stack.plugin_server("ps1").await;
    let _ps2 = stack.plugin_server("ps2").await;
    let client = stack.client().await;
    let in_flight: usize = std::env::var("IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);

    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let started = Instant::now();
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let (client, token, done, failed) = (
                client.clone(),
                ann.account_token.clone(),
                done.clone(),
                failed.clone(),
            );
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    match client.request_token(&token, "weather", None).await {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let secs = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "{n} tokens in {secs:.1} s with {in_flight} in flight: {:.0} tokens/s, {} failed",
        n as f64 / secs,
        failed.load(Ordering::Relaxed)
    );
    stack.shutdown().await;
}
