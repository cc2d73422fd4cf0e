//! Tokens and revocations reaching plugin servers: live revocation, replay by a restarted
//! replica, introspection (and the plugin server's fallback to it), and broker replicas
//! sharing the work.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use tessera_ledger::keys::RedisKeys;
use tessera_protocol::now_unix;
use tessera_protocol::signing::{SigningKey, token_hash};
use tessera_schemas::ErrorCode;
use tessera_schemas::claims::{PLUGIN_TOKEN_ISSUER, PluginClaims};
use tessera_schemas::messages::TokenResponse;
use tessera_sdk::{Client, Error};
use tessera_tests::{EVENTUALLY, Role, Stack, assert_eventually};

const PASSWORD: &str = "correct horse battery";

fn is_code<T: std::fmt::Debug>(r: &Result<T, Error>, code: ErrorCode) -> bool {
    matches!(r, Err(e) if e.wire().is_some_and(|w| w.code == code))
}

async fn echo_ok(client: &Client, server: &str, token: &TokenResponse) -> bool {
    client
        .echo(server, &token.token, b"x".to_vec())
        .await
        .is_ok_and(|r| r.account_id == token.account_id)
}

async fn tokens(
    client: &Client,
    account_token: &str,
    plugin: &str,
    n: usize,
) -> Vec<TokenResponse> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(
            client
                .request_token(account_token, plugin, None)
                .await
                .expect("token request"),
        );
    }
    out
}

/// `revoke_token` stops one token at the plugin server, and only that one;
/// `revoke_account` stops all of an account's tokens and says how many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_the_plugin_server() {
    let stack = Stack::start().await;
    let ann = stack.user("ann", PASSWORD).await;
    let bob = stack.user("bob", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let client = stack.client().await;
    let admin = stack.admin().await;

    let ann_tokens = tokens(&client, &ann.account_token, "weather", 3).await;
    let bob_token = &tokens(&client, &bob.account_token, "weather", 1).await[0];
    for t in ann_tokens.iter().chain([bob_token]) {
        assert!(echo_ok(&client, "ps1", t).await);
    }

    let revoked = &ann_tokens[0];
    let r = admin.revoke_token(&revoked.token_id).await.unwrap();
    assert_eq!(r.revoked, 1);
    assert_eventually!(is_code(
        &client.echo("ps1", &revoked.token, b"x".to_vec()).await,
        ErrorCode::Unauthenticated
    ));
    assert!(!ps1.tokens().contains(&revoked.token_id));
    assert!(ps1.tokens().is_revoked(&revoked.token_id));
    assert!(echo_ok(&client, "ps1", &ann_tokens[1]).await);
    // Revoking it again finds nothing live.
    assert_eq!(
        admin.revoke_token(&revoked.token_id).await.unwrap().revoked,
        0
    );

    // Everything ann still has: the two others.
    let r = admin.revoke_account(&ann.account_id).await.unwrap();
    assert_eq!(r.revoked, 2);
    for t in &ann_tokens[1..] {
        assert_eventually!(is_code(
            &client.echo("ps1", &t.token, b"x".to_vec()).await,
            ErrorCode::Unauthenticated
        ));
    }
    assert!(echo_ok(&client, "ps1", bob_token).await, "bob is untouched");
    assert_eq!(
        admin.revoke_account(&ann.account_id).await.unwrap().revoked,
        0
    );

    // ann can get a new token, which works.
    let fresh = &tokens(&client, &ann.account_token, "weather", 1).await[0];
    assert!(echo_ok(&client, "ps1", fresh).await);
}

/// A plugin-server replica that starts later rebuilds its token store from the stream:
/// the live tokens, not the revoked one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_plugin_server_replays_live_tokens_only() {
    let stack = Stack::start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let client = stack.client().await;

    let issued = tokens(&client, &ann.account_token, "weather", 3).await;
    let r = stack
        .admin()
        .await
        .revoke_token(&issued[1].token_id)
        .await
        .unwrap();
    assert_eq!(r.revoked, 1);
    assert_eventually!(ps1.tokens().is_revoked(&issued[1].token_id));
    ps1.stop().await;

    let ps1 = stack.plugin_server("ps1").await; // waits until caught up
    assert!(ps1.wait_caught_up(Duration::from_secs(1)).await);
    let store = ps1.tokens();
    assert_eq!(store.len(), 2);
    assert!(store.contains(&issued[0].token_id));
    assert!(store.contains(&issued[2].token_id));
    assert!(!store.contains(&issued[1].token_id));
    assert!(store.is_revoked(&issued[1].token_id));

    assert!(echo_ok(&client, "ps1", &issued[0]).await);
    assert!(echo_ok(&client, "ps1", &issued[2]).await);
    assert!(is_code(
        &client.echo("ps1", &issued[1].token, b"x".to_vec()).await,
        ErrorCode::Unauthenticated
    ));
}

