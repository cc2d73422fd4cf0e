//! Subject, queue-group, stream and bucket names. Built once per process from the prefix.
//!
//! Every name used on the bus comes from here; `bus-config` builds the server permissions
//! from the same functions, and a test checks the two agree.

/// Default subject prefix (`TESSERA_PREFIX` overrides it).
pub const DEFAULT_PREFIX: &str = "tessera";

/// Queue group shared by all replicas of a worker: NATS hands each request to one of them.
pub const QUEUE_BROKER: &str = "tessera-broker";
pub const QUEUE_AUTH: &str = "tessera-auth";
/// Queue group of the gateway replicas (signed data-access packets).
pub const QUEUE_GATEWAY: &str = "tessera-gateway";
/// Queue group of the auth-callout responders (one per auth node; nats-server asks once).
pub const QUEUE_CALLOUT: &str = "tessera-callout";

/// Where nats-server sends the authorization request of every connection that is not a
/// static role user (plugin servers): NATS auth callout. Fixed by nats-server, not prefixed.
pub const AUTH_CALLOUT: &str = "$SYS.REQ.USER.AUTH";

/// Names derived from one prefix. Cheap to clone; build it once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Default for Subjects {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

impl Subjects {
    /// `prefix` must be a valid subject token sequence (checked by [`crate::ids::check_prefix`]).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn sub(&self, rest: &str) -> String {
        format!("{}.{}", self.prefix, rest)
    }

    // --- request/reply services ----------------------------------------------------------

    /// Client -> auth: local (and later third-party) login.
    pub fn auth_login(&self) -> String {
        self.sub("auth.login")
    }
    /// Broker -> auth: the auth result for an account token.
    pub fn auth_verify(&self) -> String {
        self.sub("auth.verify")
    }
    /// Admin -> auth: create a local account.
    pub fn users_add(&self) -> String {
        self.sub("users.add")
    }
    /// Admin -> any auth node (queue group): store and install an uploaded package.
    pub fn auth_packages_upload(&self) -> String {
        self.sub("auth.packages.upload")
    }
    /// Auth node -> every auth node (broadcast, no queue group): a stored package changed.
    pub fn auth_packages_updated(&self) -> String {
        self.sub("auth.packages.updated")
    }
    /// Auth node -> every auth node (broadcast): a node finished installing and serves.
    pub fn auth_nodes_joined(&self) -> String {
        self.sub("auth.nodes.joined")
    }
    /// Admin -> every auth node (scatter-gather, no queue group): installed packages.
    pub fn auth_nodes_status(&self) -> String {
        self.sub("auth.nodes.status")
    }
    /// Client -> broker: ask for a plugin token.
    pub fn token_request(&self) -> String {
        self.sub("token.request")
    }
    /// Admin -> broker: revoke by token id or account id.
    pub fn token_revoke(&self) -> String {
        self.sub("token.revoke")
    }
    /// Plugin server -> broker: is this token live? (for tokens not yet distributed)
    pub fn token_introspect(&self) -> String {
        self.sub("token.introspect")
    }
    /// Anyone -> broker: the public signing keys as a JSON JWKS.
    pub fn keys(&self) -> String {
        self.sub("keys")
    }

    // --- distribution --------------------------------------------------------------------

    /// JetStream subject carrying tokens and revocations for one plugin server id.
    pub fn dist(&self, server_id: &str) -> String {
        self.sub(&format!("dist.{server_id}"))
    }
    /// Wildcard over every plugin server's distribution subject (the stream's subjects).
    pub fn dist_all(&self) -> String {
        self.sub("dist.>")
    }
    /// Plugin server -> broker: open a consumer of `dist.<server_id>` for me (the only way
    /// a plugin server reads its distributions: it cannot create consumers itself). Outside
    /// `dist.>`, so a request is never captured by the distribution stream.
    pub fn dist_open(&self, server_id: &str) -> String {
        self.sub(&format!("distribution.open.{server_id}"))
    }
    /// Every plugin server's [`Subjects::dist_open`] (what the broker serves).
    pub fn dist_open_all(&self) -> String {
        self.sub("distribution.open.*")
    }
    /// Where the workers' JetStream API appears in the client apps' and plugin servers'
    /// accounts: the few read-only JetStream requests they may send (`<this>.DIRECT.GET...`,
    /// `<this>.CONSUMER.MSG.NEXT...`) are imported under it, so they never reach a
    /// JetStream of their own account and nothing else of the workers' API is reachable.
    /// Use it as the JetStream API prefix (`async_nats::jetstream::with_prefix`).
    pub fn js_api_import(&self) -> String {
        self.sub("js")
    }

    // --- plugin-server services ----------------------------------------------------------

    /// A plugin's service request to one operation of one plugin server.
    pub fn svc(&self, server_id: &str, operation: &str) -> String {
        self.sub(&format!("svc.{server_id}.{operation}"))
    }
    /// Every operation of one plugin server (what its replicas subscribe to).
    pub fn svc_server(&self, server_id: &str) -> String {
        self.sub(&format!("svc.{server_id}.*"))
    }
    /// Every plugin-server service subject (for permissions).
    pub fn svc_all(&self) -> String {
        self.sub("svc.>")
    }
    /// Queue group for the replicas of one plugin server.
    pub fn svc_queue(&self, server_id: &str) -> String {
        format!("{}-svc-{server_id}", self.prefix)
    }

    // --- JetStream names (streams and buckets allow only [A-Za-z0-9_-]) ------------------

    fn js_name(&self, what: &str) -> String {
        format!("{}_{}", self.prefix.replace('.', "_"), what).to_ascii_uppercase()
    }
    /// Stream holding every distribution event, kept for the longest token lifetime.
    pub fn dist_stream(&self) -> String {
        self.js_name("DIST")
    }
    /// KV bucket: plugin id -> plugin server ids.
    pub fn routes_bucket(&self) -> String {
        self.js_name("ROUTES")
    }
    /// KV bucket: key id -> public JWK of a broker signing key.
    pub fn keys_bucket(&self) -> String {
        self.js_name("KEYS")
    }
    /// KV bucket: username -> local account (owned by the auth worker).
    pub fn users_bucket(&self) -> String {
        self.js_name("USERS")
    }
    // --- data access ---------------------------------------------------------------------

    /// Client app -> gateway: a signed data-access packet for one plugin.
    pub fn data(&self, plugin_id: &str) -> String {
        self.sub(&format!("data.{plugin_id}"))
    }
    /// Every plugin's data subject (what the gateway replicas subscribe to).
    pub fn data_all(&self) -> String {
        self.sub("data.*")
    }
    /// KV bucket: client app id -> its signing secret (gateway and admin only).
    pub fn client_apps_bucket(&self) -> String {
        self.js_name("CLIENT_APPS")
    }
    /// KV bucket: `<plugin_id>.<operation>` -> plugin-server operation.
    pub fn data_routes_bucket(&self) -> String {
        self.js_name("DATA_ROUTES")
    }

    // --- plugin static assets and plugin keys --------------------------------------------

    /// Admin -> broker: sign and publish a plugin's asset manifest.
    pub fn assets_publish(&self) -> String {
        self.sub("assets.publish")
    }
    /// Anyone -> broker: a plugin's registered public key (for sealing data to it).
    pub fn plugins_key(&self) -> String {
        self.sub("plugins.key")
    }
    /// Object store: content-addressed blobs (`blob/<sha256 hex>`) and every signed manifest
    /// (`manifest/<plugin_id>/<version>`). Its stream is `OBJ_<this name>`.
    pub fn assets_bucket(&self) -> String {
        self.js_name("ASSETS")
    }
    /// KV bucket: plugin id -> the latest signed manifest (written by the broker only).
    pub fn asset_versions_bucket(&self) -> String {
        self.js_name("ASSET_VERSIONS")
    }
    /// KV bucket: plugin id -> the plugin's registered public key (sealed data).
    pub fn plugin_keys_bucket(&self) -> String {
        self.js_name("PLUGIN_KEYS")
    }

    /// KV bucket: app id -> third-party app config (JSON, no secrets).
    pub fn apps_bucket(&self) -> String {
        self.js_name("APPS")
    }
    /// KV bucket: secret key -> an app's client secret (written by admin, read by auth only).
    pub fn app_secrets_bucket(&self) -> String {
        self.js_name("APP_SECRETS")
    }
    /// KV bucket: package name -> manifest of the stored package (the package index).
    pub fn package_index_bucket(&self) -> String {
        self.js_name("PACKAGE_INDEX")
    }
    /// Object store: package name -> the stored `.wasm` (written by auth nodes only).
    pub fn packages_store(&self) -> String {
        self.js_name("PACKAGES")
    }
    /// Object store: uploads waiting for an auth node to verify them (admin writes).
    pub fn package_staging_store(&self) -> String {
        self.js_name("PACKAGE_STAGING")
    }
    // --- audit ---------------------------------------------------------------------------

    /// JetStream subject of one audit event kind (`P.audit.token.issued`); only the workers
    /// that decide publish here (broker: token kinds; auth: login, user and package kinds).
    pub fn audit(&self, kind: crate::audit::AuditKind) -> String {
        self.sub(&format!("audit.{}", kind.as_str()))
    }
    /// Every audit subject (the stream's subjects).
    pub fn audit_all(&self) -> String {
        self.sub("audit.>")
    }
    /// The audit stream: every [`crate::audit::AuditEvent`], bounded by age and size.
    pub fn audit_stream(&self) -> String {
        self.js_name("AUDIT")
    }

    /// KV bucket: plugin server id -> SHA-256 of its bus secret (admin writes, the auth
    /// callout reads). See [`crate::plugin_servers`].
    pub fn plugin_servers_bucket(&self) -> String {
        self.js_name("PLUGIN_SERVERS")
    }
    /// Inbox prefix of plugin server `server_id`'s connections: outside `_INBOX.>`, which
    /// other roles may read, and the only inbox its credentials may subscribe to, so no
    /// other connection sees its replies (JetStream deliveries, introspections).
    pub fn plugin_server_inbox(&self, server_id: &str) -> String {
        format!("_PS_INBOX.{}.{server_id}", self.prefix)
    }
    /// Name of the micro service each worker registers (`$SRV.PING.<name>` finds it).
    pub fn service_name(&self, worker: &str) -> String {
        format!("{}-{worker}", self.prefix.replace('.', "-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix() {
        let s = Subjects::new("acme.dev");
        assert_eq!(s.token_request(), "acme.dev.token.request");
        assert_eq!(s.dist("ps1"), "acme.dev.dist.ps1");
        assert_eq!(s.svc("ps1", "echo"), "acme.dev.svc.ps1.echo");
        assert_eq!(s.dist_stream(), "ACME_DEV_DIST");
        assert_eq!(s.service_name("broker"), "acme-dev-broker");
        assert_eq!(s.data("weather"), "acme.dev.data.weather");
        assert_eq!(s.client_apps_bucket(), "ACME_DEV_CLIENT_APPS");
        assert_eq!(s.data_routes_bucket(), "ACME_DEV_DATA_ROUTES");
        assert_eq!(s.assets_bucket(), "ACME_DEV_ASSETS");
        assert_eq!(s.asset_versions_bucket(), "ACME_DEV_ASSET_VERSIONS");
        assert_eq!(s.plugins_key(), "acme.dev.plugins.key");
        assert_eq!(s.auth_packages_updated(), "acme.dev.auth.packages.updated");
        assert_eq!(s.packages_store(), "ACME_DEV_PACKAGES");
        assert_eq!(
            s.audit(crate::audit::AuditKind::TokenIssued),
            "acme.dev.audit.token.issued"
        );
        assert_eq!(s.audit_stream(), "ACME_DEV_AUDIT");
        assert_eq!(s.plugin_servers_bucket(), "ACME_DEV_PLUGIN_SERVERS");
        assert_eq!(s.plugin_server_inbox("ps1"), "_PS_INBOX.acme.dev.ps1");
    }
}
