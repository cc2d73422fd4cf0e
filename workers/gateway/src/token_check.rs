//! The pure part of plugin-token verification: the key id a token names, and its signature,
//! issuer and expiry under a given key. No I/O and no async, and nothing from this crate:
//! the fuzz target `plugin_token` (fuzz/) compiles this very file, so what it fuzzes is
//! what the gateway runs. [`crate::token`] adds the key lookup and the cache.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tessera_schemas::claims::{PLUGIN_TOKEN_ISSUER, PluginClaims};
use tessera_schemas::{ErrorCode, WireError};

pub fn unauthenticated(why: &str) -> WireError {
    WireError::new(ErrorCode::Unauthenticated, format!("plugin token {why}"))
}

/// The `kid` of a token's header: which broker key must have signed it.
pub fn token_kid(token: &str) -> Result<String, WireError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| unauthenticated("is malformed"))?;
    header.kid.ok_or_else(|| unauthenticated("has no key id"))
}

/// Signature (EdDSA only: the header's `alg` is never trusted), issuer and expiry (no
/// leeway) of a plugin token under `key`. The audience is the plugin server's business.
pub fn verify_plugin_token(token: &str, key: &DecodingKey) -> Result<PluginClaims, WireError> {
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_issuer(&[PLUGIN_TOKEN_ISSUER]);
    v.validate_aud = false;
    v.leeway = 0;
    jsonwebtoken::decode::<PluginClaims>(token, key, &v)
        .map(|data| data.claims)
        .map_err(|e| unauthenticated(&format!("is invalid ({e})")))
}
