//! Every setting a Tessera process reads from its environment, declared once: its name, its
//! default, what it does and which processes read it. Readers take a [`Setting`], never a
//! bare name, so a setting cannot be read without being listed here; README.md's settings
//! table is this list (`tessera settings` prints it, a test compares the two).

use std::fmt;

/// A process that reads settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Broker,
    Auth,
    Gateway,
    PluginServer,
    /// The `tessera` client and operator commands.
    Cli,
}

impl Process {
    pub fn name(self) -> &'static str {
        match self {
            Process::Broker => "broker",
            Process::Auth => "auth",
            Process::Gateway => "gateway",
            Process::PluginServer => "plugin-server",
            Process::Cli => "cli",
        }
    }
}

/// What an unset setting means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfUnset {
    /// This value, in the setting's own syntax; the readers parse it, so the text here is
    /// the default the code applies, not a description of it.
    Value(&'static str),
    /// Unset is a configuration error.
    Required,
    /// Unset means what the text says (a fallback, a feature off, a computed value).
    Means(&'static str),
}

impl fmt::Display for IfUnset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IfUnset::Value(v) => write!(f, "`{v}`"),
            IfUnset::Required => f.write_str("required"),
            IfUnset::Means(text) => f.write_str(text),
        }
    }
}

/// One environment setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub default: IfUnset,
    /// One sentence: what it does, and its bounds when it has some.
    pub doc: &'static str,
    pub read_by: &'static [Process],
}

impl Setting {
    /// The registry default parsed as `T`. Only for settings with an [`IfUnset::Value`]
    /// default of that type: anything else is a mistake in this file, which the tests that
    /// read each worker's config from an empty environment catch.
    pub fn default_parsed<T: std::str::FromStr>(&self) -> T {
        match self.default {
            IfUnset::Value(v) => v.parse().unwrap_or_else(|_| {
                panic!(
                    "the registry default of {} ({v:?}) does not parse",
                    self.name
                )
            }),
            _ => panic!("{} has no literal default in the registry", self.name),
        }
    }

