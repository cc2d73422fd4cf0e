//! Redis state of the broker: one record per issued token (a hash of the token, never the
//! bearer string) with the token's TTL, a per-account index for revoke-all, and the replies to
//! idempotent requests.
//!
//! Every command is bounded by a response timeout, so a Redis outage turns into a prompt,
//! retryable `unavailable` instead of a hung request. The connection manager reconnects by
//! itself when Redis comes back.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tessera_core::redis_keys::RedisKeys;
use tessera_schemas::messages::TokenResponse;
use tessera_schemas::{ErrorCode, WireError, codec};

/// How long an idempotency key holds its reply.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(300);

/// What Redis holds for one issued token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub account_id: String,
    pub plugin_id: String,
    pub servers: Vec<String>,
    /// SHA-256 (hex) of the token string.
    pub token_hash: String,
    pub expires_at: u64,
}

#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    keys: RedisKeys,
}

/// Redis failures become `unavailable` on the wire; the detail stays in the log.
fn unavailable(e: redis::RedisError) -> WireError {
    tracing::warn!(error = %e, "redis command failed");
    WireError::new(ErrorCode::Unavailable, "token store unavailable")
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

    /// Remembers the reply to an idempotent request, once its token is recorded and
    /// distributed. If a concurrent request with the same key got there first, returns its
    /// reply instead: the caller must send that one and withdraw its own token. `binding`
    /// is the token's binding (`redis_keys::idempotency_binding`).
    pub async fn claim_idempotency(
        &self,
        key: &str,
        binding: &str,
        reply: &TokenResponse,
    ) -> Result<Option<TokenResponse>, WireError> {
        let mut conn = self.conn.clone();
        let idem_key = self
            .keys
            .idempotency(&reply.account_id, &reply.plugin_id, binding, key);
        let set: Option<String> = redis::cmd("SET")
            .arg(&idem_key)
            .arg(codec::encode(reply))
            .arg("NX")
            .arg("PX")
            .arg(IDEMPOTENCY_WINDOW.as_millis() as u64)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if set.is_some() {
            return Ok(None);
        }
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&idem_key)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(raw.and_then(|b| codec::decode(&b).ok()))
    }

    /// Records an issued token and indexes it under its account, in one round trip, which
    /// also reads the reply remembered for `idempotency_key` if one was given.
    ///
    /// When that earlier reply's token is still live, our record is removed again and the
    /// earlier reply returned: the caller sends it instead of its own (a retry gets the same
    /// token). A remembered reply whose token was revoked or has expired is forgotten, so the
    /// retry gets a fresh token rather than a dead one. Reading the reply in the same round
    /// trip as the record keeps the common case (no earlier reply) to one round trip.
    pub async fn record(
        &self,
        token_id: &str,
        record: &TokenRecord,
        ttl: Duration,
        max_ttl: Duration,
        idempotency_key: Option<&str>,
        binding: &str,
    ) -> Result<Option<TokenResponse>, WireError> {
        let mut conn = self.conn.clone();
        let account_key = self.keys.account_tokens(&record.account_id);
        let idem_key = idempotency_key.map(|k| {
            self.keys
                .idempotency(&record.account_id, &record.plugin_id, binding, k)
        });
        let mut pipe = redis::pipe();
        if let Some(k) = &idem_key {
            pipe.cmd("GET").arg(k);
        }
        pipe.cmd("SET")
            .arg(self.keys.token(token_id))
            .arg(codec::encode(record))
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .ignore()
            // Scored by expiry, and pruned of expired ids on every add: an account that keeps
            // asking for tokens must not grow its index for ever.
            .cmd("ZADD")
            .arg(&account_key)
            .arg(record.expires_at)
            .arg(token_id)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&account_key)
            .arg("-inf")
            .arg(tessera_core::now_unix())
            .ignore()
            .cmd("PEXPIRE")
            .arg(&account_key)
            .arg(max_ttl.as_millis() as u64)
            .ignore();
        let Some(idem_key) = idem_key else {
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(unavailable)?;
            return Ok(None);
        };
        let (raw,): (Option<Vec<u8>>,) = pipe.query_async(&mut conn).await.map_err(unavailable)?;
        let Some(previous) = raw.and_then(|b| codec::decode::<TokenResponse>(&b).ok()) else {
            return Ok(None);
        };
        let live: bool = redis::cmd("EXISTS")
            .arg(self.keys.token(&previous.token_id))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if live {
            self.forget(token_id, record).await;
            return Ok(Some(previous));
        }
        redis::cmd("DEL")
            .arg(&idem_key)
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(None)
    }

    /// Undoes [`Store::record`] after a failed distribution, so no token is stored without
    /// being distributed. Best effort: the record expires with the token anyway.
    pub async fn forget(&self, token_id: &str, record: &TokenRecord) {
        if let Err(e) = self
            .delete(&record.account_id, &[token_id.to_owned()])
            .await
        {
            tracing::warn!(error = %e, token_id, "could not remove the record of an undistributed token");
        }
    }

    pub async fn get(&self, token_id: &str) -> Result<Option<TokenRecord>, WireError> {
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.keys.token(token_id))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(raw.and_then(|b| codec::decode(&b).ok()))
    }

    /// Live tokens of an account, with their records.
    pub async fn account_tokens(
        &self,
        account_id: &str,
    ) -> Result<Vec<(String, TokenRecord)>, WireError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.account_tokens(account_id))
            .arg(format!("({}", tessera_core::now_unix()))
            .arg("+inf")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut mget = redis::cmd("MGET");
        for id in &ids {
            mget.arg(self.keys.token(id));
        }
        let raws: Vec<Option<Vec<u8>>> = mget.query_async(&mut conn).await.map_err(unavailable)?;
        Ok(ids
            .into_iter()
            .zip(raws)
            .filter_map(|(id, raw)| Some((id, codec::decode(&raw?).ok()?)))
            .collect())
    }

    /// Removes token records (after their revocation was distributed).
    pub async fn delete(&self, account_id: &str, token_ids: &[String]) -> Result<(), WireError> {
        if token_ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for id in token_ids {
            pipe.cmd("DEL").arg(self.keys.token(id)).ignore();
        }
        pipe.cmd("ZREM")
            .arg(self.keys.account_tokens(account_id))
            .arg(token_ids)
            .ignore();
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }
}
