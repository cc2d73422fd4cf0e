//! Renders a nats-server configuration: the three accounts of [`crate::accounts`] with their
//! exports and imports, JetStream in the workers' account, one user per static role, and
//! the auth callout that admits client apps and plugin servers into their accounts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use tessera_schemas::Subjects;

use crate::accounts::{self, Account};
use crate::roles::{Permissions, Role};

/// A password per role and the auth-callout issuer key. Generated fresh for each dev
/// stack; never committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    passwords: BTreeMap<Role, String>,
    /// Seed (`SA...`) of the account nkey that signs the auth callout's answers; nats.conf
    /// holds only its public key.
    callout_issuer_seed: String,
}

/// The key under which [`Credentials::saved_pairs`] keeps the callout issuer's seed.
const ISSUER_SEED_KEY: &str = "callout-issuer-seed";

impl Credentials {
    /// Random 32-character alphanumeric passwords (safe to embed in URLs and config) and a
    /// fresh callout issuer key.
    pub fn generate() -> Credentials {
        let passwords = Role::ALL
            .into_iter()
            .map(|r| (r, random_password()))
            .collect();
        Credentials {
            passwords,
            callout_issuer_seed: new_issuer_seed(),
        }
    }

    /// `(name, value)` pairs to save credentials in a file (role user -> password, and the
    /// issuer seed); [`Credentials::from_saved`] reads them back.
    pub fn saved_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> = Role::ALL
            .iter()
            .map(|r| (r.user(), self.password(*r).to_owned()))
            .collect();
        out.push((ISSUER_SEED_KEY, self.callout_issuer_seed.clone()));
        out
    }

    /// Rebuilds credentials saved with [`Credentials::saved_pairs`]; `None` if anything is
    /// missing or malformed (the caller then generates new ones).
    pub fn from_saved(mut get: impl FnMut(&str) -> Option<String>) -> Option<Credentials> {
        let seed = get(ISSUER_SEED_KEY)?;
        Credentials::from_passwords(|role| get(role.user()), &seed)
    }

    /// Rebuilds credentials from each role's password and the issuer seed; `None` if any
    /// is missing or malformed.
    pub fn from_passwords(
        mut get: impl FnMut(Role) -> Option<String>,
        callout_issuer_seed: &str,
    ) -> Option<Credentials> {
        let mut passwords = BTreeMap::new();
        for role in Role::ALL {
            let p = get(role)?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return None;
            }
            passwords.insert(role, p);
        }
        issuer_public_key(callout_issuer_seed)?;
        Some(Credentials {
            passwords,
            callout_issuer_seed: callout_issuer_seed.to_owned(),
        })
    }

    /// The seed of the callout issuer (for the auth worker: `TESSERA_CALLOUT_ISSUER_SEED`).
    pub fn callout_issuer_seed(&self) -> &str {
        &self.callout_issuer_seed
    }

    /// The callout issuer's public account key (`A...`), as nats.conf names it.
    pub fn callout_issuer(&self) -> String {
        issuer_public_key(&self.callout_issuer_seed).expect("a seed made by generate or checked")
    }

    pub fn password(&self, role: Role) -> &str {
        &self.passwords[&role]
    }

    /// `nats://user:password@host:port` for one role.
    pub fn url(&self, role: Role, host: &str, port: u16) -> String {
        format!(
            "nats://{}:{}@{host}:{port}",
            role.user(),
            self.password(role)
        )
    }
}

fn new_issuer_seed() -> String {
    nkeys::KeyPair::new_account()
        .seed()
        .expect("a fresh key pair has a seed")
}

/// The public key of an account seed; `None` if `seed` is not an account seed.
pub fn issuer_public_key(seed: &str) -> Option<String> {
    let kp = nkeys::KeyPair::from_seed(seed).ok()?;
    (kp.key_pair_type() == nkeys::KeyPairType::Account).then(|| kp.public_key())
}

