//! §8.1 data-access packets: inputs -> canonical signing string, HMAC, signature and the
//! MessagePack bytes as sent; then packets the gateway refuses before any lookup a client
//! cannot see (decoding, shape, signature, verification info), each with its code.

use serde_json::{Value, json};
use tessera_protocol::data_sign;
use tessera_protocol::signing::token_hash;
use tessera_schemas::codec;
use tessera_schemas::data::{DataRequest, PACKET_VERSION, Verification, payload_digest_input};

use super::{b64url, fixed_bytes, hex, vector_file};

const DESCRIPTION: &str = "Signed data-access packets. `valid`: the packet's fields and the \
    client app's secret -> token_sha256_hex, payload_digest_input_hex (operation, 0x0A, query, \
    0x0A, body), payload_sha256_hex, the canonical signing_string, hmac_sha256_hex, the \
    signature field (base64url, no padding) and packet_msgpack_hex (the body as sent: a \
    MessagePack map, fields in this order, body as bin). `refused`: a packet the gateway \
    answers with expect.code; expect.check names the check that refuses it: `decode` (the \
    MessagePack body itself, step 1), `shape` (field rules, step 1), `signature` (step 2) or \
    `verification` (user_ip / device_id, step 6). Checks run in that order; the first failure \
    is the answer.";

/// The protocol doc's worked example (§8.1).
fn doc_example() -> (Vec<u8>, DataRequest) {
    let secret: Vec<u8> = (0u8..32).collect();
    let packet = DataRequest {
        version: PACKET_VERSION,
        app_id: "demo-app".into(),
        plugin_token: "eyJhbGciOiJFZERTQSJ9.e30.c2ln".into(),
        timestamp: 1_764_000_000_000,
        nonce: "bm9uY2Utbm9uY2Utbm9uY2U".into(),
        operation: "forecast".into(),
        query: "city=Oslo".into(),
        body: b"{\"days\":3}".to_vec(),
        verification: Verification {
            plugin_id: "weather".into(),
            user_ip: "192.0.2.10".into(),
            device_id: "device-42".into(),
        },
        signature: String::new(),
    };
    (secret, packet)
}

fn valid_packets() -> Vec<(&'static str, Vec<u8>, DataRequest)> {
    let (secret, example) = doc_example();
    let other_secret = fixed_bytes("data-packets/secret", 32);
    let empty = DataRequest {
        app_id: "app_2".into(),
        operation: "now".into(),
        query: String::new(),
        body: Vec::new(),
        nonce: b64url(&fixed_bytes("data-packets/nonce-1", 16)),
        verification: Verification {
            plugin_id: "news".into(),
            user_ip: "2001:db8::1".into(),
            device_id: "phone-1".into(),
        },
        ..example.clone()
    };
    let binary = DataRequest {
        query: "city=Zürich&q=a b".into(),
        // Not UTF-8, with a newline and a NUL: the body is bytes, hashed as they are.
        body: vec![0x00, 0xff, 0x0a, 0x80, 0x7b],
        nonce: "A".repeat(64),
        timestamp: 1,
        verification: Verification {
            plugin_id: "weather".into(),
            user_ip: "::ffff:192.0.2.10".into(),
            device_id: "phone-1.a:b_C-9".into(),
        },
        ..example.clone()
    };
    vec![
        ("protocol_doc_worked_example", secret.clone(), example),
        ("empty_query_and_body_ipv6", other_secret.clone(), empty),
        ("binary_body_unicode_query", other_secret, binary),
    ]
}

fn signed(secret: &[u8], mut packet: DataRequest) -> DataRequest {
    packet.signature = data_sign::sign(secret, &packet);
    packet
}

fn fields(p: &DataRequest) -> Value {
    json!({
        "version": p.version,
        "app_id": p.app_id,
        "plugin_token": p.plugin_token,
        "timestamp": p.timestamp,
        "nonce": p.nonce,
        "operation": p.operation,
        "query": p.query,
        "body_hex": hex(&p.body),
        "verification": {
            "plugin_id": p.verification.plugin_id,
            "user_ip": p.verification.user_ip,
            "device_id": p.verification.device_id,
        },
        "signature": p.signature,
    })
}

