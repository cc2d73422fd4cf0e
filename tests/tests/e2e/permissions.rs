//! The role permissions, as the real nats-server enforces them from the generated config,
//! and each plugin server's own (`permissions/plugin_servers.rs`).
//! (Local servers only: an external server has its own idea of permissions.)

use std::time::Duration;

use futures::StreamExt;

use tessera_protocol::rpc::{self, RpcError};
use tessera_schemas::messages::{DIST_EVENT, DistEvent};
use tessera_schemas::{ErrorCode, codec, headers};
use tessera_sdk::{Client, ErrorKind};
use tessera_tests::{Backend, Role, Stack, assert_eventually};

const PASSWORD: &str = "correct horse battery";

/// Per-plugin-server credentials.
mod plugin_servers;

/// Each client connection's own inbox.
mod clients;

/// Per-plugin-server isolation with the distribution in shards.
mod dist_shards;

/// The matrix: every kind of connection against the subjects that matter.
mod matrix;

fn local() -> tessera_tests::StackBuilder {
    Stack::builder().backend(Backend::Local)
}

/// A client cannot inject tokens into a plugin server's distribution: the server refuses
/// the publish and the stream does not grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cannot_publish_distribution_events() {
    let stack = local().start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let client = stack.client().await;
    // A real token, so the injected event would be accepted if it arrived.
    let token = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    let revoke_all = DistEvent::Revoke {
        token_ids: vec![token.token_id.clone()],
    };

    let js = async_nats::jetstream::new(stack.nats(Role::Admin).await);
    let mut stream = js.get_stream(stack.subjects().dist_stream()).await.unwrap();
    let before = stream.info().await.unwrap().state.messages;
    assert_eq!(before, 1, "the token's distribution");

    let (nats, errors) = stack.nats_recording(Role::Client).await;
    let subject = stack.subjects().dist("ps1");
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::SCHEMA, DIST_EVENT.header_value().as_str());
    nats.publish_with_headers(subject.clone(), h, codec::encode(&revoke_all).into())
        .await
        .unwrap();
    nats.flush().await.unwrap();
    assert_eventually!(
        errors.publish_denied(&subject),
        "a permissions violation for {subject}, got {:?}",
        errors.all()
    );

    assert_eq!(stream.info().await.unwrap().state.messages, before);
    assert!(ps1.tokens().contains(&token.token_id));
    assert!(
        client
            .echo("ps1", &token.token, b"x".to_vec())
            .await
            .is_ok()
    );
    // The same connection may still do what a client may do.
    assert!(
        Client::new(nats, stack.subjects().clone())
            .keys()
            .await
            .is_ok()
    );
}

/// A client cannot listen on (or answer) worker subjects: the subscriptions are refused,
/// so a request there finds no responder at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cannot_subscribe_to_worker_subjects() {
    // Only the auth worker (clients connect through its callout), and it does not serve
    // `token.request`: whoever answers that here could only be the client.
    let mut stack = local().start().await;
    stack.stop_broker(0).await;
    let servers = stack.servers();
    let s = servers.subjects().clone();
    let (nats, errors) = servers.connect_recording(Role::Client).await;
    let subjects = [
        // Other connections' replies.
        "_INBOX.>".to_owned(),
        s.token_request(),
        s.auth_verify(),
        s.dist("ps1"),
        s.users_add(),
        // A plugin server's replies (its distributions, introspections) and its operations.
        format!("{}.>", s.plugin_server_inbox("ps1")),
        s.svc_server("ps1"),
    ];
    let mut serving = Vec::new();
    for subject in &subjects {
        serving.push(nats.subscribe(subject.clone()).await.unwrap());
    }
    nats.flush().await.unwrap();
    for subject in &subjects {
        assert_eventually!(
            errors.subscribe_denied(subject),
            "a permissions violation for subscribing to {subject}, got {:?}",
            errors.all()
        );
    }

    // The admin role may send a token request; nobody is subscribed, so it is told so.
    let admin = servers.connect(Role::Admin).await;
    let err = admin
        .request(s.token_request(), "x".into())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);

    // The control: the broker role may serve that subject, and then the request is answered.
    let broker = servers.connect(Role::Broker).await;
    let mut requests = broker.subscribe(s.token_request()).await.unwrap();
    broker.flush().await.unwrap();
    let responder = tokio::spawn(async move {
        while let Some(req) = requests.next().await {
            let Some(reply) = req.reply else { continue };
            let _ = broker.publish(reply, "served".into()).await;
            let _ = broker.flush().await;
        }
    });
    // Bounded retries, not one shot: on a loaded machine one request may time out.
    assert_eventually!(
        admin
            .request(s.token_request(), "x".into())
            .await
            .is_ok_and(|r| r.payload.as_ref() == b"served"),
        "the broker role could not serve token.request"
    );
    responder.abort();
    drop(serving);
}

