//! Step 5 of `token.request`: record, distribute, commit (docs/protocol.md §3.4), and the
//! withdrawals that keep the ledger and the plugin servers in step when a step fails.
//!
//! The ledger and the distributor sit behind two small seams ([`Ledger`], [`Distributor`]),
//! so every outcome of the commit has a fast unit test (`commit/tests.rs`) beside the
//! real-server ones (tests/tests/e2e/faults/, idempotency.rs): no token stays recorded
//! without being distributed, or distributed without being recorded, and only a committed
//! token is handed out.

use std::sync::Arc;
use std::time::Duration;

use tessera_ledger::{Commit, Remember, TokenRecord};
use tessera_schemas::messages::{DistEvent, TokenResponse};
use tessera_schemas::{ErrorCode, WireError};

use super::mint::{self, Minted};
use crate::State;

/// The token ledger as issuance uses it (production: [`LedgerWriter`], Redis).
pub(crate) trait Ledger {
    /// Records a token as pending; returns the live reply remembered for the same
    /// idempotency key, if any (then this token's record is already removed again).
    async fn record(
        &self,
        minted: &Minted,
        max_ttl: Duration,
        idempotency_key: Option<&str>,
    ) -> Result<Option<TokenResponse>, WireError>;
    /// Commits a recorded and distributed token, remembering it under `idempotency_key`.
    async fn commit(
        &self,
        minted: &Minted,
        idempotency_key: Option<&str>,
    ) -> Result<Commit<TokenResponse>, WireError>;
    /// Best effort: a failure leaves the token pending, for a sweeper.
    async fn forget(&self, token_id: &str, record: &TokenRecord);
    async fn repend(&self, token_id: &str);
}

/// Distribution to plugin servers as issuance uses it (production: JetStream, acked; a
/// `Token` event's `msg_id` is its token id, and it may go out in one event with others:
/// `distribute`).
pub(crate) trait Distributor {
    async fn publish(
        &self,
        servers: &[String],
        msg_id: &str,
        event: &DistEvent,
    ) -> Result<(), WireError>;
}

/// Production: the Redis ledger, and this replica's signing key to give a retried request
/// its earlier token back (see [`mint::reproduce`]).
impl Ledger for State {
    async fn record(
        &self,
        minted: &Minted,
        max_ttl: Duration,
        idempotency_key: Option<&str>,
    ) -> Result<Option<TokenResponse>, WireError> {
        self.ledger
            .record(
                &minted.token_id,
                &minted.record,
                minted.record_ttl,
                max_ttl,
                idempotency_key.map(|key| remember(minted, key)),
                |id, record| mint::reproduce(self, id, record),
            )
            .await
    }
    async fn commit(
        &self,
        minted: &Minted,
        idempotency_key: Option<&str>,
    ) -> Result<Commit<TokenResponse>, WireError> {
        self.ledger
            .commit(
                &minted.token_id,
                &minted.record,
                idempotency_key.map(|key| remember(minted, key)),
                |id, record| mint::reproduce(self, id, record),
            )
            .await
    }
    async fn forget(&self, token_id: &str, record: &TokenRecord) {
        self.ledger.forget(token_id, record).await
    }
    async fn repend(&self, token_id: &str) {
        self.ledger.repend(token_id).await
    }
}

fn remember<'a>(minted: &'a Minted, key: &'a str) -> Remember<'a> {
    Remember {
        key,
        binding: &minted.binding,
        ttl: minted.record_ttl,
    }
}

impl Distributor for State {
    async fn publish(
        &self,
        servers: &[String],
        msg_id: &str,
        event: &DistEvent,
    ) -> Result<(), WireError> {
        match event {
            // Tokens are gathered per server (see `distribute`); the token id names it.
            DistEvent::Token { token } => self.dist.token(servers, msg_id, token).await,
            _ => self.dist.event(servers, msg_id, event).await,
        }
    }
}

/// How a token request ended.
#[derive(Debug, PartialEq)]
pub(crate) enum Issued {
    /// This request's token, handed out for the first time.
    Fresh(TokenResponse),
    /// An earlier or concurrent request's reply for the same idempotency key (this
    /// request's token was not kept).
    Replayed(TokenResponse),
}

