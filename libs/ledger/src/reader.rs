//! Reading the ledger: is a token still recorded (issued and not revoked), and an account's
//! live tokens. The broker's introspection and revocation and the gateway read through this;
//! only [`LedgerWriter`](crate::LedgerWriter) writes.

use tessera_schemas::WireError;

use crate::connection::{LedgerConnection, unavailable};
use crate::{RedisKeys, TokenRecord};

#[derive(Clone)]
pub struct LedgerReader {
    pub(crate) conn: LedgerConnection,
    pub(crate) keys: RedisKeys,
}

impl LedgerReader {
    pub fn new(conn: LedgerConnection, prefix: &str) -> LedgerReader {
        LedgerReader {
            conn,
            keys: RedisKeys::new(prefix),
        }
    }

    pub fn keys(&self) -> &RedisKeys {
        &self.keys
    }

    /// The record of `token_id`, if it is still recorded.
    pub async fn get(&self, token_id: &str) -> Result<Option<TokenRecord>, WireError> {
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.keys.token(token_id))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(decode(raw))
    }

    /// Runs `pipe` (the caller's commands on this connection, e.g. the gateway's nonce claim).
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        pipe: redis::Pipeline,
    ) -> Result<T, WireError> {
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn).await.map_err(unavailable)
    }

    /// Runs `pipe` (the caller's commands) and a read of `token_id`'s record side by side:
    /// the gateway claims a nonce and reads the record in one round trip's time.
    ///
    /// Two requests, not one pipeline: on a Redis Cluster the nonce and the record live in
    /// different slots (a nonce is not tied to a token's shard, so a replayed packet meets
    /// its nonce whatever its token). On one Redis both go out back to back on the one
    /// multiplexed connection, which is a pipeline on the wire; on a cluster each goes to
    /// its master at once.
    pub async fn query_with_record<T: redis::FromRedisValue>(
        &self,
        pipe: redis::Pipeline,
        token_id: &str,
    ) -> Result<(T, Option<TokenRecord>), WireError> {
        let (theirs, record) =
            futures::future::join(self.query::<T>(pipe), self.get(token_id)).await;
        Ok((theirs?, record?))
    }

    /// Live tokens of an account, with their records.
    pub async fn account_tokens(
        &self,
        account_id: &str,
    ) -> Result<Vec<(String, TokenRecord)>, WireError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.account_tokens(account_id))
            .arg(format!("({}", tessera_protocol::now_unix()))
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
            .filter_map(|(id, raw)| Some((id, decode(raw)?)))
            .collect())
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

/// A record that does not decode is treated as absent (it cannot vouch for a token).
fn decode(raw: Option<Vec<u8>>) -> Option<TokenRecord> {
    raw.and_then(|b| TokenRecord::decode(&b))
}