/// A client cannot call admin operations (nor introspect). nats-server drops the request,
/// telling only the sender's connection (a permissions violation event), so the request
/// times out. An SDK client wrapping a connection made elsewhere (as here) does not hear of
/// the violation and reports `Unavailable`; one the SDK connected reports `Forbidden` at
/// once (`forbidden.rs`). Either way nothing happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cannot_call_admin_operations() {
    let stack = local().start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let _ps1 = stack.plugin_server("ps1").await;
    let (nats, errors) = stack.nats_recording(Role::Client).await;
    let client =
        Client::new(nats, stack.subjects().clone()).with_timeout(Duration::from_millis(500));
    let token = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();

    let refused = [
        stack.subjects().users_add(),
        stack.subjects().token_revoke(),
        stack.subjects().token_introspect(),
    ];
    // On the wire: no reply at all (not even "no responders"), so the request times out.
    // (The calls run concurrently: each waits out its timeout.)
    let raw = refused.iter().map(|subject| {
        rpc::request_raw(
            client.nats(),
            subject.clone(),
            async_nats::HeaderMap::new(),
            "x".into(),
            Duration::from_millis(500),
        )
    });
    for (subject, r) in refused.iter().zip(futures::future::join_all(raw).await) {
        assert!(matches!(r, Err(RpcError::Timeout(..))), "{subject}: {r:?}");
    }
    // Through the SDK on this foreign connection, the same as any unreachable service.
    let (add, revoke, revoke_all, introspect) = tokio::join!(
        client.add_user("mallory", PASSWORD),
        client.revoke_token(&token.token_id),
        client.revoke_account(&ann.account_id),
        client.introspect(&token.token),
    );
    for (call, r) in [
        ("add_user", add.map(drop)),
        ("revoke_token", revoke.map(drop)),
        ("revoke_account", revoke_all.map(drop)),
        ("introspect", introspect.map(drop)),
    ] {
        assert!(
            matches!(&r, Err(e) if e.kind() == ErrorKind::Unavailable),
            "{call}: {r:?}"
        );
    }
    for subject in &refused {
        assert_eventually!(
            errors.publish_denied(subject),
            "a permissions violation for {subject}, got {:?}",
            errors.all()
        );
    }

    // Nothing happened: no user, the token still live.
    let admin = stack.admin().await;
    let err = admin.login("mallory", PASSWORD).await.unwrap_err();
    assert!(
        err.wire()
            .is_some_and(|w| w.code == ErrorCode::Unauthenticated)
    );
    assert!(admin.introspect(&token.token).await.unwrap().active);
    assert!(
        client
            .echo("ps1", &token.token, b"x".to_vec())
            .await
            .is_ok()
    );
}

