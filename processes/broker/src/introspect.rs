//! `token.introspect`: `{active: true, ...}` only for a token signed by a published broker
//! key, unexpired (within the clock leeway), whose record is still in Redis (so neither
//! revoked nor forged), with the same hash.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey};
use tessera_protocol::jwt::{self, Reason, Rejection};
use tessera_protocol::now_unix;
use tessera_protocol::signing::token_hash;
use tessera_runtime::service::{Incoming, Reply};
use tessera_schemas::claims::{PLUGIN_TOKEN_ISSUER, PluginClaims};
use tessera_schemas::messages::{IntrospectRequest, IntrospectResponse, TOKEN_INTROSPECT};
use tessera_schemas::{ErrorCode, WireError};

use crate::State;

pub async fn handle(state: Arc<State>, req: Incoming) -> Result<Reply, WireError> {
    let body: IntrospectRequest = req.decode(TOKEN_INTROSPECT)?;
    if body.token.is_empty() {
        return Err(WireError::new(ErrorCode::BadRequest, "token is empty"));
    }
    let Some(claims) = verify(&state, &body.token) else {
        return Ok(Reply::msgpack(
            TOKEN_INTROSPECT,
            &IntrospectResponse::default(),
        ));
    };
    let active = match state.ledger.reader().get(&claims.jti).await? {
        Some(record) => record.token_hash == token_hash(&body.token),
        None => false,
    };
    if !active {
        jwt::count(jwt::Verifier::Broker, Reason::Revoked);
    }
    let reply = if active {
        IntrospectResponse {
            active: true,
            token_id: Some(claims.jti),
            account_id: Some(claims.sub),
            plugin_id: Some(claims.plugin_id),
            expires_at: Some(claims.exp),
            servers: claims.aud,
        }
    } else {
        IntrospectResponse::default()
    };
    Ok(Reply::msgpack(TOKEN_INTROSPECT, &reply))
}

/// Algorithm, key (published, not lapsed), signature, issuer and times (leeway included).
/// A refusal is counted (`verifier="broker"`) and answered as inactive.
fn verify(state: &State, token: &str) -> Option<PluginClaims> {
    match check(state, token) {
        Ok(c) => Some(c),
        Err(r) => {
            jwt::count(jwt::Verifier::Broker, r.reason);
            tracing::debug!(reason = r.reason.as_str(), message = %r.message, "introspection: token refused");
            None
        }
    }
}

fn check(state: &State, token: &str) -> Result<PluginClaims, Rejection> {
    let header = jwt::header(token)?;
    jwt::allowed_alg(&header, &[Algorithm::EdDSA])?;
    let now = now_unix();
    let published = header
        .kid
        .as_deref()
        .and_then(|kid| state.keys.get(kid))
        .filter(|k| k.usable_at(now))
        .ok_or_else(|| Rejection::new(Reason::Kid, "unknown or retired key"))?;
    let key = DecodingKey::from_jwk(&published.jwk)
        .map_err(|_| Rejection::new(Reason::Kid, "unusable key"))?;
    let leeway = state.config.clock_leeway;
    let mut v = jwt::validation(Algorithm::EdDSA, leeway);
    v.set_issuer(&[PLUGIN_TOKEN_ISSUER]);
    v.validate_aud = false;
    let claims = jwt::decode::<PluginClaims>(token, &key, &v)?;
    jwt::check_iat(claims.iat, now, leeway)?;
    Ok(claims)
}
