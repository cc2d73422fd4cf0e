//! The checked-in vectors (conformance/ at the repository root) are what the generator
//! writes, and each one holds when checked with the production functions (the SDK, the
//! protocol and schema crates, the ledger), not with the generator's code.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera_ledger::keys::{RedisKeys, idempotency_binding, idempotency_input};
use tessera_protocol::data_sign;
use tessera_protocol::signing::token_hash;
use tessera_schemas::clients::{inbox_key_ok, join_password, split_password};
use tessera_schemas::data::{DataRequest, Verification, check_shape, check_verification};
use tessera_schemas::{WireError, codec};
use tessera_sdk::sealed::{PluginSecretKey, SealError, open_bytes};

use super::identities::{from_hex, signing_key};
use super::{REGENERATE, generate, hex, write};

fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../conformance")
}

fn load(name: &str) -> Value {
    let path = folder().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `{REGENERATE}`", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn cases(file: &Value) -> &Vec<Value> {
    file["cases"].as_array().expect("cases")
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
}

fn b64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url")
}

#[test]
fn the_checked_in_vectors_are_what_the_generator_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let names = write(dir.path()).expect("writing the vectors");
    assert_eq!(names.len(), generate().len());
    for name in &names {
        let fresh = std::fs::read(dir.path().join(name)).expect("just written");
        let checked_in = std::fs::read(folder().join(name)).unwrap_or_default();
        assert!(
            fresh == checked_in,
            "conformance/{name} is not what the generator writes: run `{REGENERATE}` \
             (cargo run -p tessera-devstack --bin tessera-dev -- conformance --out conformance) \
             and commit the result"
        );
    }
    // And nothing stale beside them.
    for entry in std::fs::read_dir(folder()).expect("conformance/") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("UTF-8 name");
        assert!(
            !name.ends_with(".json") || names.contains(&name.as_str()),
            "conformance/{name} is not written by the generator: remove it or run `{REGENERATE}`"
        );
    }
    // Generating twice gives the same bytes (no clock, no randomness).
    assert_eq!(generate(), generate());
}

fn packet_of(fields: &Value) -> DataRequest {
    let v = &fields["verification"];
    DataRequest {
        version: fields["version"].as_u64().expect("version") as u32,
        app_id: s(fields, "app_id").into(),
        plugin_token: s(fields, "plugin_token").into(),
        timestamp: fields["timestamp"].as_u64().expect("timestamp"),
        nonce: s(fields, "nonce").into(),
        operation: s(fields, "operation").into(),
        query: s(fields, "query").into(),
        body: from_hex(s(fields, "body_hex")),
        verification: Verification {
            plugin_id: s(v, "plugin_id").into(),
            user_ip: s(v, "user_ip").into(),
            device_id: s(v, "device_id").into(),
        },
        signature: s(fields, "signature").into(),
    }
}

/// The gateway's checks a client can reproduce, in the gateway's order: (check, code).
fn gateway_verdict(bytes: &[u8], secret: &[u8]) -> Option<(&'static str, String)> {
    let packet: DataRequest = match codec::decode(bytes) {
        Ok(p) => p,
        Err(e) => return Some(("decode", WireError::from(e).code.to_string())),
    };
    if let Err(e) = check_shape(&packet) {
        return Some(("shape", e.code.to_string()));
    }
    if !data_sign::verify(secret, &packet, &token_hash(&packet.plugin_token)) {
        return Some(("signature", "bad_signature".into()));
    }
    if let Err(e) = check_verification(&packet.verification) {
        return Some(("verification", e.code.to_string()));
    }
    None
}

#[test]
fn every_data_packet_vector_holds() {
    for case in cases(&load("data_packets.json")) {
        let name = s(case, "name");
        let secret = b64(s(case, "secret_b64url"));
        let expect = &case["expect"];
        match s(case, "kind") {
            "valid" => {
                let bytes = from_hex(s(expect, "packet_msgpack_hex"));
                let packet = packet_of(&case["fields"]);
                let input = tessera_schemas::data::payload_digest_input(&packet);
                assert_eq!(hex(&input), s(expect, "payload_digest_input_hex"), "{name}");
                assert_eq!(
                    data_sign::sha256_hex(&input),
                    s(expect, "payload_sha256_hex"),
                    "{name}"
                );
                assert_eq!(
                    token_hash(&packet.plugin_token),
                    s(expect, "token_sha256_hex"),
                    "{name}"
                );
                assert_eq!(
                    data_sign::canonical(&packet),
                    s(expect, "signing_string"),
                    "{name}"
                );
                assert_eq!(
                    data_sign::sign(&secret, &packet),
                    s(expect, "signature"),
                    "{name}"
                );
                assert_eq!(
                    hex(&b64(s(expect, "signature"))),
                    s(expect, "hmac_sha256_hex"),
                    "{name}"
                );
                assert_eq!(
                    hex(&codec::encode(&packet)),
                    s(expect, "packet_msgpack_hex"),
                    "{name}"
                );
                assert_eq!(gateway_verdict(&bytes, &secret), None, "{name}");
            }
            "refused" => {
                let bytes = from_hex(s(case, "packet_msgpack_hex"));
                if case.get("fields").is_some() {
                    let packet = packet_of(&case["fields"]);
                    assert_eq!(
                        codec::encode(&packet),
                        bytes,
                        "{name}: the fields encode as sent"
                    );
                }
                let verdict = gateway_verdict(&bytes, &secret).unwrap_or_else(|| {
                    panic!("{name}: the gateway's checks accept a packet the vector refuses")
                });
                assert_eq!(verdict.0, s(expect, "check"), "{name}");
                assert_eq!(verdict.1, s(expect, "code"), "{name}");
            }
            other => panic!("{name}: unknown kind {other:?}"),
        }
    }
}

