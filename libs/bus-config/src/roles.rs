//! Roles and their permissions on the bus.

use tessera_schemas::Subjects;
use tessera_schemas::dist_shards::MAX_DIST_SHARDS;
use tessera_schemas::subjects::AUTH_CALLOUT;

use crate::accounts::{self, Account};

mod audit;

/// Who connects to the bus, each with a password of its role. The workers and the admin
/// are static users of nats.conf ([`Role::STATIC`]). Client apps share the `client`
/// password but are admitted by the auth callout, which binds each connection to an inbox
/// of its own ([`Permissions::for_client`]). Plugin servers are not a role: each plugin
/// server id has credentials of its own, also checked by the auth callout, with
/// [`Permissions::for_plugin_server`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Client apps: log in, ask for tokens, fetch keys, call plugin servers. Admitted by
    /// the auth callout, not by nats.conf.
    Client,
    /// The broker worker.
    Broker,
    /// The auth worker (and the auth callout it answers).
    Auth,
    /// Operators: users, routes, revocation, plugin-server credentials.
    Admin,
    /// The gateway worker (signed data-access packets).
    Gateway,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Client,
        Role::Broker,
        Role::Auth,
        Role::Admin,
        Role::Gateway,
    ];

    /// The roles nats.conf lists as users (`auth_users` of the auth callout: nats-server
    /// checks their passwords itself). Every other connection goes to the auth callout.
    pub const STATIC: [Role; 4] = [Role::Broker, Role::Auth, Role::Admin, Role::Gateway];

    /// The nats-server user name of this role.
    pub fn user(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Broker => "broker",
            Role::Auth => "auth",
            Role::Admin => "admin",
            Role::Gateway => "gateway",
        }
    }

    /// The account the role's connections live in: client apps in theirs, every other
    /// role in the workers' account.
    pub fn account(self) -> Account {
        match self {
            Role::Client => Account::Clients,
            Role::Broker | Role::Auth | Role::Admin | Role::Gateway => Account::Workers,
        }
    }

    /// The environment variable that carries this role's connection URL.
    pub fn url_env(self) -> &'static str {
        match self {
            Role::Client => "NATS_URL",
            Role::Broker => "TESSERA_BROKER_URL",
            Role::Auth => "TESSERA_AUTH_URL",
            Role::Admin => "TESSERA_ADMIN_URL",
            Role::Gateway => "TESSERA_GATEWAY_URL",
        }
    }
}

/// Subjects a role may publish to and subscribe on, within its account
/// ([`Role::account`]). `allow_responses` lets a responder reply to any request it
/// received, without opening `_INBOX.>` for publishing; a request from another account
/// arrives with a reply subject the server made (`_R_...`), so such a reply can only go back
/// to the requester (see [`crate::accounts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
    pub allow_responses: bool,
}

const INBOX: &str = "_INBOX.>";
/// Micro-service discovery and stats requests that every service answers.
const SRV: &str = "$SRV.>";

/// The environment variable that carries a plugin server's connection URL (with the
/// credentials `tessera plugin-servers add` printed for it).
pub const PLUGIN_SERVER_URL_ENV: &str = "TESSERA_PLUGIN_SERVER_URL";