/// Client-app secrets and data routes (data access): only the gateway and admin reach the
/// client-apps bucket, only the admin writes either bucket, and only the gateway may serve
/// `data.*` (a client cannot impersonate it to collect packets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_app_secrets_and_data_subjects_are_guarded() {
    let stack = local().gateways(1).start().await;
    let admin = stack.admin().await;
    admin.add_client_app("app1").await.unwrap();
    admin
        .set_data_route("weather", "now", "ps1", "echo")
        .await
        .unwrap();
    let s = stack.subjects().clone();
    let apps_info = format!("$JS.API.STREAM.INFO.KV_{}", s.client_apps_bucket());
    let apps_get = format!("$JS.API.DIRECT.GET.KV_{}", s.client_apps_bucket());

    // Reading the secrets: refused (dropped, so the request times out) for the client role
    // and a plugin server.
    let connections = [
        ("client", stack.nats_recording(Role::Client).await),
        ("ps1", stack.plugin_server_nats_recording("ps1").await),
    ];
    for (role, (nats, errors)) in connections {
        for subject in [&apps_info, &apps_get] {
            let r = rpc::request_raw(
                &nats,
                subject.clone(),
                async_nats::HeaderMap::new(),
                "{}".into(),
                Duration::from_millis(300),
            )
            .await;
            assert!(
                matches!(r, Err(RpcError::Timeout(..))),
                "{role:?} {subject}: {r:?}"
            );
            assert_eventually!(
                errors.publish_denied(subject),
                "{role:?}: a permissions violation for {subject}, got {:?}",
                errors.all()
            );
        }
    }
    // The gateway role may read them (it does, to check signatures) ...
    let gw = stack.nats(Role::Gateway).await;
    let info = rpc::request_raw(
        &gw,
        apps_info.clone(),
        async_nats::HeaderMap::new(),
        "".into(),
        Duration::from_secs(5),
    )
    .await;
    assert!(info.is_ok(), "{info:?}");
    // ... but not write a secret or a route.
    let (gw, errors) = stack.nats_recording(Role::Gateway).await;
    for subject in [
        format!("$KV.{}.app1", s.client_apps_bucket()),
        format!("$KV.{}.weather.now", s.data_routes_bucket()),
    ] {
        gw.publish(subject.clone(), "x".into()).await.unwrap();
        gw.flush().await.unwrap();
        assert_eventually!(
            errors.publish_denied(&subject),
            "a permissions violation for {subject}, got {:?}",
            errors.all()
        );
    }
    let apps = admin.client_apps().await.unwrap();
    assert_eq!(apps, vec!["app1".to_owned()]);

    // A client may not listen on data.* (only the gateway serves it).
    let (nats, errors) = stack.nats_recording(Role::Client).await;
    let subject = s.data("weather");
    let _sub = nats.subscribe(subject.clone()).await.unwrap();
    nats.flush().await.unwrap();
    assert_eventually!(
        errors.subscribe_denied(&subject),
        "a permissions violation for subscribing to {subject}, got {:?}",
        errors.all()
    );
}

/// Assets and plugin keys: a client reads the store and the latest manifests (and so can
/// download a bundle), but every write is refused by the server: blobs, the versions
/// bucket, plugin keys, purges, and the broker's `assets.publish`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reads_assets_but_cannot_write_them() {
    let stack = local().start().await;
    stack.route("weather", &["ps1"]).await;
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("index.html"), b"<html></html>").unwrap();
    stack
        .admin()
        .await
        .publish_assets("weather", src.path(), &|_| {})
        .await
        .unwrap();

    let (nats, errors) = stack.nats_recording(Role::Client).await;
    let client = Client::new(nats.clone(), stack.subjects().clone());
    let cache = tempfile::tempdir().unwrap();
    let got = client
        .download_bundle("weather", cache.path(), &|_| {})
        .await
        .unwrap();
    assert_eq!((got.version, got.fetched), (1, 1));

    let s = stack.subjects();
    let js = async_nats::jetstream::new(stack.nats(Role::Admin).await);
    let mut obj = js
        .get_stream(format!("OBJ_{}", s.assets_bucket()))
        .await
        .unwrap();
    let before = obj.info().await.unwrap().state.messages;
    let writes = [
        format!("$O.{}.C.injected", s.assets_bucket()),
        format!("$O.{}.M.injected", s.assets_bucket()),
        format!("$KV.{}.weather", s.asset_versions_bucket()),
        format!("$KV.{}.weather", s.plugin_keys_bucket()),
        format!("$JS.API.STREAM.PURGE.OBJ_{}", s.assets_bucket()),
        s.assets_publish(),
        // No consumer (its deliver subject would be the client's choice), neither in the
        // plain JetStream API nor in the workers' API as the client account imports it.
        format!("$JS.API.CONSUMER.CREATE.OBJ_{}", s.assets_bucket()),
        format!(
            "{}.CONSUMER.CREATE.OBJ_{}",
            s.js_api_import(),
            s.assets_bucket()
        ),
        format!("$JS.API.STREAM.INFO.OBJ_{}", s.assets_bucket()),
    ];
    for subject in &writes {
        nats.publish(subject.clone(), "x".into()).await.unwrap();
    }
    nats.flush().await.unwrap();
    for subject in &writes {
        assert_eventually!(
            errors.publish_denied(subject),
            "a permissions violation for {subject}, got {:?}",
            errors.all()
        );
    }
    assert_eq!(obj.info().await.unwrap().state.messages, before);
    assert_eq!(
        client
            .asset_manifest("weather")
            .await
            .unwrap()
            .claims
            .version,
        1
    );
    let err = client.plugin_key("weather").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "no key was registered");
}

