//! The gateway's Redis state: the shared replay cache of nonces, and a read of the broker's
//! token record (is the plugin token still live, i.e. not revoked?).
//!
//! Both happen in one pipelined round trip per packet. The nonce is claimed with
//! `SET <key> 1 NX PX <window>`: whichever gateway replica claims it first wins, so a
//! packet replayed to another replica is caught too. Every command is bounded by a response
//! timeout: a Redis outage is a prompt `unavailable`, not a hung request.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;
use tessera_ledger::keys::RedisKeys;
use tessera_schemas::{ErrorCode, WireError, codec};

/// The part of the broker's token record the gateway reads (MessagePack map; the other
/// fields are ignored). Written by processes/broker/src/store.rs.
#[derive(Debug, Deserialize)]
pub struct TokenRecord {
    /// SHA-256 (hex) of the token string.
    pub token_hash: String,
}

#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    keys: RedisKeys,
}

/// What one round trip found.
pub struct Checked {
    /// Whether this packet claimed its nonce (false: seen before within the window).
    pub fresh_nonce: bool,
    /// The token record, when a token id was given and its record exists.
    pub record: Option<TokenRecord>,
}

fn unavailable(e: redis::RedisError) -> WireError {
    tracing::warn!(error = %e, "redis command failed");
    WireError::new(ErrorCode::Unavailable, "replay cache unavailable")
}

impl Store {
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> anyhow::Result<Store> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Store {
            conn,
            keys: RedisKeys::new(prefix),
        })
    }

    /// Claims the nonce for `window` and reads the record of `token_id` (if given).
    pub async fn check(
        &self,
        app_id: &str,
        nonce: &str,
        window: Duration,
        token_id: Option<&str>,
    ) -> Result<Checked, WireError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.keys.nonce(app_id, nonce))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(window.as_millis() as u64);
        let Some(token_id) = token_id else {
            let (set,): (Option<String>,) =
                pipe.query_async(&mut conn).await.map_err(unavailable)?;
            return Ok(Checked {
                fresh_nonce: set.is_some(),
                record: None,
            });
        };
        pipe.cmd("GET").arg(self.keys.token(token_id));
        let (set, raw): (Option<String>, Option<Vec<u8>>) =
            pipe.query_async(&mut conn).await.map_err(unavailable)?;
        Ok(Checked {
            fresh_nonce: set.is_some(),
            record: raw.and_then(|b| codec::decode(&b).ok()),
        })
    }

    /// A cheap command for readiness.
    pub async fn ping(&self) -> Result<(), String> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}
