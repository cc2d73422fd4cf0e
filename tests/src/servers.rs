//! The servers under test: where they come from ([`Backend`]) and how to reach them
//! ([`Servers`]).

use std::time::Duration;

use tessera_bus_config::plugin_servers::PluginServerSecret;
use tessera_bus_config::redis_acl::{RedisCredentials, RedisUser};
use tessera_bus_config::{Credentials, Role, ServerConfig};
use tessera_devstack::{
    LocalNats, LocalRedis, LocalRedisCluster, NatsOptions, RedisClusterOptions, RedisOptions,
};
use tessera_schemas::Subjects;
use tessera_schemas::subjects::DEFAULT_PREFIX;

use crate::ServerErrors;
use crate::containers::{
    Images, NatsContainer, RedisContainer, cluster_url, single_server_config, start_cluster,
};
use crate::docker::{self, Probe};

/// How long a connection attempt keeps retrying.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Set to `1` to run against the servers in `NATS_URL` / `REDIS_URL` instead of starting
/// local ones (the same as `TESSERA_TEST_BACKEND=external`).
pub const ENV_EXTERNAL: &str = "TESSERA_TEST_EXTERNAL";
/// `local`, `containers` or `external`; unset: containers when an engine answers, else local.
pub const ENV_BACKEND: &str = "TESSERA_TEST_BACKEND";

/// Where the servers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `nats-server` and `redis-server` child processes on free ports, one pair per
    /// [`Servers`], with a generated config (one user per role, real permissions).
    Local,
    /// `nats-server` and `redis-server` containers (testcontainers), one pair per [`Servers`],
    /// with the same generated config as [`Backend::Local`]; reached on 127.0.0.1 through the
    /// mapped ports. They cannot be stopped or restarted through [`Servers`]: tests that do
    /// that ask for [`Backend::Local`].
    Containers(Images),
    /// Servers someone else runs. Every role connects with the same URL, so the role
    /// permissions are whatever that server enforces; each [`Servers`] gets a random subject
    /// (and Redis key) prefix for isolation.
    External { nats_url: String, redis_url: String },
}

impl Backend {
    /// From `TESSERA_TEST_BACKEND`: `external` (or `TESSERA_TEST_EXTERNAL=1`; then `NATS_URL`
    /// and `REDIS_URL` are required), `local`, or `containers` (which fails loudly when no
    /// usable engine answers). Unset: [`Backend::Containers`] when a container engine answers
    /// at `DOCKER_HOST` or the default socket and speaks testcontainers' API version,
    /// else [`Backend::Local`]. Either way the servers run our generated config, so the role
    /// permissions the tests rely on hold.
    pub fn from_env() -> Backend {
        let choice = std::env::var(ENV_BACKEND).unwrap_or_default();
        if std::env::var(ENV_EXTERNAL).is_ok_and(|v| v == "1") || choice == "external" {
            let var = |k: &str| {
                std::env::var(k)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| panic!("{ENV_EXTERNAL}=1 needs {k}"))
            };
            Backend::External {
                nats_url: var("NATS_URL"),
                redis_url: var("REDIS_URL"),
            }
        } else {
            match choice.as_str() {
                "local" => Backend::Local,
                "containers" => match engine() {
                    Probe::Usable => Backend::Containers(Images::from_env()),
                    other => panic!("{ENV_BACKEND}=containers, but {}", describe(other)),
                },
                "" => match engine() {
                    Probe::Usable => Backend::Containers(Images::from_env()),
                    other => {
                        note_local_once(other);
                        Backend::Local
                    }
                },
                other => panic!("{ENV_BACKEND}={other:?}: expected local, containers or external"),
            }
        }
    }
}

/// The engine probe, asked once per process.
fn engine() -> &'static Probe {
    static PROBE: std::sync::OnceLock<Probe> = std::sync::OnceLock::new();
    PROBE.get_or_init(docker::probe)
}

