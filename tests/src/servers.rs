//! The servers under test: where they come from ([`Backend`]) and how to reach them
//! ([`Servers`]).

use std::time::Duration;

use tessera_bus_config::{Credentials, Role, ServerConfig};
use tessera_devstack::{LocalNats, LocalRedis, NatsOptions, RedisOptions};
use tessera_schemas::Subjects;
use tessera_schemas::subjects::DEFAULT_PREFIX;

use crate::ServerErrors;

/// How long a connection attempt keeps retrying.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Set to `1` to run against the servers in `NATS_URL` / `REDIS_URL` instead of starting
/// local ones.
pub const ENV_EXTERNAL: &str = "TESSERA_TEST_EXTERNAL";

/// Where the servers come from. A testcontainers backend will be one more variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `nats-server` and `redis-server` child processes on free ports, one pair per
    /// [`Servers`], with a generated config (one user per role, real permissions).
    Local,
    /// Servers someone else runs. Every role connects with the same URL, so the role
    /// permissions are whatever that server enforces; each [`Servers`] gets a random subject
    /// (and Redis key) prefix for isolation.
    External { nats_url: String, redis_url: String },
}

impl Backend {
    /// [`Backend::External`] when `TESSERA_TEST_EXTERNAL=1` (then `NATS_URL` and `REDIS_URL`
    /// are required), else [`Backend::Local`]. Local is the default because the role
    /// permissions the tests rely on come from our generated server config.
    pub fn from_env() -> Backend {
        if std::env::var(ENV_EXTERNAL).is_ok_and(|v| v == "1") {
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
            Backend::Local
        }
    }
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
    local: Option<Local>,
    external: Option<(String, String)>,
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
        crate::init_logging();
        match backend {
            Backend::Local => {
                let subjects = Subjects::new(prefix.unwrap_or(DEFAULT_PREFIX));
                let local = start_local(&subjects).await;
                Servers {
                    subjects,
                    local: Some(local),
                    external: None,
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
                    local: None,
                    external: Some((nats_url, redis_url)),
                }
            }
        }
    }

    /// The connection URL for `role` (with that role's credentials, for local servers).
    pub fn url(&self, role: Role) -> String {
        match (&self.local, &self.external) {
            (Some(l), _) => l.nats.url_for(role),
            (None, Some((nats, _))) => nats.clone(),
            (None, None) => unreachable!("servers are either local or external"),
        }
    }

    pub fn redis_url(&self) -> String {
        match (&self.local, &self.external) {
            (Some(l), _) => l.redis.url(),
            (None, Some((_, redis))) => redis.clone(),
            (None, None) => unreachable!("servers are either local or external"),
        }
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// Options carrying `role`'s credentials, for connecting to [`Servers::url`] with
    /// settings of your own: async-nats ignores credentials embedded in a URL.
    pub fn connect_options(&self, role: Role) -> async_nats::ConnectOptions {
        let url = self.url(role);
        let addr: async_nats::ServerAddr = url.parse().expect("a valid NATS URL");
        let opts = async_nats::ConnectOptions::new();
        match addr.username() {
            Some(user) => opts.user_and_password(
                user.to_owned(),
                addr.password().unwrap_or_default().to_owned(),
            ),
            None => opts,
        }
    }

    /// A NATS connection with `role`'s credentials (as workers connect).
    pub async fn connect(&self, role: Role) -> async_nats::Client {
        let name = format!("tessera-test-{}", role.user());
        tessera_core::bus::connect(&self.url(role), &name, CONNECT_WAIT)
            .await
            .unwrap_or_else(|e| panic!("connecting as {}: {e}", role.user()))
    }

    /// A NATS connection with `role`'s credentials that records the errors the server sends
    /// it (permission violations).
    pub async fn connect_recording(&self, role: Role) -> (async_nats::Client, ServerErrors) {
        let errors = ServerErrors::default();
        let sink = errors.clone();
        let nats = self
            .connect_options(role)
            .name(format!("tessera-test-{}-recording", role.user()))
            .event_callback(move |event| {
                let sink = sink.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        sink.push(e.to_string());
                    }
                }
            })
            .connect(self.url(role))
            .await
            .unwrap_or_else(|e| panic!("connecting as {}: {e}", role.user()));
        (nats, errors)
    }

    /// Whether the servers are ours (so they can be stopped, and enforce role permissions).
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// The local nats-server, to stop, kill or restart it. `None` for external servers.
    pub fn nats_mut(&mut self) -> Option<&mut LocalNats> {
        self.local.as_mut().map(|l| &mut l.nats)
    }

    /// The local redis-server, to stop, kill or restart it. `None` for external servers.
    pub fn redis_mut(&mut self) -> Option<&mut LocalRedis> {
        self.local.as_mut().map(|l| &mut l.redis)
    }
}

async fn start_local(subjects: &Subjects) -> Local {
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
    let (nats, redis) = tokio::join!(
        LocalNats::start(NatsOptions::new(config, dir.path().join("nats"))),
        LocalRedis::start(RedisOptions::new(dir.path().join("redis"))),
    );
    Local {
        nats: nats.unwrap_or_else(|e| panic!("starting nats-server: {e}")),
        redis: redis.unwrap_or_else(|e| panic!("starting redis-server: {e}")),
        _dir: dir,
    }
}