pub(crate) async fn record_distribute_commit(
    ledger: &impl Ledger,
    dist: &impl Distributor,
    mut minted: Minted,
    max_ttl: Duration,
    idempotency_key: Option<&str>,
) -> Result<Issued, WireError> {
    if let Some(previous) = ledger.record(&minted, max_ttl, idempotency_key).await? {
        // A retry of a request that succeeded: the same token again.
        return Ok(Issued::Replayed(previous));
    }
    // The token string goes into the event (the reply holds its own copy).
    let event = DistEvent::Token {
        token: std::mem::take(&mut minted.token),
    };
    if let Err(e) = dist
        .publish(&minted.record.servers, &minted.token_id, &event)
        .await
    {
        ledger.forget(&minted.token_id, &minted.record).await;
        return Err(e);
    }
    // Only a recorded and distributed token that no sweeper withdrew is handed out, and only
    // it becomes the idempotent reply.
    match ledger.commit(&minted, idempotency_key).await? {
        Commit::Committed => Ok(Issued::Fresh(minted.response)),
        Commit::Withdrawn => {
            tracing::warn!(
                token_id = minted.token_id,
                "token no longer pending at its commit (a sweeper withdrew it, or a Redis failover lost it); not handed out"
            );
            // Usually a sweeper already withdrew it; but a failover that lost the record
            // with its pending entry leaves nobody else to tell the plugin servers. A second
            // revocation of a token is harmless.
            let _ = withdraw(ledger, dist, &minted.token_id, &minted.record).await;
            Err(WireError::new(
                ErrorCode::Unavailable,
                "token distribution took too long; try again",
            ))
        }
        Commit::Unreplicated => {
            // Handed out now, a failover could lose its record: plugin servers would accept
            // it while the gateway and introspection refuse it. Nobody has it yet: withdraw.
            tracing::warn!(
                token_id = minted.token_id,
                "token ledger replicas did not acknowledge the commit in time; token withdrawn"
            );
            let _ = withdraw(ledger, dist, &minted.token_id, &minted.record).await;
            Err(WireError::new(
                ErrorCode::Unavailable,
                "token ledger not replicated in time; try again",
            ))
        }
        Commit::Lost(winner) => {
            // A concurrent request with the same key finished first: send its token and
            // withdraw ours, which nobody has seen (if that fails, a later sweep does it).
            let _ = withdraw(ledger, dist, &minted.token_id, &minted.record).await;
            Ok(Issued::Replayed(winner))
        }
    }
}

/// Revokes a token that was never handed out (it lost an idempotency race, or its replica
/// died before committing it): the revocation is distributed, then the record deleted.
/// On failure the token goes back to pending, to be withdrawn by a later sweep.
pub(crate) async fn withdraw(
    ledger: &impl Ledger,
    dist: &impl Distributor,
    token_id: &str,
    record: &TokenRecord,
) -> Result<(), WireError> {
    let event = DistEvent::Revoke {
        token_ids: vec![token_id.to_owned()],
    };
    let msg_id = format!("withdraw.{token_id}");
    if let Err(e) = dist.publish(&record.servers, &msg_id, &event).await {
        tracing::warn!(error = %e.message, token_id, "could not withdraw a token nobody received");
        ledger.repend(token_id).await;
        return Err(e);
    }
    ledger.forget(token_id, record).await;
    tessera_runtime::metrics::record_token_withdrawn();
    Ok(())
}

/// Withdraws, every `every`, the tokens left pending past their deadline by any replica
/// (one that died between recording and committing): see tessera_ledger's writer.
pub(crate) async fn sweep(state: Arc<State>, every: Duration, shutdown: tessera_runtime::Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let claimed = match state.ledger.sweep(100).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e.message, "pending sweep skipped");
                continue;
            }
        };
        for (token_id, record) in claimed {
            // No record: forgotten after a failed distribution, or expired.
            if let Some(record) = record {
                tracing::warn!(token_id, "withdrawing a token its replica never committed");
                let _ = withdraw(&*state, &*state, &token_id, &record).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;
