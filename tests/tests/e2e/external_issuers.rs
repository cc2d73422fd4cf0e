//! External issuers whose keys the auth node fetches by URL (OpenID Connect discovery, then
//! the JWKS), through the whole stack: a client's token request, the broker, `auth.verify`,
//! the provider over real TCP. Rotation at the provider and an outage of the provider.

use jsonwebtoken::Algorithm;
use serde_json::json;
use tessera_auth::ExternalIssuer;
use tessera_devstack::idp::StubIdp;
use tessera_protocol::now_unix;
use tessera_schemas::ErrorCode;
use tessera_tests::Stack;

const DISCOVERY: &str = "/.well-known/openid-configuration";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_found_by_discovery_is_trusted_through_rotation_and_outage() {
    let idp = StubIdp::start("tessera", "unused").await.unwrap();
    // Fresh for no time: every first verification asks the provider again, so the outage
    // below is met by a fetch that fails, not by a copy that is still fresh.
    idp.set_max_age(0);
    let stack = Stack::builder()
        .external_issuer(ExternalIssuer {
            name: "corp".into(),
            issuer: idp.issuer(),
            algorithms: vec![Algorithm::RS256],
            audience: Some("tessera".into()),
            discovery: true,
            ..ExternalIssuer::default()
        })
        .start()
        .await;
    stack.route("weather", &["ps1"]).await;
    let _ps1 = stack.plugin_server("ps1").await;
    let client = stack.client().await;
    let token_of = |sub: &str| {
        let now = now_unix();
        idp.sign(&json!({"iss": idp.issuer(), "aud": "tessera", "sub": sub, "iat": now, "exp": now + 600}))
    };

    let first = client
        .request_token(&token_of("u1"), "weather", None)
        .await
        .expect("a token for the provider's account");
    assert_eq!(first.account_id, "corp:u1");
    assert_eq!((idp.hits(DISCOVERY), idp.hits("/jwks")), (1, 1));

    // The provider rotates its key: the next token is signed by a key the node never saw.
    idp.rotate_keys();
    let rotated = client
        .request_token(&token_of("u2"), "weather", None)
        .await
        .expect("the rotated key is picked up");
    assert_eq!(rotated.account_id, "corp:u2");

    // The provider goes down: the keys last fetched keep serving.
    idp.set_unavailable(true);
    let jwks_before = idp.hits("/jwks");
    let during = client
        .request_token(&token_of("u3"), "weather", None)
        .await
        .expect("served from the cached keys while the provider is down");
    assert_eq!(during.account_id, "corp:u3");
    assert!(
        idp.hits("/jwks") > jwks_before,
        "the node asked the provider, and rode out its failure"
    );

    // Back up: a token signed by a key the provider never published is refused.
    idp.set_unavailable(false);
    let stranger = StubIdp::start("tessera", "unused").await.unwrap();
    let now = now_unix();
    let forged = stranger.sign(
        &json!({"iss": idp.issuer(), "aud": "tessera", "sub": "u4", "iat": now, "exp": now + 600}),
    );
    let err = client
        .request_token(&forged, "weather", None)
        .await
        .unwrap_err();
    assert_eq!(
        err.wire().map(|w| w.code),
        Some(ErrorCode::Unauthenticated),
        "{err}"
    );
}