pub(crate) fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(32);
    let mut buf = [0u8; 64];
    while out.len() < 32 {
        aws_lc_rs::rand::fill(&mut buf).expect("system randomness");
        // 248 = 4 * 62: dropping bytes at or above it keeps every character equally likely.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() < 32 {
                out.push(ALPHABET[usize::from(b % 62)] as char);
            }
        }
    }
    out
}

/// Everything needed to render one server's configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    /// `None` lets nats-server pick a free port (it logs the one it chose).
    pub port: Option<u16>,
    pub store_dir: PathBuf,
    pub server_name: String,
    pub subjects: Subjects,
    pub credentials: Credentials,
}

/// A `cluster {}` block: what turns one server into a member of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Cluster name; every member has the same.
    pub name: String,
    /// `host:port` the server accepts routes on (e.g. `0.0.0.0:6222`).
    pub listen: String,
    /// `nats-route://host:6222` of every member (its own route is ignored by nats-server).
    pub routes: Vec<String>,
    /// Do not tell clients the other members' addresses (they reach the servers through
    /// addresses of their own: mapped ports, a Service).
    pub no_advertise: bool,
}

/// How [`ServerConfig::render_with`] writes the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderOptions {
    pub cluster: Option<ClusterConfig>,
    /// Passwords as `$TESSERA_NATS_PASSWORD_<ROLE>` references (see [`password_env`]), which
    /// nats-server resolves from its environment: the file holds no secret and can live in a
    /// ConfigMap or an image, the passwords in a Secret or an env file.
    pub passwords_from_env: bool,
    /// `server_name` from this environment variable instead of the literal (one file for
    /// every member of a StatefulSet: `$POD_NAME`).
    pub server_name_env: Option<String>,
    /// Monitoring port (`/healthz`, `/varz`) for probes; off when `None`.
    pub http_port: Option<u16>,
}

/// The environment variable that carries the callout issuer's public key for a config
/// rendered with [`RenderOptions::passwords_from_env`].
pub const CALLOUT_ISSUER_ENV: &str = "TESSERA_NATS_CALLOUT_ISSUER";

/// The environment variable that gives the auth worker the callout issuer's seed (the key
/// it signs plugin servers' user JWTs with).
pub const CALLOUT_ISSUER_SEED_ENV: &str = "TESSERA_CALLOUT_ISSUER_SEED";

/// The environment variable that carries `role`'s password for a config rendered with
/// [`RenderOptions::passwords_from_env`]: `TESSERA_NATS_PASSWORD_PLUGIN_SERVER`, ...
pub fn password_env(role: Role) -> String {
    format!(
        "TESSERA_NATS_PASSWORD_{}",
        role.user().replace('-', "_").to_ascii_uppercase()
    )
}

impl ServerConfig {
    /// The configuration file text.
    pub fn render(&self) -> String {
        self.render_with(&RenderOptions::default())
    }

    /// The configuration of one member of a cluster, passwords inline.
    pub fn render_clustered(&self, cluster: &ClusterConfig) -> String {
        self.render_with(&RenderOptions {
            cluster: Some(cluster.clone()),
            ..RenderOptions::default()
        })
    }

