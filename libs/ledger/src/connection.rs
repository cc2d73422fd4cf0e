//! One Redis connection manager per process, every command bounded by a response timeout:
//! a Redis outage is a prompt, retryable `unavailable`, never a hung request. The manager
//! reconnects by itself when Redis comes back.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tessera_schemas::{ErrorCode, WireError};

/// Connects to `url` (credentials in the URL: each process has its own Redis user).
pub async fn connect(url: &str, timeout: Duration) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_with_config(client, config).await
}

/// Redis failures become `unavailable` on the wire; the detail stays in the log.
pub(crate) fn unavailable(e: redis::RedisError) -> WireError {
    tracing::warn!(error = %e, "redis command failed");
    WireError::new(ErrorCode::Unavailable, "token ledger unavailable")
}
