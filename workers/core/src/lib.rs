//! What every Tessera worker (and the plugin-server SDK) shares.
//!
//! # Layout
//!
//! - [`service`]: the request loop. Registers a NATS micro service with a queue group,
//!   decodes, runs a handler under a span, replies with a body or a typed error, bounds the
//!   work in flight, and drains on shutdown.
//! - [`audit`]: the audit trail: a bounded queue and one background task per worker that
//!   publishes audit events to JetStream without blocking any reply.
//! - [`bus`]: connecting to NATS with bounded retries and a client name.
//! - [`signing`]: Ed25519 signing keys (generate, load, save), their `kid` and public JWK.
//! - [`data_sign`]: the HMAC-SHA256 protocol signature of data-access packets (shared by
//!   the client SDK, which signs, and the gateway, which verifies).
//! - [`jwt`]: what every token verifier shares: the clock leeway, header and algorithm
//!   checks, typed and counted rejections.
//! - [`signal`]: SIGTERM/Ctrl-C to a [`Shutdown`] (every worker process).
//! - [`config`]: reading and validating environment settings, errors that name the key.
//! - [`telemetry`]: `tracing` set-up from `RUST_LOG`, text or JSON (`TESSERA_LOG_FORMAT`).
//! - [`health`]: the `/healthz`, `/readyz`, `/metrics` endpoint (`TESSERA_HEALTH_ADDR`);
//!   [`metrics`]: what is measured (recorded once, in the request loop, for every service).
//!
//! Architecture invariant: nothing here knows about Redis or about a particular worker's
//! messages; worker crates own their state.

#![forbid(unsafe_code)]

pub mod audit;
pub mod bus;
pub mod config;
pub mod data_sign;
pub mod health;
pub mod jwt;
pub mod metrics;
pub mod redis_keys;
pub mod rpc;
pub mod service;
pub mod signal;
pub mod signing;
pub mod telemetry;
pub mod watched;

pub use tokio_util::sync::CancellationToken as Shutdown;

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
