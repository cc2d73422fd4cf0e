//! Plugin-token signatures, checked against the broker's published keys (JWKS).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tessera_schemas::claims::{PLUGIN_TOKEN_ISSUER, PluginClaims};
use tessera_schemas::{ErrorCode, WireError};

use super::TokenInfo;
use crate::{Client, Error};

/// Verifies plugin tokens against the broker's published keys, fetching them again when a
/// token names a `kid` not seen yet (key rotation, a new broker replica).
pub(super) struct Verifier {
    client: Client,
    server_id: String,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// When the keys were last fetched.
    fetched: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

/// At most one key fetch per this interval.
const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

impl Verifier {
    pub(super) fn new(client: Client, server_id: String) -> Verifier {
        Verifier {
            client,
            server_id,
            keys: RwLock::default(),
            fetched: tokio::sync::Mutex::new(None),
        }
    }

    /// Fetches the keys again, at most once per [`KEY_REFRESH_INTERVAL`]: tokens with
    /// made-up `kid`s must not turn into a flood of key requests to the broker.
    async fn refresh(&self, kid: &str) -> Result<(), Error> {
        let mut fetched = self.fetched.lock().await;
        if self.keys.read().expect("lock poisoned").contains_key(kid)
            || fetched.is_some_and(|at| at.elapsed() < KEY_REFRESH_INTERVAL)
        {
            return Ok(());
        }
        *fetched = Some(tokio::time::Instant::now());
        let set: JwkSet = self.client.keys().await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)) {
                keys.insert(kid, key);
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

    /// Verifies signature, issuer, audience (this server) and expiry.
    pub(super) async fn verify(&self, token: &str) -> Result<TokenInfo, VerifyError> {
        let bad = |m: &str| {
            VerifyError::Rejected(WireError::new(ErrorCode::Unauthenticated, m.to_owned()))
        };
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| bad("malformed plugin token"))?;
        let kid = header.kid.ok_or_else(|| bad("plugin token has no kid"))?;
        if !self.keys.read().expect("lock poisoned").contains_key(&kid) {
            self.refresh(&kid)
                .await
                .map_err(|e| VerifyError::KeysUnavailable(e.to_string()))?;
        }
        let keys = self.keys.read().expect("lock poisoned");
        let key = keys.get(&kid).ok_or(VerifyError::UnknownKey)?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[PLUGIN_TOKEN_ISSUER]);
        v.set_audience(&[&self.server_id]);
        v.leeway = 5;
        let claims = jsonwebtoken::decode::<PluginClaims>(token, key, &v)
            .map_err(|e| bad(&format!("plugin token rejected: {e}")))?
            .claims;
        Ok(TokenInfo {
            token_id: claims.jti,
            account_id: claims.sub,
            plugin_id: claims.plugin_id,
            expires_at: claims.exp,
        })
    }
}

/// Why [`Verifier::verify`] failed. The distribution path retries the last two (a key being
/// rotated in, the broker restarting); the request path answers them at once.
#[derive(Debug)]
pub(super) enum VerifyError {
    Rejected(WireError),
    UnknownKey,
    KeysUnavailable(String),
}

impl From<VerifyError> for WireError {
    fn from(e: VerifyError) -> WireError {
        match e {
            VerifyError::Rejected(w) => w,
            VerifyError::UnknownKey => WireError::new(
                ErrorCode::Unauthenticated,
                "plugin token signed by an unknown key",
            ),
            VerifyError::KeysUnavailable(m) => {
                WireError::new(ErrorCode::Unavailable, format!("fetching keys: {m}"))
            }
        }
    }
}
