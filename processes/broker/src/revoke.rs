//! `token.revoke` (admin): by token id or by account. The revocation is distributed to the
//! plugin servers first (acked), then the records are removed; a failure in between is
//! answered `unavailable` and a retry is harmless. Every well-formed request, whatever its
//! outcome, becomes a `token.revoked` audit event.

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_ledger::keys::Shard;
use tessera_runtime::audit::outcome_of;
use tessera_runtime::service::{Incoming, Reply};
use tessera_schemas::audit::{AuditKind, AuditRole, AuditTarget, MAX_AUDIT_TOKEN_IDS};
use tessera_schemas::messages::{DistEvent, RevokeRequest, RevokeResponse, TOKEN_REVOKE};
use tessera_schemas::{ErrorCode, WireError};

use crate::State;

pub async fn handle(state: Arc<State>, req: Incoming) -> Result<Reply, WireError> {
    let body: RevokeRequest = req.decode(TOKEN_REVOKE)?;
    let result = revoke(&state, &body).await;
    // Every revocation is audited, failed ones too: an admin action. A malformed one
    // (`bad_request`: neither or both fields) decides nothing and is not.
    if let Err(e) = &result
        && e.code == ErrorCode::BadRequest
    {
        return Err(e.clone());
    }
    let mut event = state
        .auditor
        .event(AuditKind::TokenRevoked, outcome_of(&result));
    event.actor.role = Some(AuditRole::Admin);
    event.target = AuditTarget {
        token_ids: body.token_id.iter().cloned().collect(),
        account_id: body.account_id.clone(),
        ..Default::default()
    };
    if let Ok(ids) = &result {
        // By account: the ids revoked (the first hundred); by id: the one named.
        if body.account_id.is_some() {
            event.target.token_ids = ids.iter().take(MAX_AUDIT_TOKEN_IDS).cloned().collect();
        }
        event.target.count = Some(ids.len() as u32);
    }
    event.request_id = Some(req.request_id.clone());
    state.auditor.emit(event);
    let ids = result?;
    Ok(Reply::msgpack(
        TOKEN_REVOKE,
        &RevokeResponse {
            revoked: ids.len() as u32,
        },
    ))
}

/// Distributes the revocation, then deletes the records. Returns the revoked token ids.
async fn revoke(state: &State, body: &RevokeRequest) -> Result<Vec<String>, WireError> {
    let tokens = match (body.token_id.as_deref(), body.account_id.as_deref()) {
        (Some(id), None) if !id.is_empty() => match state.ledger.reader().get(id).await? {
            Some(record) => vec![(id.to_owned(), record)],
            None => Vec::new(),
        },
        (None, Some(account)) if !account.is_empty() => {
            state.ledger.reader().account_tokens(account).await?
        }
        _ => {
            return Err(WireError::new(
                ErrorCode::BadRequest,
                "give exactly one of token_id and account_id",
            ));
        }
    };

    if tokens.is_empty() {
        // Nothing (left) to revoke: an earlier attempt may have deleted it on the master
        // alone; with replica acks asked for, report done only once that is replicated.
        let shard = match (body.token_id.as_deref(), body.account_id.as_deref()) {
            (Some(id), _) => Shard::of_token(id),
            (_, Some(account)) => Shard::of_account(account),
            _ => unreachable!("checked above"),
        };
        state.ledger.settle(shard).await?;
        return Ok(Vec::new());
    }
    let mut by_server: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (id, record) in &tokens {
        for server in &record.servers {
            by_server.entry(server).or_default().push(id.clone());
        }
    }
    let event_id = format!("revoke.{}", uuid::Uuid::new_v4());
    for (server, ids) in by_server {
        state
            .dist
            .event(
                &[server.to_owned()],
                &event_id,
                &DistEvent::Revoke { token_ids: ids },
            )
            .await?;
    }
    let mut by_account: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (id, record) in &tokens {
        by_account
            .entry(&record.account_id)
            .or_default()
            .push(id.clone());
    }
    for (account, ids) in by_account {
        state.ledger.delete(account, &ids).await?;
    }
    tracing::info!(revoked = tokens.len(), "revoked");
    Ok(tokens.into_iter().map(|(id, _)| id).collect())
}
