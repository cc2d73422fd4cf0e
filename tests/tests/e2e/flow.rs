//! The happy path of the token flow, end to end: through the SDK, through raw NATS and
//! MessagePack (the documented contract), with a stock JWT library, with idempotency keys and
//! with an external identity provider.

use std::collections::BTreeMap;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::json;
use tessera_auth::ExternalIssuer;
use tessera_protocol::now_unix;
use tessera_protocol::signing::SigningKey;
use tessera_schemas::ErrorCode;
use tessera_schemas::claims::PluginClaims;
use tessera_sdk::Error;
use tessera_tests::{Role, Stack, assert_eventually};

mod raw_wire;

use raw_wire::header;

const PASSWORD: &str = "correct horse battery";

fn code(e: &Error) -> Option<ErrorCode> {
    e.wire().map(|w| w.code)
}

/// The token flow through the SDK: user, login, route, two plugin servers, token, echo on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_flow_issues_distributes_and_serves_tokens() {
    let ttl = Duration::from_secs(120);
    let stack = Stack::builder().token_ttl(ttl).start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1", "ps2"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let ps2 = stack.plugin_server("ps2").await;
    let client = stack.client().await;

    let token = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .expect("token request");
    assert_eq!(token.servers, ["ps1", "ps2"]);
    assert_eq!(token.account_id, ann.account_id);
    assert_eq!(token.plugin_id, "weather");

    // The distribution reaches both servers (the echo below could otherwise be served through
    // the introspection fallback).
    assert_eventually!(ps1.tokens().contains(&token.token_id));
    assert_eventually!(ps2.tokens().contains(&token.token_id));

    for server in ["ps1", "ps2"] {
        let reply = client
            .echo(server, &token.token, b"hello".to_vec())
            .await
            .unwrap_or_else(|e| panic!("echo on {server}: {e}"));
        assert_eq!(reply.body, b"hello");
        assert_eq!(reply.account_id, ann.account_id);
        assert_eq!(reply.plugin_id, "weather");
        assert_eq!(reply.server_id, server);
    }

    // The claims bind the token to the account, the plugin and the servers.
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_audience(&["ps1"]);
    v.set_issuer(&["tessera-broker"]);
    let data =
        jsonwebtoken::decode::<PluginClaims>(&token.token, stack.broker_key().decoding_key(), &v)
            .expect("the plugin token verifies with the broker key");
    let c = data.claims;
    assert_eq!(data.header.kid.as_deref(), Some(stack.broker_key().kid()));
    assert_eq!(c.sub, ann.account_id);
    assert_eq!(c.plugin_id, "weather");
    assert_eq!(c.aud, ["ps1", "ps2"]);
    assert_eq!(c.jti, token.token_id);
    assert_eq!(c.exp - c.iat, ttl.as_secs());
    assert_eq!(c.exp, token.expires_at);

    // A server the plugin is not routed to does not serve the token.
    let ps3 = stack.plugin_server("ps3").await;
    let err = client
        .echo("ps3", &token.token, b"x".to_vec())
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(ErrorCode::Unauthenticated), "{err}");
    drop(ps3);
}

// --- the wire contract, with nothing but async-nats and rmp-serde ------------------------

/// A plugin server in any stack can verify plugin tokens with the JWKS on `tessera.keys`
/// and a stock JWT library.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_tokens_verify_with_the_published_jwks() {
    let stack = Stack::start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let client = stack.client().await;
    let token = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();

    let nats = stack.nats(Role::Client).await;
    let reply = nats
        .request(stack.subjects().keys(), "".into())
        .await
        .unwrap();
    assert_eq!(
        header(&reply, "Content-Type").as_deref(),
        Some("application/jwk-set+json")
    );
    let json: serde_json::Value = serde_json::from_slice(&reply.payload).expect("JSON");
    assert_eq!(json["keys"][0]["kty"], "OKP");
    assert_eq!(json["keys"][0]["crv"], "Ed25519");
    let set: JwkSet = serde_json::from_value(json).expect("an RFC 7517 JWK set");

    let kid = jsonwebtoken::decode_header(&token.token)
        .unwrap()
        .kid
        .expect("plugin tokens name their key");
    let jwk = set.find(&kid).expect("the signing key is published");
    let key = DecodingKey::from_jwk(jwk).unwrap();

    #[derive(Debug, Deserialize)]
    struct Claims {
        sub: String,
        plugin_id: String,
        jti: String,
    }
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_audience(&["ps1"]);
    v.set_issuer(&["tessera-broker"]);
    let claims = jsonwebtoken::decode::<Claims>(&token.token, &key, &v)
        .expect("verifies")
        .claims;
    assert_eq!(claims.sub, ann.account_id);
    assert_eq!(claims.plugin_id, "weather");
    assert_eq!(claims.jti, token.token_id);

    // The audience binds it: not valid at a server it was not distributed to.
    let mut other = Validation::new(Algorithm::EdDSA);
    other.set_audience(&["ps2"]);
    let err = jsonwebtoken::decode::<Claims>(&token.token, &key, &other).unwrap_err();
    assert_eq!(
        err.kind(),
        &jsonwebtoken::errors::ErrorKind::InvalidAudience
    );

    // The SDK sees the same set.
    let via_sdk = client.keys().await.unwrap();
    assert!(via_sdk.find(&kid).is_some());
}

