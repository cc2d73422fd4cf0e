//! `token.request`: seed 000 steps 2-4.
//!
//! Order matters: auth result first (nothing happens for an unauthenticated caller); then
//! the record in Redis, in the same round trip as reading any earlier reply to the same
//! idempotency key (a live one is answered instead); then distribution, acked by
//! JetStream; then the commit, which takes the token out of the pending set and remembers
//! the idempotent reply in one round trip; then the audit event is queued (never awaited);
//! then the reply. A failed distribution removes the record again, and a replica that dies
//! between record and commit leaves a pending token that a sweeper withdraws (revoked and
//! deleted) after `TESSERA_BROKER_PENDING_DEADLINE`: no valid token stays stored without
//! being distributed, or distributed without being stored (`store` module doc).
//!
//! Binding: where the plugin's route says so (`bind_device`, `bind_ip`), the token's claims
//! carry the device id and/or user IP of the request, and the gateway refuses packets whose
//! verification info differs. A field the route does not bind is checked for shape but
//! otherwise ignored.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tessera_ledger::keys::idempotency_binding;
use tessera_protocol::rpc::{self, RpcError};
use tessera_protocol::{now_unix, signing::token_hash};
use tessera_runtime::service::{Incoming, Reply};
use tessera_schemas::audit::{AuditActor, AuditKind, AuditOutcome, AuditRole, AuditTarget};
use tessera_schemas::claims::{PLUGIN_TOKEN_ISSUER, PluginClaims};
use tessera_schemas::data::device_id_ok;
use tessera_schemas::messages::{
    AUTH_VERIFY, DistEvent, TOKEN_REQUEST, TokenRequest, TokenResponse, VerifyRequest,
    VerifyResponse,
};
use tessera_schemas::{ErrorCode, WireError, ids};

use crate::State;
use crate::distribute;
use tessera_ledger::{Commit, TokenRecord};

const MAX_IDEMPOTENCY_KEY: usize = 128;

