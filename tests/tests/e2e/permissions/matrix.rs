//! The permission matrix, per account and role, as nats-server enforces it: for every kind
//! of connection (the four static roles of the workers' account, a client app, a plugin
//! server's two connections) and a table of subjects that matter (every request subject,
//! the buckets, the JetStream API, the streams, the inboxes), nats-server refuses exactly the
//! publishes that bus-config's permissions say it should. Cross-account subjects count as
//! allowed only where the connection's account imports them (a client's `token.request`
//! reaches the broker; a plugin server's does not exist for it).

use tessera_bus_config::Permissions;
use tessera_tests::{Role, ServerErrors, assert_eventually};

use super::local;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_enforces_exactly_the_permission_matrix() {
    let stack = local().start().await;
    let s = stack.subjects().clone();
    let kv = |b: String| format!("$KV.{b}.x");
    let dist = s.dist_stream();
    let js = s.js_api_import();
    let subjects = vec![
        s.token_request(),
        s.token_revoke(),
        s.token_introspect(),
        s.auth_login(),
        s.auth_verify(),
        s.users_add(),
        s.keys(),
        s.plugins_key(),
        s.assets_publish(),
        s.auth_packages_upload(),
        s.dist_open("ps1"),
        s.dist_open("ps2"),
        s.svc("ps1", "echo"),
        s.data("weather"),
        s.dist("ps1"),
        s.audit(tessera_schemas::audit::AuditKind::UserAdded),
        kv(s.routes_bucket()),
        kv(s.users_bucket()),
        kv(s.plugin_servers_bucket()),
        kv(s.client_apps_bucket()),
        format!("$JS.API.STREAM.INFO.{dist}"),
        format!("$JS.API.CONSUMER.CREATE.{dist}"),
        format!("$JS.API.STREAM.PURGE.KV_{}", s.routes_bucket()),
        format!("{js}.DIRECT.GET.KV_{}.x", s.asset_versions_bucket()),
        format!("{js}.CONSUMER.MSG.NEXT.{dist}.c"),
        "$SYS.REQ.USER.AUTH".to_owned(),
        "_INBOX.x".to_owned(),
        "_R_.x.y".to_owned(),
    ];
    let mut kinds: Vec<(String, Permissions, async_nats::Client, ServerErrors)> = Vec::new();
    for role in Role::ALL {
        let (nats, errors) = stack.nats_recording(role).await;
        kinds.push((
            format!("{role:?}"),
            Permissions::for_role(role, &s),
            nats,
            errors,
        ));
    }
    let (ps, ps_errors) = stack.plugin_server_nats_recording("ps1").await;
    kinds.push((
        "plugin server ps1".into(),
        Permissions::for_plugin_server("ps1", &s),
        ps,
        ps_errors,
    ));
    let (dist_conn, dist_errors) = stack.plugin_server_dist_nats_recording("ps1").await;
    kinds.push((
        "plugin server ps1, distribution".into(),
        Permissions::for_plugin_server_distribution("ps1", &s),
        dist_conn,
        dist_errors,
    ));

    // A sentinel no connection may publish on, sent last: once its refusal arrives, every
    // earlier refusal has (nats-server answers a connection's messages in order).
    const SENTINEL: &str = "tessera-matrix-sentinel.x";
    for (name, perms, nats, errors) in &kinds {
        assert!(!perms.may_publish(SENTINEL));
        for subject in &subjects {
            nats.publish(subject.clone(), "x".into()).await.unwrap();
        }
        nats.publish(SENTINEL, "x".into()).await.unwrap();
        nats.flush().await.unwrap();
        assert_eventually!(
            errors.publish_denied(SENTINEL),
            "{name}: the sentinel was refused, got {:?}",
            errors.all()
        );
        for subject in &subjects {
            assert_eq!(
                errors.publish_denied(subject),
                !perms.may_publish(subject),
                "{name} publishing {subject}: nats-server and bus-config disagree"
            );
        }
    }
    // The matrix is not trivial: every kind is refused something and allowed something,
    // and only the workers' roles reach the buckets.
    for (name, perms, _, _) in &kinds {
        assert!(subjects.iter().any(|x| perms.may_publish(x)), "{name}");
        assert!(subjects.iter().any(|x| !perms.may_publish(x)), "{name}");
        let outside = name == "Client" || name.starts_with("plugin server");
        if outside {
            for b in [kv(s.routes_bucket()), kv(s.users_bucket())] {
                assert!(!perms.may_publish(&b), "{name} {b}");
            }
        }
    }
}
