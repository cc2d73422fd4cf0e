//! Plugin-token verification: the broker's signature (its public keys from the watched
//! `KEYS` bucket, by `kid`), issuer and expiry.
//!
//! A verified token's claims are cached by the token's SHA-256 (which the signature check
//! computes anyway) until the token expires: a client app sends many packets with one token,
//! and an EdDSA verification costs more than the rest of the gateway's work. Whether the
//! token is still live (not revoked) is not cached: that is the Redis read on every packet.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::Jwk;
use tessera_core::watched::WatchedKv;
use tessera_schemas::claims::PluginClaims;
use tessera_schemas::{ErrorCode, WireError};

use crate::token_check::{token_kid, unauthenticated, verify_plugin_token};

/// Cached tokens; past this the cache is emptied (simple, and bounded).
const CACHE_MAX: usize = 50_000;

pub struct Verifier {
    keys: WatchedKv<Jwk>,
    cache: RwLock<HashMap<String, Arc<PluginClaims>>>,
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
        let kid = token_kid(token)?;
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
        let claims = Arc::new(verify_plugin_token(token, &key)?);
        let mut cache = self.cache.write().expect("lock poisoned");
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(token_hash.to_owned(), claims.clone());
        Ok(claims)
    }
}
