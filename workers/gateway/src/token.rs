//! Plugin-token verification: the broker's signature (its public keys from the watched
//! `KEYS` bucket, by `kid`), issuer and expiry.
//!
//! A verified token's claims are cached by the token's SHA-256 (which the signature check
//! computes anyway) until the token expires: a client app sends many packets with one token,
//! and an EdDSA verification costs more than the rest of the gateway's work. Whether the
//! token is still live (not revoked) is not cached: that is the Redis read on every packet.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tessera_core::watched::WatchedKv;
use tessera_schemas::claims::{PLUGIN_TOKEN_ISSUER, PluginClaims};
use tessera_schemas::{ErrorCode, WireError};

/// Cached tokens; past this the cache is emptied (simple, and bounded).
const CACHE_MAX: usize = 50_000;

pub struct Verifier {
    keys: WatchedKv<Jwk>,
    cache: RwLock<HashMap<String, Arc<PluginClaims>>>,
}

fn unauthenticated(why: &str) -> WireError {
    WireError::new(ErrorCode::Unauthenticated, format!("plugin token {why}"))
}

impl Verifier {
    pub fn new(keys: WatchedKv<Jwk>) -> Verifier {
        Verifier {
            keys,
            cache: RwLock::default(),
        }
    }

    /// The claims of a valid, unexpired plugin token signed by a published broker key.
    pub async fn verify(
        &self,
        token: &str,
        token_hash: &str,
        now: u64,
    ) -> Result<Arc<PluginClaims>, WireError> {
        if let Some(c) = self.cache.read().expect("lock poisoned").get(token_hash)
            && c.exp > now
        {
            return Ok(c.clone());
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| unauthenticated("is malformed"))?;
        let kid = header.kid.ok_or_else(|| unauthenticated("has no key id"))?;
        let jwk = self
            .keys
            .get_or_fetch(&kid)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "reading the keys bucket");
                WireError::new(ErrorCode::Unavailable, "signing keys unavailable")
            })?
            .ok_or_else(|| unauthenticated("is signed by an unknown key"))?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| unauthenticated("key is unusable"))?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[PLUGIN_TOKEN_ISSUER]);
        v.validate_aud = false;
        v.leeway = 0;
        let claims = jsonwebtoken::decode::<PluginClaims>(token, &key, &v)
            .map_err(|e| unauthenticated(&format!("is invalid ({e})")))?
            .claims;
        let claims = Arc::new(claims);
        let mut cache = self.cache.write().expect("lock poisoned");
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(token_hash.to_owned(), claims.clone());
        Ok(claims)
    }
}