/// `token.introspect` (plugin-server and admin roles): active for a live token, inactive
/// once revoked, inactive for a forgery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_reports_live_tokens_only() {
    let stack = Stack::start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1", "ps2"]).await;
    let client = stack.client().await;
    let token = &tokens(&client, &ann.account_token, "weather", 1).await[0];
    let ps = stack.plugin_server_client("ps1").await;

    let live = ps.introspect(&token.token).await.unwrap();
    assert!(live.active);
    assert_eq!(live.token_id.as_deref(), Some(token.token_id.as_str()));
    assert_eq!(live.account_id.as_deref(), Some(ann.account_id.as_str()));
    assert_eq!(live.plugin_id.as_deref(), Some("weather"));
    assert_eq!(live.expires_at, Some(token.expires_at));
    assert_eq!(live.servers, ["ps1", "ps2"]);
    assert!(
        stack
            .admin()
            .await
            .introspect(&token.token)
            .await
            .unwrap()
            .active
    );

    // The same claims signed by a key the broker never published.
    let claims =
        jsonwebtoken::dangerous::insecure_decode_claims::<serde_json::Value>(&token.token).unwrap();
    let forged = SigningKey::generate().sign(&claims).unwrap();
    assert!(!ps.introspect(&forged).await.unwrap().active);
    assert!(!ps.introspect("not.a.jwt").await.unwrap().active);

    stack
        .admin()
        .await
        .revoke_token(&token.token_id)
        .await
        .unwrap();
    let after = ps.introspect(&token.token).await.unwrap();
    assert!(!after.active);
    assert_eq!(after.token_id, None);
}

/// A token record as brokers wrote it before records became positional (by field name,
/// without the claims added since): still honoured (libs/ledger/src/record.rs).
#[derive(serde::Serialize)]
struct TokenRecord<'a> {
    account_id: &'a str,
    plugin_id: &'a str,
    servers: &'a [&'a str],
    token_hash: String,
    expires_at: u64,
}