fn valid_case(name: &str, secret: &[u8], packet: DataRequest) -> Value {
    let packet = signed(secret, packet);
    let digest_input = payload_digest_input(&packet);
    let signing_string = data_sign::canonical(&packet);
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
        signing_string.as_bytes(),
    );
    json!({
        "name": name,
        "secret_b64url": b64url(secret),
        "fields": fields(&packet),
        "expect": {
            "token_sha256_hex": token_hash(&packet.plugin_token),
            "payload_digest_input_hex": hex(&digest_input),
            "payload_sha256_hex": data_sign::sha256_hex(&digest_input),
            "signing_string": signing_string,
            "hmac_sha256_hex": hex(tag.as_ref()),
            "signature": packet.signature,
            "packet_msgpack_hex": hex(&codec::encode(&packet)),
        },
    })
}

/// A packet the gateway refuses, given as fields (encoded as a client would send them).
fn refused(
    name: &str,
    why: &str,
    secret: &[u8],
    packet: &DataRequest,
    check: &str,
    code: &str,
) -> Value {
    json!({
        "name": name,
        "why": why,
        "secret_b64url": b64url(secret),
        "fields": fields(packet),
        "packet_msgpack_hex": hex(&codec::encode(packet)),
        "expect": {"check": check, "code": code},
    })
}

/// A body that does not decode as a packet (only its bytes, from the worked example's
/// fields; no `fields`).
fn undecodable(name: &str, why: &str, bytes: &[u8]) -> Value {
    json!({
        "name": name,
        "why": why,
        "secret_b64url": b64url(&doc_example().0),
        "packet_msgpack_hex": hex(bytes),
        "expect": {"check": "decode", "code": "bad_request"},
    })
}

/// The worked example as a MessagePack value, with one field replaced (to send a field in
/// a form our own structs cannot produce).
fn example_with(field: &str, value: rmpv::Value) -> Vec<u8> {
    let (secret, packet) = doc_example();
    let bytes = codec::encode(&signed(&secret, packet));
    let mut map = match rmpv::decode::read_value(&mut bytes.as_slice()) {
        Ok(rmpv::Value::Map(map)) => map,
        other => unreachable!("a packet encodes as a map, got {other:?}"),
    };
    for (k, v) in &mut map {
        if k.as_str() == Some(field) {
            *v = value.clone();
        }
    }
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &rmpv::Value::Map(map)).expect("writing to a Vec");
    out
}