fn describe(p: &Probe) -> String {
    match p {
        Probe::Usable => "the container engine answers".into(),
        Probe::NoEngine(why) => format!("no container engine answers ({why})"),
        Probe::TooOld { api } => format!(
            "the container engine speaks Docker API {api} only, older than testcontainers' {}: \
             run the suite through `make test`, which puts the docker-api-shim in between \
             (DOCKER_HOST=unix://<its socket>)",
            docker::TESTCONTAINERS_API
        ),
    }
}

fn note_local_once(p: &Probe) {
    static NOTED: std::sync::Once = std::sync::Once::new();
    NOTED.call_once(|| {
        eprintln!(
            "tessera-tests: servers run as local processes: {}",
            describe(p)
        )
    });
}

struct InContainers {
    /// One server, or the members of a cluster.
    nats: Vec<NatsContainer>,
    redis: RedisContainer,
    credentials: Credentials,
}

struct Local {
    // Fields drop in order: both servers are killed before their directory is removed.
    nats: LocalNats,
    redis: LocalRedis,
    _dir: tempfile::TempDir,
}

/// A NATS server and a Redis server for one test. Local servers are killed on drop.
pub struct Servers {
    subjects: Subjects,
    /// The Redis users' passwords (`None` for external servers: one URL for every role).
    redis_credentials: Option<RedisCredentials>,
    local: Option<Local>,
    containers: Option<InContainers>,
    external: Option<(String, String)>,
    /// A local Redis Cluster the workers use instead of the single Redis (see
    /// [`Servers::start_redis_cluster`]). Its nodes die before their directory goes.
    redis_cluster: Option<(LocalRedisCluster, tempfile::TempDir)>,
}

/// The shape of a local Redis Cluster for [`Servers::start_redis_cluster`].
#[derive(Debug, Clone, Copy)]
pub struct RedisClusterSpec {
    pub masters: usize,
    pub replicas: usize,
    /// `cluster-node-timeout`: how soon a lost master's replica takes over.
    pub node_timeout: Duration,
}

impl Default for RedisClusterSpec {
    /// Three masters with a replica each; a lost master replaced within about 2 s.
    fn default() -> Self {
        RedisClusterSpec {
            masters: 3,
            replicas: 1,
            node_timeout: Duration::from_millis(1000),
        }
    }
}

impl Servers {
    /// Servers from [`Backend::from_env`], with the default prefix (local) or a random one
    /// (external).
    pub async fn start() -> Servers {
        Servers::start_with(Backend::from_env(), None).await
    }

    /// Servers from `backend`. `prefix` defaults to `tessera` for local servers and to a
    /// random prefix for external ones.
    pub async fn start_with(backend: Backend, prefix: Option<&str>) -> Servers {
        Servers::start_nodes(backend, prefix, 1).await
    }