/// JetStream API subjects a role needs to create, read and write its own streams (a KV
/// bucket `B` is the stream `KV_B`), and nothing on anybody else's: the users bucket stays
/// the auth worker's alone.
fn js_own(streams: &[String]) -> Vec<String> {
    let mut out = vec!["$JS.API.INFO".to_owned(), "$JS.FC.>".to_owned()];
    for s in streams {
        out.extend([
            format!("$JS.API.STREAM.CREATE.{s}"),
            format!("$JS.API.STREAM.UPDATE.{s}"),
            format!("$JS.API.STREAM.INFO.{s}"),
            format!("$JS.API.STREAM.MSG.GET.{s}"),
            format!("$JS.API.DIRECT.GET.{s}"),
            format!("$JS.API.DIRECT.GET.{s}.>"),
            format!("$JS.API.CONSUMER.CREATE.{s}"),
            format!("$JS.API.CONSUMER.CREATE.{s}.>"),
            format!("$JS.API.CONSUMER.INFO.{s}.>"),
            format!("$JS.API.CONSUMER.DELETE.{s}.>"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{s}.>"),
            format!("$JS.ACK.{s}.>"),
        ]);
    }
    out
}

/// An object store `B` is the stream `OBJ_B` on subjects `$O.B.C.>` (chunks) and `$O.B.M.>`
/// (metadata); replacing or deleting an object purges its old chunks.
fn js_object_store(bucket: &str) -> Vec<String> {
    let stream = format!("OBJ_{bucket}");
    // js_own's first two entries ($JS.API.INFO, $JS.FC.>) are already in every role that
    // owns a stream; listing them again would only repeat them in nats.conf.
    let mut out: Vec<String> = js_own(std::slice::from_ref(&stream))
        .into_iter()
        .skip(2)
        .collect();
    out.extend([
        format!("$O.{bucket}.>"),
        format!("$JS.API.STREAM.PURGE.{stream}"),
    ]);
    out
}

fn kv_stream(bucket: &str) -> String {
    format!("KV_{bucket}")
}

// --- plugin static assets and plugin keys ------------------------------------------------

/// The stream behind object store `bucket`.
fn obj_stream(bucket: &str) -> String {
    format!("OBJ_{bucket}")
}

/// Read-only JetStream access to one stream: its info and direct gets (a KV `get`, an
/// object's info), and with `consume` an ordered consumer (an object's chunks). No publish
/// to the stream's own subjects, so nothing can be written.
fn js_read(stream: &str, consume: bool) -> Vec<String> {
    let mut out = vec![
        "$JS.API.INFO".to_owned(),
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}.>"),
    ];
    if consume {
        out.extend([
            format!("$JS.API.CONSUMER.CREATE.{stream}"),
            format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
            format!("$JS.API.CONSUMER.INFO.{stream}.>"),
            format!("$JS.API.CONSUMER.DELETE.{stream}.>"),
            "$JS.FC.>".to_owned(),
        ]);
    }
    out
}

/// What each role may do with assets and plugin keys, kept apart from the rest so the
/// asset and plugin-key permissions read in one place. Returns (publish, subscribe) additions.
fn assets_permissions(role: Role, s: &Subjects) -> (Vec<String>, Vec<String>) {
    let assets = s.assets_bucket();
    let objects = format!("$O.{assets}.>");
    match role {
        // The broker owns the store and the two buckets; it writes manifests (objects and
        // the latest pointer) and watches plugin keys. It never writes plugin keys.
        Role::Broker => (
            [
                vec![
                    objects,
                    format!("$KV.{}.>", s.asset_versions_bucket()),
                    format!("$JS.API.STREAM.PURGE.{}", obj_stream(&assets)),
                ],
                js_own(&[
                    obj_stream(&assets),
                    kv_stream(&s.asset_versions_bucket()),
                    kv_stream(&s.plugin_keys_bucket()),
                ]),
            ]
            .concat(),
            vec![s.assets_publish(), s.plugins_key()],
        ),
        // The admin uploads blobs (overwriting one purges its old chunks), registers plugin
        // keys, asks the broker to sign, and reads the latest manifests. It cannot move a
        // manifest pointer: only the broker's signature makes a version.
        Role::Admin => (
            [
                vec![
                    s.assets_publish(),
                    s.plugins_key(),
                    objects,
                    format!("$KV.{}.>", s.plugin_keys_bucket()),
                    format!("$JS.API.STREAM.PURGE.{}", obj_stream(&assets)),
                ],
                js_own(&[obj_stream(&assets), kv_stream(&s.plugin_keys_bucket())]),
                js_read(&kv_stream(&s.asset_versions_bucket()), false),
            ]
            .concat(),
            vec![],
        ),
        // Client apps read assets through what their account imports (`accounts.rs`).
        Role::Client | Role::Auth | Role::Gateway => (vec![], vec![]),
    }
}

impl Permissions {
    pub fn for_role(role: Role, s: &Subjects) -> Permissions {
        let mut p = Self::core(role, s);
        for (publish, subscribe) in [assets_permissions(role, s), audit::permissions(role, s)] {
            p.publish.extend(publish);
            p.subscribe.extend(subscribe);
        }
        // The JetStream helpers share a few subjects ($JS.API.INFO, $JS.FC.>): list each once.
        let mut seen = std::collections::HashSet::new();
        p.publish.retain(|subject| seen.insert(subject.clone()));
        p
    }