fn refused_packets() -> Vec<Value> {
    let (secret, example) = doc_example();
    let good = signed(&secret, example.clone());
    // Signed as it stands (so only the named rule refuses it).
    let resigned = |f: fn(&mut DataRequest)| {
        let mut p = example.clone();
        f(&mut p);
        signed(&secret, p)
    };
    // Changed after signing.
    let tampered = |f: fn(&mut DataRequest)| {
        let mut p = good.clone();
        f(&mut p);
        p
    };
    let other_secret = fixed_bytes("data-packets/other-secret", 32);
    let array_form = {
        let mut out = Vec::new();
        let fields: Vec<rmpv::Value> =
            match rmpv::decode::read_value(&mut codec::encode(&good).as_slice()) {
                Ok(rmpv::Value::Map(map)) => map.into_iter().map(|(_, v)| v).collect(),
                other => unreachable!("a packet encodes as a map, got {other:?}"),
            };
        rmpv::encode::write_value(&mut out, &rmpv::Value::Array(fields)).expect("to a Vec");
        out
    };
    vec![
        undecodable(
            "fields_as_an_array",
            "the packet's fields as a MessagePack array (rmp-serde's to_vec), not a map",
            &array_form,
        ),
        undecodable(
            "body_as_str",
            "body sent as a MessagePack str instead of bin",
            &example_with("body", rmpv::Value::from("{\"days\":3}")),
        ),
        undecodable(
            "app_id_as_bin",
            "app_id sent as bin instead of str, even though the bytes are UTF-8",
            &example_with("app_id", rmpv::Value::Binary(b"demo-app".to_vec())),
        ),
        undecodable(
            "timestamp_as_str",
            "timestamp sent as a str",
            &example_with("timestamp", rmpv::Value::from("1764000000000")),
        ),
        refused(
            "version_2",
            "packet version other than 1",
            &secret,
            &resigned(|p| p.version = 2),
            "shape",
            "unsupported_version",
        ),
        refused(
            "app_id_with_a_dot",
            "app_id is not an identifier",
            &secret,
            &resigned(|p| p.app_id = "demo.app".into()),
            "shape",
            "bad_request",
        ),
        refused(
            "operation_with_a_dot",
            "operation is not an identifier",
            &secret,
            &resigned(|p| p.operation = "now.later".into()),
            "shape",
            "bad_request",
        ),
        refused(
            "nonce_too_short",
            "nonce of 15 characters (16-64 needed)",
            &secret,
            &resigned(|p| p.nonce = "A".repeat(15)),
            "shape",
            "bad_request",
        ),
        refused(
            "nonce_too_long",
            "nonce of 65 characters",
            &secret,
            &resigned(|p| p.nonce = "A".repeat(65)),
            "shape",
            "bad_request",
        ),
        refused(
            "nonce_with_padding",
            "nonce with `=` (base64url characters only)",
            &secret,
            &resigned(|p| p.nonce = "bm9uY2Utbm9uY2Utbm9uY2U=".into()),
            "shape",
            "bad_request",
        ),
        refused(
            "empty_plugin_token",
            "plugin_token is empty",
            &secret,
            &resigned(|p| p.plugin_token.clear()),
            "shape",
            "bad_request",
        ),
        refused(
            "query_with_a_newline",
            "query holds a control character",
            &secret,
            &resigned(|p| p.query = "city=Oslo\nx=1".into()),
            "shape",
            "bad_request",
        ),
        refused(
            "verification_plugin_id_invalid",
            "verification.plugin_id is not an identifier",
            &secret,
            &resigned(|p| p.verification.plugin_id = "weather*".into()),
            "shape",
            "bad_request",
        ),
        refused(
            "signature_missing",
            "signature is empty",
            &secret,
            &example,
            "shape",
            "bad_signature",
        ),
        refused(
            "signature_with_padding",
            "the right signature with base64 padding: base64url without padding only",
            &secret,
            &tampered(|p| p.signature.push('=')),
            "signature",
            "bad_signature",
        ),
        refused(
            "signed_with_another_secret",
            "signed with a secret that is not the app's",
            &secret,
            &signed(&other_secret, example.clone()),
            "signature",
            "bad_signature",
        ),
        refused(
            "timestamp_changed_after_signing",
            "timestamp changed after signing",
            &secret,
            &tampered(|p| p.timestamp += 1),
            "signature",
            "bad_signature",
        ),
        refused(
            "user_ip_changed_after_signing",
            "verification.user_ip changed after signing: the verification info is signed",
            &secret,
            &tampered(|p| p.verification.user_ip = "192.0.2.11".into()),
            "signature",
            "bad_signature",
        ),
        refused(
            "body_changed_after_signing",
            "body changed after signing",
            &secret,
            &tampered(|p| p.body.push(b' ')),
            "signature",
            "bad_signature",
        ),
        refused(
            "query_moved_into_the_operation",
            "operation `forecast` + query `city=Oslo` signed, operation `forecastcity` + query `=Oslo` sent: the separator is signed",
            &secret,
            &tampered(|p| {
                p.operation = "forecastcity".into();
                p.query = "=Oslo".into();
            }),
            "signature",
            "bad_signature",
        ),
        refused(
            "user_ip_not_an_address",
            "verification.user_ip is not an IP address (signed as it is)",
            &secret,
            &resigned(|p| p.verification.user_ip = "192.0.2.300".into()),
            "verification",
            "bad_request",
        ),
        refused(
            "device_id_with_a_space",
            "verification.device_id holds a space (signed as it is)",
            &secret,
            &resigned(|p| p.verification.device_id = "device 42".into()),
            "verification",
            "bad_request",
        ),
    ]
}

pub(super) fn file() -> (&'static str, Value) {
    let mut cases: Vec<Value> = valid_packets()
        .into_iter()
        .map(|(name, secret, packet)| {
            let mut case = valid_case(name, &secret, packet);
            case["kind"] = json!("valid");
            case
        })
        .collect();
    cases.extend(refused_packets().into_iter().map(|mut case| {
        case["kind"] = json!("refused");
        case
    }));
    (
        "data_packets.json",
        vector_file(DESCRIPTION, "docs/protocol.md §8.1", cases),
    )
}
