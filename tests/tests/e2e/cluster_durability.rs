//! Every stream, KV bucket and object store gets the configured replicas whoever creates it
//! first (docs/reliability.md, "Durability of the shared stores"). On a three-node container
//! cluster: the admin writes routes, client apps, data routes and plugin keys before any
//! broker or gateway has run, with the library's default of one replica (an admin without
//! `TESSERA_JS_REPLICAS`); the broker and the gateway then start and bring each store up to
//! three; every store then keeps a leader and its data through the loss of one node.
//!
//! Needs the container backend; without one it says so and passes without running.

use std::time::Duration;

use tessera_tests::{Backend, Role, Stack, assert_eventually};

/// `(num_replicas in the config, replicas placed and current, has a leader)` of `stream`.
async fn replicas(nats: &async_nats::Client, stream: &str) -> Option<(u64, usize, bool)> {
    let reply = nats
        .request(format!("$JS.API.STREAM.INFO.{stream}"), "".into())
        .await
        .ok()?;
    let info: serde_json::Value = serde_json::from_slice(&reply.payload).ok()?;
    let configured = info["config"]["num_replicas"].as_u64()?;
    let cluster = &info["cluster"];
    let leader = cluster["leader"].as_str().is_some_and(|l| !l.is_empty());
    let current = cluster["replicas"]
        .as_array()
        .map_or(0, |r| r.iter().filter(|p| p["current"] == true).count());
    Some((configured, current + usize::from(leader), leader))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_created_before_the_workers_get_the_clusters_replicas() {
    let backend = Backend::from_env();
    if !matches!(backend, Backend::Containers(_)) {
        eprintln!("skipped: a NATS cluster needs the container backend (got {backend:?})");
        return;
    }
    let mut stack = Stack::builder()
        .backend(backend)
        .nats_nodes(3)
        .brokers(0)
        .start()
        .await;
    let s = stack.subjects().clone();
    // The admin first (its SDK client creates what it writes, with one replica).
    let admin = stack.admin().await;
    admin
        .set_route("weather", &["ps1".to_owned()])
        .await
        .unwrap();
    admin.add_client_app("app1").await.unwrap();
    admin
        .set_data_route("weather", "now", "ps1", "echo")
        .await
        .unwrap();
    let key = tessera_sdk::sealed::PluginSecretKey::generate();
    admin
        .register_plugin_key("weather", &key.public_key().to_base64url())
        .await
        .unwrap();
    let admin_made = [
        format!("KV_{}", s.routes_bucket()),
        format!("KV_{}", s.client_apps_bucket()),
        format!("KV_{}", s.data_routes_bucket()),
        format!("KV_{}", s.plugin_keys_bucket()),
    ];
    let admin_nats = stack.nats(Role::Admin).await;
    for stream in &admin_made {
        let (configured, _, _) = replicas(&admin_nats, stream).await.expect(stream);
        assert_eq!(
            configured, 1,
            "{stream}: made by the admin with one replica"
        );
    }

    // Then the workers: each brings what it owns up to three.
    stack.start_broker().await;
    stack.start_gateway().await;
    let broker = stack.nats(Role::Broker).await;
    let auth = stack.nats(Role::Auth).await;
    let mut every: Vec<(&async_nats::Client, String)> = admin_made
        .iter()
        .map(|st| (&admin_nats, st.clone()))
        .collect();
    every.extend([
        (&admin_nats, s.dist_stream()),
        (&admin_nats, s.audit_stream()),
        (&admin_nats, format!("KV_{}", s.asset_versions_bucket())),
        (&admin_nats, format!("OBJ_{}", s.assets_bucket())),
        (&admin_nats, format!("KV_{}", s.plugin_servers_bucket())),
        (&admin_nats, format!("KV_{}", s.apps_bucket())),
        (&admin_nats, format!("KV_{}", s.app_secrets_bucket())),
        (&admin_nats, format!("KV_{}", s.package_index_bucket())),
        (&admin_nats, format!("OBJ_{}", s.package_staging_store())),
        (&auth, format!("KV_{}", s.users_bucket())),
        (&auth, format!("OBJ_{}", s.packages_store())),
        (&broker, format!("KV_{}", s.keys_bucket())),
    ]);
    for (nats, stream) in &every {
        assert_eventually!(
            timeout = Duration::from_secs(30),
            replicas(nats, stream).await == Some((3, 3, true)),
            "{stream}: three current replicas, got {:?}",
            replicas(nats, stream).await
        );
    }

    // One node lost: every store keeps (or elects) a leader, and the admin's data is there.
    stack.servers().stop_nats_container(0, 2).await;
    for (nats, stream) in &every {
        assert_eventually!(
            timeout = Duration::from_secs(30),
            replicas(nats, stream)
                .await
                .is_some_and(|(c, _, leader)| c == 3 && leader),
            "{stream}: a leader after losing one node, got {:?}",
            replicas(nats, stream).await
        );
    }
    let routes = stack.admin().await.routes().await.unwrap();
    assert_eq!(routes[0].1.servers, vec!["ps1".to_owned()]);
}
