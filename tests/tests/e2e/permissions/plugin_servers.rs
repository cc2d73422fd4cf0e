//! Per-plugin-server credentials: a plugin server identity
//! reads only its own `dist.<id>`, serves only `svc.<id>.*`, cannot mint, revoke or
//! publish distributions; wrong, unknown and removed credentials are refused at connect.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use serde_json::json;

use tessera_protocol::rpc::{self, RpcError};
use tessera_schemas::messages::{DIST_EVENT, DistEvent};
use tessera_schemas::plugin_servers::user_name;
use tessera_schemas::{ErrorCode, codec, headers};
use tessera_sdk::ErrorKind;
use tessera_sdk::operator::PluginServerSecret;
use tessera_tests::{Role, assert_eventually};

use super::{PASSWORD, local};

/// A raw JetStream API request that nats-server drops for lack of permission: no reply at
/// all, so it times out.
pub(super) async fn refused_api_call(
    nats: &async_nats::Client,
    subject: &str,
    body: serde_json::Value,
) {
    let r = rpc::request_raw(
        nats,
        subject.to_owned(),
        async_nats::HeaderMap::new(),
        body.to_string().into(),
        Duration::from_millis(500),
    )
    .await;
    assert!(matches!(r, Err(RpcError::Timeout(..))), "{subject}: {r:?}");
}

/// ps1 reads `dist.ps1` through a consumer the broker opens for it
/// (`distribution.open.ps1`, the one its credentials allow) and pulls from by name; every
/// other way into the distribution stream is refused by nats-server: opening ps2's, creating
/// a consumer itself in any form (a consumer's deliver subject is its creator's choice),
/// direct and stored-message gets, consumer listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_server_reads_only_its_own_distributions() {
    let stack = local().start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1", "ps2"]).await;
    let client = stack.client().await;
    let token = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    let s = stack.subjects().clone();
    let dist = s.dist_stream();

    // Distributions are read on the distribution connection (user plugin-server-dist.ps1).
    let (ps1, errors) = stack.plugin_server_dist_nats_recording("ps1").await;
    // The control: its own distributions, as the SDK reads them.
    let mut h = async_nats::HeaderMap::new();
    h.insert(
        headers::SCHEMA,
        tessera_schemas::messages::DIST_OPEN.header_value().as_str(),
    );
    let opened = ps1
        .request_with_headers(
            s.dist_open("ps1"),
            h.clone(),
            codec::encode(&tessera_schemas::messages::DistOpenRequest::default()).into(),
        )
        .await
        .unwrap();
    let info: consumer::Info = serde_json::from_slice(&opened.payload).unwrap();
    assert_eq!(info.config.filter_subject, s.dist("ps1"));
    let js = jetstream::with_prefix(ps1.clone(), &s.js_api_import());
    let own = consumer::Consumer::new(
        consumer::pull::Config {
            name: Some(info.name.clone()),
            filter_subject: s.dist("ps1"),
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        },
        info,
        js,
    );
    let mut messages = own.messages().await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("ps1's distribution within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(msg.subject.as_str(), s.dist("ps1"));
    match codec::decode::<DistEvent>(&msg.payload).unwrap() {
        DistEvent::Tokens { tokens } => assert_eq!(tokens, std::slice::from_ref(&token.token)),
        other => panic!("{other:?}"),
    }

    // Another server's distributions: asking the broker for ps2's consumer is refused ...
    let open_ps2 = s.dist_open("ps2");
    let r = rpc::request_raw(
        &ps1,
        open_ps2.clone(),
        h,
        codec::encode(&tessera_schemas::messages::DistOpenRequest::default()).into(),
        Duration::from_millis(500),
    )
    .await;
    assert!(matches!(r, Err(RpcError::Timeout(..))), "{r:?}");
    // ... and so is creating a consumer, filtered or not, in the workers' API as its
    // account imports it or under the plain JetStream API.
    let config = |filter: String| {
        json!({"stream_name": dist, "config": {"name": "steal", "filter_subject": filter,
            "ack_policy": "none", "deliver_policy": "all", "mem_storage": true,
            "deliver_subject": "tessera.users.add"}})
    };
    let create_ps2 = format!("$JS.API.CONSUMER.CREATE.{dist}.steal.{}", s.dist("ps2"));
    let create_own = format!("$JS.API.CONSUMER.CREATE.{dist}.steal.{}", s.dist("ps1"));
    let create_imported = format!(
        "{}.CONSUMER.CREATE.{dist}.steal.{}",
        s.js_api_import(),
        s.dist("ps1")
    );
    let create_plain = format!("$JS.API.CONSUMER.CREATE.{dist}");
    for subject in [&create_ps2, &create_own, &create_imported, &create_plain] {
        refused_api_call(&ps1, subject, config(s.dist("ps1"))).await;
    }
    for subject in [
        &open_ps2,
        &create_ps2,
        &create_own,
        &create_imported,
        &create_plain,
    ] {
        assert_eventually!(
            errors.publish_denied(subject),
            "a permissions violation for {subject}, got {:?}",
            errors.all()
        );
    }
    // Reading stored messages directly, or finding other consumers' names: refused.
    let direct = format!("$JS.API.DIRECT.GET.{dist}");
    let direct_last = format!("$JS.API.DIRECT.GET.{dist}.{}", s.dist("ps2"));
    let msg_get = format!("$JS.API.STREAM.MSG.GET.{dist}");
    let names = format!("$JS.API.CONSUMER.NAMES.{dist}");
    refused_api_call(&ps1, &direct, json!({"last_by_subj": s.dist("ps2")})).await;
    refused_api_call(&ps1, &direct_last, json!({})).await;
    refused_api_call(&ps1, &msg_get, json!({"seq": 1})).await;
    refused_api_call(&ps1, &names, json!({})).await;
    for subject in [&direct, &direct_last, &msg_get, &names] {
        assert_eventually!(
            errors.publish_denied(subject),
            "a permissions violation for {subject}, got {:?}",
            errors.all()
        );
    }
    // Subscribing to the stream's subjects or to other connections' inboxes: refused.
    let inbox_ps2 = format!("{}.>", s.plugin_server_inbox("ps2"));
    let subs = [
        s.dist("ps1"),
        s.dist("ps2"),
        s.dist_all(),
        "_INBOX.>".to_owned(),
        inbox_ps2,
        // The distribution connection does not serve.
        s.svc_server("ps1"),
    ];
    let mut held = Vec::new();
    for subject in &subs {
        held.push(ps1.subscribe(subject.clone()).await.unwrap());
    }
    ps1.flush().await.unwrap();
    for subject in &subs {
        assert_eventually!(
            errors.subscribe_denied(subject),
            "a permissions violation for subscribing to {subject}, got {:?}",
            errors.all()
        );
    }

    // The serving connection reads no distributions at all, not even its own: it may
    // respond, and nats-server would keep every delivery's reply subject for it.
    let (serving, serving_errors) = stack.plugin_server_nats_recording("ps1").await;
    let create_own = format!("$JS.API.CONSUMER.CREATE.{dist}.own2.{}", s.dist("ps1"));
    refused_api_call(&serving, &create_own, config(s.dist("ps1"))).await;
    assert_eventually!(
        serving_errors.publish_denied(&create_own),
        "a permissions violation for {create_own}, got {:?}",
        serving_errors.all()
    );
}