    /// Like [`Servers::start_with`], with a NATS cluster of `nodes` members (JetStream
    /// clustered) when `nodes > 1`: only the container backend can do that.
    pub async fn start_nodes(backend: Backend, prefix: Option<&str>, nodes: usize) -> Servers {
        crate::init_logging();
        assert!(
            nodes == 1 || matches!(backend, Backend::Containers(_)),
            "a NATS cluster needs the container backend"
        );
        match backend {
            Backend::Local => {
                let subjects = Subjects::new(prefix.unwrap_or(DEFAULT_PREFIX));
                let redis_credentials = RedisCredentials::generate();
                let local = start_local(&subjects, &redis_credentials).await;
                Servers {
                    subjects,
                    redis_credentials: Some(redis_credentials),
                    local: Some(local),
                    containers: None,
                    external: None,
                    redis_cluster: None,
                }
            }
            Backend::Containers(images) => {
                let subjects = Subjects::new(prefix.unwrap_or(DEFAULT_PREFIX));
                let credentials = Credentials::generate();
                let nats = async {
                    if nodes > 1 {
                        start_cluster(&images, &subjects, &credentials, nodes).await
                    } else {
                        let text = single_server_config(&subjects, &credentials).render();
                        vec![NatsContainer::start(&images, text, None).await]
                    }
                };
                let redis_credentials = RedisCredentials::generate();
                let acl = redis_credentials.acl_lines(subjects.prefix());
                let (nats, redis) = tokio::join!(nats, RedisContainer::start(&images, &acl));
                if nodes > 1 {
                    wait_for_jetstream_cluster(&cluster_url(&nats, &credentials, Role::Admin))
                        .await;
                }
                Servers {
                    subjects,
                    redis_credentials: Some(redis_credentials),
                    local: None,
                    containers: Some(InContainers {
                        nats,
                        redis,
                        credentials,
                    }),
                    external: None,
                    redis_cluster: None,
                }
            }
            Backend::External {
                nats_url,
                redis_url,
            } => {
                let random = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
                let subjects = Subjects::new(prefix.map_or(random, str::to_owned));
                Servers {
                    subjects,
                    redis_credentials: None,
                    local: None,
                    containers: None,
                    external: Some((nats_url, redis_url)),
                    redis_cluster: None,
                }
            }
        }
    }

    /// The connection URL for `role` (with that role's credentials, for local servers).
    pub fn url(&self, role: Role) -> String {
        if let Some(c) = &self.containers {
            return cluster_url(&c.nats, &c.credentials, role);
        }
        match (&self.local, &self.external) {
            (Some(l), _) => l.nats.url_for(role),
            (None, Some((nats, _))) => nats.clone(),
            (None, None) => unreachable!("servers are local, in containers or external"),
        }
    }

    /// The auth-callout issuer seed the auth workers need to admit plugin servers; `None`
    /// for external servers (their nats.conf is not ours).
    pub fn callout_issuer_seed(&self) -> Option<String> {
        if let Some(c) = &self.containers {
            return Some(c.credentials.callout_issuer_seed().to_owned());
        }
        self.local
            .as_ref()
            .map(|l| l.nats.credentials().callout_issuer_seed().to_owned())
    }

    /// The client apps' password, which the auth callout checks (nats.conf does not list
    /// the `client` user); `None` for external servers.
    pub fn client_password(&self) -> Option<String> {
        if let Some(c) = &self.containers {
            return Some(c.credentials.password(Role::Client).to_owned());
        }
        self.local
            .as_ref()
            .map(|l| l.nats.credentials().password(Role::Client).to_owned())
    }

