//! Signature checks with tokens signed here (ES256, EdDSA: deterministic signatures from
//! fixed keys) and one RS256 token signed outside Rust (a fixed test vector).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{JwtError, verify};

/// An RS256 token, `{"alg":"RS256","kid":"rsa-1","typ":"JWT"}` over
/// `{"iss":"https://idp.example","sub":"user-1"}`, signed by a 2048-bit key whose modulus is
/// [`RSA_N`] (e = 65537).
const RSA_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYS0xIiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIiwic3ViIjoidXNlci0xIn0.YuSccNOFbj79U5UcJa5a0IRtQJSSXfzumQNuhYYYvOpIT7qWA6W-ZIFW555YNwvKErs6tIDKs_sIUhdGITj6daw3yc6P8LTTO9twU1ikc2-pnhSZRkEPwO-pqt3WsPI__hRBZG_nwKV6nt9azqNSORulxzsUdbkAp-EAIIFHNxipFzVAV1K5EJ52wGrYkIL_iA5GnXnCo6Epz-KNBHCq-eCKDpUqVC7CKNY119inpdmK-lFSZ5RCwPNccggfYcWznkdRDL68-v5n-KWLD5NuppcEaiHYHnaiz2o2d52Vg_EMR2CtDcma3ohaF_jtkWoHRsKYNEBCAYRFv0mzjq_J9g";
const RSA_N: &str = "mzQRUZjg86VLaKaZ4UIBBReN0KOhtitxGQdj0XtTkvfPLqVzl9bpjCIJ7KFalUtx8XQXBm0q9Exhiui_ec-RPSi4PoT_xF8XFTiBj-nCh4RsiAEn-sFn2tDWtVW2FVSrht8kfd01AEc0BaqMFXXlqJbpCBAzXpT3Bpj5dtWzpAHwBafeMFdLaHkbp1ioHVyjmWVYlyu6C9h1RP4vQ5K6MZ7uXtGtbR8YIFSwZWOSm0CAd18UB0DouD44V8Wfpjs_RczCGFrizT8pI0SsFXAtyNNjnoXkLti3EF-zFAkSW9ybHHmW-FGD1ieKAHw34IEf7cuF49DPN50hefM528mYDw";

fn rsa_jwk(kid: &str) -> Value {
    json!({"kty": "RSA", "kid": kid, "n": RSA_N, "e": "AQAB", "use": "sig"})
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn es256_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap()
}

fn es256_jwk(kid: &str) -> Value {
    let point = es256_key().verifying_key().to_sec1_point(false);
    let bytes = point.as_bytes();
    json!({"kty": "EC", "crv": "P-256", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&bytes[1..33]), "y": URL_SAFE_NO_PAD.encode(&bytes[33..])})
}

fn es256_token(header: Value, claims: &Value) -> String {
    use p256::ecdsa::signature::Signer as _;
    let input = format!("{}.{}", b64(&header), b64(claims));
    let sig: p256::ecdsa::Signature = es256_key().sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

fn ed_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[9u8; 32])
}

fn ed_jwk(kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(ed_key().verifying_key().as_bytes())})
}

fn ed_token(kid: &str, claims: &Value) -> String {
    use ed25519_dalek::Signer as _;
    let input = format!(
        "{}.{}",
        b64(&json!({"alg": "EdDSA", "kid": kid})),
        b64(claims)
    );
    let sig = ed_key().sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

#[test]
fn rs256_es256_and_eddsa_verify_with_their_keys() {
    let jwks = json!({"keys": [rsa_jwk("rsa-1"), es256_jwk("ec-1"), ed_jwk("ed-1")]});
    let claims = verify(RSA_TOKEN, &jwks).unwrap();
    assert_eq!(claims["sub"], "user-1");

    let body = json!({"sub": "s", "n": 1});
    let es = es256_token(json!({"alg": "ES256", "kid": "ec-1"}), &body);
    assert_eq!(verify(&es, &jwks).unwrap(), body);
    let ed = ed_token("ed-1", &body);
    assert_eq!(verify(&ed, &jwks).unwrap(), body);
}

#[test]
fn a_changed_payload_or_signature_fails() {
    let jwks = json!({"keys": [rsa_jwk("rsa-1"), es256_jwk("ec-1"), ed_jwk("ed-1")]});
    let mut parts: Vec<String> = RSA_TOKEN.split('.').map(str::to_owned).collect();
    parts[1] = b64(&json!({"iss": "https://idp.example", "sub": "admin"}));
    assert!(matches!(
        verify(&parts.join("."), &jwks),
        Err(JwtError::BadSignature(_))
    ));
    let ed = ed_token("ed-1", &json!({"sub": "s"}));
    let (input, sig) = ed.rsplit_once('.').unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    raw[0] ^= 1;
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(raw));
    assert!(matches!(
        verify(&forged, &jwks),
        Err(JwtError::BadSignature(_))
    ));
}

