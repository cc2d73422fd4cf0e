//! The container engine, as the harness sees it: the engine probe and the API-version shim
//! (crate `docker-api-shim`, re-exported here), the labels of the harness's containers, and
//! the reaper of containers a killed test run left behind.

use std::path::Path;

pub use docker_api_shim::*;

/// Label on every container (and in the name of every network) the harness creates.
pub const LABEL: &str = "org.tessera.test";
/// Label with the id of the process that created the container.
pub const LABEL_PID: &str = "org.tessera.test.pid";
/// Label with the host name of that process (pids mean nothing on another host).
pub const LABEL_HOST: &str = "org.tessera.test.host";

/// This machine's host name (for [`LABEL_HOST`]).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Removes the containers and networks that test processes on this host created and that
/// outlived them (a run killed before its containers were dropped). Containers of processes
/// still running are left alone, so concurrent runs do not disturb each other.
pub async fn reap_orphans() {
    use std::collections::HashMap;
    use testcontainers::bollard::Docker;
    use testcontainers::bollard::query_parameters::{
        ListContainersOptions, ListNetworksOptions, RemoveContainerOptions,
    };
    let docker = match Docker::connect_with_defaults() {
        Ok(d) => match d.negotiate_version().await {
            Ok(d) => d,
            Err(e) => return tracing::debug!(error = %e, "reaper: engine not reachable"),
        },
        Err(e) => return tracing::debug!(error = %e, "reaper: engine not reachable"),
    };
    let me = hostname();
    let dead = |pid: Option<&str>| {
        pid.and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists())
    };
    let filters = HashMap::from([("label".to_owned(), vec![format!("{LABEL}=1")])]);
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .unwrap_or_default();
    for c in containers {
        let labels = c.labels.unwrap_or_default();
        if labels.get(LABEL_HOST) != Some(&me) || !dead(labels.get(LABEL_PID).map(String::as_str)) {
            continue;
        }
        if let Some(id) = c.id {
            tracing::info!(container = %id, "removing a container left by a killed test run");
            let _ = docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        v: true,
                        ..Default::default()
                    }),
                )
                .await;
        }
    }
    // Networks are named `tessera-test-<pid>-<random>` (testcontainers sets no labels on them).
    let networks = docker
        .list_networks(None::<ListNetworksOptions>)
        .await
        .unwrap_or_default();
    for n in networks {
        let Some(name) = n.name else { continue };
        let pid = name
            .strip_prefix("tessera-test-")
            .and_then(|r| r.split('-').next());
        if dead(pid) {
            let _ = docker.remove_network(&name).await;
        }
    }
}
