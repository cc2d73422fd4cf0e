//! The last step of `token.request`: the audit event, queued and never awaited.

use tessera_runtime::service::Incoming;
use tessera_schemas::audit::{AuditActor, AuditKind, AuditOutcome, AuditRole, AuditTarget};
use tessera_schemas::messages::{TokenResponse, VerifyResponse};
use tessera_schemas::{ErrorCode, WireError};

use crate::State;

/// A token handed out for the first time (an idempotent replay returns one whose issuance
/// is already on record, so it is not audited again).
pub(super) fn issued(state: &State, req: &Incoming, response: &TokenResponse) {
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
}

/// A token request refused for its credentials (`unauthenticated`), its plugin (`not_found`)
/// or an expired account token. Outages (`unavailable`) and malformed requests are not
/// decisions about anyone, so they are not audited.
pub(super) fn refused(
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