#[test]
fn an_unknown_kid_or_a_key_of_another_type_is_an_unknown_key() {
    // The token's kid is not in the set (the provider rotated): the caller may refetch.
    let jwks = json!({"keys": [rsa_jwk("rsa-2")]});
    assert!(matches!(
        verify(RSA_TOKEN, &jwks),
        Err(JwtError::UnknownKey(_))
    ));
    // The kid names a key of another type: never used for this algorithm.
    let ec_named_rsa = json!({"keys": [{"kid": "rsa-1", "kty": "EC", "crv": "P-256",
        "x": "AA", "y": "AA"}]});
    assert!(matches!(
        verify(RSA_TOKEN, &ec_named_rsa),
        Err(JwtError::UnknownKey(_))
    ));
    // A key that says it is for another algorithm, or for encryption, does not fit either.
    let mut other_alg = rsa_jwk("rsa-1");
    other_alg["alg"] = json!("RS512");
    assert!(matches!(
        verify(RSA_TOKEN, &json!({"keys": [other_alg]})),
        Err(JwtError::UnknownKey(_))
    ));
    let mut enc = rsa_jwk("rsa-1");
    enc["use"] = json!("enc");
    assert!(matches!(
        verify(RSA_TOKEN, &json!({"keys": [enc]})),
        Err(JwtError::UnknownKey(_))
    ));
    // No kid: the only fitting key is used; with two, none is guessed.
    let body = json!({"sub": "s"});
    let no_kid = es256_token(json!({"alg": "ES256"}), &body);
    let one = json!({"keys": [rsa_jwk("rsa-1"), es256_jwk("ec-1")]});
    assert_eq!(verify(&no_kid, &one).unwrap(), body);
    let two = json!({"keys": [es256_jwk("ec-1"), es256_jwk("ec-2")]});
    assert!(matches!(
        verify(&no_kid, &two),
        Err(JwtError::UnknownKey(_))
    ));
}

#[test]
fn none_and_hmac_are_refused_whatever_the_keys() {
    let body = b64(&json!({"sub": "admin"}));
    let jwks = json!({"keys": [rsa_jwk("rsa-1"), {"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]});
    for alg in ["none", "HS256", "HS512", "PS256", "ES512"] {
        let token = format!("{}.{body}.", b64(&json!({"alg": alg, "kid": "rsa-1"})));
        assert!(
            matches!(verify(&token, &jwks), Err(JwtError::Algorithm(_))),
            "{alg}"
        );
    }
    let crit = es256_token(
        json!({"alg": "ES256", "kid": "ec-1", "crit": ["exp"]}),
        &json!({}),
    );
    assert!(matches!(
        verify(&crit, &json!({"keys": [es256_jwk("ec-1")]})),
        Err(JwtError::Malformed(_))
    ));
}

#[test]
fn malformed_tokens_are_typed_errors() {
    let jwks = json!({"keys": [rsa_jwk("rsa-1")]});
    for token in [
        "",
        "a.b",
        "a.b.c.d",
        "!!.e30.",
        "e30.!!.",
        "WzFd.e30.",
        "e30.e30.!",
    ] {
        assert!(
            matches!(verify(token, &jwks), Err(JwtError::Malformed(_))),
            "{token:?}"
        );
    }
    // A header without alg.
    assert!(matches!(
        verify("e30.e30.", &jwks),
        Err(JwtError::Malformed(_))
    ));
    // A set that is not a set: no key.
    assert!(matches!(
        verify(RSA_TOKEN, &json!({"keys": "nope"})),
        Err(JwtError::UnknownKey(_))
    ));
    // A key with broken components is a bad signature, not a panic.
    let broken = json!({"keys": [{"kty": "RSA", "kid": "rsa-1", "n": "AQ", "e": "AQAB"}]});
    assert!(matches!(
        verify(RSA_TOKEN, &broken),
        Err(JwtError::BadSignature(_))
    ));
}
