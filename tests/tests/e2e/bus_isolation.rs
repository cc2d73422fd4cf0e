//! Bus isolation by NATS accounts (docs/security.md): no connection outside the workers'
//! account can make a trusted responder (a worker, JetStream) publish where it chose, and
//! no plugin server can answer onto a subject that names something. Every test checks the
//! effect (the route, the user, the tokens, the registry, the audit stream, what the
//! buckets hold), not the mechanism; each of them failed on the single-account bus this
//! replaced, where a reply went wherever the requester's reply subject said.

use std::time::Duration;

use futures::StreamExt;

use tessera_schemas::messages::{
    RevokeRequest, TOKEN_REQUEST, TOKEN_REVOKE, TokenRequest, USERS_ADD, UsersAddRequest,
};
use tessera_schemas::plugin_servers::PluginServerRecord;
use tessera_schemas::{Schema, codec, headers};
use tessera_sdk::operator::audit::AuditQuery;
use tessera_tests::metrics::requests_answered;
use tessera_tests::{Role, Stack, assert_eventually};

const PASSWORD: &str = "correct horse battery";

/// Where a stream stands: its last sequence (`None`: no such stream yet).
async fn last_seq(nats: &async_nats::Client, stream: &str) -> Option<u64> {
    let reply = nats
        .request(format!("$JS.API.STREAM.INFO.{stream}"), "".into())
        .await
        .unwrap_or_else(|e| panic!("stream info of {stream}: {e}"));
    let info: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    info["state"]["last_seq"].as_u64()
}

/// The last sequence of every stream an attack here aims at (KV buckets, object stores),
/// read through the roles that may: nothing an attacker does may move one.
struct Witness {
    seen: Vec<(String, Option<u64>)>,
}

impl Witness {
    async fn streams(stack: &Stack) -> Vec<(async_nats::Client, String)> {
        let s = stack.subjects();
        let (admin, auth, broker) = (
            stack.nats(Role::Admin).await,
            stack.nats(Role::Auth).await,
            stack.nats(Role::Broker).await,
        );
        let kv = |b: String| format!("KV_{b}");
        let mut out = vec![
            (auth.clone(), kv(s.users_bucket())),
            (broker.clone(), kv(s.keys_bucket())),
        ];
        for stream in [
            kv(s.routes_bucket()),
            kv(s.plugin_servers_bucket()),
            kv(s.client_apps_bucket()),
            kv(s.data_routes_bucket()),
            kv(s.apps_bucket()),
            kv(s.app_secrets_bucket()),
            kv(s.package_index_bucket()),
            kv(s.plugin_keys_bucket()),
            kv(s.asset_versions_bucket()),
            format!("OBJ_{}", s.assets_bucket()),
        ] {
            out.push((admin.clone(), stream));
        }
        out
    }

    async fn take(stack: &Stack) -> Witness {
        let mut seen = Vec::new();
        for (nats, stream) in Self::streams(stack).await {
            seen.push((stream.clone(), last_seq(&nats, &stream).await));
        }
        Witness { seen }
    }

    async fn assert_unchanged(&self, stack: &Stack) {
        let now = Witness::take(stack).await;
        assert_eq!(now.seen, self.seen, "a bucket or store was written");
    }
}