    /// The configuration file text, as `opts` asks.
    pub fn render_with(&self, opts: &RenderOptions) -> String {
        let mut out = String::new();
        let port = self.port.map_or("-1".to_owned(), |p| p.to_string());
        let _ = writeln!(
            out,
            "# Generated by tessera from bus-config; do not edit by hand."
        );
        match &opts.server_name_env {
            Some(var) => {
                let _ = writeln!(out, "server_name: ${var}");
            }
            None => {
                let _ = writeln!(out, "server_name: {}", quote(&self.server_name));
            }
        }
        let _ = writeln!(out, "listen: {}", quote(&format!("{}:{port}", self.host)));
        if let Some(p) = opts.http_port {
            let _ = writeln!(out, "http_port: {p}");
        }
        let _ = writeln!(out, "max_payload: 1MB");
        let _ = writeln!(out, "jetstream {{");
        let _ = writeln!(
            out,
            "  store_dir: {}",
            quote(&self.store_dir.display().to_string())
        );
        let _ = writeln!(out, "  max_memory_store: 256MB");
        let _ = writeln!(out, "  max_file_store: 4GB");
        let _ = writeln!(out, "}}");
        if let Some(c) = &opts.cluster {
            let _ = writeln!(out, "cluster {{");
            let _ = writeln!(out, "  name: {}", quote(&c.name));
            let _ = writeln!(out, "  listen: {}", quote(&c.listen));
            let _ = writeln!(out, "  routes: {}", list(&c.routes));
            if c.no_advertise {
                let _ = writeln!(out, "  no_advertise: true");
            }
            let _ = writeln!(out, "}}");
        }
        let _ = writeln!(out, "accounts {{");
        for account in Account::ALL {
            self.render_account(&mut out, account, opts);
        }
        let _ = writeln!(out, "}}");
        // Every connection that is not a static role user (a client app, a plugin server) is
        // handed to the auth callout: the auth worker checks its credentials and answers with
        // a user JWT, signed by the issuer, that carries the permissions of that client
        // connection's own inbox, or of that plugin server id, alone.
        let issuer = if opts.passwords_from_env {
            format!("${CALLOUT_ISSUER_ENV}")
        } else {
            quote(&self.credentials.callout_issuer())
        };
        let auth_users: Vec<String> = Role::STATIC.iter().map(|r| r.user().to_owned()).collect();
        let _ = writeln!(out, "authorization {{");
        let _ = writeln!(out, "  auth_callout {{");
        let _ = writeln!(out, "    issuer: {issuer}");
        let _ = writeln!(out, "    account: {}", quote(Account::Workers.name()));
        let _ = writeln!(out, "    auth_users: {}", list(&auth_users));
        let _ = writeln!(out, "  }}");
        let _ = writeln!(out, "}}");
        out
    }
}

impl ServerConfig {
    /// One account: its users (the static roles that live in it), JetStream (the workers'
    /// only), and the services it exports and imports.
    fn render_account(&self, out: &mut String, account: Account, opts: &RenderOptions) {
        let services = accounts::services(&self.subjects);
        let _ = writeln!(out, "  {} {{", account.name());
        if account == Account::Workers {
            let _ = writeln!(out, "    jetstream: enabled");
        }
        let users: Vec<Role> = Role::STATIC
            .into_iter()
            .filter(|r| r.account() == account)
            .collect();
        if !users.is_empty() {
            let _ = writeln!(out, "    users: [");
            for role in users {
                self.render_user(out, role, opts);
            }
            let _ = writeln!(out, "    ]");
        }
        let exports: Vec<&accounts::Service> =
            services.iter().filter(|s| s.from == account).collect();
        if !exports.is_empty() {
            let _ = writeln!(out, "    exports: [");
            for e in exports {
                let to: Vec<String> = e.importers.iter().map(|a| a.name().to_owned()).collect();
                let response = if e.stream_response {
                    ", response_type: \"stream\""
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "      {{ service: {}, accounts: {}{response} }}",
                    quote(&e.subject),
                    list(&to)
                );
            }
            let _ = writeln!(out, "    ]");
        }
        let imports: Vec<&accounts::Service> = services
            .iter()
            .filter(|s| s.importers.contains(&account))
            .collect();
        if !imports.is_empty() {
            let _ = writeln!(out, "    imports: [");
            for i in imports {
                let mut to = if i.local == i.subject {
                    String::new()
                } else {
                    format!(", to: {}", quote(&i.local))
                };
                if i.share {
                    to.push_str(", share: true");
                }
                let _ = writeln!(
                    out,
                    "      {{ service: {{ account: {}, subject: {} }}{to} }}",
                    quote(i.from.name()),
                    quote(&i.subject)
                );
            }
            let _ = writeln!(out, "    ]");
        }
        let _ = writeln!(out, "  }}");
    }