#[test]
fn every_key_id_and_client_connection_vector_holds() {
    for case in cases(&load("jwk_thumbprints.json")) {
        let name = s(case, "name");
        let key = signing_key(&from_hex(s(case, "seed_hex")));
        let expect = &case["expect"];
        assert_eq!(key.kid(), s(expect, "kid"), "{name}");
        let jwk = serde_json::to_value(key.public_jwk()).expect("a JWK");
        assert_eq!(jwk["x"], case["x"], "{name}");
        // The thumbprint, recomputed from its definition (RFC 7638).
        let input = s(expect, "thumbprint_input");
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes());
        assert_eq!(URL_SAFE_NO_PAD.encode(digest), key.kid(), "{name}");
        let published =
            tessera_protocol::signing::PublishedKey::from_value(expect["published_jwk"].clone())
                .expect("a published key");
        assert_eq!(published.kid(), Some(key.kid()), "{name}");
        assert_eq!(
            serde_json::to_value(&published.jwk).expect("a JWK"),
            jwk,
            "{name}"
        );
    }
    // RFC 8037 appendix A.3 states this thumbprint.
    let rfc = load("jwk_thumbprints.json");
    assert_eq!(
        rfc["cases"][0]["expect"]["kid"],
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );

    for case in cases(&load("client_connections.json")) {
        let name = s(case, "name");
        let key = s(case, "inbox_key");
        let expect = &case["expect"];
        assert_eq!(
            inbox_key_ok(key),
            expect["key_accepted"].as_bool().expect("bool"),
            "{name}"
        );
        assert_eq!(
            tessera_protocol::bus::client_inbox(key),
            s(expect, "inbox_prefix"),
            "{name}"
        );
        let password = join_password(s(case, "client_password"), key);
        assert_eq!(password, s(expect, "connect_password"), "{name}");
        assert_eq!(
            split_password(&password),
            Some((s(case, "client_password"), key)),
            "{name}"
        );
    }
}

#[test]
fn every_idempotency_vector_holds() {
    let file = load("idempotency.json");
    let keys = RedisKeys::new(tessera_schemas::subjects::DEFAULT_PREFIX);
    let mut redis_keys = std::collections::BTreeMap::new();
    for case in cases(&file) {
        let name = s(case, "name");
        let (req, route, expect) = (&case["request"], &case["route"], &case["expect"]);
        let device = req["device_id"]
            .as_str()
            .filter(|_| route["bind_device"] == true);
        let ip = req["user_ip"]
            .as_str()
            .filter(|_| route["bind_ip"] == true)
            .map(|ip| {
                ip.parse::<std::net::IpAddr>()
                    .expect("an address")
                    .to_string()
            });
        let binding = idempotency_binding(device, ip.as_deref());
        assert_eq!(binding, s(expect, "binding"), "{name}");
        let (account, plugin, key) = (
            s(req, "account_id"),
            s(req, "plugin_id"),
            s(req, "idempotency_key"),
        );
        let input = idempotency_input(account, plugin, &binding, key);
        assert_eq!(input, s(expect, "hash_input"), "{name}");
        assert_eq!(hex(input.as_bytes()), s(expect, "hash_input_hex"), "{name}");
        assert_eq!(token_hash(&input), s(expect, "sha256_hex"), "{name}");
        let redis_key = keys.idempotency(account, plugin, &binding, key);
        assert_eq!(redis_key, s(expect, "redis_key"), "{name}");
        redis_keys.insert(name.to_owned(), redis_key);
    }
    for pair in file["same_request"].as_array().expect("same_request") {
        let (a, b) = (&redis_keys[s(pair, "a")], &redis_keys[s(pair, "b")]);
        assert_eq!(a == b, pair["same"] == true, "{pair}");
    }
}

