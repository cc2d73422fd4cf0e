//! `auth.verify`: the auth result for an account token.
//!
//! Our own tokens are found by `kid`; external ones by `iss`, then checked against that
//! issuer's keys and algorithm allow-list. Anything else (no `kid` we know, `alg: none`, an
//! HMAC algorithm, an issuer nobody configured) is `unauthenticated`, with its reason, and
//! counted (`tessera_tokens_rejected_total{verifier="auth"}`). An issuer's keys come from
//! files read at start, or by URL ([`remote`]), fetched when needed; a token whose issuer's
//! keys cannot be had is `unavailable` (retryable), not refused.

mod remote;

use std::sync::Arc;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use remote::{KeyList, RemoteKeys};
use serde::Deserialize;
use tessera_protocol::jwt::{self, Reason, Rejection};
use tessera_protocol::signing::SigningKey;
use tessera_runtime::service::{Incoming, Reply};
use tessera_schemas::claims::{ACCOUNT_TOKEN_AUDIENCE, AccountClaims};
use tessera_schemas::messages::{AUTH_VERIFY, VerifyRequest, VerifyResponse};
use tessera_schemas::{ErrorCode, WireError};

use crate::State;
use crate::config::{AuthConfig, ExternalIssuer};

pub async fn handle(state: Arc<State>, req: Incoming) -> Result<Reply, WireError> {
    let body: VerifyRequest = req.decode(AUTH_VERIFY)?;
    let result = if !state.verifier.may_fetch() {
        state.verifier.verify(&body.account_token)?
    } else if let Some(hit) = state.verifier.cached(&body.account_token) {
        hit
    } else {
        // A first verification may fetch an issuer's keys: off the async workers.
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.verifier.verify(&body.account_token))
            .await
            .map_err(|_| WireError::new(ErrorCode::Internal, "verification failed"))??
    };
    Ok(Reply::msgpack(AUTH_VERIFY, &result))
}

struct External {
    name: String,
    issuer: String,
    algorithms: Vec<Algorithm>,
    audience: Option<String>,
    keys: Keys,
}

enum Keys {
    /// Read from files at start.
    Fixed(KeyList),
    /// By URL, fetched and cached.
    Remote(RemoteKeys),
}

/// Why a token was not verified.
enum Refusal {
    Rejected(Rejection),
    /// The issuer's keys cannot be had now (unreachable, nothing cached).
    KeysUnavailable {
        issuer: String,
        why: String,
    },
}

impl From<Rejection> for Refusal {
    fn from(r: Rejection) -> Refusal {
        Refusal::Rejected(r)
    }
}

pub struct Verifier {
    own: Arc<SigningKey>,
    own_issuer: String,
    externals: Vec<External>,
    /// Clock leeway on `exp`, `nbf` and `iat`.
    leeway: std::time::Duration,
    /// Auth results of account tokens already verified, by SHA-256 of the token, until the
    /// token expires. A client logs in once and asks for many plugin tokens: without this,
    /// every one of them costs an EdDSA verification of the same account token.
    cache: std::sync::Mutex<std::collections::HashMap<[u8; 32], VerifyResponse>>,
}

/// Entries kept at most; the cache is emptied when full (account tokens live an hour, so
/// it refills with the ones in use).
const CACHE_MAX: usize = 100_000;

#[derive(Deserialize)]
struct Peek {
    #[serde(default)]
    iss: Option<String>,
}

#[derive(Deserialize)]
struct ExternalClaims {
    sub: String,
    exp: u64,
    #[serde(default)]
    iat: Option<u64>,
}

impl Verifier {
    pub fn new(config: &AuthConfig) -> anyhow::Result<Verifier> {
        let externals = config
            .external_issuers
            .iter()
            .map(load_external)
            .collect::<anyhow::Result<_>>()?;
        Ok(Verifier {
            own: config.signing_key.clone(),
            own_issuer: config.issuer.clone(),
            externals,
            leeway: config.clock_leeway,
            cache: Default::default(),
        })
    }

    /// Whether a verification may fetch keys over HTTP (blocking).
    pub fn may_fetch(&self) -> bool {
        self.externals
            .iter()
            .any(|e| matches!(e.keys, Keys::Remote(_)))
    }

    /// The auth result of this token if it was verified before and has not expired.
    pub fn cached(&self, token: &str) -> Option<VerifyResponse> {
        let now = tessera_protocol::now_unix();
        self.cache
            .lock()
            .expect("lock poisoned")
            .get(&cache_key(token))
            .filter(|hit| hit.expires_at + self.leeway.as_secs() >= now)
            .cloned()
    }