/// Leaves Redis as a broker that crashed between recording a token and distributing it
/// would: a token signed with the broker's key, recorded, and never distributed. Returns
/// the token and its id.
async fn recorded_but_undistributed(
    stack: &Stack,
    account_id: &str,
    servers: &[&str],
    record: bool,
) -> (String, String) {
    let now = now_unix();
    let jti = uuid::Uuid::new_v4().to_string();
    let claims = PluginClaims {
        iss: PLUGIN_TOKEN_ISSUER.into(),
        sub: account_id.into(),
        plugin_id: "weather".into(),
        aud: servers.iter().map(|s| (*s).to_owned()).collect(),
        jti: jti.clone(),
        iat: now,
        exp: now + 600,
        device_id: None,
        user_ip: None,
    };
    let token = stack.broker_key().sign(&claims).unwrap();
    if record {
        let keys = RedisKeys::new(stack.subjects().prefix());
        let value = rmp_serde::to_vec_named(&TokenRecord {
            account_id,
            plugin_id: "weather",
            servers,
            token_hash: token_hash(&token),
            expires_at: claims.exp,
        })
        .unwrap();
        let client = redis::Client::open(stack.servers().redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::pipe()
            .cmd("SET")
            .arg(keys.token(&jti))
            .arg(value)
            .arg("PX")
            .arg(600_000)
            .ignore()
            .cmd("ZADD")
            .arg(keys.account_tokens(account_id))
            .arg(claims.exp)
            .arg(&jti)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
    (token, jti)
}

/// A token whose distribution a plugin server never received (the client was faster, or
/// the broker crashed between record and distribution) is served once the broker's
/// introspection says it is live, and then kept; one the broker has no record of is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_server_falls_back_to_introspection() {
    let stack = Stack::start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let client = stack.client().await;

    let (live, live_id) = recorded_but_undistributed(&stack, &ann.account_id, &["ps1"], true).await;
    assert!(!ps1.tokens().contains(&live_id), "nothing was distributed");
    let reply = client
        .echo("ps1", &live, b"hi".to_vec())
        .await
        .expect("served after introspection");
    assert_eq!(reply.account_id, ann.account_id);
    assert_eq!(reply.plugin_id, "weather");
    assert!(ps1.tokens().contains(&live_id), "kept after introspection");

    // Validly signed, but the broker never recorded it (or has deleted the record).
    let (unrecorded, unrecorded_id) =
        recorded_but_undistributed(&stack, &ann.account_id, &["ps1"], false).await;
    let r = client.echo("ps1", &unrecorded, b"hi".to_vec()).await;
    assert!(is_code(&r, ErrorCode::Unauthenticated), "{r:?}");
    assert!(!ps1.tokens().contains(&unrecorded_id));

    // Recorded, but for another server: the audience is checked before asking the broker.
    let (elsewhere, _) = recorded_but_undistributed(&stack, &ann.account_id, &["ps2"], true).await;
    let r = client.echo("ps1", &elsewhere, b"hi".to_vec()).await;
    assert!(is_code(&r, ErrorCode::Unauthenticated), "{r:?}");

    // Revoking the undistributed token through the broker stops it at ps1 too.
    let admin = stack.admin().await;
    assert_eq!(admin.revoke_token(&live_id).await.unwrap().revoked, 1);
    assert_eventually!(is_code(
        &client.echo("ps1", &live, b"x".to_vec()).await,
        ErrorCode::Unauthenticated
    ));
}

/// Requests to `token-request` per broker instance, from `$SRV.STATS.<service>`: every
/// instance answers, so the replies are collected until the inbox is quiet.
async fn token_requests_per_instance(
    admin: &async_nats::Client,
    service: &str,
    instances: usize,
) -> BTreeMap<String, u64> {
    let inbox = admin.new_inbox();
    let mut replies = admin.subscribe(inbox.clone()).await.unwrap();
    admin
        .publish_with_reply(format!("$SRV.STATS.{service}"), inbox, "".into())
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    while out.len() < instances {
        let Ok(Some(msg)) = tokio::time::timeout(EVENTUALLY, replies.next()).await else {
            break;
        };
        let stats: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
        let served = stats["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == "token-request")
            .map(|e| e["num_requests"].as_u64().unwrap())
            .sum();
        out.insert(stats["id"].as_str().unwrap().to_owned(), served);
    }
    out
}

/// Two broker replicas in one queue group share the requests (each request served once),
/// and one replica alone carries on when the other stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_replicas_share_requests() {
    let mut stack = Stack::builder().brokers(2).start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let client = stack.client().await;

    let requests = (0..40).map(|_| client.request_token(&ann.account_token, "weather", None));
    let issued: Vec<TokenResponse> = futures::future::join_all(requests)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("every request succeeds");
    // Tokens from either replica verify and are served.
    for t in [&issued[0], &issued[39]] {
        assert!(echo_ok(&client, "ps1", t).await);
    }

    let admin = stack.nats(Role::Admin).await;
    let service = stack.subjects().service_name("broker");
    // A replica counts a request right after replying; the count may lag the reply a little.
    assert_eventually!(
        {
            let per = token_requests_per_instance(&admin, &service, 2).await;
            per.len() == 2 && per.values().all(|&n| n > 0) && per.values().sum::<u64>() == 40
        },
        "both replicas served some of the 40 requests, each request exactly once: {:?}",
        token_requests_per_instance(&admin, &service, 2).await
    );

    stack.stop_broker(0).await;
    let after = tokens(&client, &ann.account_token, "weather", 10).await;
    for t in &after {
        assert!(echo_ok(&client, "ps1", t).await);
    }
    assert_eventually!(ps1.tokens().len() == 50);
}

/// Tokens issued at once for one server go out together: fewer distribution events than
/// tokens (one stored message and one ack stand for several), each token in exactly one
/// event, and every token a client received is in the stream by the time it got it, and
/// served by the plugin server. Fails if the broker publishes one event per token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_issued_at_once_share_distribution_events() {
    use tessera_schemas::codec;
    use tessera_schemas::messages::DistEvent;

    let stack = Stack::start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let client = stack.client().await;
    const N: usize = 64;
    let issued: Vec<TokenResponse> = futures::future::join_all(
        (0..N).map(|_| client.request_token(&ann.account_token, "weather", None)),
    )
    .await
    .into_iter()
    .map(|r| r.expect("a token"))
    .collect();

    // Read as the admin, right after the replies: each reply came after its event's ack.
    let js = async_nats::jetstream::new(stack.nats(Role::Admin).await);
    let mut stream = js.get_stream(stack.subjects().dist_stream()).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let (mut events, mut ids) = (0, Vec::new());
    for seq in 1..=last {
        let Ok(msg) = stream.get_raw_message(seq).await else {
            continue;
        };
        if let Ok(DistEvent::Tokens { tokens }) = codec::decode::<DistEvent>(&msg.payload) {
            events += 1;
            assert!(tokens.len() <= tessera_schemas::messages::MAX_DIST_BATCH);
            for t in tokens {
                let claims = jsonwebtoken::dangerous::insecure_decode_claims::<PluginClaims>(&t)
                    .expect("claims");
                ids.push(claims.jti);
            }
        }
    }
    let mut want: Vec<String> = issued.iter().map(|t| t.token_id.clone()).collect();
    want.sort();
    ids.sort();
    assert_eq!(ids, want, "every issued token in exactly one event");
    assert!(events < N, "{events} events for {N} tokens issued at once");
    for t in issued.iter().step_by(16) {
        assert!(echo_ok(&client, "ps1", t).await, "served");
    }
    assert_eventually!(
        issued.iter().all(|t| ps1.tokens().contains(&t.token_id)),
        "ps1 stored every token"
    );
}