    /// Permissions of the token flow and accounts.
    fn core(role: Role, s: &Subjects) -> Permissions {
        match role {
            // Whatever the client apps' account imports (the workers' client services,
            // read-only asset gets, plugin servers' operations), and nothing else.
            Role::Client => Permissions {
                publish: accounts::imported_by(Account::Clients, s),
                // Its own inbox only: added per connection by `for_client`.
                subscribe: vec![],
                allow_responses: false,
            },
            Role::Broker => Permissions {
                publish: [
                    vec![
                        s.auth_verify(),
                        format!("$KV.{}.>", s.routes_bucket()),
                        format!("$KV.{}.>", s.keys_bucket()),
                    ],
                    // Every shard the distribution may be split into (the setting may change
                    // without a new nats.conf).
                    (0..MAX_DIST_SHARDS).map(|k| s.dist_all_in(k)).collect(),
                    // Workers provision their own streams and buckets at start.
                    js_own(
                        &[
                            s.dist_streams_possible(),
                            vec![kv_stream(&s.routes_bucket()), kv_stream(&s.keys_bucket())],
                        ]
                        .concat(),
                    ),
                ]
                .concat(),
                subscribe: vec![
                    s.token_request(),
                    s.token_revoke(),
                    s.token_introspect(),
                    s.keys(),
                    s.dist_open_all(),
                    SRV.to_owned(),
                    INBOX.to_owned(),
                ],
                allow_responses: true,
            },
            Role::Auth => Permissions {
                publish: [
                    vec![
                        format!("$KV.{}.>", s.users_bucket()),
                        format!("$KV.{}.>", s.package_index_bucket()),
                        s.auth_packages_updated(),
                        s.auth_nodes_joined(),
                    ],
                    // Apps and their secrets are read (watched) here, written by admin; the
                    // auth role provisions them so a fresh bus works in any start order.
                    js_own(&[
                        kv_stream(&s.users_bucket()),
                        kv_stream(&s.package_index_bucket()),
                        kv_stream(&s.apps_bucket()),
                        kv_stream(&s.app_secrets_bucket()),
                    ]),
                    js_object_store(&s.packages_store()),
                    js_object_store(&s.package_staging_store()),
                    // The auth callout reads plugin-server records (it never writes one:
                    // no `$KV.<bucket>.>`); it provisions the bucket if it starts first.
                    js_own(&[kv_stream(&s.plugin_servers_bucket())]),
                ]
                .concat(),
                subscribe: vec![
                    // nats-server's authorization requests (the auth callout).
                    AUTH_CALLOUT.to_owned(),
                    s.auth_login(),
                    s.auth_verify(),
                    s.users_add(),
                    s.auth_packages_upload(),
                    s.auth_packages_updated(),
                    s.auth_nodes_joined(),
                    s.auth_nodes_status(),
                    SRV.to_owned(),
                    INBOX.to_owned(),
                ],
                allow_responses: true,
            },
            Role::Admin => Permissions {
                publish: [
                    vec![
                        s.token_revoke(),
                        s.token_request(),
                        s.token_introspect(),
                        s.users_add(),
                        s.auth_login(),
                        s.keys(),
                        s.svc_all(),
                        format!("$KV.{}.>", s.routes_bucket()),
                        format!("$KV.{}.>", s.apps_bucket()),
                        format!("$KV.{}.>", s.app_secrets_bucket()),
                        s.auth_packages_upload(),
                        s.auth_nodes_status(),
                        SRV.to_owned(),
                        // Data access: client apps and data routes are the admin's to write.
                        format!("$KV.{}.>", s.client_apps_bucket()),
                        format!("$KV.{}.>", s.data_routes_bucket()),
                        // Plugin-server credentials (`tessera plugin-servers add`).
                        format!("$KV.{}.>", s.plugin_servers_bucket()),
                    ],
                    // Routes and apps are the admin's to write; the DIST streams may be
                    // inspected (and the layout recorded: `tessera dist-shards set`); the
                    // package index may be read (`tessera packages list`).
                    js_own(
                        &[
                            vec![kv_stream(&s.routes_bucket())],
                            s.dist_streams_possible(),
                            vec![
                                kv_stream(&s.client_apps_bucket()),
                                kv_stream(&s.data_routes_bucket()),
                                kv_stream(&s.apps_bucket()),
                                kv_stream(&s.app_secrets_bucket()),
                                kv_stream(&s.package_index_bucket()),
                                kv_stream(&s.plugin_servers_bucket()),
                            ],
                        ]
                        .concat(),
                    ),
                    // Uploads go to staging; only auth nodes write the packages store.
                    js_object_store(&s.package_staging_store()),
                ]
                .concat(),
                subscribe: vec![INBOX.to_owned()],
                allow_responses: false,
            },
            // Reads client apps, data routes and the broker's public keys (it provisions
            // the buckets if missing, but cannot write a value: no `$KV.<bucket>.>`), serves
            // `data.*`, forwards to plugin servers.
            Role::Gateway => Permissions {
                publish: [
                    vec![s.svc_all()],
                    js_own(&[
                        kv_stream(&s.client_apps_bucket()),
                        kv_stream(&s.data_routes_bucket()),
                        kv_stream(&s.keys_bucket()),
                    ]),
                ]
                .concat(),
                subscribe: vec![s.data_all(), SRV.to_owned(), INBOX.to_owned()],
                allow_responses: true,
            },
        }
    }
}