    /// The URL a plugin server connects with, carrying `secret` (every node of a cluster).
    /// External servers: their URL as it is.
    pub fn plugin_server_url(&self, secret: &PluginServerSecret) -> String {
        if let Some(c) = &self.containers {
            let hosts: Vec<String> = c
                .nats
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port()))
                .collect();
            return secret.url(&hosts);
        }
        match (&self.local, &self.external) {
            (Some(l), _) => secret.url(&[format!("{}:{}", l.nats.host(), l.nats.port())]),
            (None, Some((nats, _))) => nats.clone(),
            (None, None) => unreachable!("servers are local, in containers or external"),
        }
    }

    /// The Redis URL with every key and command (the `admin` Redis user): for a test's own
    /// inspection, never a worker's.
    pub fn redis_url(&self) -> String {
        self.redis_url_as(RedisUser::Admin)
    }

    /// The Redis URL of `user` (a worker's own, with only its keys and commands). With a
    /// Redis Cluster: every node's URL, comma-separated (the seeds).
    pub fn redis_url_as(&self, user: RedisUser) -> String {
        if let Some((cluster, _)) = &self.redis_cluster {
            let credentials = self
                .redis_credentials
                .as_ref()
                .expect("a local cluster has Redis users");
            return cluster
                .host_ports()
                .iter()
                .map(|hp| credentials.url(user, hp))
                .collect::<Vec<_>>()
                .join(",");
        }
        let host_port = match (&self.containers, &self.local, &self.external) {
            (Some(c), _, _) => c.redis.host_port(),
            (None, Some(l), _) => l.redis.host_port(),
            (None, None, Some((_, redis))) => return redis.clone(),
            (None, None, None) => unreachable!("servers are local, in containers or external"),
        };
        self.redis_credentials
            .as_ref()
            .expect("local and container servers have Redis users")
            .url(user, &host_port)
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// Options carrying `role`'s credentials, for connecting to [`Servers::url`] with
    /// settings of your own: async-nats ignores credentials embedded in a URL. A client's
    /// carry an inbox key of their own (as `tessera_protocol::bus::connect` makes them).
    pub fn connect_options(&self, role: Role) -> async_nats::ConnectOptions {
        let url = self.url(role);
        let addr: async_nats::ServerAddr = url.parse().expect("a valid NATS URL");
        match addr.username() {
            Some(user) => tessera_protocol::bus::with_credentials(
                async_nats::ConnectOptions::new(),
                user,
                addr.password().unwrap_or_default(),
            ),
            None => async_nats::ConnectOptions::new(),
        }
    }

    /// A NATS connection with `role`'s credentials (as workers connect).
    pub async fn connect(&self, role: Role) -> async_nats::Client {
        let name = format!("tessera-test-{}", role.user());
        tessera_protocol::bus::connect(&self.url(role), &name, CONNECT_WAIT)
            .await
            .unwrap_or_else(|e| panic!("connecting as {}: {e}", role.user()))
    }

    /// A NATS connection with `role`'s credentials that records the errors the server sends
    /// it (permission violations).
    pub async fn connect_recording(&self, role: Role) -> (async_nats::Client, ServerErrors) {
        let opts = async_nats::ConnectOptions::new()
            .name(format!("tessera-test-{}-recording", role.user()));
        connect_recording_with(opts, &self.url(role))
            .await
            .unwrap_or_else(|e| panic!("connecting as {}: {e}", role.user()))
    }

    /// Whether the servers are local processes (so they can be stopped and restarted).
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// Whether the servers run in containers.
    pub fn in_containers(&self) -> bool {
        self.containers.is_some()
    }

    /// How many NATS servers there are (the members of a cluster).
    pub fn nats_nodes(&self) -> usize {
        self.containers.as_ref().map_or(1, |c| c.nats.len())
    }

    /// Stops NATS container `i` (SIGTERM, SIGKILL after `timeout_secs`), as when a node is
    /// lost. Panics for servers that are not containers.
    pub async fn stop_nats_container(&self, i: usize, timeout_secs: i32) {
        let c = self.containers.as_ref().expect("servers in containers");
        c.nats[i].stop(timeout_secs).await;
    }

    /// The local nats-server, to stop, kill or restart it. `None` for external servers.
    pub fn nats_mut(&mut self) -> Option<&mut LocalNats> {
        self.local.as_mut().map(|l| &mut l.nats)
    }

    /// Starts a local Redis Cluster (every node with the same Redis users) that the workers
    /// started from now on use instead of the single Redis. Local servers only.
    pub async fn start_redis_cluster(&mut self, spec: RedisClusterSpec) {
        let credentials = self
            .redis_credentials
            .as_ref()
            .expect("a local cluster needs Redis users (local servers)");
        let dir = tempfile::Builder::new()
            .prefix("tessera-test-redis-cluster-")
            .tempdir()
            .expect("creating a temp dir");
        let cluster = LocalRedisCluster::start(RedisClusterOptions {
            dir: dir.path().to_owned(),
            masters: spec.masters,
            replicas: spec.replicas,
            acl: credentials.acl_lines(self.subjects.prefix()),
            admin: (
                RedisUser::Admin.name().to_owned(),
                credentials.password(RedisUser::Admin).to_owned(),
            ),
            node_timeout: spec.node_timeout,
            ready_timeout: Duration::from_secs(30),
        })
        .await
        .unwrap_or_else(|e| panic!("starting a Redis Cluster: {e}"));
        self.redis_cluster = Some((cluster, dir));
    }

    /// The local Redis Cluster, if one was started.
    pub fn redis_cluster(&self) -> Option<&LocalRedisCluster> {
        self.redis_cluster.as_ref().map(|(c, _)| c)
    }

    pub fn redis_cluster_mut(&mut self) -> Option<&mut LocalRedisCluster> {
        self.redis_cluster.as_mut().map(|(c, _)| c)
    }

    /// The local redis-server, to stop, kill or restart it. `None` for external servers.
    pub fn redis_mut(&mut self) -> Option<&mut LocalRedis> {
        self.local.as_mut().map(|l| &mut l.redis)
    }
}

