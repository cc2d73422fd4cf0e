//! The container backend: nats-server and redis-server in containers started with
//! testcontainers, configured exactly as the local backend (the nats-server config comes from
//! `bus-config`, one user per role, real permissions).
//!
//! Images come from `TESSERA_NATS_IMAGE` and `TESSERA_REDIS_IMAGE` (default: the official
//! `nats:2.11` and `redis:7`). Where no registry can be reached, `docker/build-local-images.sh`
//! builds `localhost/tessera-nats:local` and `localhost/tessera-redis:local` from the binaries
//! `scripts/setup.sh` installs, and `make test` uses those.
//!
//! Every connection goes to 127.0.0.1 and the port the engine mapped (never the engine's idea
//! of its host name, nor a container address). Every container carries the labels of
//! [`crate::docker`], so a run that was killed before it could remove its containers has them
//! removed by the next run.

use std::time::Duration;

use tessera_bus_config::server::ClusterConfig;
use tessera_bus_config::{Credentials, Role, ServerConfig};
use tessera_schemas::Subjects;
use testcontainers::core::{ContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::docker;

pub const ENV_NATS_IMAGE: &str = "TESSERA_NATS_IMAGE";
pub const ENV_REDIS_IMAGE: &str = "TESSERA_REDIS_IMAGE";
pub const DEFAULT_NATS_IMAGE: &str = "nats:2.11";
pub const DEFAULT_REDIS_IMAGE: &str = "redis:7";

const NATS_PORT: u16 = 4222;
const NATS_CLUSTER_PORT: u16 = 6222;
const REDIS_PORT: u16 = 6379;
/// Where the generated config is copied in the nats container.
const NATS_CONF: &str = "/etc/nats/tessera.conf";
const STARTUP: Duration = Duration::from_secs(60);

/// The images the container backend runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub nats: String,
    pub redis: String,
}

impl Images {
    /// `TESSERA_NATS_IMAGE` / `TESSERA_REDIS_IMAGE`, else the official images.
    pub fn from_env() -> Images {
        let var = |k: &str, d: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| d.to_owned())
        };
        Images {
            nats: var(ENV_NATS_IMAGE, DEFAULT_NATS_IMAGE),
            redis: var(ENV_REDIS_IMAGE, DEFAULT_REDIS_IMAGE),
        }
    }
}

/// `registry:5000/name:tag` -> (`registry:5000/name`, `tag`); no tag means `latest`.
fn split_image(image: &str) -> (String, String) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_owned(), tag.to_owned()),
        _ => (image.to_owned(), "latest".to_owned()),
    }
}

/// The labels [`docker::reap_orphans`] goes by.
fn labelled(image: GenericImage) -> testcontainers::ContainerRequest<GenericImage> {
    image
        .with_label(docker::LABEL, "1")
        .with_label(docker::LABEL_PID, std::process::id().to_string())
        .with_label(docker::LABEL_HOST, docker::hostname())
}

/// Reaps what killed runs left, once per process.
async fn reap_once() {
    static REAPED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    REAPED.get_or_init(docker::reap_orphans).await;
}

fn start_failed(what: &str, image: &str, e: impl std::fmt::Display) -> ! {
    panic!(
        "starting {what} from image {image}: {e}\n(no registry here? build local images with \
         docker/build-local-images.sh and set {ENV_NATS_IMAGE}=localhost/tessera-nats:local \
         {ENV_REDIS_IMAGE}=localhost/tessera-redis:local, as `make test` does; or run the \
         suite on local processes with TESSERA_TEST_BACKEND=local)"
    )
}

/// A running redis-server container.
pub struct RedisContainer {
    _container: ContainerAsync<GenericImage>,
    port: u16,
}

