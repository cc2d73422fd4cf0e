//! Every bad input and every failed dependency gets its typed error, promptly: a reply with
//! an [`ErrorCode`], never a timeout.

use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tessera_protocol::now_unix;
use tessera_protocol::rpc::{self, RpcError};
use tessera_protocol::signing::SigningKey;
use tessera_schemas::claims::AccountClaims;
use tessera_schemas::messages::TokenRequest;
use tessera_schemas::{ErrorCode, codec, headers};
use tessera_sdk::{Error, ErrorKind};
use tessera_tests::{Backend, Role, Stack, assert_eventually};

const PASSWORD: &str = "correct horse battery";
/// Shorter than any bound on the workers' side: an answer within it is an answer, not a
/// timeout dressed up as one.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The code of a typed reply; panics on anything else (a timeout, no responders).
fn rejected(e: Error) -> ErrorCode {
    match e.wire() {
        Some(w) => {
            assert_eq!(w.retryable, w.code.retryable(), "{w}");
            w.code
        }
        None => panic!("expected a typed error reply, got {e:?}"),
    }
}

/// Sends raw bytes with an optional schema header; returns the typed error of the reply.
async fn raw_error(
    nats: &async_nats::Client,
    subject: String,
    schema: Option<&str>,
    body: impl Into<Bytes>,
) -> ErrorCode {
    let mut h = HeaderMap::new();
    if let Some(s) = schema {
        h.insert(headers::SCHEMA, s);
    }
    match rpc::request_raw(nats, subject, h, body.into(), ANSWER_WITHIN).await {
        Err(RpcError::Wire(w)) => w.code,
        Err(other) => panic!("expected a typed error reply, got {other}"),
        Ok(msg) => panic!("expected an error, got a reply: {msg:?}"),
    }
}

fn encode(value: serde_json::Value) -> Vec<u8> {
    rmp_serde::to_vec_named(&value).unwrap()
}

