//! The bus of a deployed cluster (Docker Compose or Kubernetes): the nats-server
//! configuration every member shares, and the settings of each role.
//!
//! The configuration holds no secret: passwords are `$TESSERA_NATS_PASSWORD_<ROLE>`
//! references and the server name is `$SERVER_NAME`, both resolved by nats-server from its
//! environment, so one file serves every member and can be committed
//! (`docker/compose/nats.conf`, `docker/k8s/base/nats.conf`; a test keeps them equal to what
//! this module renders). The passwords go in env files that `tessera bus-config render`
//! generates, one per role, for compose's `env_file` or a kustomize `secretGenerator`.

use std::path::PathBuf;

use tessera_schemas::Subjects;

use crate::Role;
use crate::redis_acl::{RedisCredentials, RedisUser};
use crate::server::{
    CALLOUT_ISSUER_ENV, CALLOUT_ISSUER_SEED_ENV, ClusterConfig, Credentials, RenderOptions,
    ServerConfig, password_env,
};

/// Client port, cluster (route) port and monitoring port of every member.
pub const CLIENT_PORT: u16 = 4222;
pub const CLUSTER_PORT: u16 = 6222;
pub const MONITOR_PORT: u16 = 8222;
/// Members of the cluster (JetStream replicas 3 needs three).
pub const NODES: usize = 3;
pub const CLUSTER_NAME: &str = "tessera";
/// Environment variable with a member's server name.
pub const SERVER_NAME_ENV: &str = "SERVER_NAME";
/// The auth workers' trusted package-publisher keys (comma-separated base64url Ed25519);
/// the auth worker's configuration reads it under this name (`tessera_auth::config`, which
/// this crate does not depend on; the CLI's tests keep the two names equal).
pub const PACKAGE_TRUSTED_KEYS_ENV: &str = "TESSERA_PACKAGE_TRUSTED_KEYS";

/// Where the cluster runs: it decides the members' host names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Services `nats-1`, `nats-2`, `nats-3` on the compose network.
    Compose,
    /// StatefulSet `nats` behind the headless Service `nats-headless` (pods `nats-0..2`), and
    /// the client Service `nats`; names resolve within the namespace.
    Kubernetes,
}

impl Target {
    /// Host names of the members (for routes).
    pub fn members(self) -> Vec<String> {
        match self {
            Target::Compose => (1..=NODES).map(|i| format!("nats-{i}")).collect(),
            Target::Kubernetes => (0..NODES)
                .map(|i| format!("nats-{i}.nats-headless"))
                .collect(),
        }
    }

    /// The NATS address workers use inside the deployment: every member (compose), or the
    /// client Service (Kubernetes).
    pub fn client_hosts(self) -> Vec<String> {
        match self {
            Target::Compose => self.members(),
            Target::Kubernetes => vec!["nats".into()],
        }
    }
}

/// The nats-server configuration of every member of `target`'s cluster.
pub fn nats_conf(target: Target, subjects: &Subjects) -> String {
    let server = ServerConfig {
        host: "0.0.0.0".into(),
        port: Some(CLIENT_PORT),
        store_dir: PathBuf::from("/data/jetstream"),
        server_name: String::new(),
        subjects: subjects.clone(),
        // Never written: the rendered passwords are environment references.
        credentials: Credentials::generate(),
    };
    let cluster = ClusterConfig {
        name: CLUSTER_NAME.into(),
        listen: format!("0.0.0.0:{CLUSTER_PORT}"),
        routes: target
            .members()
            .iter()
            .map(|h| format!("nats-route://{h}:{CLUSTER_PORT}"))
            .collect(),
        // Clients get the member list from their settings (compose) or a Service (Kubernetes).
        no_advertise: true,
    };
    server.render_with(&RenderOptions {
        cluster: Some(cluster),
        passwords_from_env: true,
        server_name_env: Some(SERVER_NAME_ENV.into()),
        http_port: Some(MONITOR_PORT),
    })
}

