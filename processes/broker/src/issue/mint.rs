//! Steps 3 and 4 of `token.request`: route and bind (which plugin servers serve the plugin,
//! and what the token is bound to), then mint (claims, expiry, signature, and the ledger
//! record that goes with it).

use std::time::Duration;

use tessera_ledger::TokenRecord;
use tessera_ledger::keys::idempotency_binding;
use tessera_protocol::jwt::{Reason, Rejection, Verifier};
use tessera_protocol::{now_unix, signing::token_hash};
use tessera_schemas::claims::{PLUGIN_TOKEN_ISSUER, PluginClaims};
use tessera_schemas::messages::{TokenResponse, VerifyResponse};
use tessera_schemas::{ErrorCode, WireError};

use super::validate::Validated;
use crate::State;

/// Where a token goes and what it is bound to.
pub(super) struct Bound {
    pub servers: Vec<String>,
    pub device_id: Option<String>,
    pub user_ip: Option<String>,
    /// The binding as the idempotency key sees it: a retry for another device or IP never
    /// gets this request's token.
    pub binding: String,
}

/// The plugin's route (no route, or one with no server: `not_found`) and the values the
/// token is bound to: the request's value where the route binds the field (missing:
/// `bad_request`), nothing where it does not.
pub(super) async fn route_and_bind(state: &State, req: &Validated) -> Result<Bound, WireError> {
    let route = state
        .routes
        .get_or_fetch(&req.plugin_id)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "routes lookup failed");
            WireError::new(ErrorCode::Unavailable, "routes unavailable")
        })?;
    let route = match route {
        Some(r) if !r.servers.is_empty() => r,
        _ => {
            return Err(WireError::new(
                ErrorCode::NotFound,
                format!("unknown plugin {:?}: no route", req.plugin_id),
            ));
        }
    };
    let device_id = bound(
        "device_id",
        route.bind_device,
        &req.device_id,
        &req.plugin_id,
    )?;
    let user_ip = bound("user_ip", route.bind_ip, &req.user_ip, &req.plugin_id)?;
    let binding = idempotency_binding(device_id.as_deref(), user_ip.as_deref());
    Ok(Bound {
        servers: route.servers.clone(),
        device_id,
        user_ip,
        binding,
    })
}

fn bound(
    field: &str,
    binds: bool,
    value: &Option<String>,
    plugin_id: &str,
) -> Result<Option<String>, WireError> {
    match (binds, value) {
        (false, _) => Ok(None),
        (true, Some(v)) => Ok(Some(v.clone())),
        (true, None) => Err(WireError::new(
            ErrorCode::BadRequest,
            format!("{field} is required: plugin {plugin_id:?} binds its tokens to it"),
        )),
    }
}

/// A signed token with its ledger record and the reply that hands it out.
pub(crate) struct Minted {
    pub token_id: String,
    pub token: String,
    pub record: TokenRecord,
    pub response: TokenResponse,
    /// How long the record lives: the token's life plus the clock leeway (verifiers accept a
    /// token that long after its `exp`, and the record is what says it is not revoked).
    pub record_ttl: Duration,
    /// See [`Bound::binding`].
    pub binding: String,
}

pub(super) fn mint(
    state: &State,
    plugin_id: &str,
    account: &VerifyResponse,
    bound: Bound,
) -> Result<Minted, WireError> {
    let now = now_unix();
    // A plugin token never outlives the account token it was minted from.
    let expires_at = (now + state.config.token_ttl.as_secs()).min(account.expires_at);
    if expires_at <= now {
        // Within the leeway for `auth.verify`, but a token minted now would be born dead.
        return Err(
            Rejection::new(Reason::Expired, "account token expired").into_wire(Verifier::Broker)
        );
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
    // The id names the account's ledger shard, so whoever holds only the id finds the
    // record (tessera_ledger::keys, "Shards").
    let token_id = tessera_ledger::keys::new_token_id(&account.account_id);
    let record = TokenRecord {
        account_id: account.account_id.clone(),
        plugin_id: plugin_id.to_owned(),
        servers: bound.servers,
        token_hash: String::new(),
        expires_at,
        issued_at: now,
        device_id: bound.device_id,
        user_ip: bound.user_ip,
    };
    let (token, record) = sign(state, &token_id, record)?;
    let response = TokenResponse {
        token: token.clone(),
        token_id: token_id.clone(),
        plugin_id: plugin_id.to_owned(),
        account_id: account.account_id.clone(),
        expires_at,
        servers: record.servers.clone(),
    };
    Ok(Minted {
        token_id,
        token,
        record,
        response,
        record_ttl: Duration::from_secs(expires_at - now) + state.config.clock_leeway,
        binding: bound.binding,
    })
}

/// The claims of the token a record stands for.
fn claims(token_id: &str, record: &TokenRecord) -> PluginClaims {
    PluginClaims {
        iss: PLUGIN_TOKEN_ISSUER.to_owned(),
        sub: record.account_id.clone(),
        plugin_id: record.plugin_id.clone(),
        aud: record.servers.clone(),
        jti: token_id.to_owned(),
        iat: record.issued_at,
        exp: record.expires_at,
        device_id: record.device_id.clone(),
        user_ip: record.user_ip.clone(),
    }
}

/// Signs the token `record` stands for, and fills in the record's hash of it.
fn sign(
    state: &State,
    token_id: &str,
    mut record: TokenRecord,
) -> Result<(String, TokenRecord), WireError> {
    let token = state
        .config
        .signing_key
        .sign(&claims(token_id, &record))
        .map_err(|e| WireError::new(ErrorCode::Internal, format!("signing failed: {e}")))?;
    record.token_hash = token_hash(&token);
    Ok((token, record))
}

/// The reply an earlier request got, for a retry with the same idempotency key: its token
/// signed again from its record. Ed25519 signatures are deterministic (RFC 8032), so the same
/// claims and key give the same token, byte for byte, and the record's hash confirms it. So
/// Redis never holds a bearer token, not even for a retry. `None` when the token cannot be
/// reproduced here (signed with a key this replica does not hold, after a rotation, or
/// recorded before the record kept its claims): the retry then gets a fresh token.
pub(crate) fn reproduce(
    state: &State,
    token_id: &str,
    record: &TokenRecord,
) -> Option<TokenResponse> {
    let (token, again) = sign(state, token_id, record.clone()).ok()?;
    if again.token_hash != record.token_hash {
        tracing::info!(
            token_id,
            "an idempotent retry's earlier token cannot be signed again here; issuing a fresh one"
        );
        return None;
    }
    Some(TokenResponse {
        token,
        token_id: token_id.to_owned(),
        plugin_id: record.plugin_id.clone(),
        account_id: record.account_id.clone(),
        expires_at: record.expires_at,
        servers: record.servers.clone(),
    })
}