/// ps1 serves `svc.ps1.*` and nothing else: it cannot listen on another server's
/// operations, and it cannot mint, revoke, verify accounts, add users or publish
/// distribution events (the stream does not grow, the token stays live).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_server_serves_only_its_own_operations_and_cannot_mint_or_revoke() {
    let stack = local().start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1", "ps2"]).await;
    let served = stack.plugin_server("ps1").await;
    let client = stack.client().await;
    let token = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    // The control: ps1 (its own credentials, through the SDK) serves its operation.
    assert_eventually!(
        client
            .echo("ps1", &token.token, b"x".to_vec())
            .await
            .is_ok(),
        "ps1 never served echo"
    );
    assert!(served.tokens().contains(&token.token_id));

    let s = stack.subjects().clone();
    let (ps1, errors) = stack.plugin_server_nats_recording("ps1").await;
    let foreign = [s.svc("ps2", "echo"), s.svc_server("ps2"), s.svc_all()];
    let mut held = Vec::new();
    for subject in &foreign {
        held.push(ps1.subscribe(subject.clone()).await.unwrap());
    }
    // Its own operations: allowed (no violation for these).
    held.push(ps1.subscribe(s.svc("ps1", "other")).await.unwrap());
    ps1.flush().await.unwrap();
    for subject in &foreign {
        assert_eventually!(
            errors.subscribe_denied(subject),
            "a permissions violation for subscribing to {subject}, got {:?}",
            errors.all()
        );
    }
    assert!(
        !errors.subscribe_denied(&s.svc("ps1", "other")),
        "{:?}",
        errors.all()
    );

    let js = jetstream::new(stack.nats(Role::Admin).await);
    let mut stream = js.get_stream(s.dist_stream()).await.unwrap();
    let before = stream.info().await.unwrap().state.messages;
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::SCHEMA, DIST_EVENT.header_value().as_str());
    let revoke = codec::encode(&DistEvent::Revoke {
        token_ids: vec![token.token_id.clone()],
    });
    for subject in [s.dist("ps1"), s.dist("ps2")] {
        ps1.publish_with_headers(subject, h.clone(), revoke.clone().into())
            .await
            .unwrap();
    }
    let refused = [
        s.token_request(),
        s.token_revoke(),
        s.auth_verify(),
        s.users_add(),
        s.svc("ps2", "echo"),
    ];
    for subject in &refused {
        ps1.publish(subject.clone(), "x".into()).await.unwrap();
    }
    ps1.flush().await.unwrap();
    for subject in refused.iter().chain(&[s.dist("ps1"), s.dist("ps2")]) {
        assert_eventually!(
            errors.publish_denied(subject),
            "a permissions violation for {subject}, got {:?}",
            errors.all()
        );
    }
    // Through the SDK: minting and revoking are unreachable (dropped, so unavailable).
    let sdk =
        tessera_sdk::Client::new(ps1.clone(), s.clone()).with_timeout(Duration::from_millis(500));
    let (minted, revoked) = tokio::join!(
        sdk.request_token(&ann.account_token, "weather", None),
        sdk.revoke_token(&token.token_id),
    );
    assert!(
        matches!(&minted, Err(e) if e.kind() == ErrorKind::Unavailable),
        "{minted:?}"
    );
    assert!(
        matches!(&revoked, Err(e) if e.kind() == ErrorKind::Unavailable),
        "{revoked:?}"
    );
    // What it may do: introspect and fetch keys.
    assert!(sdk.introspect(&token.token).await.unwrap().active);
    assert!(sdk.keys().await.is_ok());

    // Nothing happened.
    assert_eq!(stream.info().await.unwrap().state.messages, before);
    assert!(
        stack
            .admin()
            .await
            .introspect(&token.token)
            .await
            .unwrap()
            .active
    );
    assert!(
        client
            .echo("ps1", &token.token, b"x".to_vec())
            .await
            .is_ok()
    );
}

