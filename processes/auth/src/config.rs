//! Auth settings, from the environment.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tessera_bus_config::Role;
use tessera_bus_config::provision::Durability;
use tessera_protocol::signing::SigningKey;
use tessera_runtime::audit::AuditConfig;
use tessera_runtime::config::{self, ConfigError, Source};
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

/// Directory where this node installs authentication packages (one per node).
pub const ENV_PLUGIN_PATH: &str = "TESSERA_AUTH_PLUGIN_PATH";
/// Comma-separated base64url raw Ed25519 public keys whose package signatures this node
/// accepts. Empty: no upload is accepted and no stored package is installed.
pub const ENV_TRUSTED_KEYS: &str = "TESSERA_PACKAGE_TRUSTED_KEYS";
/// This node's id in `tessera nodes` (default: random). In Kubernetes, the pod name.
pub const ENV_NODE_ID: &str = "TESSERA_AUTH_NODE_ID";
/// How often a node re-checks its installed packages against the store without a broadcast.
pub const ENV_RECONCILE_INTERVAL: &str = "TESSERA_AUTH_RECONCILE_INTERVAL";
/// Warm package instances per app (each is one concurrent call).
pub const ENV_PACKAGE_POOL: &str = "TESSERA_AUTH_PACKAGE_POOL";
/// Logins per second per client connection (burst twice that); 0: no limit.
pub const ENV_LOGINS_PER_CONNECTION: &str = "TESSERA_AUTH_LOGINS_PER_CONNECTION";
/// Logins per minute per username, right or wrong; 0: no limit.
pub const ENV_LOGINS_PER_USERNAME: &str = "TESSERA_AUTH_LOGINS_PER_USERNAME";
/// Logins in progress at once on one node; beyond it `rate_limited` at once. 0: no limit.
pub const ENV_LOGIN_QUEUE: &str = "TESSERA_AUTH_LOGIN_QUEUE";

pub use crate::callout::{ClientPassword, IssuerSeed};
/// The auth callout's issuer seed (an account nkey seed, `SA...`): with it, this node also
/// admits plugin servers with their own credentials (`crate::callout`). Its public key is
/// the `issuer` of nats.conf's `auth_callout`.
pub use tessera_bus_config::CALLOUT_ISSUER_SEED_ENV as ENV_CALLOUT_ISSUER_SEED;

/// The client apps' bus password (`TESSERA_NATS_PASSWORD_CLIENT`, the name nats.env used
/// when nats.conf still listed the `client` user): with it and an issuer seed, this node's
/// callout admits client apps, each on an inbox of its own.
pub const ENV_CLIENT_PASSWORD: &str = "TESSERA_NATS_PASSWORD_CLIENT";

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
            account_token_ttl: Duration::from_secs(3600),
            external_issuers: Vec::new(),
            max_in_flight: 256,
            hash_concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            grace: Duration::from_secs(10),
            connect_wait: Duration::from_secs(30),
            durability: Durability::default(),
            clock_leeway: tessera_protocol::jwt::DEFAULT_LEEWAY,
            plugin_path: std::env::temp_dir().join("tessera-auth-plugins"),
            trusted_keys: Vec::new(),
            node_id: format!("auth-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            reconcile_interval: Duration::from_secs(30),
            callout_issuer: None,
            client_password: None,
            package_pool: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            audit: AuditConfig::default(),
            login_limits: crate::limits::LoginLimitsConfig::default(),
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
        c.clock_leeway = config::clock_leeway(src)?;
        if let Some(p) = src.get(ENV_PLUGIN_PATH) {
            c.plugin_path = PathBuf::from(p);
        }
        if let Some(keys) = src.get(ENV_TRUSTED_KEYS) {
            c.trusted_keys =
                parse_trusted_keys(&keys).map_err(|e| ConfigError::new(ENV_TRUSTED_KEYS, e))?;
        }
        if let Some(id) = src.get(ENV_NODE_ID) {
            tessera_schemas::ids::check("node id", &id)
                .map_err(|e| ConfigError::new(ENV_NODE_ID, e.to_string()))?;
            c.node_id = id;
        }
        c.reconcile_interval = config::duration(src, ENV_RECONCILE_INTERVAL, c.reconcile_interval)?;
        c.package_pool = config::parsed(src, ENV_PACKAGE_POOL, c.package_pool)?.max(1);
        c.audit = AuditConfig::from_env(src)?;
        let l = &mut c.login_limits;
        l.per_connection = config::parsed(src, ENV_LOGINS_PER_CONNECTION, l.per_connection)?;
        l.per_username = config::parsed(src, ENV_LOGINS_PER_USERNAME, l.per_username)?;
        l.queue = config::parsed(src, ENV_LOGIN_QUEUE, l.queue)?;
        if let Some(seed) = src.get(ENV_CALLOUT_ISSUER_SEED) {
            c.callout_issuer = Some(
                IssuerSeed::new(&seed)
                    .map_err(|e| ConfigError::new(ENV_CALLOUT_ISSUER_SEED, e.to_string()))?,
            );
        }
        if let Some(password) = src.get(ENV_CLIENT_PASSWORD) {
            c.client_password = Some(
                ClientPassword::new(&password)
                    .map_err(|e| ConfigError::new(ENV_CLIENT_PASSWORD, e.to_string()))?,
            );
        }
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