/// `nats://user:pass@h1:4222,nats://user:pass@h2:4222,...` for `role`.
pub fn role_url(target: Target, credentials: &Credentials, role: Role) -> String {
    target
        .client_hosts()
        .iter()
        .map(|h| credentials.url(role, h, CLIENT_PORT))
        .collect::<Vec<_>>()
        .join(",")
}

/// One env file: its name and `KEY=VALUE` lines.
pub struct EnvFile {
    pub name: &'static str,
    pub pairs: Vec<(String, String)>,
}

/// The env files of a deployment: `nats.env` (the static roles' passwords and the callout
/// issuer's public key, for nats-server only) and one per role with just that role's URL
/// (`broker.env` and `gateway.env` also get `REDIS_URL` with their own Redis user,
/// `redis.env` holds the Redis users' passwords, `auth.env` the callout issuer's seed and
/// the client password, which the auth callout checks, and `trusted_package_keys`, the
/// publisher keys whose auth packages the nodes accept: without one, no third-party login
/// package can be installed). `admin.env`
/// reaches the cluster from the host through the ports compose publishes on 127.0.0.1, and
/// gives the admin the cluster's replicas for any bucket it creates first.
/// Plugin servers get no file here: each id's credentials come from
/// `tessera plugin-servers add ID` against the running cluster (docker/README.md).
pub fn env_files(
    target: Target,
    credentials: &Credentials,
    redis: &RedisCredentials,
    redis_url: &str,
    trusted_package_keys: &[String],
) -> Vec<EnvFile> {
    let url = |r| role_url(target, credentials, r);
    let mut nats: Vec<(String, String)> = Role::STATIC
        .iter()
        .map(|&r| (password_env(r), credentials.password(r).to_owned()))
        .collect();
    nats.push((CALLOUT_ISSUER_ENV.into(), credentials.callout_issuer()));
    let mut files = vec![
        EnvFile {
            name: "nats.env",
            pairs: nats,
        },
        EnvFile {
            name: "broker.env",
            pairs: vec![
                (Role::Broker.url_env().into(), url(Role::Broker)),
                (
                    "REDIS_URL".into(),
                    redis.url_from(RedisUser::Broker, redis_url),
                ),
            ],
        },
        EnvFile {
            name: "auth.env",
            pairs: vec![
                (Role::Auth.url_env().into(), url(Role::Auth)),
                (
                    CALLOUT_ISSUER_SEED_ENV.into(),
                    credentials.callout_issuer_seed().to_owned(),
                ),
                // The auth callout checks client apps' password (nats-server does not).
                (
                    password_env(Role::Client),
                    credentials.password(Role::Client).to_owned(),
                ),
                (
                    PACKAGE_TRUSTED_KEYS_ENV.into(),
                    trusted_package_keys.join(","),
                ),
            ],
        },
        EnvFile {
            name: "gateway.env",
            pairs: vec![
                (Role::Gateway.url_env().into(), url(Role::Gateway)),
                (
                    "REDIS_URL".into(),
                    redis.url_from(RedisUser::Gateway, redis_url),
                ),
            ],
        },
        // The Redis users' passwords, kept so a second render keeps them (and the admin's,
        // for an operator's redis-cli). redis.acl, written beside, is what Redis loads.
        EnvFile {
            name: "redis.env",
            pairs: RedisUser::ALL
                .into_iter()
                .map(|u| (u.password_env(), redis.password(u).to_owned()))
                .collect(),
        },
    ];
    if target == Target::Compose {
        let host = |r| {
            (1..=NODES)
                .map(|i| credentials.url(r, "127.0.0.1", CLIENT_PORT + i as u16 - 1))
                .collect::<Vec<_>>()
                .join(",")
        };
        files.push(EnvFile {
            name: "admin.env",
            pairs: vec![
                (Role::Admin.url_env().into(), host(Role::Admin)),
                (Role::Client.url_env().into(), host(Role::Client)),
                // What the admin creates before the workers do gets the cluster's replicas.
                ("TESSERA_JS_REPLICAS".into(), NODES.to_string()),
            ],
        });
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed configurations are what this module renders: run
    /// `tessera bus-config render` (see docker/README.md) after changing roles or subjects.
    #[test]
    fn committed_configs_are_current() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for (target, path) in [
            (Target::Compose, "docker/compose/nats.conf"),
            (Target::Kubernetes, "docker/k8s/base/nats.conf"),
        ] {
            let committed =
                std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(
                committed,
                nats_conf(target, &Subjects::default()),
                "{path} is stale: regenerate it with `tessera bus-config render --target {}`",
                match target {
                    Target::Compose => "compose --out docker/compose",
                    Target::Kubernetes => "kubernetes --out docker/k8s/base",
                }
            );
        }
    }

    #[test]
    fn env_files_carry_each_role_its_own_url() {
        let c = Credentials::generate();
        let r = RedisCredentials::generate();
        let files = env_files(Target::Compose, &c, &r, "redis://redis:6379/", &[]);
        let broker = files.iter().find(|f| f.name == "broker.env").unwrap();
        let url = &broker.pairs[0].1;
        // Each worker reaches Redis as its own user; the admin's password is in no worker's.
        let redis_of = |name: &str| {
            let f = files.iter().find(|f| f.name == name).unwrap();
            f.pairs
                .iter()
                .find(|(k, _)| k == "REDIS_URL")
                .unwrap()
                .1
                .clone()
        };
        assert!(redis_of("broker.env").starts_with("redis://broker:"));
        assert!(redis_of("gateway.env").starts_with("redis://gateway:"));
        for f in ["broker.env", "gateway.env", "auth.env"] {
            let f = files.iter().find(|x| x.name == f).unwrap();
            assert!(
                !f.pairs
                    .iter()
                    .any(|(_, v)| v.contains(r.password(RedisUser::Admin)))
            );
        }
        assert_eq!(url.split(',').count(), 3);
        assert!(url.contains(c.password(Role::Broker)));
        assert!(!url.contains(c.password(Role::Admin)));
        let auth = files.iter().find(|f| f.name == "auth.env").unwrap();
        assert!(auth.pairs.iter().any(|(_, v)| v == c.callout_issuer_seed()));
        let nats = files.iter().find(|f| f.name == "nats.env").unwrap();
        assert!(nats.pairs.iter().any(|(_, v)| *v == c.callout_issuer()));
        assert!(!nats.pairs.iter().any(|(_, v)| v == c.callout_issuer_seed()));
        assert!(files.iter().all(|f| f.name != "plugin-server.env"));
        let k8s = role_url(Target::Kubernetes, &c, Role::Auth);
        assert_eq!(k8s, c.url(Role::Auth, "nats", CLIENT_PORT));
    }

    /// The auth nodes get the publisher keys they trust, so packages signed with the
    /// rendered publisher key install; the key list is in no other role's file.
    #[test]
    fn auth_env_carries_the_trusted_package_keys() {
        let c = Credentials::generate();
        let r = RedisCredentials::generate();
        let keys = ["publisherA".to_owned(), "publisherB".to_owned()];
        for target in [Target::Compose, Target::Kubernetes] {
            let files = env_files(target, &c, &r, "redis://redis:6379/", &keys);
            let value = |name: &str| {
                files
                    .iter()
                    .find(|f| f.name == name)
                    .unwrap()
                    .pairs
                    .iter()
                    .find(|(k, _)| k == PACKAGE_TRUSTED_KEYS_ENV)
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(value("auth.env").as_deref(), Some("publisherA,publisherB"));
            for other in files.iter().filter(|f| f.name != "auth.env") {
                assert_eq!(value(other.name), None, "{}", other.name);
            }
        }
        // None trusted: the variable is still there (empty), for the operator to fill.
        let files = env_files(Target::Compose, &c, &r, "redis://redis:6379/", &[]);
        let auth = files.iter().find(|f| f.name == "auth.env").unwrap();
        assert!(
            auth.pairs
                .iter()
                .any(|(k, v)| k == PACKAGE_TRUSTED_KEYS_ENV && v.is_empty())
        );
    }
}