    /// The auth result for an account token: from the cache when this token was verified
    /// before and has not expired, else verified now (blocking when [`Self::may_fetch`]).
    pub fn verify(&self, token: &str) -> Result<VerifyResponse, WireError> {
        if let Some(hit) = self.cached(token) {
            return Ok(hit);
        }
        let key = cache_key(token);
        let result = self.verify_uncached(token)?;
        let mut cache = self.cache.lock().expect("lock poisoned");
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, result.clone());
        Ok(result)
    }

    fn verify_uncached(&self, token: &str) -> Result<VerifyResponse, WireError> {
        if token.is_empty() {
            return Err(WireError::new(
                ErrorCode::BadRequest,
                "account_token is empty",
            ));
        }
        self.check(token).map_err(|refusal| match refusal {
            Refusal::Rejected(r) => r.into_wire(jwt::Verifier::Auth),
            Refusal::KeysUnavailable { issuer, why } => {
                tracing::warn!(issuer, why, "external issuer's keys unavailable");
                WireError::new(
                    ErrorCode::Unavailable,
                    format!("the keys of issuer {issuer} are unavailable; try again"),
                )
            }
        })
    }

    fn check(&self, token: &str) -> Result<VerifyResponse, Refusal> {
        let header = jwt::header(token)?;
        let now = tessera_protocol::now_unix();
        if header.kid.as_deref() == Some(self.own.kid()) {
            jwt::allowed_alg(&header, &[Algorithm::EdDSA])?;
            let mut v = jwt::validation(Algorithm::EdDSA, self.leeway);
            v.set_issuer(&[&self.own_issuer]);
            v.set_audience(&[ACCOUNT_TOKEN_AUDIENCE]);
            let claims: AccountClaims = jwt::decode(token, self.own.decoding_key(), &v)?;
            jwt::check_iat(claims.iat, now, self.leeway)?;
            return Ok(VerifyResponse {
                account_id: claims.sub,
                issuer: claims.iss,
                expires_at: claims.exp,
            });
        }
        // Only to pick the issuer whose keys then verify the signature; nothing is trusted yet.
        let iss = jsonwebtoken::dangerous::insecure_decode_claims::<Peek>(token)
            .ok()
            .and_then(|p| p.iss)
            .ok_or_else(|| Rejection::new(Reason::Issuer, "account token has no issuer"))?;
        if iss == self.own_issuer {
            // Our issuer, but not our key (a retired or forged one).
            return Err(
                Rejection::new(Reason::Kid, "account token is signed by an unknown key").into(),
            );
        }
        let ext = self
            .externals
            .iter()
            .find(|e| e.issuer == iss)
            .ok_or_else(|| Rejection::new(Reason::Issuer, "account token issuer is not trusted"))?;
        let alg = jwt::allowed_alg(&header, &ext.algorithms)?;
        let kid = header.kid.as_deref();
        let key = match &ext.keys {
            Keys::Fixed(keys) => remote::pick(keys, kid),
            Keys::Remote(remote) => {
                remote
                    .key_for(kid)
                    .map_err(|why| Refusal::KeysUnavailable {
                        issuer: ext.name.clone(),
                        why,
                    })?
            }
        }
        .ok_or_else(|| Rejection::new(Reason::Kid, "unknown signing key"))?;
        let mut v = jwt::validation(alg, self.leeway);
        v.algorithms = ext.algorithms.clone();
        v.set_issuer(&[&ext.issuer]);
        match &ext.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&["exp", "sub", "iss"]);
        let claims: ExternalClaims = jwt::decode(token, &key, &v)?;
        if let Some(iat) = claims.iat {
            jwt::check_iat(iat, now, self.leeway)?;
        }
        Ok(VerifyResponse {
            account_id: format!("{}:{}", ext.name, claims.sub),
            issuer: ext.issuer.clone(),
            expires_at: claims.exp,
        })
    }
}

fn load_external(cfg: &ExternalIssuer) -> anyhow::Result<External> {
    use anyhow::Context as _;
    if cfg
        .algorithms
        .iter()
        .any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
    {
        anyhow::bail!(
            "issuer {}: HMAC algorithms are not allowed for external issuers",
            cfg.name
        );
    }
    if let Some(remote) = RemoteKeys::new(cfg)? {
        if cfg.jwks_file.is_some() || cfg.public_key_file.is_some() {
            anyhow::bail!("issuer {}: keys by URL or from files, not both", cfg.name);
        }
        return Ok(External {
            name: cfg.name.clone(),
            issuer: cfg.issuer.clone(),
            algorithms: cfg.algorithms.clone(),
            audience: cfg.audience.clone(),
            keys: Keys::Remote(remote),
        });
    }
    let mut keys = Vec::new();
    if let Some(path) = &cfg.jwks_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("issuer {}: {}", cfg.name, path.display()))?;
        let set: JwkSet =
            serde_json::from_str(&text).with_context(|| format!("issuer {}: JWKS", cfg.name))?;
        for jwk in &set.keys {
            keys.push((jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)?));
        }
    }
    if let Some(path) = &cfg.public_key_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("issuer {}: {}", cfg.name, path.display()))?;
        let key = DecodingKey::from_ed_pem(&pem)
            .or_else(|_| DecodingKey::from_ec_pem(&pem))
            .or_else(|_| DecodingKey::from_rsa_pem(&pem))
            .with_context(|| format!("issuer {}: unsupported public key", cfg.name))?;
        keys.push((None, key));
    }
    if keys.is_empty() {
        anyhow::bail!(
            "issuer {}: give jwks_file, public_key_file, jwks_url or discovery",
            cfg.name
        );
    }
    Ok(External {
        name: cfg.name.clone(),
        issuer: cfg.issuer.clone(),
        algorithms: cfg.algorithms.clone(),
        audience: cfg.audience.clone(),
        keys: Keys::Fixed(keys),
    })
}

fn cache_key(token: &str) -> [u8; 32] {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

#[cfg(test)]
mod tests;