/// The claims of an account token as our auth worker issues them.
fn account_claims(account_id: &str, iat: u64, exp: u64) -> AccountClaims {
    AccountClaims {
        iss: "tessera-auth".into(),
        sub: account_id.into(),
        aud: "tessera".into(),
        jti: uuid::Uuid::new_v4().to_string(),
        iat,
        exp,
        name: Some("ann".into()),
        idp: None,
        idp_sub: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_token_requests_get_typed_errors() {
    let stack = Stack::start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let nats = stack.nats(Role::Client).await;
    let subject = stack.subjects().token_request();
    let v1 = Some("token.request/1");

    // Not MessagePack at all (0xc1 is the one byte MessagePack never uses).
    let code = raw_error(&nats, subject.clone(), v1, vec![0xc1, 0x00, 0xff]).await;
    assert_eq!(code, ErrorCode::BadRequest);

    // A map without the required plugin_id.
    let body = encode(json!({"account_token": ann.account_token}));
    let code = raw_error(&nats, subject.clone(), v1, body).await;
    assert_eq!(code, ErrorCode::BadRequest);

    // A field of the wrong type.
    let body = encode(json!({"account_token": ann.account_token, "plugin_id": 7}));
    let code = raw_error(&nats, subject.clone(), v1, body).await;
    assert_eq!(code, ErrorCode::BadRequest);

    // Empty and invalid plugin ids (the SDK refuses them before sending; the broker too).
    for plugin_id in ["", "a.b", "w*"] {
        let body = codec::encode(&TokenRequest {
            account_token: ann.account_token.clone(),
            plugin_id: plugin_id.into(),
            idempotency_key: None,
            device_id: None,
            user_ip: None,
        });
        let code = raw_error(&nats, subject.clone(), v1, body).await;
        assert_eq!(code, ErrorCode::BadRequest, "plugin id {plugin_id:?}");
    }
    let client = stack.client().await;
    let err = client
        .request_token(&ann.account_token, "", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err:?}");

    // 100 KiB: under the server's 1 MiB max_payload, so it reaches the broker, which refuses
    // it before decoding.
    let big = codec::encode(&TokenRequest {
        account_token: "x".repeat(100 * 1024),
        plugin_id: "weather".into(),
        idempotency_key: None,
        device_id: None,
        user_ip: None,
    });
    assert!(big.len() > codec::MAX_MESSAGE_BYTES);
    let code = raw_error(&nats, subject.clone(), v1, big).await;
    assert_eq!(code, ErrorCode::PayloadTooLarge);

    // A version this broker does not speak, and another message's schema.
    let ok_body = codec::encode(&TokenRequest {
        account_token: ann.account_token.clone(),
        plugin_id: "weather".into(),
        idempotency_key: None,
        device_id: None,
        user_ip: None,
    });
    let code = raw_error(
        &nats,
        subject.clone(),
        Some("token.request/9"),
        ok_body.clone(),
    )
    .await;
    assert_eq!(code, ErrorCode::UnsupportedVersion);
    let code = raw_error(&nats, subject.clone(), Some("auth.login/1"), ok_body).await;
    assert_eq!(code, ErrorCode::BadRequest);

    // An empty or oversized idempotency key.
    for key in [String::new(), "k".repeat(129)] {
        let body = codec::encode(&TokenRequest {
            account_token: ann.account_token.clone(),
            plugin_id: "weather".into(),
            idempotency_key: Some(key),
            device_id: None,
            user_ip: None,
        });
        let code = raw_error(&nats, subject.clone(), v1, body).await;
        assert_eq!(code, ErrorCode::BadRequest);
    }

    // The same checks guard the auth worker's subjects.
    let code = raw_error(
        &nats,
        stack.subjects().auth_login(),
        Some("auth.login/1"),
        vec![0xc1],
    )
    .await;
    assert_eq!(code, ErrorCode::BadRequest);
    let code = raw_error(
        &nats,
        stack.subjects().auth_login(),
        Some("auth.login/2"),
        encode(json!({"username": "ann", "password": PASSWORD})),
    )
    .await;
    assert_eq!(code, ErrorCode::UnsupportedVersion);

    // After all that, a good request still works.
    let token = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    assert_eq!(token.plugin_id, "weather");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_unauthenticated() {
    let stack = Stack::start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let client = stack.client().await;
    let now = now_unix();

    // Garbage where a JWT should be.
    let err = client
        .request_token("not.a.jwt", "weather", None)
        .await
        .unwrap_err();
    assert_eq!(rejected(err), ErrorCode::Unauthenticated);

    // Our claims, signed by another key: with its own kid, and with the auth key's kid.
    let claims = account_claims(&ann.account_id, now, now + 600);
    let forger = SigningKey::generate();
    let forged = forger.sign(&claims).unwrap();
    let err = client
        .request_token(&forged, "weather", None)
        .await
        .unwrap_err();
    assert_eq!(rejected(err), ErrorCode::Unauthenticated);
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(stack.auth_key().kid().to_owned());
    let forged = jsonwebtoken::encode(
        &h,
        &claims,
        &EncodingKey::from_ed_pem(forger.to_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let err = client
        .request_token(&forged, "weather", None)
        .await
        .unwrap_err();
    assert_eq!(rejected(err), ErrorCode::Unauthenticated);

    // Signed by the real auth key, but expired a minute ago (beyond the 5 s leeway).
    let expired = stack
        .auth_key()
        .sign(&account_claims(&ann.account_id, now - 3600, now - 60))
        .unwrap();
    let err = client
        .request_token(&expired, "weather", None)
        .await
        .unwrap_err();
    assert_eq!(rejected(err), ErrorCode::Unauthenticated);
    // The control: the same key and claims, unexpired, are accepted.
    let fresh = stack.auth_key().sign(&claims).unwrap();
    let token = client.request_token(&fresh, "weather", None).await.unwrap();
    assert_eq!(token.account_id, ann.account_id);

    // Logins: wrong password and unknown user look the same.
    let err = client.login("ann", "wrong password!").await.unwrap_err();
    assert_eq!(rejected(err), ErrorCode::Unauthenticated);
    let err = client.login("nobody", PASSWORD).await.unwrap_err();
    assert_eq!(rejected(err), ErrorCode::Unauthenticated);

    // A forged plugin token is refused by the plugin server.
    let _ps1 = stack.plugin_server("ps1").await;
    let mut plugin_claims = jsonwebtoken::decode::<serde_json::Value>(
        &token.token,
        stack.broker_key().decoding_key(),
        &{
            let mut v = jsonwebtoken::Validation::new(Algorithm::EdDSA);
            v.validate_aud = false;
            v
        },
    )
    .unwrap()
    .claims;
    plugin_claims["jti"] = json!("forged");
    let forged_plugin_token = forger.sign(&plugin_claims).unwrap();
    let err = client
        .echo("ps1", &forged_plugin_token, b"x".to_vec())
        .await
        .unwrap_err();
    assert_eq!(rejected(err), ErrorCode::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_management_errors() {
    let stack = Stack::start().await;
    let admin = stack.admin().await;
    admin.add_user("ann", PASSWORD).await.unwrap();

    let err = admin.add_user("ann", "another password").await.unwrap_err();
    assert_eq!(rejected(err), ErrorCode::Conflict);

    let err = admin.add_user("bob", "short").await.unwrap_err();
    assert_eq!(rejected(err), ErrorCode::BadRequest);
    // Nothing was created for the refused request.
    admin.add_user("bob", PASSWORD).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_plugin_is_not_found() {
    let stack = Stack::start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let client = stack.client().await;
    let err = client
        .request_token(&ann.account_token, "radar", None)
        .await
        .unwrap_err();
    assert_eq!(rejected(err), ErrorCode::NotFound);

    // A deleted route is gone too.
    stack.admin().await.delete_route("weather").await.unwrap();
    assert_eventually!(matches!(
        client.request_token(&ann.account_token, "weather", None).await,
        Err(ref e) if e.wire().is_some_and(|w| w.code == ErrorCode::NotFound)
    ));
}

/// Redis down: `unavailable` (retryable) as a reply, not a timeout; back to normal once
/// Redis is back on the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_is_unavailable_and_recovers() {
    let mut stack = Stack::builder().backend(Backend::Local).start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let client = stack.client().await;
    client
        .request_token(&ann.account_token, "weather", None)
        .await
        .expect("works while Redis is up");

    let redis = stack.servers_mut().redis_mut().expect("local servers");
    redis.stop().await;

    let err = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(rejected(err), ErrorCode::Unavailable);

    // Revocation and introspection need Redis too.
    let admin = stack.admin().await;
    let err = admin.revoke_account(&ann.account_id).await.unwrap_err();
    assert_eq!(rejected(err), ErrorCode::Unavailable);

    let redis = stack.servers_mut().redis_mut().expect("local servers");
    redis.restart().await.expect("restarting redis");
    assert_eventually!(
        timeout = Duration::from_secs(15),
        client
            .request_token(&ann.account_token, "weather", None)
            .await
            .is_ok(),
        "token requests succeed again after Redis is back"
    );
}

/// The broker reuses an auth result it got moments ago for the same account token (one
/// auth round trip per account token per `TESSERA_AUTH_CACHE_TTL`, not per plugin token), and
/// only for that token: another account token still needs the auth worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_reuses_a_recent_auth_result_for_the_same_token_only() {
    let mut stack = Stack::start().await;
    let ann = stack.user("ann", PASSWORD).await;
    let bob = stack.user("bob", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let client = stack.client().await;
    client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();

    stack.stop_auth().await;
    let again = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .expect("ann's auth result is still fresh at the broker");
    assert_eq!(again.account_id, ann.account_id);
    let err = client
        .request_token(&bob.account_token, "weather", None)
        .await
        .unwrap_err();
    assert_eq!(rejected(err), ErrorCode::Unavailable);
}

/// The auth worker gone: the broker cannot get an auth result and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_worker_down_is_unavailable() {
    let mut stack = Stack::start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let client = stack.client().await;

    stack.stop_auth().await;
    let err = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap_err();
    assert_eq!(rejected(err), ErrorCode::Unavailable);

    // Back with a new replica (same key): the old account token works again.
    stack.start_auth().await;
    let token = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    assert_eq!(token.account_id, ann.account_id);
}
