//! Forged and misused tokens for the attack tests: unsigned (`alg: none`), HMAC-signed with
//! the public key, signed by another key under a trusted `kid`, and the claims they carry.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::AlgorithmParameters;
use serde::Serialize;
use serde_json::json;
use tessera_protocol::signing::SigningKey;
use tessera_schemas::claims::{PLUGIN_TOKEN_ISSUER, PluginClaims};

pub(super) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS with any header, signed by `sign` over `header.payload`.
pub(super) fn jws(
    header: serde_json::Value,
    claims: &impl Serialize,
    sign: impl Fn(&[u8]) -> Vec<u8>,
) -> String {
    let input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(&header).unwrap()),
        b64(&serde_json::to_vec(claims).unwrap())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// `alg: none`, no signature, naming the real key.
pub(super) fn alg_none(key: &SigningKey, claims: &impl Serialize) -> String {
    jws(
        json!({"alg": "none", "typ": "JWT", "kid": key.kid()}),
        claims,
        |_| Vec::new(),
    )
}

/// The algorithm-confusion attack: HS256 with the verifier's *public* key as the secret.
pub(super) fn hs256_with_public_key(key: &SigningKey, claims: &impl Serialize) -> String {
    let AlgorithmParameters::OctetKeyPair(p) = key.public_jwk().algorithm else {
        unreachable!("our keys are Ed25519")
    };
    let secret = URL_SAFE_NO_PAD.decode(p.x).unwrap();
    jws(
        json!({"alg": "HS256", "typ": "JWT", "kid": key.kid()}),
        claims,
        |input| {
            let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
            aws_lc_rs::hmac::sign(&k, input).as_ref().to_vec()
        },
    )
}

/// EdDSA by `signer`, but naming `named`'s `kid` (a signature that cannot verify).
pub(super) fn signed_by_other(
    signer: &SigningKey,
    named: &SigningKey,
    claims: &impl Serialize,
) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    h.kid = Some(named.kid().to_owned());
    let key = jsonwebtoken::EncodingKey::from_ed_pem(signer.to_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(&h, claims, &key).unwrap()
}

pub(super) fn plugin_claims(
    account: &str,
    plugin: &str,
    servers: &[&str],
    iat: u64,
    exp: u64,
) -> PluginClaims {
    PluginClaims {
        iss: PLUGIN_TOKEN_ISSUER.into(),
        sub: account.into(),
        plugin_id: plugin.into(),
        aud: servers.iter().map(|s| (*s).to_owned()).collect(),
        jti: uuid::Uuid::new_v4().to_string(),
        iat,
        exp,
        device_id: None,
        user_ip: None,
    }
}

/// Claims as JSON, with `extra` members added (e.g. `nbf`) or replaced (e.g. `iss`).
pub(super) fn with(claims: &impl Serialize, extra: serde_json::Value) -> serde_json::Value {
    let mut v = serde_json::to_value(claims).unwrap();
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

pub(super) fn account_claims(account: &str, iat: u64, exp: u64) -> serde_json::Value {
    json!({"iss": tessera_auth::config::DEFAULT_ISSUER, "sub": account, "aud": "tessera",
           "jti": uuid::Uuid::new_v4().to_string(), "iat": iat, "exp": exp})
}
