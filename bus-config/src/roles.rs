//! Roles and their permissions on the bus.

use tessera_schemas::Subjects;

/// Who connects to the bus. Each role is one nats-server user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Client apps: log in, ask for tokens, fetch keys, call plugin servers.
    Client,
    /// The broker worker.
    Broker,
    /// The auth worker.
    Auth,
    /// Plugin servers (the SDK).
    PluginServer,
    /// Operators: users, routes, revocation.
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Client,
        Role::Broker,
        Role::Auth,
        Role::PluginServer,
        Role::Admin,
    ];

    /// The nats-server user name of this role.
    pub fn user(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Broker => "broker",
            Role::Auth => "auth",
            Role::PluginServer => "plugin-server",
            Role::Admin => "admin",
        }
    }

    /// The environment variable that carries this role's connection URL.
    pub fn url_env(self) -> &'static str {
        match self {
            Role::Client => "NATS_URL",
            Role::Broker => "TESSERA_BROKER_URL",
            Role::Auth => "TESSERA_AUTH_URL",
            Role::PluginServer => "TESSERA_PLUGIN_SERVER_URL",
            Role::Admin => "TESSERA_ADMIN_URL",
        }
    }
}

/// Subjects a role may publish to and subscribe on. `allow_responses` lets a responder
/// reply to any request it received, without opening `_INBOX.>` for publishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
    pub allow_responses: bool,
}

const INBOX: &str = "_INBOX.>";
/// Micro-service discovery and stats requests that every service answers.
const SRV: &str = "$SRV.>";