    /// The literal default, at compile time (a const of a crate that needs one).
    pub const fn literal_default(&self) -> &'static str {
        match self.default {
            IfUnset::Value(v) => v,
            _ => panic!("this setting has no literal default in the registry"),
        }
    }

    /// The registry default as a duration (see [`IfUnset::Value`]).
    pub fn default_duration(&self) -> std::time::Duration {
        match self.default {
            IfUnset::Value(v) => super::parse_duration(v).unwrap_or_else(|| {
                panic!(
                    "the registry default of {} ({v:?}) is not a duration",
                    self.name
                )
            }),
            _ => panic!("{} has no literal default in the registry", self.name),
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

use Process::{Auth, Broker, Cli, Gateway, PluginServer};

const WORKERS: &[Process] = &[Broker, Auth, Gateway];
const SERVERS: &[Process] = &[Broker, Auth, Gateway, PluginServer];
const EVERYONE: &[Process] = &[Broker, Auth, Gateway, PluginServer, Cli];

macro_rules! settings {
    ($($(#[$meta:meta])* $id:ident = $name:literal, $default:expr, $read_by:expr, $doc:literal;)*) => {
        $($(#[$meta])* pub const $id: Setting = Setting {
            name: $name,
            default: $default,
            doc: $doc,
            read_by: $read_by,
        };)*
        /// Every setting, in README order.
        pub const ALL: &[&Setting] = &[$(&$id),*];
    };
}

settings! {
    // Connections.
    NATS_URL = "NATS_URL", IfUnset::Means("required by client commands"), EVERYONE,
        "The client role's NATS URL; each worker's fallback when its own URL is unset. A cluster's servers comma-separated.";
    ADMIN_URL = "TESSERA_ADMIN_URL", IfUnset::Means("required by admin commands"), &[Cli],
        "The admin role's NATS URL.";
    BROKER_URL = "TESSERA_BROKER_URL", IfUnset::Means("`NATS_URL`"), &[Broker],
        "The broker's NATS URL (its own bus user).";
    AUTH_URL = "TESSERA_AUTH_URL", IfUnset::Means("`NATS_URL`"), &[Auth],
        "The auth worker's NATS URL (its own bus user).";
    GATEWAY_URL = "TESSERA_GATEWAY_URL", IfUnset::Means("`NATS_URL`"), &[Gateway],
        "The gateway's NATS URL (its own bus user).";
    PLUGIN_SERVER_URL = "TESSERA_PLUGIN_SERVER_URL", IfUnset::Required, &[PluginServer],
        "A plugin server's own NATS URL, as `tessera plugin-servers add ID` printed it.";
    REDIS_URL = "REDIS_URL", IfUnset::Required, &[Broker, Gateway],
        "The broker's Redis URL (its Redis user); the gateway's when its own is unset. `rediss://` for TLS. Several, comma-separated (or one ending in `?cluster=1`): a Redis Cluster's seed nodes.";
    GATEWAY_REDIS_URL = "TESSERA_GATEWAY_REDIS_URL", IfUnset::Means("`REDIS_URL`"), &[Gateway],
        "The gateway's Redis URL (a user that may only read token records and claim nonces).";
    // What every process shares.
    PREFIX = "TESSERA_PREFIX", IfUnset::Value("tessera"), EVERYONE,
        "Subject prefix of every bus subject, stream and bucket.";
    CLOCK_LEEWAY = "TESSERA_CLOCK_LEEWAY", IfUnset::Value("5s"), SERVERS,
        "Clock leeway of every token verifier (exp, nbf, iat); whole seconds, at most 5m.";
    GRACE = "TESSERA_GRACE", IfUnset::Value("10s"), WORKERS,
        "How long a worker drains its requests in flight on SIGTERM.";
    MAX_IN_FLIGHT = "TESSERA_MAX_IN_FLIGHT", IfUnset::Value("256"), WORKERS,
        "Requests a worker handles at once; at least 1.";
    JS_REPLICAS = "TESSERA_JS_REPLICAS", IfUnset::Value("1"), &[Broker, Auth, Gateway, Cli],
        "Replicas of the JetStream streams and buckets a process creates (3 on a 3-node cluster).";
    HEALTH_ADDR = "TESSERA_HEALTH_ADDR", IfUnset::Means("off"), SERVERS,
        "`host:port` of the `/healthz`, `/readyz`, `/metrics` endpoint, e.g. `0.0.0.0:8080`.";
    HEALTH_MAX_CONNECTIONS = "TESSERA_HEALTH_MAX_CONNECTIONS", IfUnset::Value("64"), SERVERS,
        "Connections the health endpoint serves at once (1-4096); beyond it it closes them at once.";
    HEALTH_READ_TIMEOUT = "TESSERA_HEALTH_READ_TIMEOUT", IfUnset::Value("1s"), SERVERS,
        "How soon a health request's head must arrive (10ms-60s).";
    LOG_FORMAT = "TESSERA_LOG_FORMAT", IfUnset::Value("text"), EVERYONE,
        "`text`, or `json`: one JSON object per line with the request span's fields.";
    RUST_LOG = "RUST_LOG", IfUnset::Means("`info` (workers), `warn` (commands)"), EVERYONE,
        "Log filter (tracing's `EnvFilter` syntax).";
    // Traces (the standard OpenTelemetry names; docs/observability.md).
    OTEL_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT", IfUnset::Means("traces off"), EVERYONE,
        "An OTLP/HTTP collector's `http://` base URL, e.g. `http://localhost:4318`: spans go to `<url>/v1/traces` (protobuf). Needs a build with the `otel` feature; without it the process warns at start.";
    OTEL_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", IfUnset::Means("from `OTEL_EXPORTER_OTLP_ENDPOINT`"), EVERYONE,
        "The full `http://` URL spans are posted to, used as it is (instead of the base URL's `/v1/traces`).";
    OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME", IfUnset::Means("`tessera-<process>` (`tessera-broker`, ...)"), EVERYONE,
        "`service.name` of the spans this process exports.";
    OTEL_BSP_SCHEDULE_DELAY = "OTEL_BSP_SCHEDULE_DELAY", IfUnset::Value("5000"), EVERYONE,
        "Milliseconds between two exports of batched spans (1-600000).";
    AUDIT_MAX_AGE = "TESSERA_AUDIT_MAX_AGE", IfUnset::Value("720h"), &[Broker, Auth],
        "Retention of the audit stream (30 days by default); at least 60s.";
    AUDIT_MAX_BYTES = "TESSERA_AUDIT_MAX_BYTES", IfUnset::Value("1073741824"), &[Broker, Auth],
        "Size bound of the audit stream in bytes; the oldest events go first. At least 1 MiB.";
    AUDIT_QUEUE = "TESSERA_AUDIT_QUEUE", IfUnset::Value("8192"), &[Broker, Auth],
        "Audit events a worker holds before it drops new ones; at least 1.";
    /// The switch that lets a worker without a key file sign with a key that dies with it.
    DEV_EPHEMERAL_KEYS = "TESSERA_DEV_EPHEMERAL_KEYS", IfUnset::Means("off"), &[Broker, Auth],
        "`1`: a worker whose key file is unset signs with a throw-away key (development only: what it signed dies with it). Otherwise it refuses to start.";
    // Broker.
    BROKER_KEY_FILE = "TESSERA_BROKER_KEY_FILE", IfUnset::Required, &[Broker],
        "PEM file of the broker's Ed25519 signing key (`openssl genpkey -algorithm ed25519`); every replica shares it.";
    TOKEN_TTL = "TESSERA_TOKEN_TTL", IfUnset::Value("15m"), &[Broker],
        "Lifetime of a plugin token (10s-24h).";
    AUTH_CACHE_TTL = "TESSERA_AUTH_CACHE_TTL", IfUnset::Value("30s"), &[Broker],
        "How long the broker reuses an auth result for the same account token (at most 1h; `0s`: ask every time).";
    REDIS_REPLICA_ACKS = "TESSERA_REDIS_REPLICA_ACKS", IfUnset::Value("0"), &[Broker],
        "Redis replicas that must acknowledge (`WAIT`) a token's commit before it is handed out, and a revocation before it is reported done (0-16; 0: no wait). On a Redis Cluster with a replica per master: 1 (docs/reliability.md).";
    REDIS_REPLICA_ACK_TIMEOUT = "TESSERA_REDIS_REPLICA_ACK_TIMEOUT", IfUnset::Value("250ms"), &[Broker],
        "How long the broker waits for those acknowledgements (10ms-800ms, inside the 1 s bound on every Redis command); without them the request answers `unavailable`.";
    PENDING_DEADLINE = "TESSERA_BROKER_PENDING_DEADLINE", IfUnset::Value("30s"), &[Broker],
        "How long a token may stay recorded but uncommitted (its replica died mid-request) before another replica withdraws it (1s to the token TTL; never above the TTL by default).";
    DIST_SHARDS = "TESSERA_DIST_SHARDS", IfUnset::Value("1"), &[Broker],
        "Distribution streams (1-8), each with a Raft leader of its own; a plugin server reads the one its id hashes to. Every broker replica must agree: one refuses to start against streams laid out for another number (changing it: docs/reliability.md).";
    // Auth.
    AUTH_KEY_FILE = "TESSERA_AUTH_KEY_FILE", IfUnset::Required, &[Auth],
        "PEM file of the key that signs account tokens; every replica shares it.";
    AUTH_ISSUER = "TESSERA_AUTH_ISSUER", IfUnset::Value("tessera-auth"), &[Auth],
        "`iss` of the account tokens the auth worker issues.";
    ACCOUNT_TOKEN_TTL = "TESSERA_ACCOUNT_TOKEN_TTL", IfUnset::Value("1h"), &[Auth],
        "Lifetime of an account token.";
    AUTH_ISSUERS_FILE = "TESSERA_AUTH_ISSUERS_FILE", IfUnset::Means("none"), &[Auth],
        "JSON file of external JWT issuers whose tokens count as account tokens (see ARCHITECTURE.md).";
    AUTH_PLUGIN_PATH = "TESSERA_AUTH_PLUGIN_PATH", IfUnset::Means("`tessera-auth-plugins` in the temp dir"), &[Auth],
        "Directory where a node installs authentication packages; one per node.";
    PACKAGE_TRUSTED_KEYS = "TESSERA_PACKAGE_TRUSTED_KEYS", IfUnset::Means("none: no package is accepted"), &[Auth],
        "Comma-separated base64url Ed25519 public keys of trusted package publishers.";
    AUTH_NODE_ID = "TESSERA_AUTH_NODE_ID", IfUnset::Means("`auth-` and random"), &[Auth],
        "The node's name in `tessera nodes` (in Kubernetes, the pod name).";
    AUTH_RECONCILE_INTERVAL = "TESSERA_AUTH_RECONCILE_INTERVAL", IfUnset::Value("30s"), &[Auth],
        "How often a node re-checks its installed packages against the store without a broadcast.";
    AUTH_PACKAGE_POOL = "TESSERA_AUTH_PACKAGE_POOL", IfUnset::Means("the core count"), &[Auth],
        "Warm package instances per app (each one concurrent call).";
    LOGINS_PER_CONNECTION = "TESSERA_AUTH_LOGINS_PER_CONNECTION", IfUnset::Value("10"), &[Auth],
        "Logins per second per client connection, burst twice that; 0: no limit (docs/protocol.md §3.1).";
    LOGINS_PER_USERNAME = "TESSERA_AUTH_LOGINS_PER_USERNAME", IfUnset::Value("20"), &[Auth],
        "Logins per minute per username, right or wrong; 0: no limit.";
    LOGIN_QUEUE = "TESSERA_AUTH_LOGIN_QUEUE", IfUnset::Value("64"), &[Auth],
        "Logins in progress at once on one node; beyond it `rate_limited` at once. 0: no limit.";
    CALLOUT_ISSUER_SEED = "TESSERA_CALLOUT_ISSUER_SEED", IfUnset::Means("callout off"), &[Auth],
        "The auth callout's issuer seed (`SA...`): with it the node admits plugin servers with their own credentials.";
    CLIENT_PASSWORD = "TESSERA_NATS_PASSWORD_CLIENT", IfUnset::Means("client apps not admitted"), &[Auth],
        "The client apps' bus password: with it and an issuer seed, the callout admits client apps, each on an inbox of its own.";
    // Gateway.
    DATA_SKEW = "TESSERA_DATA_SKEW", IfUnset::Value("30s"), &[Gateway],
        "How far a packet's timestamp may be from the gateway's clock, either way (1s-1h).";
    DATA_FORWARD_TIMEOUT = "TESSERA_DATA_FORWARD_TIMEOUT", IfUnset::Value("3s"), &[Gateway],
        "Bound on the plugin server's answer, below a client's 5 s timeout (10ms-60s).";
    // Commands.
    ENV_FILE = "TESSERA_ENV_FILE", IfUnset::Means("`.tessera/tessera.env` when it exists"), &[Cli],
        "The `KEY=VALUE` file settings come from after the environment (`--env-file`).";
    ACCOUNT_TOKEN = "TESSERA_ACCOUNT_TOKEN", IfUnset::Means("none"), &[Cli],
        "The account token of `tessera token request` (`--account-token`).";
    PLUGIN_TOKEN = "TESSERA_PLUGIN_TOKEN", IfUnset::Means("none"), &[Cli],
        "The plugin token of `tessera call` and `tessera data` (`--token`).";
    APP_ID = "TESSERA_APP_ID", IfUnset::Means("none"), &[Cli],
        "The client app of `tessera data` (`--app-id`).";
    APP_SECRET = "TESSERA_APP_SECRET", IfUnset::Means("none"), &[Cli],
        "The client app's signing secret for `tessera data` (`--app-secret`).";
}

/// The setting named `name`, if it is one.
pub fn find(name: &str) -> Option<&'static Setting> {
    ALL.iter().copied().find(|s| s.name == name)
}

/// The settings list as the Markdown table README.md embeds.
pub fn markdown_table() -> String {
    let mut out =
        String::from("| Setting | Default | Read by | What it does |\n|---|---|---|---|\n");
    for s in ALL {
        let read_by: Vec<&str> = s.read_by.iter().map(|p| p.name()).collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            s.name,
            s.default,
            read_by.join(", "),
            s.doc
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_look_like_settings() {
        let mut names: Vec<&str> = ALL.iter().map(|s| s.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a setting is declared twice");
        for s in ALL {
            assert!(
                s.name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{}",
                s.name
            );
            assert!(!s.read_by.is_empty(), "{} is read by nobody", s.name);
            assert!(!s.doc.contains('|'), "{}: a `|` breaks the table", s.name);
        }
    }
}
