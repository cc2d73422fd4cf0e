//! Plugin-token signatures, checked against the broker's published keys (JWKS).
//!
//! Keys are cached with the time until which the broker publishes them (`exp`, see
//! `tessera_protocol::signing::PublishedKey`): a cached key past it is not used, the keys are
//! fetched again, and a key the broker no longer lists (rotated out) is gone from the cache.
//! So a retired key is refused here as soon as it lapses, cached or not.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};
use tessera_protocol::jwt::{self, Reason, Rejection};
use tessera_protocol::now_unix;
use tessera_schemas::claims::{PLUGIN_TOKEN_ISSUER, PluginClaims};
use tessera_schemas::{ErrorCode, WireError};

use super::TokenInfo;
use crate::{Client, Error};

/// A published key: the decoding key and until when it may be used (`None`: no end).
struct Key {
    decoding: DecodingKey,
    expires_at: Option<u64>,
}

impl Key {
    fn usable_at(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|exp| now < exp)
    }
}

/// Verifies plugin tokens against the broker's published keys, fetching them again when a
/// token names a `kid` not seen yet (key rotation, a new broker replica) or one whose cached
/// publication has lapsed.
pub(super) struct Verifier {
    client: Client,
    server_id: String,
    leeway: Duration,
    keys: RwLock<HashMap<String, Key>>,
    /// When the keys were last fetched.
    fetched: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

/// At most one key fetch per this interval.
const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

impl Verifier {
    pub(super) fn new(client: Client, server_id: String, leeway: Duration) -> Verifier {
        Verifier {
            client,
            server_id,
            leeway,
            keys: RwLock::default(),
            fetched: tokio::sync::Mutex::new(None),
        }
    }

    pub(super) fn leeway(&self) -> Duration {
        self.leeway
    }

    fn has_usable(&self, kid: &str, now: u64) -> bool {
        self.keys
            .read()
            .expect("lock poisoned")
            .get(kid)
            .is_some_and(|k| k.usable_at(now))
    }

    /// Fetches the keys again, at most once per [`KEY_REFRESH_INTERVAL`]: tokens with
    /// made-up `kid`s must not turn into a flood of key requests to the broker. A request
    /// is answered by a fetch that started after it arrived, waiting (up to the interval)
    /// for the next one if need be: a key published a moment after the last fetch (a new
    /// replica, a rotation) must not be refused as unknown. The fetched set replaces the
    /// cache, so keys the broker dropped are dropped here too.
    async fn refresh(&self, kid: &str) -> Result<(), Error> {
        let arrived = tokio::time::Instant::now();
        let mut fetched = loop {
            let fetched = self.fetched.lock().await;
            if self.has_usable(kid, now_unix()) {
                return Ok(());
            }
            match *fetched {
                // A fetch that started after we arrived has already answered.
                Some(at) if at >= arrived => return Ok(()),
                Some(at) if at.elapsed() < KEY_REFRESH_INTERVAL => {
                    drop(fetched);
                    tokio::time::sleep_until(at + KEY_REFRESH_INTERVAL).await;
                }
                _ => break fetched,
            }
        };
        *fetched = Some(tokio::time::Instant::now());
        let published = self.client.published_keys().await?;
        let mut keys = HashMap::new();
        for p in &published {
            if let (Some(kid), Ok(decoding)) = (p.kid(), DecodingKey::from_jwk(&p.jwk)) {
                let key = Key {
                    decoding,
                    expires_at: p.expires_at,
                };
                keys.insert(kid.to_owned(), key);
            }
        }
        *self.keys.write().expect("lock poisoned") = keys;
        Ok(())
    }

    /// The claims of a distributed token, checked for issuer, audience (this server) and
    /// expiry but not (yet) for the signature.
    pub(super) fn claims(&self, token: &str) -> Result<TokenInfo, WireError> {
        let bad = |m: String| WireError::new(ErrorCode::Unauthenticated, m);
        let c = jsonwebtoken::dangerous::insecure_decode_claims::<PluginClaims>(token)
            .map_err(|e| bad(format!("plugin token claims: {e}")))?;
        if c.iss != PLUGIN_TOKEN_ISSUER || !c.aud.contains(&self.server_id) {
            return Err(bad("plugin token not issued for this server".into()));
        }
        Ok(TokenInfo {
            token_id: c.jti,
            account_id: c.sub,
            plugin_id: c.plugin_id,
            expires_at: c.exp,
        })
    }

    fn not_ours(&self) -> Rejection {
        Rejection::new(
            Reason::Server,
            format!("plugin token is not for plugin server {}", self.server_id),
        )
    }

    /// Verifies algorithm, key (published and not lapsed), signature, issuer, audience
    /// (this server) and the times (`exp`, `nbf`, `iat`, within the leeway).
    pub(super) async fn verify(&self, token: &str) -> Result<TokenInfo, VerifyError> {
        let header = jwt::header(token)?;
        jwt::allowed_alg(&header, &[Algorithm::EdDSA])?;
        let kid = header
            .kid
            .ok_or_else(|| Rejection::new(Reason::Kid, "plugin token has no kid"))?;
        // A token that names other servers only is refused before any key is fetched:
        // no signature could make it ours, and under load the fetch is what times out.
        if let Ok(c) = jsonwebtoken::dangerous::insecure_decode_claims::<PluginClaims>(token)
            && !c.aud.contains(&self.server_id)
        {
            return Err(self.not_ours().into());
        }
        if !self.has_usable(&kid, now_unix()) {
            self.refresh(&kid)
                .await
                .map_err(|e| VerifyError::KeysUnavailable(e.to_string()))?;
        }
        let claims = {
            let keys = self.keys.read().expect("lock poisoned");
            let key = keys
                .get(&kid)
                .filter(|k| k.usable_at(now_unix()))
                .ok_or(VerifyError::UnknownKey)?;
            let mut v = jwt::validation(Algorithm::EdDSA, self.leeway);
            v.set_issuer(&[PLUGIN_TOKEN_ISSUER]);
            v.validate_aud = false;
            jwt::decode::<PluginClaims>(token, &key.decoding, &v)?
        };
        // Audience by hand: jsonwebtoken would call a foreign server id "audience".
        if !claims.aud.contains(&self.server_id) {
            return Err(self.not_ours().into());
        }
        jwt::check_iat(claims.iat, now_unix(), self.leeway)?;
        Ok(TokenInfo {
            token_id: claims.jti,
            account_id: claims.sub,
            plugin_id: claims.plugin_id,
            expires_at: claims.exp,
        })
    }
}

/// Why [`Verifier::verify`] failed.
#[derive(Debug)]
pub(super) enum VerifyError {
    Rejected(Rejection),
    UnknownKey,
    KeysUnavailable(String),
}

impl From<Rejection> for VerifyError {
    fn from(r: Rejection) -> Self {
        VerifyError::Rejected(r)
    }
}

/// Counts a rejection (`verifier="plugin_server"`).
impl From<VerifyError> for WireError {
    fn from(e: VerifyError) -> WireError {
        let rejected = match e {
            VerifyError::Rejected(r) => r,
            VerifyError::UnknownKey => Rejection::new(
                Reason::Kid,
                "plugin token signed by an unknown or retired key",
            ),
            VerifyError::KeysUnavailable(m) => {
                return WireError::new(ErrorCode::Unavailable, format!("fetching keys: {m}"));
            }
        };
        rejected.into_wire(jwt::Verifier::PluginServer)
    }
}