#[test]
fn every_sealed_box_opens_or_is_refused_as_the_vector_says() {
    for case in cases(&load("sealed_boxes.json")) {
        let name = s(case, "name");
        let secret = PluginSecretKey::from_base64url(s(case, "private_key_b64url")).expect("a key");
        assert_eq!(
            secret.public_key().to_base64url(),
            s(case, "public_key_b64url"),
            "{name}"
        );
        let the_box = &case["box"];
        let bytes = b64(s(the_box, "msgpack_b64url"));
        let decoded: tessera_schemas::assets::SealedBox = codec::decode(&bytes).expect("a box");
        assert_eq!(decoded.suite, s(the_box, "suite"), "{name}");
        assert_eq!(decoded.enc, b64(s(the_box, "enc_b64url")), "{name}");
        assert_eq!(decoded.ct, b64(s(the_box, "ct_b64url")), "{name}");
        let opened = open_bytes(&secret, s(case, "open_as_plugin_id"), &bytes);
        let expect = &case["expect"];
        // The key pair and (for a box that opens) enc are what RFC 9180 DeriveKeyPair makes
        // of the recorded ikm, so another language can rebuild them.
        use hpke::{Kem as _, Serializable as _};
        type Kem = hpke::kem::X25519HkdfSha256;
        let (_, pk_r) = Kem::derive_keypair(&from_hex(s(case, "ikm_r_hex")));
        assert_eq!(
            b64(s(case, "public_key_b64url")),
            pk_r.to_bytes().to_vec(),
            "{name}"
        );
        if expect["opens"] == true {
            let (_, pk_e) = Kem::derive_keypair(&from_hex(s(case, "ikm_e_hex")));
            assert_eq!(
                decoded.enc,
                pk_e.to_bytes().to_vec(),
                "{name}: enc from ikm_e"
            );
            assert_eq!(
                opened.map(|p| hex(&p)).as_deref(),
                Ok(s(expect, "plaintext_hex")),
                "{name}"
            );
        } else {
            match (s(expect, "reason"), opened) {
                ("cannot_open", Err(SealError::CannotOpen))
                | ("bad_box", Err(SealError::BadBox(_))) => {}
                (reason, got) => panic!("{name}: expected {reason}, got {got:?}"),
            }
        }
    }
}

#[test]
fn every_manifest_verifies_or_is_refused_as_the_vector_says() {
    for case in cases(&load("asset_manifests.json")) {
        let name = s(case, "name");
        let keys: jsonwebtoken::jwk::JwkSet =
            serde_json::from_value(case["jwks"].clone()).expect("a JWKS");
        let got = tessera_sdk::assets::verify_manifest(s(case, "jws"), &keys, s(case, "plugin_id"));
        let expect = &case["expect"];
        if expect["verifies"] == true {
            let manifest = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            let claims = serde_json::to_value(&manifest.claims).expect("claims");
            assert_eq!(claims, expect["claims"], "{name}");
            let jws = s(case, "jws");
            assert!(
                jws.starts_with(&format!("{}.", s(expect, "signing_input"))),
                "{name}"
            );
        } else {
            let err = match got {
                Ok(_) => panic!("{name}: verified, but the vector says {}", expect["reason"]),
                Err(e) => e.to_string(),
            };
            // The refusal is for the reason the vector gives (the SDK's message names it).
            let hints: &[&str] = match s(expect, "reason") {
                "kid" => &["is not a platform key"],
                "signature" => &["InvalidSignature"],
                "issuer" => &["InvalidIssuer"],
                // A claims set without `kind` fails the SDK's decoding, which names the field.
                "kind" => &["kind \"", "missing field `kind`"],
                "plugin" => &["signed for plugin"],
                "files" => &["asset path", "listed twice", "no files", "sha256 must be"],
                other => panic!("{name}: unknown reason {other:?}"),
            };
            assert!(
                hints.iter().any(|h| err.contains(h)),
                "{name}: refused with {err:?}"
            );
        }
    }
}

#[test]
fn every_error_reply_vector_holds() {
    for case in cases(&load("error_replies.json")) {
        let name = s(case, "name");
        let reply = &case["reply"];
        let mut reply_headers = async_nats::HeaderMap::new();
        for (k, v) in reply["headers"].as_object().expect("headers") {
            reply_headers.insert(k.as_str(), v.as_str().expect("a header value"));
        }
        let body = from_hex(s(reply, "body_hex"));
        let got = tessera_protocol::rpc::error_from_reply(Some(&reply_headers), &body);
        let expect = &case["expect"]["error"];
        match got {
            None => assert!(expect.is_null(), "{name}: not taken for an error"),
            Some(err) => {
                assert_eq!(err.code.as_str(), s(expect, "code"), "{name}");
                assert_eq!(err.message, s(expect, "message"), "{name}");
                assert_eq!(Some(err.retryable), expect["retryable"].as_bool(), "{name}");
                assert_eq!(
                    err.retry_after_ms,
                    expect["retry_after_ms"].as_u64(),
                    "{name}"
                );
                assert_eq!(
                    Some(u64::from(err.code.status())),
                    expect["status"].as_u64(),
                    "{name}"
                );
                if s(case, "kind") == "sent" {
                    // What a worker sends for the decoded error is this reply, byte for byte.
                    let (h, again) = tessera_runtime::service::error_reply(&err);
                    assert_eq!(hex(&again), s(reply, "body_hex"), "{name}");
                    for (k, v) in reply["headers"].as_object().expect("headers") {
                        assert_eq!(
                            h.get(k.as_str()).map(|x| x.as_str()),
                            v.as_str(),
                            "{name}: {k}"
                        );
                    }
                }
            }
        }
    }
}
