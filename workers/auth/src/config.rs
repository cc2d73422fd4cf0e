//! Auth settings, from the environment.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tessera_bus_config::Role;
use tessera_bus_config::provision::Durability;
use tessera_core::config::{self, ConfigError, Source};
use tessera_core::signing::SigningKey;
use tessera_schemas::Subjects;

/// PEM file of the key that signs account tokens; created if missing. Replicas share it.
pub const ENV_KEY_FILE: &str = "TESSERA_AUTH_KEY_FILE";
/// `iss` of the account tokens we issue.
pub const ENV_ISSUER: &str = "TESSERA_AUTH_ISSUER";
pub const ENV_ACCOUNT_TOKEN_TTL: &str = "TESSERA_ACCOUNT_TOKEN_TTL";
/// JSON file listing external issuers whose account tokens `auth.verify` accepts.
pub const ENV_ISSUERS_FILE: &str = "TESSERA_AUTH_ISSUERS_FILE";
pub const ENV_MAX_IN_FLIGHT: &str = "TESSERA_MAX_IN_FLIGHT";
pub const ENV_GRACE: &str = "TESSERA_GRACE";
pub const ENV_JS_REPLICAS: &str = "TESSERA_JS_REPLICAS";

pub const DEFAULT_ISSUER: &str = "tessera-auth";

/// An external identity provider whose JWTs count as account tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct ExternalIssuer {
    /// Short name; account ids from this issuer are `<name>:<sub>`.
    pub name: String,
    /// Expected `iss` claim.
    pub issuer: String,
    /// Allowed `alg` values, e.g. `["RS256", "ES256", "EdDSA"]`. Never `none`, never HMAC.
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// Expected `aud`, if the issuer sets one for us.
    #[serde(default)]
    pub audience: Option<String>,
    /// A JWKS (RFC 7517) file with the issuer's public keys.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Or a single PEM public key file.
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct IssuersFile {
    issuers: Vec<ExternalIssuer>,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub nats_url: String,
    pub subjects: Subjects,
    pub signing_key: Arc<SigningKey>,
    pub issuer: String,
    pub account_token_ttl: Duration,
    pub external_issuers: Vec<ExternalIssuer>,
    pub max_in_flight: usize,
    /// Concurrent argon2 computations (each takes ~19 MiB and a core for tens of ms).
    pub hash_concurrency: usize,
    pub grace: Duration,
    pub connect_wait: Duration,
    pub durability: Durability,
}

impl AuthConfig {
    pub fn new(nats_url: String, subjects: Subjects, signing_key: Arc<SigningKey>) -> Self {
        AuthConfig {
            nats_url,
            subjects,
            signing_key,
            issuer: DEFAULT_ISSUER.to_owned(),
            account_token_ttl: Duration::from_secs(3600),
            external_issuers: Vec::new(),
            max_in_flight: 256,
            hash_concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            grace: Duration::from_secs(10),
            connect_wait: Duration::from_secs(30),
            durability: Durability::default(),
        }
    }

    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        let subjects = config::prefix(src)?;
        let nats_url = config::first_of(src, &[Role::Auth.url_env(), Role::Client.url_env()])?;
        let signing_key = config::signing_key(src, ENV_KEY_FILE)?;
        let mut c = AuthConfig::new(nats_url, subjects, Arc::new(signing_key));
        if let Some(iss) = src.get(ENV_ISSUER) {
            c.issuer = iss;
        }
        c.account_token_ttl = config::duration(src, ENV_ACCOUNT_TOKEN_TTL, c.account_token_ttl)?;
        if let Some(path) = src.get(ENV_ISSUERS_FILE) {
            c.external_issuers =
                load_issuers(&path).map_err(|e| ConfigError::new(ENV_ISSUERS_FILE, e))?;
        }
        c.max_in_flight = config::parsed(src, ENV_MAX_IN_FLIGHT, c.max_in_flight)?;
        c.grace = config::duration(src, ENV_GRACE, c.grace)?;
        c.durability.replicas = config::parsed(src, ENV_JS_REPLICAS, 1usize)?;
        Ok(c)
    }
}

fn load_issuers(path: &str) -> Result<Vec<ExternalIssuer>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let file: IssuersFile = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    Ok(file.issuers)
}
