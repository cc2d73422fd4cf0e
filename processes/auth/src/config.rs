//! Auth settings, from the environment.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tessera_bus_config::provision::Durability;
use tessera_protocol::signing::SigningKey;
use tessera_runtime::audit::AuditConfig;
use tessera_runtime::config::registry::{
    ACCOUNT_TOKEN_TTL, AUTH_ISSUER, AUTH_ISSUERS_FILE, AUTH_KEY_FILE, AUTH_NODE_ID,
    AUTH_PACKAGE_POOL, AUTH_PLUGIN_PATH, AUTH_RECONCILE_INTERVAL, AUTH_URL, CALLOUT_ISSUER_SEED,
    CLIENT_PASSWORD, GRACE, LOGIN_QUEUE, LOGINS_PER_CONNECTION, LOGINS_PER_USERNAME, MAX_IN_FLIGHT,
    PACKAGE_TRUSTED_KEYS,
};
use tessera_runtime::config::{ConfigError, Reader, Source, WorkerSettings, keys};
use tessera_schemas::Subjects;

pub use crate::callout::{ClientPassword, IssuerSeed};

/// `iss` of the account tokens we issue, unless `TESSERA_AUTH_ISSUER` says otherwise.
pub const DEFAULT_ISSUER: &str = AUTH_ISSUER.literal_default();

/// An external identity provider whose JWTs count as account tokens.
#[derive(Debug, Clone, Default, Deserialize)]
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
    /// Or the URL of its JWKS, fetched and cached (`verify::remote`).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Or find the JWKS URL in `<issuer>/.well-known/openid-configuration` (the issuer is
    /// then a URL, and the document's `issuer` must equal it).
    #[serde(default)]
    pub discovery: bool,
    /// Let the issuer's host names resolve to private addresses (an SSO inside the
    /// network). Off: like a package's requests, public addresses only.
    #[serde(default)]
    pub allow_private_addresses: bool,
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
    /// Clock leeway on account-token times (`TESSERA_CLOCK_LEEWAY`).
    pub clock_leeway: Duration,
    pub plugin_path: PathBuf,
    /// Raw Ed25519 public keys of trusted package publishers.
    pub trusted_keys: Vec<[u8; 32]>,
    pub node_id: String,
    pub reconcile_interval: Duration,
    pub package_pool: usize,
    /// What a flood of logins may take (`limits.rs`).
    pub login_limits: crate::limits::LoginLimitsConfig,
    /// The audit stream's bounds and this node's audit queue.
    pub audit: AuditConfig,
    /// With a seed, this node answers the auth callout (plugin-server credentials).
    pub callout_issuer: Option<IssuerSeed>,
    /// With it (and a seed), the callout admits client apps too.
    pub client_password: Option<ClientPassword>,
}