impl RedisContainer {
    /// `acl`: `user ...` lines (tessera_bus_config::redis_acl), given as `--user` options
    /// after turning the default user off.
    pub async fn start(images: &Images, acl: &[String]) -> RedisContainer {
        reap_once().await;
        let (name, tag) = split_image(&images.redis);
        let image = GenericImage::new(name, tag)
            .with_exposed_port(ContainerPort::Tcp(REDIS_PORT))
            .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"));
        let mut cmd: Vec<String> = [
            "redis-server",
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .map(str::to_owned)
        .to_vec();
        if !acl.is_empty() {
            cmd.extend(["--user", "default", "off"].map(str::to_owned));
            for line in acl {
                let mut words = line.split_whitespace();
                let _user = words.next();
                cmd.push("--user".to_owned());
                cmd.extend(words.map(str::to_owned));
            }
        }
        let container = labelled(image)
            .with_cmd(cmd)
            .with_startup_timeout(STARTUP)
            .start()
            .await
            .unwrap_or_else(|e| start_failed("redis-server", &images.redis, e));
        let port = container
            .get_host_port_ipv4(REDIS_PORT)
            .await
            .unwrap_or_else(|e| panic!("redis-server's mapped port: {e}"));
        RedisContainer {
            _container: container,
            port,
        }
    }

    /// `127.0.0.1:<mapped port>`.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A running nats-server container.
pub struct NatsContainer {
    container: ContainerAsync<GenericImage>,
    port: u16,
}

impl NatsContainer {
    /// Starts a server with `config_text` (a rendered [`ServerConfig`]), optionally with a
    /// fixed container name on a network (for cluster routes between containers).
    pub async fn start(
        images: &Images,
        config_text: String,
        name_on_network: Option<(&str, &str)>,
    ) -> NatsContainer {
        reap_once().await;
        let (name, tag) = split_image(&images.nats);
        let image = GenericImage::new(name, tag)
            .with_exposed_port(ContainerPort::Tcp(NATS_PORT))
            .with_wait_for(WaitFor::message_on_stderr("Server is ready"));
        let mut request = labelled(image)
            .with_cmd(["-c", NATS_CONF])
            .with_copy_to(NATS_CONF, config_text.into_bytes())
            .with_startup_timeout(STARTUP);
        if let Some((container_name, network)) = name_on_network {
            request = request
                .with_container_name(container_name)
                .with_network(network);
        }
        let container = request
            .start()
            .await
            .unwrap_or_else(|e| start_failed("nats-server", &images.nats, e));
        let port = container
            .get_host_port_ipv4(NATS_PORT)
            .await
            .unwrap_or_else(|e| panic!("nats-server's mapped port: {e}"));
        NatsContainer { container, port }
    }

    /// The host port the engine mapped to the client port (it may change after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the container (SIGTERM, then SIGKILL after `timeout_secs`); it can be started again.
    pub async fn stop(&self, timeout_secs: i32) {
        self.container
            .stop_with_timeout(Some(timeout_secs))
            .await
            .unwrap_or_else(|e| panic!("stopping nats-server: {e}"));
    }
}

/// The config of a single test server in a container: same accounts, users and permissions as
/// the local backend, listening on all interfaces of the container.
pub fn single_server_config(subjects: &Subjects, credentials: &Credentials) -> ServerConfig {
    ServerConfig {
        host: "0.0.0.0".into(),
        port: Some(NATS_PORT),
        store_dir: "/data/jetstream".into(),
        server_name: "tessera-test".into(),
        subjects: subjects.clone(),
        credentials: credentials.clone(),
    }
}

/// A NATS cluster of `n` containers named `<network>-nK` on a network of its own, routes
/// between the container names; returns once every member is ready. JetStream assets need a
/// replication factor up to `n` (workers: [`tessera_bus_config::provision::Durability`]).
pub async fn start_cluster(
    images: &Images,
    subjects: &Subjects,
    credentials: &Credentials,
    n: usize,
) -> Vec<NatsContainer> {
    // The pid in the name lets the reaper tell networks of dead runs.
    let network = format!(
        "tessera-test-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let names: Vec<String> = (1..=n).map(|i| format!("{network}-n{i}")).collect();
    let routes: Vec<String> = names
        .iter()
        .map(|h| format!("nats-route://{h}:{NATS_CLUSTER_PORT}"))
        .collect();
    let starts = names.iter().map(|name| {
        let mut config = single_server_config(subjects, credentials);
        config.server_name = name.clone();
        let cluster = ClusterConfig {
            name: "tessera-test".into(),
            listen: format!("0.0.0.0:{NATS_CLUSTER_PORT}"),
            routes: routes.clone(),
            // Clients reach the servers through mapped ports only: never tell them the
            // container addresses.
            no_advertise: true,
        };
        let text = config.render_clustered(&cluster);
        let network = network.clone();
        async move { NatsContainer::start(images, text, Some((name, &network))).await }
    });
    futures::future::join_all(starts).await
}

/// `nats://user:pass@127.0.0.1:p1,nats://user:pass@127.0.0.1:p2,...` for `role`: every node,
/// so a client carries on when one of them stops.
pub fn cluster_url(nodes: &[NatsContainer], credentials: &Credentials, role: Role) -> String {
    nodes
        .iter()
        .map(|n| credentials.url(role, "127.0.0.1", n.port()))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_image_references() {
        let s = |i| super::split_image(i);
        assert_eq!(s("nats:2.11"), ("nats".into(), "2.11".into()));
        assert_eq!(
            s("localhost/tessera-nats:local"),
            ("localhost/tessera-nats".into(), "local".into())
        );
        assert_eq!(
            s("registry:5000/redis"),
            ("registry:5000/redis".into(), "latest".into())
        );
    }
}
