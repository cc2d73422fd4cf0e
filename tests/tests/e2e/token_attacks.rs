//! Token attacks, against real servers and in-process workers: each forged or
//! misused token is refused by the plugin server (over the bus, through an operation call),
//! the gateway (in a signed data-access packet) and the auth worker (as an account token, via
//! `token.request`) with a typed error naming its reason, and counted in
//! `tessera_tokens_rejected_total{verifier, reason}`. Clock skew: times within the
//! configured leeway are accepted, beyond it refused. Key rotation: `key_rotation.rs`.

use std::future::Future;
use std::time::Duration;

use serde_json::json;
use tessera_protocol::now_unix;
use tessera_protocol::signing::SigningKey;
use tessera_schemas::messages::{DIST_EVENT, DistEvent};
use tessera_schemas::{ErrorCode, codec, headers};
use tessera_sdk::data::{ClientAppCredentials, DataCall, build_packet, new_nonce, now_ms};
use tessera_sdk::{Client, Error};
use tessera_tests::metrics::tokens_rejected;
use tessera_tests::{Backend, Role, Stack, StackBuilder, assert_eventually};

mod forge;

use forge::*;

const PASSWORD: &str = "correct horse battery";

fn local() -> StackBuilder {
    tessera_tests::init_logging();
    Stack::builder().backend(Backend::Local)
}

// --- forging -----------------------------------------------------------------------------

