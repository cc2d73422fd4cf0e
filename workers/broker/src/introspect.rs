//! `token.introspect`: `{active: true, ...}` only for a token we signed, unexpired, whose
//! record is still in Redis (so neither revoked nor forged), with the same hash.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tessera_core::service::{Incoming, Reply};
use tessera_core::signing::token_hash;
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
    let active = match state.store.get(&claims.jti).await? {
        Some(record) => record.token_hash == token_hash(&body.token),
        None => false,
    };
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

/// Signature (by any published broker key), issuer and expiry.
fn verify(state: &State, token: &str) -> Option<PluginClaims> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    let jwk = state.keys.get(header.kid.as_deref()?)?;
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_issuer(&[PLUGIN_TOKEN_ISSUER]);
    v.validate_aud = false;
    v.leeway = 0;
    jsonwebtoken::decode::<PluginClaims>(token, &key, &v)
        .ok()
        .map(|d| d.claims)
}