pub async fn handle(state: Arc<State>, req: Incoming) -> Result<Reply, WireError> {
    let body: TokenRequest = req.decode(TOKEN_REQUEST)?;
    ids::check("plugin_id", &body.plugin_id)
        .map_err(|e| WireError::new(ErrorCode::BadRequest, e.to_string()))?;
    if body.account_token.is_empty() {
        return Err(WireError::new(
            ErrorCode::BadRequest,
            "account_token is empty",
        ));
    }
    let idem = body.idempotency_key.as_deref();
    if let Some(k) = idem
        && (k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY)
    {
        return Err(WireError::new(
            ErrorCode::BadRequest,
            "idempotency_key must be 1-128 bytes",
        ));
    }

    // Shapes first, before any round trip; the canonical IP text is what a token carries.
    if let Some(d) = &body.device_id
        && !device_id_ok(d)
    {
        return Err(WireError::new(
            ErrorCode::BadRequest,
            "device_id must be 1-128 of A-Z a-z 0-9 - _ . :",
        ));
    }
    let user_ip = match &body.user_ip {
        Some(ip) => Some(
            ip.parse::<IpAddr>()
                .map_err(|_| WireError::new(ErrorCode::BadRequest, "user_ip is not an IP address"))?
                .to_string(),
        ),
        None => None,
    };

    let account = verify_account(&state, &body.account_token, &req)
        .await
        .inspect_err(|e| audit_refused(&state, &req, &body.plugin_id, None, e))?;

    let route = state
        .routes
        .get_or_fetch(&body.plugin_id)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "routes lookup failed");
            WireError::new(ErrorCode::Unavailable, "routes unavailable")
        })?;
    let route = match route {
        Some(r) if !r.servers.is_empty() => r,
        _ => {
            let err = WireError::new(
                ErrorCode::NotFound,
                format!("unknown plugin {:?}: no route", body.plugin_id),
            );
            audit_refused(&state, &req, &body.plugin_id, Some(&account), &err);
            return Err(err);
        }
    };
    let servers = route.servers.clone();
    let device_id = bound(
        "device_id",
        route.bind_device,
        body.device_id.clone(),
        &body.plugin_id,
    )?;
    let user_ip = bound("user_ip", route.bind_ip, user_ip, &body.plugin_id)?;
    let binding = idempotency_binding(device_id.as_deref(), user_ip.as_deref());

    let now = now_unix();
    // A plugin token never outlives the account token it was minted from.
    let expires_at = (now + state.config.token_ttl.as_secs()).min(account.expires_at);
    if expires_at <= now {
        // Within the leeway for `auth.verify`, but a token minted now would be born dead.
        let err = tessera_protocol::jwt::Rejection::new(
            tessera_protocol::jwt::Reason::Expired,
            "account token expired",
        )
        .into_wire(tessera_protocol::jwt::Verifier::Broker);
        audit_refused(&state, &req, &body.plugin_id, Some(&account), &err);
        return Err(err);
    }
    // Never mint a token that could outlive the publication of its key (see `keyring`):
    // verifiers would refuse it before it expires.
    if state.published.until() <= expires_at + state.config.clock_leeway.as_secs() {
        tracing::warn!("signing key publication not renewed; refusing to mint");
        return Err(WireError::new(
            ErrorCode::Unavailable,
            "signing key not published",
        ));
    }
    let token_id = uuid::Uuid::new_v4().to_string();
    let claims = PluginClaims {
        iss: PLUGIN_TOKEN_ISSUER.to_owned(),
        sub: account.account_id.clone(),
        plugin_id: body.plugin_id.clone(),
        aud: servers.clone(),
        jti: token_id.clone(),
        iat: now,
        exp: expires_at,
        device_id,
        user_ip,
    };
    let token = state
        .config
        .signing_key
        .sign(&claims)
        .map_err(|e| WireError::new(ErrorCode::Internal, format!("signing failed: {e}")))?;
    let record = TokenRecord {
        account_id: account.account_id.clone(),
        plugin_id: body.plugin_id.clone(),
        servers: servers.clone(),
        token_hash: token_hash(&token),
        expires_at,
    };
    let response = TokenResponse {
        token: token.clone(),
        token_id: token_id.clone(),
        plugin_id: body.plugin_id,
        account_id: account.account_id,
        expires_at,
        servers: servers.clone(),
    };

    // The record outlives the token by the clock leeway: verifiers accept a token that
    // long after its `exp`, and the record is what says it is not revoked.
    let ttl = Duration::from_secs(expires_at - now) + state.config.clock_leeway;
    if let Some(previous) = state
        .ledger
        .record(
            &token_id,
            &record,
            ttl,
            state.config.token_ttl,
            idem,
            &binding,
        )
        .await?
    {
        // A retry of a request that succeeded: the same token again (ours was not kept).
        return Ok(Reply::msgpack(TOKEN_REQUEST, &previous));
    }
    if let Err(e) =
        distribute::publish(&state, &servers, &token_id, &DistEvent::Token { token }).await
    {
        state.ledger.forget(&token_id, &record).await;
        return Err(e);
    }
    // The commit: only a recorded and distributed token that no sweeper withdrew is handed
    // out, and only it becomes the idempotent reply (`store` module doc).
    match state
        .ledger
        .commit(&token_id, idem.map(|k| (k, binding.as_str(), &response)))
        .await?
    {
        Commit::Committed => {}
        Commit::Withdrawn => {
            tracing::warn!(
                token_id,
                "distribution outlasted the pending deadline; token withdrawn"
            );
            return Err(WireError::new(
                ErrorCode::Unavailable,
                "token distribution took too long; try again",
            ));
        }
        Commit::Lost(winner) => {
            // A concurrent request with the same key finished first: send its token and
            // withdraw ours, which nobody has seen (if that fails, a later sweep does it).
            let _ = withdraw(&state, &token_id, &record).await;
            return Ok(Reply::msgpack(TOKEN_REQUEST, &winner));
        }
    }
    // Only a token handed out for the first time is audited: an idempotent replay (above)
    // returns one whose issuance is already on record.
    let mut event = state
        .auditor
        .event(AuditKind::TokenIssued, AuditOutcome::Ok);
    event.actor = AuditActor {
        role: Some(AuditRole::Client),
        account_id: Some(response.account_id.clone()),
        ..Default::default()
    };
    event.target = AuditTarget {
        plugin_id: Some(response.plugin_id.clone()),
        token_ids: vec![response.token_id.clone()],
        servers: response.servers.clone(),
        ..Default::default()
    };
    event.request_id = Some(req.request_id.clone());
    state.auditor.emit(event);
    Ok(Reply::msgpack(TOKEN_REQUEST, &response))
}

