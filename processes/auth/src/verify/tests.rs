//! External issuers with keys by URL, against a real HTTP origin on 127.0.0.1.

use std::sync::Arc;

use jsonwebtoken::Algorithm;
use serde_json::json;
use tessera_protocol::signing::SigningKey;
use tessera_schemas::ErrorCode;

use super::Verifier;
use crate::config::{AuthConfig, ExternalIssuer};
use crate::http::test_origin::Origin;

const ISSUER: &str = "https://sso.corp.test";

fn jwks(keys: &[&SigningKey]) -> String {
    let keys: Vec<_> = keys.iter().map(|k| k.public_jwk()).collect();
    Origin::ok(&json!({ "keys": keys }).to_string(), "max-age=300")
}

fn verifier(issuer: ExternalIssuer) -> Verifier {
    let mut config = AuthConfig::new(
        "nats://unused".into(),
        Default::default(),
        Arc::new(SigningKey::generate()),
    );
    config.external_issuers = vec![issuer];
    Verifier::new(&config).expect("a valid issuer")
}

fn by_jwks_url(origin: &Origin) -> ExternalIssuer {
    ExternalIssuer {
        name: "corp".into(),
        issuer: ISSUER.into(),
        algorithms: vec![Algorithm::EdDSA],
        // An IP literal: reached because the URL names exactly it.
        jwks_url: Some(origin.url("/keys")),
        ..ExternalIssuer::default()
    }
}

fn token(key: &SigningKey, sub: &str) -> String {
    let now = tessera_protocol::now_unix();
    key.sign(&json!({"iss": ISSUER, "sub": sub, "iat": now, "exp": now + 600}))
        .unwrap()
}

#[test]
fn keys_by_url_are_fetched_once_and_a_rotation_is_picked_up() {
    let (old, new) = (SigningKey::generate(), SigningKey::generate());
    let origin = Origin::start(&jwks(&[&old]));
    let v = verifier(by_jwks_url(&origin));
    assert_eq!(v.verify(&token(&old, "u1")).unwrap().account_id, "corp:u1");
    assert_eq!(v.verify(&token(&old, "u2")).unwrap().account_id, "corp:u2");
    assert_eq!(origin.hits(), 1, "fresh keys are fetched once");
    // The issuer rotates: the first token with the new kid refetches.
    origin.set(&jwks(&[&new]));
    assert_eq!(v.verify(&token(&new, "u3")).unwrap().account_id, "corp:u3");
    assert_eq!(origin.hits(), 2);
}

#[test]
fn made_up_kids_cannot_make_the_node_hammer_the_issuer() {
    let key = SigningKey::generate();
    let origin = Origin::start(&jwks(&[&key]));
    let v = verifier(by_jwks_url(&origin));
    v.verify(&token(&key, "u1")).unwrap();
    for _ in 0..20 {
        let stranger = SigningKey::generate();
        let err = v.verify(&token(&stranger, "x")).unwrap_err();
        assert_eq!(err.code, ErrorCode::Unauthenticated, "{err:?}");
    }
    // One refetch for the first unknown kid, then none within the interval.
    assert_eq!(origin.hits(), 2);
}

#[test]
fn an_unreachable_issuer_is_served_from_the_cache_then_unavailable() {
    let key = SigningKey::generate();
    let origin = Origin::start(&Origin::ok(
        &json!({ "keys": [key.public_jwk()] }).to_string(),
        "no-cache",
    ));
    let v = verifier(by_jwks_url(&origin));
    v.verify(&token(&key, "u1")).unwrap();
    origin.set("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    // no-cache: the keys are asked for again, the issuer fails, the stored keys serve.
    assert_eq!(v.verify(&token(&key, "u2")).unwrap().account_id, "corp:u2");
    assert_eq!(origin.hits(), 2);

    // An issuer never reached: the token is not refused, the answer is retryable.
    let down = Origin::start("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    let v = verifier(by_jwks_url(&down));
    let err = v.verify(&token(&key, "u1")).unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err:?}");
}

#[test]
fn discovery_finds_the_keys_and_checks_the_issuer() {
    let key = SigningKey::generate();
    let keys = Origin::start(&jwks(&[&key]));
    let doc = |issuer: &str| {
        let body = json!({"issuer": issuer, "jwks_uri": keys.url("/keys")}).to_string();
        Origin::ok(&body, "max-age=300")
    };
    let discovery = Origin::start("");
    let issuer = discovery.url("");
    discovery.set(&doc(&issuer));
    let cfg = ExternalIssuer {
        name: "corp".into(),
        issuer: issuer.clone(),
        algorithms: vec![Algorithm::EdDSA],
        discovery: true,
        ..ExternalIssuer::default()
    };
    let now = tessera_protocol::now_unix();
    let t = key
        .sign(&json!({"iss": issuer, "sub": "u1", "iat": now, "exp": now + 600}))
        .unwrap();
    assert_eq!(
        verifier(cfg.clone()).verify(&t).unwrap().account_id,
        "corp:u1"
    );

    // A discovery document naming another issuer is not this issuer's.
    discovery.set(&doc("https://elsewhere.test"));
    let err = verifier(cfg).verify(&t).unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err:?}");
}

#[test]
fn keys_by_url_on_a_private_address_need_the_operators_consent() {
    let key = SigningKey::generate();
    let origin = Origin::start(&jwks(&[&key]));
    let mut cfg = by_jwks_url(&origin);
    cfg.jwks_url = Some(format!("http://localhost:{}/keys", origin.port));
    cfg.allow_private_addresses = false;
    let err = verifier(cfg).verify(&token(&key, "u1")).unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err:?}");
    assert_eq!(origin.hits(), 0);
}

#[test]
fn keys_by_url_and_from_files_do_not_mix() {
    let mut cfg = by_jwks_url(&Origin::start(""));
    cfg.public_key_file = Some("key.pem".into());
    let mut config = AuthConfig::new(
        "nats://unused".into(),
        Default::default(),
        Arc::new(SigningKey::generate()),
    );
    config.external_issuers = vec![cfg];
    assert!(Verifier::new(&config).is_err());
}
