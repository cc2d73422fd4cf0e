//! A Tessera process's plumbing: what every worker (and a plugin server) runs beside its own
//! handlers.
//!
//! # Layout
//!
//! - [`service`]: the request loop. Registers a NATS micro service with a queue group,
//!   decodes, runs a handler under a span, replies with a body or a typed error, bounds the
//!   work in flight, and drains on shutdown.
//! - [`audit`]: the audit trail: a bounded queue and one background task per worker that
//!   publishes audit events to JetStream without blocking any reply.
//! - [`signal`]: SIGTERM/Ctrl-C to a [`Shutdown`].
//! - [`config`]: reading and validating environment settings, errors that name the key;
//!   [`env_file`]: the `KEY=VALUE` file the dev stack writes and commands read.
//! - [`telemetry`]: `tracing` set-up from `RUST_LOG`, text or JSON (`TESSERA_LOG_FORMAT`),
//!   and (`otel` feature) the OTLP trace exporter.
//! - [`health`]: the `/healthz`, `/readyz`, `/metrics` endpoint (`TESSERA_HEALTH_ADDR`);
//!   [`metrics`]: what is measured (recorded once, in the request loop, for every service).
//! - [`watched`]: a KV bucket mirrored in memory, kept current by a watch.
//!
//! Architecture invariant: nothing here knows about Redis or about a particular worker's
//! messages; process crates own their state.

#![forbid(unsafe_code)]

pub mod audit;
pub mod config;
pub mod env_file;
pub mod health;
pub mod metrics;
pub mod service;
pub mod signal;
pub mod telemetry;
pub mod watched;

pub use tessera_protocol::now_unix;
pub use tokio_util::sync::CancellationToken as Shutdown;