/// Connects with `opts` to `url` (credentials in the URL are taken from it, a client's with
/// an inbox key of its own as `tessera_protocol::bus::connect` makes them), once, and
/// records the errors the server sends the connection (permission violations).
pub async fn connect_recording_with(
    opts: async_nats::ConnectOptions,
    url: &str,
) -> Result<(async_nats::Client, ServerErrors), async_nats::ConnectError> {
    let addrs: Vec<async_nats::ServerAddr> = url
        .split(',')
        .map(|u| u.trim().parse().expect("a valid NATS URL"))
        .collect();
    let opts = match addrs.iter().find_map(|a| a.username().map(str::to_owned)) {
        Some(user) => {
            let pass = addrs
                .iter()
                .find_map(|a| a.password().map(str::to_owned))
                .unwrap_or_default();
            tessera_protocol::bus::with_credentials(opts, &user, &pass)
        }
        None => opts,
    };
    let errors = ServerErrors::default();
    let sink = errors.clone();
    let nats = opts
        .event_callback(move |event| {
            let sink = sink.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    sink.push(e.to_string());
                }
            }
        })
        .connect(addrs.as_slice())
        .await?;
    Ok((nats, errors))
}

/// Each member says "ready" before the cluster has elected its JetStream meta leader; until
/// then every JetStream request times out. Waits (bounded) until one is answered.
async fn wait_for_jetstream_cluster(url: &str) {
    let nats = tessera_protocol::bus::connect(url, "tessera-test-cluster-wait", CONNECT_WAIT)
        .await
        .unwrap_or_else(|e| panic!("connecting to the NATS cluster: {e}"));
    let js = async_nats::jetstream::new(nats);
    let ready = crate::eventually(Duration::from_secs(60), || async {
        js.query_account().await.is_ok()
    })
    .await;
    assert!(
        ready,
        "the NATS cluster elected no JetStream leader within 60s"
    );
}

async fn start_local(subjects: &Subjects, redis_credentials: &RedisCredentials) -> Local {
    let dir = tempfile::Builder::new()
        .prefix("tessera-test-")
        .tempdir()
        .expect("creating a temp dir");
    let config = ServerConfig {
        host: "127.0.0.1".into(),
        port: None,
        store_dir: dir.path().join("jetstream"),
        server_name: "tessera-test".into(),
        subjects: subjects.clone(),
        credentials: Credentials::generate(),
    };
    let mut redis_opts = RedisOptions::new(dir.path().join("redis"));
    redis_opts.acl = redis_credentials.acl_lines(subjects.prefix());
    let (nats, redis) = tokio::join!(
        LocalNats::start(NatsOptions::new(config, dir.path().join("nats"))),
        LocalRedis::start(redis_opts),
    );
    Local {
        nats: nats.unwrap_or_else(|e| panic!("starting nats-server: {e}")),
        redis: redis.unwrap_or_else(|e| panic!("starting redis-server: {e}")),
        _dir: dir,
    }
}