/// Same key, same account, same plugin: the same token. Anything else: a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_returns_the_same_token_for_the_same_caller_only() {
    let stack = Stack::start().await;
    let ann = stack.user("ann", PASSWORD).await;
    let bob = stack.user("bob", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    stack.route("maps", &["ps1"]).await;
    let client = stack.client().await;

    let first = client
        .request_token(&ann.account_token, "weather", Some("k1"))
        .await
        .unwrap();
    let again = client
        .request_token(&ann.account_token, "weather", Some("k1"))
        .await
        .unwrap();
    assert_eq!(again.token_id, first.token_id);
    assert_eq!(again.token, first.token);

    let other_key = client
        .request_token(&ann.account_token, "weather", Some("k2"))
        .await
        .unwrap();
    assert_ne!(other_key.token_id, first.token_id);
    assert_ne!(other_key.token, first.token);

    let other_account = client
        .request_token(&bob.account_token, "weather", Some("k1"))
        .await
        .unwrap();
    assert_ne!(other_account.token_id, first.token_id);
    assert_eq!(other_account.account_id, bob.account_id);

    let other_plugin = client
        .request_token(&ann.account_token, "maps", Some("k1"))
        .await
        .unwrap();
    assert_ne!(other_plugin.token_id, first.token_id);
    assert_eq!(other_plugin.plugin_id, "maps");

    // A new login (another account token for the same account) keeps the key's token.
    let relogin = stack.client().await.login("ann", PASSWORD).await.unwrap();
    assert_ne!(relogin.account_token, ann.account_token);
    let same = client
        .request_token(&relogin.account_token, "weather", Some("k1"))
        .await
        .unwrap();
    assert_eq!(same.token_id, first.token_id);

    // Once that token is revoked, the key no longer hands it out: a retry gets a live one.
    let admin = stack.admin().await;
    assert_eq!(
        admin.revoke_token(&first.token_id).await.unwrap().revoked,
        1
    );
    let fresh = client
        .request_token(&ann.account_token, "weather", Some("k1"))
        .await
        .unwrap();
    assert_ne!(fresh.token_id, first.token_id);
    assert!(admin.introspect(&fresh.token).await.unwrap().active);
    let again = client
        .request_token(&ann.account_token, "weather", Some("k1"))
        .await
        .unwrap();
    assert_eq!(again.token_id, fresh.token_id);
}

/// Account tokens from a configured identity provider are accepted (account id
/// `<name>:<sub>`); an unconfigured issuer or an HMAC token is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_issuer_tokens_are_accepted_only_as_configured() {
    let idp = SigningKey::generate();
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("acme-jwks.json");
    std::fs::write(
        &jwks_file,
        serde_json::to_vec(&json!({ "keys": [idp.public_jwk()] })).unwrap(),
    )
    .unwrap();
    let stack = Stack::builder()
        .external_issuer(ExternalIssuer {
            name: "acme".into(),
            issuer: "https://idp.acme.test".into(),
            algorithms: vec![Algorithm::EdDSA],
            audience: None,
            jwks_file: Some(jwks_file),
            ..ExternalIssuer::default()
        })
        .start()
        .await;
    stack.route("weather", &["ps1"]).await;
    let _ps1 = stack.plugin_server("ps1").await;
    let client = stack.client().await;

    let now = now_unix();
    let claims = |iss: &str| json!({"iss": iss, "sub": "u1", "iat": now, "exp": now + 600});

    let acme = idp.sign(&claims("https://idp.acme.test")).unwrap();
    let token = client
        .request_token(&acme, "weather", None)
        .await
        .expect("a token for the external account");
    assert_eq!(token.account_id, "acme:u1");
    let echoed = client
        .echo("ps1", &token.token, b"hi".to_vec())
        .await
        .unwrap();
    assert_eq!(echoed.account_id, "acme:u1");
    // A plugin token never outlives the account token it came from.
    assert!(token.expires_at <= now + 600);

    let unknown_issuer = idp.sign(&claims("https://idp.evil.test")).unwrap();
    let err = client
        .request_token(&unknown_issuer, "weather", None)
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(ErrorCode::Unauthenticated), "{err}");

    let hmac = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("https://idp.acme.test"),
        &EncodingKey::from_secret(b"a shared secret nobody configured"),
    )
    .unwrap();
    let err = client
        .request_token(&hmac, "weather", None)
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(ErrorCode::Unauthenticated), "{err}");

    // Signed by another key under the right issuer and the IdP's kid: a forgery.
    let forger = SigningKey::generate();
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(idp.kid().to_owned());
    let forged = jsonwebtoken::encode(
        &h,
        &claims("https://idp.acme.test"),
        &EncodingKey::from_ed_pem(forger.to_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let err = client
        .request_token(&forged, "weather", None)
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(ErrorCode::Unauthenticated), "{err}");
}

/// Both workers are NATS micro services: discoverable with `$SRV.PING.<name>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_answer_micro_service_ping() {
    let stack = Stack::start().await;
    let admin = stack.nats(Role::Admin).await;
    for worker in ["broker", "auth"] {
        let name = stack.subjects().service_name(worker);
        let reply = admin
            .request(format!("$SRV.PING.{name}"), "".into())
            .await
            .unwrap_or_else(|e| panic!("no PING answer from {name}: {e}"));
        let ping: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(ping["type"], "io.nats.micro.v1.ping_response");
        assert_eq!(ping["name"], name.as_str());
        assert!(ping["id"].as_str().is_some_and(|id| !id.is_empty()));
    }
}