fn refused_replies() -> u64 {
    let text = tessera_runtime::metrics::install().render();
    text.lines()
        .filter(|l| l.starts_with("tessera_replies_refused_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

fn with_schema(schema: Schema) -> async_nats::HeaderMap {
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::SCHEMA, schema.header_value().as_str());
    h
}

/// How many `user.added` events the audit stream holds.
async fn users_added_events(stack: &Stack) -> usize {
    stack
        .admin()
        .await
        .audit_events(&AuditQuery {
            kind: Some("user.added".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
}

/// With the client password alone: requests to the broker (`keys`, `token.request`) and to
/// the workers' JetStream API (direct gets) with reply subjects naming the routes bucket, the
/// plugin-server registry and the workers' request subjects. On one account the broker and
/// JetStream "replied" into the bucket (the victim's route deleted or redirected). Now every
/// reply crosses back into the client apps' account, where those subjects are nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_make_workers_or_jetstream_reply_into_their_state() {
    tessera_runtime::metrics::install();
    let stack = Stack::start().await;
    let s = stack.subjects().clone();
    let ann = stack.user("ann", PASSWORD).await;
    let mallory = stack.user("mallory", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    stack.route("evilplug", &["evil"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let _evil = stack.plugin_server("evil").await;
    let witness = Witness::take(&stack).await;

    let attacker = stack.nats(Role::Client).await;
    let routes_key = format!("$KV.{}.weather", s.routes_bucket());
    let registry_key = format!("$KV.{}.ps1", s.plugin_servers_bucket());
    let targets = [
        routes_key.clone(),
        registry_key,
        s.users_add(),
        s.token_revoke(),
        s.audit(tessera_schemas::audit::AuditKind::UserAdded),
        format!("$JS.API.STREAM.PURGE.KV_{}", s.routes_bucket()),
    ];
    let (keys_before, tokens_before) = (
        requests_answered("keys"),
        requests_answered("token-request"),
    );
    // A token request for the attacker's own plugin: its reply names `servers: ["evil"]`,
    // which on one account became weather's route.
    let own = TokenRequest {
        account_token: mallory.account_token.clone(),
        plugin_id: "evilplug".into(),
        idempotency_key: None,
        device_id: None,
        user_ip: None,
    };
    let direct_get = format!(
        "{}.DIRECT.GET.KV_{}.$KV.{}.weather",
        s.js_api_import(),
        s.asset_versions_bucket(),
        s.asset_versions_bucket()
    );
    for target in &targets {
        attacker
            .publish_with_reply(s.keys(), target.clone(), "".into())
            .await
            .unwrap();
        attacker
            .publish_with_reply_and_headers(
                s.token_request(),
                target.clone(),
                with_schema(TOKEN_REQUEST),
                codec::encode(&own).into(),
            )
            .await
            .unwrap();
        attacker
            .publish_with_reply(direct_get.clone(), target.clone(), "".into())
            .await
            .unwrap();
    }
    attacker.flush().await.unwrap();
    let n = targets.len() as u64;
    assert_eventually!(
        requests_answered("keys") >= keys_before + n
            && requests_answered("token-request") >= tokens_before + n,
        "the broker answered every request"
    );
    // A control round trip through the same broker and JetStream after those replies.
    let client = stack.client().await;
    client.keys().await.unwrap();

    witness.assert_unchanged(&stack).await;
    let routes = stack.admin().await.routes().await.unwrap();
    let weather = routes.iter().find(|(p, _)| p == "weather").unwrap();
    assert_eq!(weather.1.servers, vec!["ps1".to_owned()]);
    // The victim's tokens still go to ps1, and only there.
    let token = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    assert_eq!(token.servers, vec!["ps1".to_owned()]);
    assert!(ps1.wait_caught_up(Duration::from_secs(10)).await);
    client
        .echo("ps1", &token.token, b"x".to_vec())
        .await
        .unwrap();
}

/// With the client password and one plugin server's own credentials: the attacker's plugin
/// server answers the attacker's own `svc.evil.*` requests with bodies and headers of its
/// choosing, onto reply subjects naming admin requests, the registry and the audit stream.
/// On one account that created a user, revoked another account's tokens, overwrote ps1's
/// registry entry and forged an audit event. Now the answer lands in the client apps'
/// account, on subjects that lead nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_server_cannot_answer_onto_worker_subjects() {
    let stack = Stack::start().await;
    let s = stack.subjects().clone();
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    stack.route("evilplug", &["evil"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let client = stack.client().await;
    let victim_token = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    // Registered before the witness is taken (registering writes the registry).
    let evil = stack.plugin_server_nats("evil").await;
    let witness = Witness::take(&stack).await;
    let audit_before = users_added_events(&stack).await;

    // The attacker's plugin server: answers each request on svc.evil.op with the forgery
    // the request's first header names.
    let mut requests = evil.subscribe(s.svc("evil", "op")).await.unwrap();
    evil.flush().await.unwrap();
    let forged_user = UsersAddRequest {
        username: "mallory".into(),
        password: PASSWORD.into(),
    };
    let revoke_all = RevokeRequest {
        token_id: None,
        account_id: Some(ann.account_id.clone()),
    };
    let registry = PluginServerRecord {
        secret_sha256: vec![0u8; 32],
        created_at: 0,
    };
    let forgeries: Vec<(String, async_nats::HeaderMap, Vec<u8>)> = vec![
        (
            s.users_add(),
            with_schema(USERS_ADD),
            codec::encode(&forged_user),
        ),
        (
            s.token_revoke(),
            with_schema(TOKEN_REVOKE),
            codec::encode(&revoke_all),
        ),
        (
            format!("$KV.{}.ps1", s.plugin_servers_bucket()),
            async_nats::HeaderMap::new(),
            codec::encode(&registry),
        ),
        (
            s.audit(tessera_schemas::audit::AuditKind::UserAdded),
            async_nats::HeaderMap::new(),
            br#"{"kind":"user.added","actor":{"role":"admin"}}"#.to_vec(),
        ),
    ];
    let responder = {
        let evil = evil.clone();
        let forgeries = forgeries.clone();
        tokio::spawn(async move {
            for (_, h, body) in &forgeries {
                let req = requests.next().await.unwrap();
                let reply = req.reply.unwrap();
                evil.publish_with_headers(reply, h.clone(), body.clone().into())
                    .await
                    .unwrap();
            }
            evil.flush().await.unwrap();
        })
    };
    let attacker = stack.nats(Role::Client).await;
    for (target, _, _) in &forgeries {
        attacker
            .publish_with_reply(s.svc("evil", "op"), target.clone(), "".into())
            .await
            .unwrap();
        attacker.flush().await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(10), responder)
        .await
        .expect("the attacker's plugin server answered every request")
        .unwrap();
    // Control round trips through the auth worker and the broker after the forgeries.
    let refused = client.login("mallory", PASSWORD).await;
    assert!(
        matches!(refused, Err(ref e) if e.wire().is_some_and(|w| w.code == tessera_schemas::ErrorCode::Unauthenticated)),
        "no user was created: {refused:?}"
    );
    witness.assert_unchanged(&stack).await;
    // ann's tokens were not revoked, and ps1's credentials are still its own.
    client
        .echo("ps1", &victim_token.token, b"x".to_vec())
        .await
        .unwrap();
    let ps1_client = stack.plugin_server_client("ps1").await;
    assert!(
        ps1_client
            .introspect(&victim_token.token)
            .await
            .is_ok_and(|r| r.active)
    );
    assert!(ps1.tokens().contains(&victim_token.token_id));
    let audit_after = users_added_events(&stack).await;
    assert_eq!(audit_after, audit_before, "no forged audit event");
}

/// A plugin server publishes nowhere but where it serves: not into a client's inbox, not
/// into another plugin server's, not into the workers' inboxes or reply subjects, not on
/// the requests of another plugin server. nats-server refuses each publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_server_cannot_publish_into_other_inboxes() {
    let stack = Stack::start().await;
    let s = stack.subjects().clone();
    stack.route("weather", &["ps1"]).await;
    let _ps1 = stack.plugin_server("ps1").await;
    let (evil, errors) = stack.plugin_server_nats_recording("evil").await;
    let subjects = [
        "_C_INBOX.0123456789abcdef0123456789abcdef.x".to_owned(),
        format!("{}.x", s.plugin_server_inbox("ps1")),
        "_INBOX.x".to_owned(),
        "_R_.abc.def".to_owned(),
        s.svc("ps1", "echo"),
        s.dist("ps1"),
        s.dist_open("ps1"),
        s.users_add(),
    ];
    for subject in &subjects {
        evil.publish(subject.clone(), "x".into()).await.unwrap();
    }
    evil.flush().await.unwrap();
    for subject in &subjects {
        assert_eventually!(
            errors.publish_denied(subject),
            "a permissions violation for {subject}, got {:?}",
            errors.all()
        );
    }
}

/// The second wall, inside the workers' account: the request loop answers only on a reply
/// inbox. The admin (trusted, and the one kind of requester left that could name any
/// reply subject) asks for `keys` with its reply on weather's route: the broker does not
/// answer, counts it, and the route stays. Remove `reply_allowed` from
/// `libs/runtime/src/service.rs` and this fails: the JWKS becomes the route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_answer_only_on_reply_inboxes() {
    tessera_runtime::metrics::install();
    let stack = Stack::start().await;
    let s = stack.subjects().clone();
    stack.route("weather", &["ps1"]).await;
    let witness = Witness::take(&stack).await;
    let before = refused_replies();
    let admin = stack.nats(Role::Admin).await;
    admin
        .publish_with_reply(
            s.keys(),
            format!("$KV.{}.weather", s.routes_bucket()),
            "".into(),
        )
        .await
        .unwrap();
    admin.flush().await.unwrap();
    assert_eventually!(
        refused_replies() > before,
        "the broker refused to answer on a bucket subject"
    );
    stack.admin().await.keys().await.unwrap();
    witness.assert_unchanged(&stack).await;
    let routes = stack.admin().await.routes().await.unwrap();
    assert_eq!(routes[0].1.servers, vec!["ps1".to_owned()]);
}