/// A token request refused for its credentials (`unauthenticated`), its plugin (`not_found`)
/// or an expired account token. Outages (`unavailable`) and malformed requests are not
/// decisions about anyone, so they are not audited.
fn audit_refused(
    state: &State,
    req: &Incoming,
    plugin_id: &str,
    account: Option<&VerifyResponse>,
    err: &WireError,
) {
    if !matches!(err.code, ErrorCode::Unauthenticated | ErrorCode::NotFound) {
        return;
    }
    let mut event = state
        .auditor
        .event(AuditKind::TokenRefused, AuditOutcome::Error(err.code));
    event.actor = AuditActor {
        role: Some(AuditRole::Client),
        account_id: account.map(|a| a.account_id.clone()),
        ..Default::default()
    };
    event.target = AuditTarget {
        plugin_id: Some(plugin_id.to_owned()),
        ..Default::default()
    };
    event.request_id = Some(req.request_id.clone());
    state.auditor.emit(event);
}

/// The value a token is bound to for one field: the request's value where the route binds
/// the field (missing: `bad_request`), nothing where it does not.
fn bound(
    field: &str,
    binds: bool,
    value: Option<String>,
    plugin_id: &str,
) -> Result<Option<String>, WireError> {
    match (binds, value) {
        (false, _) => Ok(None),
        (true, Some(v)) => Ok(Some(v)),
        (true, None) => Err(WireError::new(
            ErrorCode::BadRequest,
            format!("{field} is required: plugin {plugin_id:?} binds its tokens to it"),
        )),
    }
}

/// Revokes a token that was never handed out (it lost an idempotency race, or its replica
/// died before committing it): the revocation is distributed, then the record deleted.
/// On failure the record stays, to be withdrawn by a later sweep.
pub(crate) async fn withdraw(
    state: &State,
    token_id: &str,
    record: &TokenRecord,
) -> Result<(), WireError> {
    let event = DistEvent::Revoke {
        token_ids: vec![token_id.to_owned()],
    };
    let msg_id = format!("withdraw.{token_id}");
    if let Err(e) = distribute::publish(state, &record.servers, &msg_id, &event).await {
        tracing::warn!(error = %e.message, token_id, "could not withdraw a token nobody received");
        state.ledger.repend(token_id).await;
        return Err(e);
    }
    state.ledger.forget(token_id, record).await;
    tessera_runtime::metrics::record_token_withdrawn();
    Ok(())
}

/// Withdraws, every `every`, the tokens left pending past their deadline by any replica
/// (one that died between recording and committing): see the `store` module doc.
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
                let _ = withdraw(&state, &token_id, &record).await;
            }
        }
    }
}

/// Seed 000 step 2: the auth result from the account server (the auth worker), or the one
/// it gave for this account token moments ago (see `auth_cache`).
async fn verify_account(
    state: &State,
    account_token: &str,
    parent: &Incoming,
) -> Result<VerifyResponse, WireError> {
    if let Some(hit) = state.auth_cache.get(account_token) {
        return Ok(hit);
    }
    let req = VerifyRequest {
        account_token: account_token.to_owned(),
    };
    let result = rpc::request_in::<_, VerifyResponse>(
        &state.nats,
        state.subjects.auth_verify(),
        AUTH_VERIFY,
        &req,
        state.config.auth_timeout,
        Some(parent.parent()),
    )
    .await;
    if let Ok(ok) = &result {
        state.auth_cache.put(account_token, ok);
    }
    result.map_err(|e| match e {
        RpcError::Wire(w)
            if matches!(w.code, ErrorCode::Unauthenticated | ErrorCode::BadRequest) =>
        {
            WireError::new(ErrorCode::Unauthenticated, w.message)
        }
        other => {
            tracing::warn!(error = %other, "auth result unavailable");
            WireError::new(ErrorCode::Unavailable, "auth service unavailable")
        }
    })
}