impl Permissions {
    /// What a client connection whose inbox prefix is `inbox` may do: the client role's
    /// publishes, and subscribing to `<inbox>.>` and nothing else, so it reads its own
    /// replies and nobody else's. The auth callout computes `inbox` from the connection's
    /// inbox key (`tessera_protocol::bus::client_inbox`) and puts these into its user JWT.
    pub fn for_client(inbox: &str, s: &Subjects) -> Permissions {
        let mut p = Permissions::for_role(Role::Client, s);
        p.subscribe.push(format!("{inbox}.>"));
        p
    }

    /// What plugin server `id`'s serving connection may do, and nothing more: serve
    /// `svc.<id>.*` (and answer micro-service discovery), verify tokens (`token.introspect`,
    /// `keys`). Its replies arrive on its own inbox prefix
    /// ([`Subjects::plugin_server_inbox`]), which nobody else may read, and it may not
    /// subscribe to `_INBOX.>`. The auth callout puts these into the user JWT it issues for a
    /// connection with `id`'s credentials as user `plugin-server.<id>`.
    pub fn for_plugin_server(id: &str, s: &Subjects) -> Permissions {
        Permissions {
            // `$JS.API.INFO` (account info, nothing of any stream): the server round trip
            // that fences a worker's drain after its unsubscribes (libs/runtime/src/service.rs).
            publish: vec![s.token_introspect(), s.keys(), "$JS.API.INFO".to_owned()],
            subscribe: vec![
                s.svc_server(id),
                SRV.to_owned(),
                format!("{}.>", s.plugin_server_inbox(id)),
            ],
            allow_responses: true,
        }
    }

    /// What plugin server `id`'s distribution connection (user `plugin-server-dist.<id>`,
    /// same secret) may do: read its own distributions `dist.<id>` through a filtered
    /// consumer, on its own inbox. No responses: see
    /// `tessera_schemas::plugin_servers::DIST_USER_PREFIX` for why it is a connection of its
    /// own.
    ///
    /// It cannot create a consumer itself (a consumer's config may name any deliver subject,
    /// and JetStream would publish there): it asks the broker to open one on `dist.<id>`
    /// ([`Subjects::dist_open`]; the subject's last token is the id the bus admitted it as)
    /// and pulls from it by the random name the broker answers with.
    ///
    /// It may pull from a consumer of any shard's stream (the auth callout that grants this
    /// does not know the number of shards): what keeps it to its own distributions is that
    /// only the broker creates consumers, filtered on the id, with unguessable names.
    pub fn for_plugin_server_distribution(id: &str, s: &Subjects) -> Permissions {
        let mut publish = vec!["$JS.API.INFO".to_owned(), s.dist_open(id)];
        publish.extend(
            s.dist_streams_possible()
                .iter()
                .map(|stream| format!("{}.CONSUMER.MSG.NEXT.{stream}.*", s.js_api_import())),
        );
        Permissions {
            publish,
            subscribe: vec![format!("{}.>", s.plugin_server_inbox(id))],
            allow_responses: false,
        }
    }
}

/// Whether `subject` is matched by the NATS wildcard `pattern` (`*` one token, `>` the rest).
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

impl Permissions {
    pub fn may_publish(&self, subject: &str) -> bool {
        self.publish.iter().any(|p| subject_matches(p, subject))
    }
    pub fn may_subscribe(&self, subject: &str) -> bool {
        self.subscribe.iter().any(|p| subject_matches(p, subject))
    }
}

#[cfg(test)]
mod tests;
