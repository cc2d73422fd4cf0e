//! Plugin-token verification: the broker's signature (its public keys from the watched
//! `KEYS` bucket, by `kid`, refused once their publication lapses), issuer and the times
//! (`exp`, `nbf`, `iat`, within the clock leeway).
//!
//! A verified token's claims are cached by the token's SHA-256 (which the signature check
//! computes anyway) until the token expires: a client app sends many packets with one token,
//! and an EdDSA verification costs more than the rest of the gateway's work. Whether the
//! token is still live (not revoked) is not cached: that is the Redis read on every packet.
//! A cached token never outlives its key: a key stays published until every token it
//! signed has expired (see `tessera_protocol::signing::PublishedKey`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};
use tessera_protocol::jwt::{self, Reason, Rejection};
use tessera_protocol::signing::PublishedKey;
use tessera_runtime::watched::WatchedKv;
use tessera_schemas::claims::PluginClaims;
use tessera_schemas::{ErrorCode, WireError};

/// Cached tokens; past this the cache is emptied (simple, and bounded).
const CACHE_MAX: usize = 50_000;

pub struct Verifier {
    keys: WatchedKv<PublishedKey>,
    leeway: Duration,
    cache: RwLock<HashMap<String, Arc<PluginClaims>>>,
}

/// Counts and answers a refused token (`verifier="gateway"`).
pub fn refuse(reason: Reason, message: impl Into<String>) -> WireError {
    Rejection::new(reason, message).into_wire(jwt::Verifier::Gateway)
}

impl Verifier {
    pub fn new(keys: WatchedKv<PublishedKey>, leeway: Duration) -> Verifier {
        Verifier {
            keys,
            leeway,
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
            && c.exp + self.leeway.as_secs() >= now
        {
            return Ok(c.clone());
        }
        let claims = self
            .verify_uncached(token, now)
            .await?
            .map_err(|r| r.into_wire(jwt::Verifier::Gateway))?;
        let claims = Arc::new(claims);
        let mut cache = self.cache.write().expect("lock poisoned");
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(token_hash.to_owned(), claims.clone());
        Ok(claims)
    }

    /// The outer error is the gateway's own trouble (`unavailable`), the inner one the
    /// token's.
    async fn verify_uncached(
        &self,
        token: &str,
        now: u64,
    ) -> Result<Result<PluginClaims, Rejection>, WireError> {
        let header = match jwt::header(token)
            .and_then(|h| jwt::allowed_alg(&h, &[Algorithm::EdDSA]).map(|_| h))
        {
            Ok(h) => h,
            Err(r) => return Ok(Err(r)),
        };
        let Some(kid) = header.kid else {
            return Ok(Err(Rejection::new(
                Reason::Kid,
                "plugin token has no key id",
            )));
        };
        let published = self.keys.get_or_fetch(&kid).await.map_err(|e| {
            tracing::warn!(error = %e, "reading the keys bucket");
            WireError::new(ErrorCode::Unavailable, "signing keys unavailable")
        })?;
        let Some(published) = published.filter(|k| k.usable_at(now)) else {
            return Ok(Err(Rejection::new(
                Reason::Kid,
                "plugin token is signed by an unknown or retired key",
            )));
        };
        let Ok(key) = DecodingKey::from_jwk(&published.jwk) else {
            return Ok(Err(Rejection::new(
                Reason::Kid,
                "plugin token key is unusable",
            )));
        };
        Ok(jwt::verify_plugin_claims(token, &key, self.leeway, now))
    }
}