/// Credentials are checked by the auth callout at connect: a wrong secret, another id's
/// secret, an unknown id, a removed id, and the old shared `plugin-server` user are all
/// refused with an authorization violation (the callout's answer, which nats-server logs
/// with the reason: not a timeout). A rotated secret replaces the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_unknown_and_removed_plugin_server_credentials_are_refused() {
    let mut stack = local().start().await;
    let admin = stack.admin().await;
    let ps1 = admin.add_plugin_server("ps1", false).await.unwrap();
    let ps2 = admin.add_plugin_server("ps2", false).await.unwrap();
    // An id that exists is a conflict unless rotated.
    let err = admin.add_plugin_server("ps1", false).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    assert_eq!(admin.plugin_servers().await.unwrap(), ["ps1", "ps2"]);

    let host = stack
        .url(Role::Client)
        .rsplit_once('@')
        .map(|(_, h)| h.to_owned())
        .unwrap();
    let attempt = |user: String, pass: String| {
        let host = host.clone();
        async move {
            async_nats::ConnectOptions::new()
                .user_and_password(user, pass)
                .connection_timeout(Duration::from_secs(5))
                .connect(host.as_str())
                .await
        }
    };
    // The control: the right secret connects.
    attempt(ps1.user(), ps1.password()).await.unwrap();

    let unknown = PluginServerSecret::generate("ps9");
    let cases = [
        ("wrong secret", ps1.user(), "x".repeat(43)),
        ("another id's secret", ps1.user(), ps2.password()),
        ("unknown id", unknown.user(), unknown.password()),
        (
            "the old shared user",
            "plugin-server".to_owned(),
            ps1.password(),
        ),
    ];
    for (what, user, pass) in cases {
        let err = attempt(user, pass).await.unwrap_err();
        assert_eq!(
            err.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation,
            "{what}: {err}"
        );
    }
    // Removed: refused from then on; the others are unaffected.
    admin.remove_plugin_server("ps2").await.unwrap();
    let err = attempt(ps2.user(), ps2.password()).await.unwrap_err();
    assert_eq!(
        err.kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation
    );
    let err = admin.remove_plugin_server("ps2").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    attempt(ps1.user(), ps1.password()).await.unwrap();
    // Rotated: the new secret works, the old one no longer does.
    let rotated = admin.add_plugin_server("ps1", true).await.unwrap();
    attempt(rotated.user(), rotated.password()).await.unwrap();
    let err = attempt(ps1.user(), ps1.password()).await.unwrap_err();
    assert_eq!(
        err.kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation
    );

    // Each refusal was the callout's answer, with its reason (nats-server logs it).
    let log = stack
        .servers_mut()
        .nats_mut()
        .unwrap()
        .log_tail()
        .join("\n");
    for reason in [
        "wrong secret",
        "unknown plugin server",
        "not a client or plugin-server user",
    ] {
        assert!(
            log.contains(reason),
            "no {reason:?} in the nats-server log:\n{log}"
        );
    }
    assert!(!log.contains(&ps1.password()), "a secret in the log");
    assert_eq!(user_name("ps1"), ps1.user());
}
