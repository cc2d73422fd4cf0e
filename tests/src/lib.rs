//! The Tessera integration-test harness: real servers, real workers, no mocks.
//!
//! # Layout
//!
//! - [`servers`]: [`Servers`], a `nats-server` (configured from `bus-config`, one user per
//!   role) and a `redis-server`, started as child processes on free ports and killed on drop;
//!   [`Backend`] says where they come from: local processes, containers (testcontainers,
//!   the default when a container engine answers), or servers someone else runs.
//! - [`containers`]: the container backend, and a NATS cluster of containers for multi-node
//!   tests; [`docker`]: finding the engine, the API-version shim for older engines, and the
//!   reaper of containers a killed run left behind.
//! - [`stack`]: [`Stack`], the servers plus in-process auth and broker workers (any number
//!   of broker replicas), each with its own [`tessera_runtime::Shutdown`] so a test can stop one;
//!   SDK clients per role, demo plugin servers ([`PluginServerHandle`]) and users.
//! - [`metrics`]: the workers' counters (token rejections), read in-process.
//! - [`child`]: [`child::ChildBroker`], a broker replica in a process of its own, for the
//!   fault tests that SIGKILL or SIGTERM one.
//! - [`load`]: a steady load of token requests (SDK and raw) recording how each ended, and
//!   the Redis and distribution-stream views of issued tokens, for the fault tests.
//! - [`packages`]: the prebuilt auth packages, app configs, signed uploads and node status
//!   for the auth-package tests.
//! - this file: [`eventually`] and [`assert_eventually!`], bounded waits on a condition (the
//!   only way tests wait: never a bare sleep), and [`ServerErrors`], which records the errors
//!   nats-server sends a connection (permission violations).
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() {
//! use tessera_tests::Stack;
//! let stack = Stack::start().await;
//! let ann = stack.user("ann", "correct horse battery").await;
//! stack.route("weather", &["ps1"]).await;
//! let ps1 = stack.plugin_server("ps1").await;
//! let client = stack.client().await;
//! let token = client.request_token(&ann.account_token, "weather", None).await.unwrap();
//! let reply = client.echo("ps1", &token.token, b"hi".to_vec()).await.unwrap();
//! assert_eq!(reply.account_id, ann.account_id);
//! # drop(ps1); }
//! ```
//!
//! Architecture invariant: every test gets its own servers (or, against an external server,
//! its own subject and Redis key prefix), so tests run in parallel and in any order.

#![forbid(unsafe_code)]

pub mod child;
pub mod containers;
pub mod docker;
pub mod load;
pub mod metrics;
pub mod packages;
pub mod servers;
pub mod stack;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub use servers::{Backend, RedisClusterSpec, Servers};
pub use stack::{PluginServerHandle, Stack, StackBuilder};
pub use tessera_bus_config::Role;

/// How long [`assert_eventually!`] waits by default. Generous: it bounds a failure, it is not
/// what a passing test takes.
pub const EVENTUALLY: Duration = Duration::from_secs(10);

/// Polls `condition` until it returns true or `timeout` has passed; returns whether it held.
/// Polls quickly at first, then every 200 ms at most.
pub async fn eventually<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if condition().await {
            return true;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Asserts that an (async) condition becomes true within a bound.
///
/// `assert_eventually!(cond)` waits up to [`EVENTUALLY`];
/// `assert_eventually!(timeout = d, cond, "message {}", args)` sets the bound and the message.
/// The condition is an expression that may use `.await`.
#[macro_export]
macro_rules! assert_eventually {
    (timeout = $timeout:expr, $cond:expr $(,)?) => {
        $crate::assert_eventually!(timeout = $timeout, $cond, "{}", stringify!($cond))
    };
    (timeout = $timeout:expr, $cond:expr, $($msg:tt)+) => {{
        let timeout: ::std::time::Duration = $timeout;
        if !$crate::eventually(timeout, || async { $cond }).await {
            panic!("not true within {:?}: {}", timeout, format!($($msg)+));
        }
    }};
    ($cond:expr $(,)?) => {
        $crate::assert_eventually!(timeout = $crate::EVENTUALLY, $cond)
    };
    ($cond:expr, $($msg:tt)+) => {
        $crate::assert_eventually!(timeout = $crate::EVENTUALLY, $cond, $($msg)+)
    };
}

/// The errors nats-server sent one connection (`-ERR ...`, e.g. `Permissions Violation for
/// Publish to "tessera.dist.ps1"`), as async-nats reports them to the event callback.
#[derive(Debug, Clone, Default)]
pub struct ServerErrors(Arc<Mutex<Vec<String>>>);

impl ServerErrors {
    pub(crate) fn push(&self, message: String) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message);
    }

    /// Every error received so far.
    pub fn all(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether some error contains every one of `needles` (case-insensitive).
    pub fn any_contains(&self, needles: &[&str]) -> bool {
        self.all().iter().any(|e| {
            let e = e.to_lowercase();
            needles.iter().all(|n| e.contains(&n.to_lowercase()))
        })
    }

    /// Whether nats-server refused a publish to `subject`.
    pub fn publish_denied(&self, subject: &str) -> bool {
        self.any_contains(&[
            "permissions violation",
            "publish",
            &format!("\"{subject}\""),
        ])
    }

    /// Whether nats-server refused a subscription to `subject`.
    pub fn subscribe_denied(&self, subject: &str) -> bool {
        self.any_contains(&[
            "permissions violation",
            "subscription",
            &format!("\"{subject}\""),
        ])
    }
}

/// Test logs go through libtest's capture (shown only for failing tests). `RUST_LOG`
/// filters; the default keeps Tessera's own info lines.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_target(false)
        .try_init();
}
