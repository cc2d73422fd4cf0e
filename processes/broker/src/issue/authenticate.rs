//! Step 2 of `token.request`: the auth result from the account server (the auth worker's
//! `auth.verify`), or the one it gave for this account token moments ago (`auth_cache`).
//! Nothing else happens for a caller who is not authenticated.

use tessera_protocol::rpc::{self, RpcError};
use tessera_runtime::service::Incoming;
use tessera_schemas::messages::{AUTH_VERIFY, VerifyRequest, VerifyResponse};
use tessera_schemas::{ErrorCode, WireError};

use crate::State;

pub(super) async fn authenticate(
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
        // The account token is bad: that is the caller's problem, whatever the auth
        // worker called it.
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