/// The audit stream: only the workers write it, only the admin reads it. A client,
/// a plugin server and the gateway can neither publish an event, subscribe to the audit
/// subjects, nor reach the stream's API (info, consumers, direct gets); the admin reads the
/// events but cannot forge, purge or delete one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_workers_write_the_audit_stream_and_only_admin_reads_it() {
    use tessera_schemas::audit::AuditKind;
    use tessera_sdk::operator::audit::AuditQuery;

    let stack = local().start().await;
    stack.user("ann", PASSWORD).await; // user.added and login.succeeded
    let s = stack.subjects().clone();
    let admin = stack.admin().await;
    let all = AuditQuery::default();
    assert_eventually!(
        admin.audit_events(&all).await.is_ok_and(|e| e.len() >= 2),
        "the admin reads the two events"
    );
    let before = admin.audit_events(&all).await.unwrap().len();

    let stream = s.audit_stream();
    let forged = s.audit(AuditKind::LoginSucceeded);
    let reads = [
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}"),
    ];
    let erase = [
        format!("$JS.API.STREAM.PURGE.{stream}"),
        format!("$JS.API.STREAM.MSG.DELETE.{stream}"),
        format!("$JS.API.STREAM.DELETE.{stream}"),
    ];
    // `None`: a plugin server, with its own credentials (plugin servers are not a role).
    for role in [
        Some(Role::Client),
        None,
        Some(Role::Gateway),
        Some(Role::Admin),
    ] {
        let (nats, errors) = match role {
            Some(role) => stack.nats_recording(role).await,
            None => stack.plugin_server_nats_recording("ps1").await,
        };
        let _sub = nats.subscribe(s.audit_all()).await.unwrap();
        let denied: Vec<&String> = if role == Some(Role::Admin) {
            std::iter::once(&forged).chain(&erase).collect()
        } else {
            std::iter::once(&forged)
                .chain(&reads)
                .chain(&erase)
                .collect()
        };
        for subject in &denied {
            nats.publish((*subject).clone(), "{}".into()).await.unwrap();
        }
        nats.flush().await.unwrap();
        for subject in &denied {
            assert_eventually!(
                errors.publish_denied(subject),
                "{role:?}: a permissions violation for {subject}, got {:?}",
                errors.all()
            );
        }
        assert_eventually!(
            errors.subscribe_denied(&s.audit_all()),
            "{role:?}: a permissions violation for subscribing to the audit subjects"
        );
        if role != Some(Role::Admin) {
            // And so the stream cannot be opened at all (the info request goes unanswered).
            let js = async_nats::jetstream::ContextBuilder::new()
                .timeout(Duration::from_millis(500))
                .build(nats.clone());
            assert!(js.get_stream(&stream).await.is_err(), "{role:?}");
        }
    }
    // Nothing forged landed; the admin still reads what the workers wrote.
    assert_eq!(admin.audit_events(&all).await.unwrap().len(), before);
}
