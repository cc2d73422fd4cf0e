//! Writing the ledger (the broker): one record per issued token (a hash of the token, never
//! the bearer string) with the token's TTL, a per-account index for revoke-all, and the
//! token ids remembered for idempotent requests (an id, never the token: a retry's reply is
//! signed again from the record, see [`LedgerWriter::record`]).
//!
//! A token is *pending* from its record until its commit ([`LedgerWriter::commit`], after its
//! distribution was acknowledged): its id sits in a sorted set scored by a deadline. The
//! commit removes it, and only a replica whose commit removed it hands the token out. A
//! replica that dies in between leaves the id behind; once overdue, any replica's sweeper
//! claims it ([`LedgerWriter::sweep`]) and withdraws the token (revocation distributed, record
//! deleted). Whoever removes the id first wins, so a slow replica never hands out a token a
//! sweeper withdrew, and no valid token is left recorded but undistributed.
//!
//! The pending set is one sorted set per ledger shard (`keys.rs`, "Shards"); the sweeper
//! walks all of them each pass.
//!
//! Replica acknowledgements ([`LedgerWriter::with_replica_acks`]): Redis replicates
//! asynchronously, so a master lost in a failover can take its last writes with it. With
//! acks asked for, a commit and a revocation's deletes end with `WAIT <n> <ms>` in their
//! pipeline; fewer acks than asked is [`Commit::Unreplicated`] (the caller withdraws the
//! token) or an `unavailable` revocation (the caller retries). docs/reliability.md, "Redis
//! Cluster", says what this narrows and what it does not.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use tessera_schemas::{ErrorCode, WireError};

use crate::connection::{LedgerConnection, unavailable};
use crate::keys::Shard;
use crate::{LedgerReader, TokenRecord};

/// The longest an idempotency key is remembered (a shorter-lived token's key goes with its
/// record).
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct LedgerWriter {
    reader: LedgerReader,
    /// How long a token may stay pending (see the module doc).
    pending_deadline: Duration,
    /// Replica acks asked of commits and revocations (`None`: none, no `WAIT`).
    acked: Option<Arc<Acked>>,
}

/// `WAIT` after commits and revocations, on connections of their own.
struct Acked {
    replicas: u32,
    timeout: Duration,
    /// A `WAIT` blocks the connection it came on until the replicas answer (Redis runs a
    /// client's commands in order), so the hot path's other commands must not queue behind
    /// it: acked pipelines go round-robin over a few connections of their own.
    conns: Vec<LedgerConnection>,
    next: AtomicUsize,
}

/// Connections for acked pipelines (see [`Acked::conns`]).
const ACKED_CONNECTIONS: usize = 8;

/// A pending-set member that is never a token id (see [`LedgerWriter::push_wait`]); scored
/// never overdue, so no sweep claims it in the moment it exists.
const SYNC_MARKER: &str = "~sync";

/// How many ledger shards the sweeper reads at once.
const SWEEP_CONCURRENCY: usize = 16;

/// How long the pending set outlives its last addition (it empties itself in normal use).
const PENDING_KEY_TTL: Duration = Duration::from_secs(3600);

/// An idempotent request, as the ledger remembers it: the caller's key, what the token is
/// bound to (see [`idempotency_binding`](crate::keys::idempotency_binding)), and how long
/// the token's record lives (the key is kept no longer).
#[derive(Debug, Clone, Copy)]
pub struct Remember<'a> {
    pub key: &'a str,
    pub binding: &'a str,
    pub ttl: Duration,
}

