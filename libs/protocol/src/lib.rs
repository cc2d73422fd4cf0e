//! What client apps, plugin servers and workers share: the protocol's moving parts beside
//! the wire types of `tessera-schemas`.
//!
//! # Layout
//!
//! - [`bus`]: connecting to NATS with bounded retries, a client name and (for client apps)
//!   the inbox key that confines replies to the connection.
//! - [`rpc`]: one request-reply with the schema header and typed errors.
//! - [`signing`]: Ed25519 signing keys (generate, load, save), their `kid` and public JWK.
//! - [`jwt`]: what every token verifier shares: the clock leeway, header and algorithm
//!   checks, typed and counted rejections.
//! - [`data_sign`]: the HMAC-SHA256 protocol signature of data-access packets (the client
//!   SDK signs, the gateway verifies).
//! - [`trace`]: W3C trace context in message headers (OpenTelemetry with the `otel`
//!   feature).
//!
//! Architecture invariant: nothing here runs a service, reads process settings or knows
//! Redis; a client app links this crate, so its dependencies stay few.

#![forbid(unsafe_code)]

pub mod bus;
pub mod data_sign;
pub mod jwt;
pub mod rpc;
pub mod signing;
pub mod trace;

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `bytes` random bytes (the system's generator), URL-safe base64 without padding: ids that
/// must not be guessed or collide (request ids, audit event ids).
pub fn random_id(bytes: usize) -> String {
    use base64::Engine as _;
    let mut b = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut b).expect("system randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}