/// JetStream API subjects a consumer-only role needs on one stream.
fn js_consume(stream: &str) -> Vec<String> {
    vec![
        "$JS.API.INFO".to_owned(),
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
        format!("$JS.API.CONSUMER.CREATE.{stream}"),
        format!("$JS.API.CONSUMER.INFO.{stream}.>"),
        format!("$JS.API.CONSUMER.DELETE.{stream}.>"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.>"),
        format!("$JS.ACK.{stream}.>"),
        "$JS.FC.>".to_owned(),
    ]
}

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

impl Permissions {
    pub fn for_role(role: Role, s: &Subjects) -> Permissions {
        match role {
            Role::Client => Permissions {
                publish: vec![s.token_request(), s.auth_login(), s.keys(), s.svc_all()],
                subscribe: vec![INBOX.to_owned()],
                allow_responses: false,
            },
            Role::Broker => Permissions {
                publish: [
                    vec![
                        s.auth_verify(),
                        s.dist_all(),
                        format!("$KV.{}.>", s.routes_bucket()),
                        format!("$KV.{}.>", s.keys_bucket()),
                    ],
                    // Workers provision their own streams and buckets at start.
                    js_own(&[
                        s.dist_stream(),
                        kv_stream(&s.routes_bucket()),
                        kv_stream(&s.keys_bucket()),
                    ]),
                ]
                .concat(),
                subscribe: vec![
                    s.token_request(),
                    s.token_revoke(),
                    s.token_introspect(),
                    s.keys(),
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
                ]
                .concat(),
                subscribe: vec![
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
            Role::PluginServer => {
                let mut publish = js_consume(&s.dist_stream());
                publish.extend([s.token_introspect(), s.keys()]);
                Permissions {
                    publish,
                    subscribe: vec![s.svc_all(), SRV.to_owned(), INBOX.to_owned()],
                    allow_responses: true,
                }
            }
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
                    ],
                    // Routes and apps are the admin's to write; the DIST stream may be
                    // inspected; the package index may be read (`tessera packages list`).
                    js_own(&[
                        kv_stream(&s.routes_bucket()),
                        s.dist_stream(),
                        kv_stream(&s.apps_bucket()),
                        kv_stream(&s.app_secrets_bucket()),
                        kv_stream(&s.package_index_bucket()),
                    ]),
                    // Uploads go to staging; only auth nodes write the packages store.
                    js_object_store(&s.package_staging_store()),
                ]
                .concat(),
                subscribe: vec![INBOX.to_owned()],
                allow_responses: false,
            },
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
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(subject_matches("a.*.c", "a.b.c"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(subject_matches("a.b", "a.b"));
    }

    /// Each request subject is served by exactly the role that owns it, and the client role
    /// can reach only what the issue allows.
    #[test]
    fn subjects_agree_with_permissions() {
        let s = Subjects::default();
        let serves = |r: Role, subj: &str| Permissions::for_role(r, &s).may_subscribe(subj);
        assert!(serves(Role::Broker, &s.token_request()));
        assert!(serves(Role::Broker, &s.token_revoke()));
        assert!(serves(Role::Broker, &s.token_introspect()));
        assert!(serves(Role::Broker, &s.keys()));
        assert!(serves(Role::Auth, &s.auth_login()));
        assert!(serves(Role::Auth, &s.auth_verify()));
        assert!(serves(Role::Auth, &s.users_add()));
        assert!(serves(Role::PluginServer, &s.svc("ps1", "echo")));
        assert!(serves(Role::Auth, &s.auth_packages_upload()));
        assert!(serves(Role::Auth, &s.auth_packages_updated()));
        assert!(serves(Role::Auth, &s.auth_nodes_joined()));
        assert!(serves(Role::Auth, &s.auth_nodes_status()));
        let admin = Permissions::for_role(Role::Admin, &s);
        assert!(admin.may_publish(&s.auth_packages_upload()));
        assert!(admin.may_publish(&s.auth_nodes_status()));
        // Packages reach the store only through an auth node's checks; app secrets are
        // written by admin and read by auth alone.
        let packages_chunks = format!("$O.{}.C.x", s.packages_store());
        let staging_chunks = format!("$O.{}.C.x", s.package_staging_store());
        let secrets_api = format!("$JS.API.DIRECT.GET.KV_{}", s.app_secrets_bucket());
        for role in Role::ALL {
            let p = Permissions::for_role(role, &s);
            assert_eq!(
                p.may_publish(&packages_chunks),
                role == Role::Auth,
                "{role:?}"
            );
            assert_eq!(
                p.may_publish(&staging_chunks),
                matches!(role, Role::Auth | Role::Admin),
                "{role:?}"
            );
            assert_eq!(
                p.may_publish(&secrets_api),
                matches!(role, Role::Auth | Role::Admin),
                "{role:?}"
            );
            assert_eq!(
                p.may_publish(&s.auth_packages_updated()),
                role == Role::Auth,
                "{role:?}"
            );
        }

        let client = Permissions::for_role(Role::Client, &s);
        for ok in [
            s.token_request(),
            s.auth_login(),
            s.keys(),
            s.svc("ps1", "echo"),
        ] {
            assert!(client.may_publish(&ok), "{ok}");
        }
        for no in [
            s.dist("ps1"),
            s.auth_verify(),
            s.token_revoke(),
            s.users_add(),
            s.token_introspect(),
            s.auth_packages_upload(),
            s.auth_nodes_status(),
        ] {
            assert!(!client.may_publish(&no), "{no}");
        }
        assert!(!client.may_subscribe(&s.token_request()));
        assert!(!client.may_subscribe(&s.dist("ps1")));

        let broker = Permissions::for_role(Role::Broker, &s);
        assert!(broker.may_publish(&s.auth_verify()));
        assert!(broker.may_publish(&s.dist("ps1")));
        // Only the auth worker can touch the users bucket (password hashes).
        let users_api = format!("$JS.API.STREAM.MSG.GET.KV_{}", s.users_bucket());
        for role in Role::ALL {
            let may = Permissions::for_role(role, &s).may_publish(&users_api);
            assert_eq!(may, role == Role::Auth, "{role:?}");
        }
        let ps = Permissions::for_role(Role::PluginServer, &s);
        assert!(!ps.may_publish(&s.dist("ps1")));
        assert!(ps.may_publish(&s.token_introspect()));
    }
}