impl AuthConfig {
    pub fn new(nats_url: String, subjects: Subjects, signing_key: Arc<SigningKey>) -> Self {
        AuthConfig {
            nats_url,
            subjects,
            signing_key,
            issuer: DEFAULT_ISSUER.to_owned(),
            account_token_ttl: ACCOUNT_TOKEN_TTL.default_duration(),
            external_issuers: Vec::new(),
            max_in_flight: MAX_IN_FLIGHT.default_parsed(),
            hash_concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            grace: GRACE.default_duration(),
            connect_wait: Duration::from_secs(30),
            durability: Durability::default(),
            clock_leeway: tessera_protocol::jwt::DEFAULT_LEEWAY,
            plugin_path: std::env::temp_dir().join("tessera-auth-plugins"),
            trusted_keys: Vec::new(),
            node_id: format!("auth-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            reconcile_interval: AUTH_RECONCILE_INTERVAL.default_duration(),
            callout_issuer: None,
            client_password: None,
            package_pool: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            audit: AuditConfig::default(),
            login_limits: crate::limits::LoginLimitsConfig::default(),
        }
    }

    /// From the environment; every bad setting is in the error.
    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        let mut r = Reader::new(src);
        let shared = WorkerSettings::read(&mut r, &AUTH_URL);
        let signing_key = keys::signing_key(&mut r, &AUTH_KEY_FILE);
        let issuer: String = r.parsed(&AUTH_ISSUER);
        let account_token_ttl = r.duration(&ACCOUNT_TOKEN_TTL);
        let external_issuers = r.optional(&AUTH_ISSUERS_FILE, load_issuers);
        let plugin_path = r.get(&AUTH_PLUGIN_PATH).map(PathBuf::from);
        let trusted_keys = r.optional(&PACKAGE_TRUSTED_KEYS, parse_trusted_keys);
        let node_id = r.optional(&AUTH_NODE_ID, |id| {
            tessera_schemas::ids::check("node id", id).map(|()| id.to_owned())
        });
        let reconcile_interval = r.duration(&AUTH_RECONCILE_INTERVAL);
        let package_pool: Option<usize> = r.optional(&AUTH_PACKAGE_POOL, |v| {
            v.parse().map_err(|e| format!("{v:?}: {e}"))
        });
        let audit = AuditConfig::read(&mut r);
        let login_limits = crate::limits::LoginLimitsConfig {
            per_connection: r.parsed(&LOGINS_PER_CONNECTION),
            per_username: r.parsed(&LOGINS_PER_USERNAME),
            queue: r.parsed(&LOGIN_QUEUE),
        };
        let callout_issuer = r.optional(&CALLOUT_ISSUER_SEED, IssuerSeed::new);
        let client_password = r.optional(&CLIENT_PASSWORD, ClientPassword::new);
        r.finish()?;
        // `finish` reported an unusable key; this only keeps the types honest.
        let signing_key =
            signing_key.ok_or_else(|| ConfigError::new(AUTH_KEY_FILE.name, "no key"))?;
        let mut c = AuthConfig::new(shared.nats_url, shared.subjects, Arc::new(signing_key));
        c.max_in_flight = shared.max_in_flight;
        c.grace = shared.grace;
        c.durability.replicas = shared.js_replicas;
        c.clock_leeway = shared.clock_leeway;
        c.issuer = issuer;
        c.account_token_ttl = account_token_ttl;
        c.external_issuers = external_issuers.unwrap_or_default();
        if let Some(p) = plugin_path {
            c.plugin_path = p;
        }
        c.trusted_keys = trusted_keys.unwrap_or_default();
        if let Some(id) = node_id {
            c.node_id = id;
        }
        c.reconcile_interval = reconcile_interval;
        if let Some(n) = package_pool {
            c.package_pool = n.max(1);
        }
        c.audit = audit;
        c.login_limits = login_limits;
        c.callout_issuer = callout_issuer;
        c.client_password = client_password;
        Ok(c)
    }
}

fn load_issuers(path: &str) -> Result<Vec<ExternalIssuer>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let file: IssuersFile = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    Ok(file.issuers)
}

/// Parses `TESSERA_PACKAGE_TRUSTED_KEYS`: base64url (no padding) raw 32-byte Ed25519 keys.
pub fn parse_trusted_keys(text: &str) -> Result<Vec<[u8; 32]>, String> {
    use base64::Engine;
    text.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(k)
                .map_err(|e| format!("{k:?}: {e}"))?;
            <[u8; 32]>::try_from(raw.as_slice())
                .map_err(|_| format!("{k:?}: an Ed25519 public key is 32 bytes"))
        })
        .collect()
}

#[cfg(test)]
mod tests {

    use tessera_runtime::config::registry::{DEV_EPHEMERAL_KEYS, NATS_URL};

    use super::*;
    use tessera_runtime::config::from_pairs as env;

    #[test]
    fn defaults_come_from_the_registry_and_every_bad_setting_is_reported() {
        let ok = env(&[(NATS_URL.name, "nats://x"), (DEV_EPHEMERAL_KEYS.name, "1")]);
        let c = AuthConfig::from_env(&ok).unwrap();
        assert_eq!(c.issuer, "tessera-auth");
        assert_eq!(c.account_token_ttl, Duration::from_secs(3600));
        assert_eq!(c.login_limits.queue, 64);

        let mut bad = env(&[(NATS_URL.name, "nats://x")]);
        bad.insert(LOGIN_QUEUE.name.into(), "many".into());
        bad.insert(PACKAGE_TRUSTED_KEYS.name.into(), "not-a-key".into());
        bad.insert(AUTH_NODE_ID.name.into(), "a node".into());
        assert_eq!(
            AuthConfig::from_env(&bad).unwrap_err().keys(),
            [
                AUTH_KEY_FILE.name,
                PACKAGE_TRUSTED_KEYS.name,
                AUTH_NODE_ID.name,
                LOGIN_QUEUE.name,
            ]
        );
    }
}