/// Publishes `token` on `dist.<server>` as the broker would (broker credentials).
async fn distribute(stack: &Stack, server: &str, token: &str) {
    let js = async_nats::jetstream::new(stack.nats(Role::Broker).await);
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::SCHEMA, DIST_EVENT.header_value().as_str());
    h.insert(headers::MSG_ID, uuid::Uuid::new_v4().to_string().as_str());
    let event = DistEvent::Token {
        token: token.to_owned(),
    };
    js.publish_with_headers(
        stack.subjects().dist(server),
        h,
        codec::encode(&event).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

// --- asserting ---------------------------------------------------------------------------

/// `call` fails with `code`, its message names `[reason]`, and the counter
/// `{verifier, reason}` went up.
async fn refused<T: std::fmt::Debug>(
    verifier: &str,
    reason: &str,
    code: ErrorCode,
    call: impl Future<Output = Result<T, Error>>,
) {
    let before = tokens_rejected(verifier, reason);
    let err = call.await.expect_err(&format!(
        "{verifier} accepted a token it should refuse ({reason})"
    ));
    assert_eq!(err.code(), code, "{verifier}/{reason}: {err}");
    assert!(
        err.to_string().contains(&format!("[{reason}]")),
        "{verifier}/{reason}: the message does not name the reason: {err}"
    );
    let after = tokens_rejected(verifier, reason);
    assert!(
        after > before,
        "{verifier}/{reason} not counted ({before} -> {after})"
    );
}

/// A packet for `plugin` with `token` on `data.<plugin>`, stamped `ts_ms`.
async fn packet(
    client: &Client,
    app: &ClientAppCredentials,
    plugin: &str,
    token: &str,
    ts_ms: u64,
) -> Result<(), Error> {
    let call = DataCall::new(plugin, token, "now", "192.0.2.10", "device-42");
    let p = build_packet(app, &call, ts_ms, &new_nonce());
    client.send_packet(plugin, &p).await.map(drop)
}

// --- tests -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_server_refuses_forged_and_misused_tokens() {
    let stack = local().start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    stack.route("maps", &["ps2"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let client = stack.client().await;
    let key = stack.broker_key();
    let now = now_unix();
    let good = plugin_claims(&ann.account_id, "weather", &["ps1"], now, now + 300);
    let echo = |t: String| {
        let client = client.clone();
        async move { client.echo("ps1", &t, b"x".to_vec()).await }
    };
    const PS: &str = "plugin_server";
    const UNAUTH: ErrorCode = ErrorCode::Unauthenticated;

    refused(PS, "malformed", UNAUTH, echo("not-a-jwt".into())).await;
    refused(PS, "alg", UNAUTH, echo(alg_none(key, &good))).await;
    refused(PS, "alg", UNAUTH, echo(hs256_with_public_key(key, &good))).await;
    let stranger = SigningKey::generate();
    refused(PS, "kid", UNAUTH, echo(stranger.sign(&good).unwrap())).await;
    refused(
        PS,
        "signature",
        UNAUTH,
        echo(signed_by_other(&stranger, key, &good)),
    )
    .await;
    let wrong_iss = with(&good, json!({"iss": "someone-else"}));
    refused(PS, "issuer", UNAUTH, echo(key.sign(&wrong_iss).unwrap())).await;
    let expired = plugin_claims(&ann.account_id, "weather", &["ps1"], now - 600, now - 60);
    refused(PS, "expired", UNAUTH, echo(key.sign(&expired).unwrap())).await;
    let nbf = with(&good, json!({"nbf": now + 60}));
    refused(PS, "not_yet_valid", UNAUTH, echo(key.sign(&nbf).unwrap())).await;
    let iat = with(&good, json!({"iat": now + 60}));
    refused(PS, "not_yet_valid", UNAUTH, echo(key.sign(&iat).unwrap())).await;
    // A real token for another plugin, distributed to another plugin server only.
    let maps = client
        .request_token(&ann.account_token, "maps", None)
        .await
        .unwrap();
    refused(PS, "server", UNAUTH, echo(maps.token.clone())).await;
    // Well signed, unexpired, but never issued (no broker record): what a stolen key
    // would produce; introspection says it is not live.
    refused(PS, "revoked", UNAUTH, echo(key.sign(&good).unwrap())).await;

    // Revoked: served, revoked, then refused; and refused by a replica that starts after
    // the revocation (it replays "issued, then revoked" from the stream).
    let t = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    client.echo("ps1", &t.token, b"x".to_vec()).await.unwrap();
    stack.admin().await.revoke_token(&t.token_id).await.unwrap();
    assert_eventually!(!ps1.tokens().contains(&t.token_id), "revocation applied");
    refused(PS, "revoked", UNAUTH, echo(t.token.clone())).await;
    let late = stack.plugin_server("ps1").await;
    assert!(late.tokens().is_revoked(&t.token_id));
    for _ in 0..4 {
        // Either replica may answer: both refuse.
        refused(PS, "revoked", UNAUTH, echo(t.token.clone())).await;
    }
    // The control: a live token is served.
    let live = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    client
        .echo("ps1", &live.token, b"x".to_vec())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_refuses_forged_misused_and_revoked_tokens() {
    let skew = Duration::from_secs(30);
    let stack = local().gateways(1).data_skew(skew).start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    stack.route("maps", &["ps1"]).await;
    let _ps1 = stack.plugin_server("ps1").await;
    let admin = stack.admin().await;
    let app = admin.add_client_app("demo-app").await.unwrap();
    admin
        .set_data_route("weather", "now", "ps1", "echo")
        .await
        .unwrap();
    let client = stack.client().await;
    let key = stack.broker_key();
    let now = now_unix();
    let good = plugin_claims(&ann.account_id, "weather", &["ps1"], now, now + 300);
    let send = |t: String, ts: u64| {
        let (client, app) = (client.clone(), app.clone());
        async move { packet(&client, &app, "weather", &t, ts).await }
    };
    const GW: &str = "gateway";
    const UNAUTH: ErrorCode = ErrorCode::Unauthenticated;

    refused(GW, "alg", UNAUTH, send(alg_none(key, &good), now_ms())).await;
    refused(
        GW,
        "alg",
        UNAUTH,
        send(hs256_with_public_key(key, &good), now_ms()),
    )
    .await;
    let stranger = SigningKey::generate();
    refused(
        GW,
        "kid",
        UNAUTH,
        send(stranger.sign(&good).unwrap(), now_ms()),
    )
    .await;
    refused(
        GW,
        "signature",
        UNAUTH,
        send(signed_by_other(&stranger, key, &good), now_ms()),
    )
    .await;
    let expired = plugin_claims(&ann.account_id, "weather", &["ps1"], now - 600, now - 60);
    refused(
        GW,
        "expired",
        UNAUTH,
        send(key.sign(&expired).unwrap(), now_ms()),
    )
    .await;
    let nbf = with(&good, json!({"nbf": now + 60}));
    refused(
        GW,
        "not_yet_valid",
        UNAUTH,
        send(key.sign(&nbf).unwrap(), now_ms()),
    )
    .await;
    // Signed and timely, but never issued: no broker record.
    refused(
        GW,
        "revoked",
        UNAUTH,
        send(key.sign(&good).unwrap(), now_ms()),
    )
    .await;
    // A real token for another plugin, in a packet for `weather`: the documented 403.
    let maps = client
        .request_token(&ann.account_token, "maps", None)
        .await
        .unwrap();
    refused(
        GW,
        "plugin",
        ErrorCode::WrongPlugin,
        send(maps.token, now_ms()),
    )
    .await;

    // Revoked, and replayed (a new packet, new nonce) after the revocation.
    let t = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    send(t.token.clone(), now_ms()).await.unwrap();
    admin.revoke_token(&t.token_id).await.unwrap();
    refused(GW, "revoked", UNAUTH, send(t.token.clone(), now_ms())).await;
    refused(GW, "revoked", UNAUTH, send(t.token.clone(), now_ms())).await;

    // The packet's own clock check (a separate setting, `TESSERA_DATA_SKEW`): within the
    // skew either way accepted, beyond it `stale_timestamp`.
    let live = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    let half = skew.as_millis() as u64 / 2;
    send(live.token.clone(), now_ms() - half).await.unwrap();
    send(live.token.clone(), now_ms() + half).await.unwrap();
    for ts in [now_ms() - 2 * half - 5_000, now_ms() + 2 * half + 5_000] {
        let err = send(live.token.clone(), ts).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::StaleTimestamp, "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_refuses_forged_and_misused_account_tokens() {
    let stack = local().start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let client = stack.client().await;
    let key = stack.auth_key();
    let now = now_unix();
    let good = account_claims(&ann.account_id, now, now + 600);
    let ask = |t: String| {
        let client = client.clone();
        async move { client.request_token(&t, "weather", None).await }
    };
    const AUTH: &str = "auth";
    const UNAUTH: ErrorCode = ErrorCode::Unauthenticated;

    refused(AUTH, "malformed", UNAUTH, ask("a.b".into())).await;
    refused(AUTH, "alg", UNAUTH, ask(alg_none(key, &good))).await;
    refused(AUTH, "alg", UNAUTH, ask(hs256_with_public_key(key, &good))).await;
    // Our issuer, a key we do not hold (an account key rotated out, or a forger's).
    let stranger = SigningKey::generate();
    refused(AUTH, "kid", UNAUTH, ask(stranger.sign(&good).unwrap())).await;
    refused(
        AUTH,
        "signature",
        UNAUTH,
        ask(signed_by_other(&stranger, key, &good)),
    )
    .await;
    // An issuer nobody configured.
    let foreign = with(&good, json!({"iss": "https://idp.invalid"}));
    refused(
        AUTH,
        "issuer",
        UNAUTH,
        ask(stranger.sign(&foreign).unwrap()),
    )
    .await;
    let aud = with(&good, json!({"aud": "someone-else"}));
    refused(AUTH, "audience", UNAUTH, ask(key.sign(&aud).unwrap())).await;
    let expired = account_claims(&ann.account_id, now - 3600, now - 60);
    refused(AUTH, "expired", UNAUTH, ask(key.sign(&expired).unwrap())).await;
    let nbf = with(&good, json!({"nbf": now + 60}));
    refused(AUTH, "not_yet_valid", UNAUTH, ask(key.sign(&nbf).unwrap())).await;
    // The control: the same key and claims are accepted.
    let t = ask(key.sign(&good).unwrap()).await.unwrap();
    assert_eq!(t.account_id, ann.account_id);
}

/// Times within the leeway are accepted, beyond it refused, at every verifier. Leeway 8 s,
/// plugin tokens live 2 s: a token is used 2 s after its `exp`, then 9 s after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_within_the_leeway_is_accepted_and_beyond_it_refused() {
    let leeway = Duration::from_secs(8);
    let stack = local()
        .gateways(1)
        .clock_leeway(leeway)
        .token_ttl(Duration::from_secs(2))
        .start()
        .await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let _ps1 = stack.plugin_server("ps1").await;
    let admin = stack.admin().await;
    let app = admin.add_client_app("demo-app").await.unwrap();
    admin
        .set_data_route("weather", "now", "ps1", "echo")
        .await
        .unwrap();
    let client = stack.client().await;
    let now = now_unix();
    let l = leeway.as_secs();

    // Account tokens: `iat` and `nbf` ahead of the auth worker's clock.
    let auth = stack.auth_key();
    for extra in [json!({"iat": now + l / 2}), json!({"nbf": now + l / 2})] {
        let c = with(
            &account_claims(&ann.account_id, now, now + 600),
            extra.clone(),
        );
        let t = auth.sign(&c).unwrap();
        client
            .request_token(&t, "weather", None)
            .await
            .unwrap_or_else(|e| panic!("{extra} within the leeway refused: {e}"));
    }
    for extra in [json!({"iat": now + 60}), json!({"nbf": now + 60})] {
        let c = with(&account_claims(&ann.account_id, now, now + 600), extra);
        let t = auth.sign(&c).unwrap();
        refused("auth", "not_yet_valid", ErrorCode::Unauthenticated, async {
            client.request_token(&t, "weather", None).await
        })
        .await;
    }

    // Plugin tokens with `nbf` ahead, distributed to ps1 as the broker would.
    let key = stack.broker_key();
    let ahead = with(
        &plugin_claims(&ann.account_id, "weather", &["ps1"], now, now + 600),
        json!({"nbf": now + l / 2}),
    );
    let ahead = key.sign(&ahead).unwrap();
    distribute(&stack, "ps1", &ahead).await;
    let far = with(
        &plugin_claims(&ann.account_id, "weather", &["ps1"], now, now + 600),
        json!({"nbf": now + 60}),
    );
    let far = key.sign(&far).unwrap();
    distribute(&stack, "ps1", &far).await;
    assert_eventually!(client.echo("ps1", &ahead, b"x".to_vec()).await.is_ok());
    refused(
        "plugin_server",
        "not_yet_valid",
        ErrorCode::Unauthenticated,
        async { client.echo("ps1", &far, b"x".to_vec()).await },
    )
    .await;

    // A real token past its `exp`, within the leeway: still served, by the plugin server
    // and through the gateway (whose revocation check, the broker's record, lives `exp +
    // leeway` too).
    let t = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    assert_eventually!(
        timeout = Duration::from_secs(10),
        now_unix() >= t.expires_at + 2,
        "2 s past the token's exp"
    );
    client.echo("ps1", &t.token, b"x".to_vec()).await.unwrap();
    packet(&client, &app, "weather", &t.token, now_ms())
        .await
        .unwrap();
    // Beyond the leeway: refused everywhere.
    assert_eventually!(
        timeout = Duration::from_secs(15),
        now_unix() > t.expires_at + l,
        "past exp + leeway"
    );
    refused(
        "plugin_server",
        "expired",
        ErrorCode::Unauthenticated,
        async { client.echo("ps1", &t.token, b"x".to_vec()).await },
    )
    .await;
    refused("gateway", "expired", ErrorCode::Unauthenticated, async {
        packet(&client, &app, "weather", &t.token, now_ms()).await
    })
    .await;
}