/// The outcome of [`LedgerWriter::commit`]; `T` is the reply of a concurrent winner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commit<T> {
    /// The token is ours to hand out.
    Committed,
    /// A sweeper withdrew it first (its commit came after the deadline), or the ledger lost
    /// it (a failover dropped the record and its pending entry): do not hand it out.
    Withdrawn,
    /// Committed, but fewer replicas than asked acknowledged it in time: a failover now
    /// could lose its record. Do not hand it out; withdraw it.
    Unreplicated,
    /// A concurrent request with the same idempotency key committed first: send its reply
    /// and withdraw ours.
    Lost(T),
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl LedgerWriter {
    /// `pending_deadline`: how long a token may stay pending before a sweeper may withdraw it.
    pub fn new(conn: LedgerConnection, prefix: &str, pending_deadline: Duration) -> LedgerWriter {
        LedgerWriter {
            reader: LedgerReader::new(conn, prefix),
            pending_deadline,
            acked: None,
        }
    }

    /// Asks `replicas` replica acks, within `timeout`, of every commit and revocation (see
    /// the module doc), over connections of their own to `setting` (the URL(s) of
    /// [`connect`](crate::connect), with its response `bound`). `replicas` 0 changes nothing.
    pub async fn with_replica_acks(
        mut self,
        setting: &str,
        bound: Duration,
        replicas: u32,
        timeout: Duration,
    ) -> redis::RedisResult<LedgerWriter> {
        if replicas == 0 {
            self.acked = None;
            return Ok(self);
        }
        let mut conns = Vec::with_capacity(ACKED_CONNECTIONS);
        for _ in 0..ACKED_CONNECTIONS {
            conns.push(crate::connect(setting, bound).await?);
        }
        self.acked = Some(Arc::new(Acked {
            replicas,
            timeout,
            conns,
            next: AtomicUsize::new(0),
        }));
        Ok(self)
    }

    /// The connection for a pipeline that ends in `WAIT` (one of the acked ones), or the
    /// shared one.
    fn conn_for_acked(&self) -> LedgerConnection {
        match &self.acked {
            Some(a) => a.conns[a.next.fetch_add(1, Ordering::Relaxed) % a.conns.len()].clone(),
            None => self.conn(),
        }
    }

    /// Appends `WAIT` to `pipe` when acks are asked for; returns how many it must report.
    /// `shard`: first write a marker into that shard's pending set and take it out again.
    /// `WAIT` waits for the offset of this connection's last write that changed something;
    /// a revocation retried after its deletion reached the master alone deletes nothing,
    /// so without the marker its `WAIT` would vouch for nothing.
    fn push_wait(&self, pipe: &mut redis::Pipeline, shard: Option<Shard>) -> Option<i64> {
        let a = self.acked.as_ref()?;
        if let Some(shard) = shard {
            let pending = self.reader.keys.pending(shard);
            pipe.cmd("ZADD")
                .arg(&pending)
                .arg("+inf")
                .arg(SYNC_MARKER)
                .ignore()
                .cmd("ZREM")
                .arg(&pending)
                .arg(SYNC_MARKER)
                .ignore();
        }
        pipe.cmd("WAIT")
            .arg(a.replicas)
            .arg(a.timeout.as_millis().max(1) as u64);
        Some(i64::from(a.replicas))
    }

    /// The reads (the writer's connection).
    pub fn reader(&self) -> &LedgerReader {
        &self.reader
    }

    fn conn(&self) -> LedgerConnection {
        self.reader.conn.clone()
    }

    /// Commits a recorded and distributed token: takes it out of the pending set and, for an
    /// idempotent request, remembers its id under the request's key and binding, in one
    /// round trip. See [`Commit`] for what the caller must do. An error leaves the outcome
    /// unknown: the caller answers `unavailable` (a committed token nobody received expires
    /// with its TTL; an uncommitted one is withdrawn by a sweeper).
    ///
    /// The key holds the token id alone, for as long as the token's record lives (at most
    /// [`IDEMPOTENCY_WINDOW`]): a retry after that gets a fresh token either way, since a
    /// reply whose token has expired is never sent again. When a concurrent request
    /// committed first, `reproduce` turns its id and record back into its reply.
    pub async fn commit<T>(
        &self,
        token_id: &str,
        record: &TokenRecord,
        remember: Option<Remember<'_>>,
        reproduce: impl FnOnce(&str, &TokenRecord) -> Option<T>,
    ) -> Result<Commit<T>, WireError> {
        let mut conn = self.conn_for_acked();
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM")
            .arg(self.reader.keys.pending(Shard::of_token(token_id)))
            .arg(token_id);
        let idem = remember.map(|remember| {
            let idem_key = self.reader.keys.idempotency(
                &record.account_id,
                &record.plugin_id,
                remember.binding,
                remember.key,
            );
            let window = remember.ttl.min(IDEMPOTENCY_WINDOW).as_millis().max(1) as u64;
            pipe.cmd("SET")
                .arg(&idem_key)
                .arg(token_id)
                .arg("NX")
                .arg("PX")
                .arg(window);
            (idem_key, window)
        });
        // After the ZREM, on the same connection: its acknowledgement covers the record too
        // (written earlier; a master's replication stream is one ordered log).
        let wanted_acks = self.push_wait(&mut pipe, None);
        let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await.map_err(unavailable)?;
        let mut replies = replies.into_iter();
        let removed: i64 = next_reply(&mut replies)?;
        let set: Option<String> = match idem {
            Some(_) => next_reply(&mut replies)?,
            None => None,
        };
        let replicated = match wanted_acks {
            Some(wanted) => next_reply::<i64>(&mut replies)? >= wanted,
            None => true,
        };
        let Some((idem_key, window)) = idem else {
            return Ok(match (removed == 1, replicated) {
                (false, _) => Commit::Withdrawn,
                (true, true) => Commit::Committed,
                (true, false) => Commit::Unreplicated,
            });
        };
        if removed != 1 || (set.is_some() && !replicated) {
            if set.is_some() {
                // Best effort: a remembered id whose record is gone is ignored anyway.
                let _ = redis::cmd("DEL")
                    .arg(&idem_key)
                    .query_async::<()>(&mut conn)
                    .await;
            }
            return Ok(if removed != 1 {
                Commit::Withdrawn
            } else {
                Commit::Unreplicated
            });
        }
        if set.is_some() {
            return Ok(Commit::Committed);
        }
        if let Some((winner_id, winner)) = self.remembered(&idem_key).await?
            && let Some(reply) = reproduce(&winner_id, &winner)
        {
            return Ok(Commit::Lost(reply));
        }
        if !replicated {
            return Ok(Commit::Unreplicated);
        }
        // The winner's token is gone (expired or revoked) or cannot be signed again here:
        // ours is as good, and later retries must find ours.
        redis::cmd("SET")
            .arg(&idem_key)
            .arg(token_id)
            .arg("PX")
            .arg(window)
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(Commit::Committed)
    }

    /// The token id remembered under `idem_key` and its record, if both are still there.
    async fn remembered(&self, idem_key: &str) -> Result<Option<(String, TokenRecord)>, WireError> {
        let mut conn = self.conn();
        let id: Option<String> = redis::cmd("GET")
            .arg(idem_key)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let Some(id) = id else {
            return Ok(None);
        };
        Ok(self.reader.get(&id).await?.map(|record| (id, record)))
    }

    /// Claims up to `limit` overdue pending tokens per shard for this replica to withdraw,
    /// with their records (`None`: the record is already gone). Each id is claimed by one
    /// replica only. Every shard is read (a few at once); one that fails (its master is
    /// down) is skipped until the next pass, the others are not. `unavailable` only when
    /// every shard failed.
    pub async fn sweep(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, Option<TokenRecord>)>, WireError> {
        let results: Vec<_> = futures::stream::iter(Shard::all())
            .map(|shard| self.sweep_shard(shard, limit))
            .buffer_unordered(SWEEP_CONCURRENCY)
            .collect()
            .await;
        let mut claimed = Vec::new();
        let mut failed = None;
        let mut failures = 0;
        for r in results {
            match r {
                Ok(mut c) => claimed.append(&mut c),
                Err(e) => {
                    failures += 1;
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) if failures == crate::keys::SHARDS => Err(e),
            Some(_) => {
                tracing::warn!(
                    failed_shards = failures,
                    "pending sweep skipped the shards it could not read"
                );
                Ok(claimed)
            }
            None => Ok(claimed),
        }
    }

    async fn sweep_shard(
        &self,
        shard: Shard,
        limit: usize,
    ) -> Result<Vec<(String, Option<TokenRecord>)>, WireError> {
        let mut conn = self.conn();
        let pending = self.reader.keys.pending(shard);
        let overdue: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(&pending)
            .arg("-inf")
            .arg(now_ms())
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let mut claimed = Vec::new();
        for id in overdue {
            let removed: i64 = redis::cmd("ZREM")
                .arg(&pending)
                .arg(&id)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if removed == 1 {
                let record = self.reader.get(&id).await?;
                claimed.push((id, record));
            }
        }
        Ok(claimed)
    }

    /// Puts a claimed token back into the pending set (its withdrawal failed; a later sweep
    /// tries again).
    pub async fn repend(&self, token_id: &str) {
        let mut conn = self.conn();
        let deadline = now_ms() + self.pending_deadline.as_millis() as u64;
        if let Err(e) = redis::cmd("ZADD")
            .arg(self.reader.keys.pending(Shard::of_token(token_id)))
            .arg(deadline)
            .arg(token_id)
            .query_async::<()>(&mut conn)
            .await
        {
            tracing::warn!(error = %e, token_id, "could not re-queue a token to withdraw; it expires with its TTL");
        }
    }

    /// Records an issued token and indexes it under its account, in one round trip, which
    /// also reads the token id remembered for the request's idempotency key, if any.
    ///
    /// When that earlier token is still recorded (live, not revoked) and `reproduce` gives
    /// its reply back, our record is removed again and that reply returned: the caller sends
    /// it instead of its own (a retry gets the same token). Otherwise the remembered id is
    /// forgotten and our token goes ahead, so a retry never gets a dead token. Reading the id
    /// in the same round trip as the record keeps the common case (no earlier request) to one
    /// round trip.
    pub async fn record<T>(
        &self,
        token_id: &str,
        record: &TokenRecord,
        ttl: Duration,
        max_ttl: Duration,
        idempotency: Option<Remember<'_>>,
        reproduce: impl FnOnce(&str, &TokenRecord) -> Option<T>,
    ) -> Result<Option<T>, WireError> {
        let mut conn = self.conn();
        let account_key = self.reader.keys.account_tokens(&record.account_id);
        // The token id names its account's shard (`keys::new_token_id`), so on a cluster
        // this pipeline stays in one slot.
        let pending = self.reader.keys.pending(Shard::of_token(token_id));
        let idem_key = idempotency.map(|r| {
            self.reader
                .keys
                .idempotency(&record.account_id, &record.plugin_id, r.binding, r.key)
        });
        let mut pipe = redis::pipe();
        if let Some(k) = &idem_key {
            pipe.cmd("GET").arg(k);
        }
        pipe.cmd("SET")
            .arg(self.reader.keys.token(token_id))
            .arg(record.encode())
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .ignore()
            // Scored by expiry, and pruned of expired ids (see `prunes_index`): an account
            // that keeps asking for tokens must not grow its index for ever.
            .cmd("ZADD")
            .arg(&account_key)
            .arg(record.expires_at)
            .arg(token_id)
            .ignore();
        if prunes_index(token_id) {
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(&account_key)
                .arg("-inf")
                .arg(tessera_protocol::now_unix())
                .ignore();
        }
        pipe.cmd("PEXPIRE")
            .arg(&account_key)
            .arg(max_ttl.as_millis() as u64)
            .ignore()
            // Pending until committed (see the module doc).
            .cmd("ZADD")
            .arg(&pending)
            .arg(now_ms() + self.pending_deadline.as_millis() as u64)
            .arg(token_id)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&pending)
            .arg(PENDING_KEY_TTL.as_millis() as u64)
            .ignore();
        let Some(idem_key) = idem_key else {
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(unavailable)?;
            return Ok(None);
        };
        let (previous_id,): (Option<String>,) =
            pipe.query_async(&mut conn).await.map_err(unavailable)?;
        let Some(previous_id) = previous_id else {
            return Ok(None);
        };
        let previous = match self.reader.get(&previous_id).await? {
            Some(previous) => reproduce(&previous_id, &previous),
            None => None,
        };
        if let Some(reply) = previous {
            self.forget(token_id, record).await;
            return Ok(Some(reply));
        }
        redis::cmd("DEL")
            .arg(&idem_key)
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(None)
    }

    /// Undoes [`LedgerWriter::record`] after a failed distribution, so no token is stored without
    /// being distributed. Best effort: if this fails, the sweeper withdraws it.
    pub async fn forget(&self, token_id: &str, record: &TokenRecord) {
        let mut conn = self.conn();
        let result = redis::pipe()
            .cmd("DEL")
            .arg(self.reader.keys.token(token_id))
            .ignore()
            .cmd("ZREM")
            .arg(self.reader.keys.account_tokens(&record.account_id))
            .arg(token_id)
            .ignore()
            .cmd("ZREM")
            .arg(self.reader.keys.pending(Shard::of_token(token_id)))
            .arg(token_id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, token_id, "could not remove the record of an undistributed token");
        }
    }

    /// Removes token records (after their revocation was distributed): one account's, so
    /// one shard's (one slot on a cluster). With replica acks asked for, fewer acks than
    /// asked is `unavailable`: the revocation may not survive a failover, and the caller
    /// retries it (revocations are idempotent, and a retry finds a record a failover brought
    /// back).
    pub async fn delete(&self, account_id: &str, token_ids: &[String]) -> Result<(), WireError> {
        if token_ids.is_empty() {
            return self.settle(Shard::of_account(account_id)).await;
        }
        let mut pipe = redis::pipe();
        for id in token_ids {
            pipe.cmd("DEL").arg(self.reader.keys.token(id)).ignore();
        }
        pipe.cmd("ZREM")
            .arg(self.reader.keys.account_tokens(account_id))
            .arg(token_ids)
            .ignore();
        self.acknowledged(pipe, Shard::of_account(account_id)).await
    }

    /// With replica acks asked for: waits until the replicas have every write made so far to
    /// `shard`'s master (a revocation that found nothing left to delete, perhaps because an
    /// earlier attempt deleted it on the master alone, must not report done before that
    /// deletion is replicated). Without: nothing.
    pub async fn settle(&self, shard: Shard) -> Result<(), WireError> {
        if self.acked.is_none() {
            return Ok(());
        }
        self.acknowledged(redis::pipe(), shard).await
    }

    /// Runs `pipe` (its replies ignored), then, with acks asked for, `WAIT`s for them.
    async fn acknowledged(&self, mut pipe: redis::Pipeline, shard: Shard) -> Result<(), WireError> {
        let mut conn = self.conn_for_acked();
        let Some(wanted) = self.push_wait(&mut pipe, Some(shard)) else {
            return pipe.query_async::<()>(&mut conn).await.map_err(unavailable);
        };
        let (acked,): (i64,) = pipe.query_async(&mut conn).await.map_err(unavailable)?;
        if acked < wanted {
            tracing::warn!(
                acked,
                wanted,
                "a revocation was not acknowledged by the replicas in time"
            );
            return Err(WireError::new(
                ErrorCode::Unavailable,
                "revocation not yet replicated; retry it",
            ));
        }
        Ok(())
    }
}