    fn render_user(&self, out: &mut String, role: Role, opts: &RenderOptions) {
        let p = Permissions::for_role(role, &self.subjects);
        let password = if opts.passwords_from_env {
            format!("${}", password_env(role))
        } else {
            quote(self.credentials.password(role))
        };
        let _ = writeln!(out, "      {{");
        let _ = writeln!(out, "        user: {}", quote(role.user()));
        let _ = writeln!(out, "        password: {password}");
        let _ = writeln!(out, "        permissions: {{");
        let _ = writeln!(out, "          publish: {{ allow: {} }}", list(&p.publish));
        let _ = writeln!(
            out,
            "          subscribe: {{ allow: {} }}",
            list(&p.subscribe)
        );
        if p.allow_responses {
            let _ = writeln!(out, "          allow_responses: true");
        }
        let _ = writeln!(out, "        }}");
        let _ = writeln!(out, "      }}");
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_url_safe_and_distinct() {
        let c = Credentials::generate();
        for r in Role::ALL {
            let p = c.password(r);
            assert_eq!(p.len(), 32);
            assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        assert_ne!(c.password(Role::Client), c.password(Role::Admin));
    }

    #[test]
    fn renders_every_role() {
        let cfg = ServerConfig {
            host: "127.0.0.1".into(),
            port: None,
            store_dir: "/tmp/js".into(),
            server_name: "t".into(),
            subjects: Subjects::default(),
            credentials: Credentials::generate(),
        };
        let text = cfg.render();
        assert!(text.contains("listen: \"127.0.0.1:-1\""));
        for r in Role::STATIC {
            assert!(text.contains(&format!("user: \"{}\"", r.user())));
        }
        // Client apps go through the auth callout: no static user, no password in the file.
        assert!(!text.contains("user: \"client\""));
        assert!(!text.contains(cfg.credentials.password(Role::Client)));
        assert!(!text.contains("cluster {"));
        assert!(text.contains(&format!("issuer: \"{}\"", cfg.credentials.callout_issuer())));
        assert!(!text.contains(cfg.credentials.callout_issuer_seed()));
        assert!(text.contains(r#"auth_users: ["broker", "auth", "admin", "gateway"]"#));
    }

    #[test]
    fn saved_credentials_round_trip() {
        let c = Credentials::generate();
        let pairs: BTreeMap<&str, String> = c.saved_pairs().into_iter().collect();
        let back = Credentials::from_saved(|k| pairs.get(k).cloned()).unwrap();
        assert_eq!(back, c);
        assert!(c.callout_issuer().starts_with('A'));
        assert!(
            Credentials::from_saved(|k| {
                (k != "callout-issuer-seed")
                    .then(|| pairs.get(k).cloned())
                    .flatten()
            })
            .is_none()
        );
        // A user seed is not an issuer.
        let user_seed = nkeys::KeyPair::new_user().seed().unwrap();
        assert!(issuer_public_key(&user_seed).is_none());
    }

    #[test]
    fn renders_a_cluster_member_with_passwords_from_env() {
        let cfg = ServerConfig {
            host: "0.0.0.0".into(),
            port: Some(4222),
            store_dir: "/data/jetstream".into(),
            server_name: "unused".into(),
            subjects: Subjects::default(),
            credentials: Credentials::generate(),
        };
        let text = cfg.render_with(&RenderOptions {
            cluster: Some(ClusterConfig {
                name: "tessera".into(),
                listen: "0.0.0.0:6222".into(),
                routes: vec![
                    "nats-route://nats-1:6222".into(),
                    "nats-route://nats-2:6222".into(),
                ],
                no_advertise: true,
            }),
            passwords_from_env: true,
            server_name_env: Some("POD_NAME".into()),
            http_port: Some(8222),
        });
        assert!(text.contains("server_name: $POD_NAME"));
        assert!(text.contains("http_port: 8222"));
        assert!(
            text.contains(r#"routes: ["nats-route://nats-1:6222", "nats-route://nats-2:6222"]"#)
        );
        assert!(text.contains("password: $TESSERA_NATS_PASSWORD_GATEWAY"));
        assert!(text.contains("issuer: $TESSERA_NATS_CALLOUT_ISSUER"));
        assert!(!text.contains(&cfg.credentials.callout_issuer()));
        for r in Role::ALL {
            assert!(
                !text.contains(cfg.credentials.password(r)),
                "no password inline"
            );
        }
    }
}