/// Whether recording `token_id` also prunes its account's index of expired ids: one record
/// in eight, picked by the id's last hex digit (random: `keys::new_token_id`). An account
/// that keeps asking then holds, on average, the ids that expired since its last eight
/// records beyond its live ones, for one command in eight instead of one per token.
fn prunes_index(token_id: &str) -> bool {
    matches!(token_id.as_bytes().last(), Some(b'0' | b'8'))
}

/// The next reply of a pipeline, of the type the command answers.
fn next_reply<T: redis::FromRedisValue>(
    replies: &mut impl Iterator<Item = redis::Value>,
) -> Result<T, WireError> {
    let v = replies.next().unwrap_or(redis::Value::Nil);
    redis::from_redis_value(v).map_err(|e| {
        tracing::warn!(error = %e, "unexpected redis reply");
        WireError::new(ErrorCode::Unavailable, "token ledger unavailable")
    })
}

#[cfg(test)]
mod tests {
    use super::prunes_index;

    #[test]
    fn about_one_record_in_eight_prunes_the_account_index() {
        let n = 4096;
        let pruning = (0..n)
            .filter(|_| prunes_index(&crate::keys::new_token_id("acc")))
            .count();
        // Binomial(4096, 1/8): mean 512, standard deviation ~21.
        assert!((256..=1024).contains(&pruning), "{pruning} of {n}");
    }
}
