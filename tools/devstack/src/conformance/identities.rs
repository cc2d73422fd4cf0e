//! Names derived from secrets or requests: broker key ids (RFC 7638 thumbprints, §4 and
//! §3.7), client inbox prefixes and passwords (§3.11), and what makes two token requests the
//! same request (the idempotency hash, §3.4).

use std::net::IpAddr;

use serde_json::{Value, json};
use tessera_ledger::keys::{RedisKeys, idempotency_binding, idempotency_input};
use tessera_protocol::bus::client_inbox;
use tessera_protocol::signing::{PublishedKey, SigningKey, token_hash};
use tessera_schemas::clients::{inbox_key_ok, join_password};

use super::{b64url, fixed_bytes, hex, vector_file};

/// PKCS#8 v1 DER of an Ed25519 private key from its 32-byte seed (RFC 8410): a fixed
/// prefix, then the seed.
pub(super) fn ed25519_pkcs8(seed: &[u8]) -> Vec<u8> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(seed);
    der
}

/// The broker signing key of a fixed seed, as `SigningKey` loads it from a key file.
pub(super) fn signing_key(seed: &[u8]) -> SigningKey {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(ed25519_pkcs8(seed));
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
    SigningKey::from_pem(&pem).expect("a 32-byte seed is an Ed25519 key")
}

/// RFC 8037 appendix A: its example Ed25519 key (thumbprint in A.3).
const RFC8037_SEED_HEX: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

pub(super) fn from_hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("constant hex"))
        .collect()
}

pub(super) fn jwk_thumbprints() -> (&'static str, Value) {
    let seeds = [
        ("rfc8037_appendix_a", from_hex(RFC8037_SEED_HEX)),
        ("seed_zero", vec![0u8; 32]),
        ("seed_fixed", fixed_bytes("jwk/broker-key", 32)),
    ];
    let cases = seeds
        .iter()
        .map(|(name, seed)| {
            let key = signing_key(seed);
            let published = PublishedKey {
                jwk: key.public_jwk(),
                expires_at: Some(1_764_003_600),
            };
            let published = published.to_value();
            let x = published["x"]
                .as_str()
                .expect("an OKP JWK has x")
                .to_owned();
            json!({
                "name": name,
                "seed_hex": hex(seed),
                "x": x,
                "expect": {
                    "thumbprint_input": format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
                    "kid": key.kid(),
                    "published_jwk": published,
                },
            })
        })
        .collect();
    (
        "jwk_thumbprints.json",
        vector_file(
            "Broker key ids. An Ed25519 key's 32-byte private seed (seed_hex) -> its public \
             key x (base64url, no padding), the RFC 7638 thumbprint input (members crv, kty, x \
             in that order, no whitespace) and kid = base64url_nopad(SHA-256(thumbprint_input)). \
             published_jwk is the key as `P.keys` lists it and the keys bucket stores it (with \
             `exp`, here a fixed example time).",
            "docs/protocol.md §4, §3.7",
            cases,
        ),
    )
}

pub(super) fn client_connections() -> (&'static str, Value) {
    let keys: [(&str, String); 7] = [
        ("protocol_doc_arithmetic_example", "abc".into()),
        ("random_32_bytes", b64url(&fixed_bytes("inbox/key", 32))),
        ("shortest_accepted", "A".repeat(43)),
        ("longest_accepted", "a-_9".repeat(32)),
        ("one_too_short", "A".repeat(42)),
        ("one_too_long", "a".repeat(129)),
        ("with_a_dot", format!("{}.", "a".repeat(43))),
    ];
    let passwords = ["client-password", "pa:ss"];
    let cases = keys
        .iter()
        .zip(passwords.iter().cycle())
        .map(|((name, key), password)| {
            json!({
                "name": name,
                "inbox_key": key,
                "client_password": password,
                "expect": {
                    "key_accepted": inbox_key_ok(key),
                    "inbox_prefix": client_inbox(key),
                    "connect_user": tessera_schemas::clients::CLIENT_USER,
                    "connect_password": join_password(password, key),
                },
            })
        })
        .collect();
    (
        "client_connections.json",
        vector_file(
            "Client connections. An inbox key -> whether the auth callout accepts it (43-128 \
             characters of A-Z a-z 0-9 - _), the inbox prefix `_C_INBOX.` + the first 32 \
             lowercase hex digits of SHA-256 of the key (as ASCII text), and the CONNECT user \
             and password (`<client password>:<inbox key>`; the key is after the last `:`). \
             The prefix is computed for refused keys too (the arithmetic does not depend on \
             acceptance).",
            "docs/protocol.md §3.11",
            cases,
        ),
    )
}

/// One token request as the broker sees it after checking its shapes: the route's binding
/// policy decides which of `device_id` / `user_ip` count.
struct Request {
    name: &'static str,
    account_id: &'static str,
    plugin_id: &'static str,
    idempotency_key: &'static str,
    device_id: Option<&'static str>,
    user_ip: Option<&'static str>,
    bind_device: bool,
    bind_ip: bool,
}

const fn request(name: &'static str, account_id: &'static str, key: &'static str) -> Request {
    Request {
        name,
        account_id,
        plugin_id: "weather",
        idempotency_key: key,
        device_id: None,
        user_ip: None,
        bind_device: false,
        bind_ip: false,
    }
}

const ACCOUNT: &str = "6f1c2a9e-3b7d-4c1e-9a55-0d2f8e4b7c31";

fn requests() -> Vec<Request> {
    vec![
        request("unbound", ACCOUNT, "retry-1"),
        Request {
            device_id: Some("phone-1"),
            user_ip: Some("192.0.2.1"),
            ..request("unbound_with_device_and_ip", ACCOUNT, "retry-1")
        },
        request("other_key", ACCOUNT, "retry-2"),
        request("other_account", "acme:user-7", "retry-1"),
        Request {
            plugin_id: "news",
            ..request("other_plugin", ACCOUNT, "retry-1")
        },
        Request {
            device_id: Some("phone-1"),
            bind_device: true,
            ..request("device_bound", ACCOUNT, "retry-1")
        },
        Request {
            device_id: Some("phone-2"),
            bind_device: true,
            ..request("device_bound_other_device", ACCOUNT, "retry-1")
        },
        Request {
            user_ip: Some("2001:db8::1"),
            bind_ip: true,
            ..request("ip_bound", ACCOUNT, "retry-1")
        },
        Request {
            user_ip: Some("2001:0db8:0:0::1"),
            bind_ip: true,
            ..request("ip_bound_same_address_other_spelling", ACCOUNT, "retry-1")
        },
        Request {
            device_id: Some("phone-1"),
            user_ip: Some("192.0.2.1"),
            bind_device: true,
            bind_ip: true,
            ..request("device_and_ip_bound", ACCOUNT, "retry-1")
        },
        // Two third-party accounts whose fields joined by newlines would be the same bytes.
        Request {
            plugin_id: "news",
            ..request("newline_in_account_id", "acme:u\nweather", "K")
        },
        request("newline_in_key", "acme:u", "news\nK"),
        // A key that looks like a binding line, and a request bound to that device.
        request("binding_lookalike_key", "acme:u", "d=dev-1\nK"),
        Request {
            device_id: Some("dev-1"),
            bind_device: true,
            ..request("binding_lookalike_bound", "acme:u", "K")
        },
    ]
}

/// Which requests are the same request (same idempotency hash) and which are not.
const SAME: [(&str, &str, bool); 10] = [
    ("unbound", "unbound_with_device_and_ip", true),
    ("ip_bound", "ip_bound_same_address_other_spelling", true),
    ("unbound", "other_key", false),
    ("unbound", "other_account", false),
    ("unbound", "other_plugin", false),
    ("unbound", "device_bound", false),
    ("device_bound", "device_bound_other_device", false),
    ("device_bound", "device_and_ip_bound", false),
    ("newline_in_account_id", "newline_in_key", false),
    ("binding_lookalike_key", "binding_lookalike_bound", false),
];

pub(super) fn idempotency() -> (&'static str, Value) {
    let keys = RedisKeys::new(tessera_schemas::subjects::DEFAULT_PREFIX);
    let cases = requests()
        .iter()
        .map(|r| {
            // What the broker does: the route decides what binds; a bound IP in its
            // canonical text form (Rust's IpAddr display, RFC 5952 for IPv6).
            let device = r.device_id.filter(|_| r.bind_device);
            let ip = r
                .user_ip
                .filter(|_| r.bind_ip)
                .map(|ip| ip.parse::<IpAddr>().expect("constant address").to_string());
            let binding = idempotency_binding(device, ip.as_deref());
            let input = idempotency_input(r.account_id, r.plugin_id, &binding, r.idempotency_key);
            json!({
                "name": r.name,
                "request": {
                    "account_id": r.account_id,
                    "plugin_id": r.plugin_id,
                    "idempotency_key": r.idempotency_key,
                    "device_id": r.device_id,
                    "user_ip": r.user_ip,
                },
                "route": {"bind_device": r.bind_device, "bind_ip": r.bind_ip},
                "expect": {
                    "binding": binding,
                    "hash_input": input,
                    "hash_input_hex": hex(input.as_bytes()),
                    "sha256_hex": token_hash(&input),
                    "redis_key": keys.idempotency(r.account_id, r.plugin_id, &binding, r.idempotency_key),
                },
            })
        })
        .collect();
    let mut file = vector_file(
        "Idempotent token requests: what makes two token.request calls the same request. \
         account_id is the verified account (from auth.verify, not from the request), \
         plugin_id and idempotency_key come from the request, and device_id / user_ip count \
         only where the plugin's route binds them (a bound user_ip in canonical text form: \
         dotted IPv4, RFC 5952 IPv6). binding = `d=<device_id>` and/or `i=<user_ip>`, joined \
         by a newline, empty when unbound. hash_input = each of `tessera-idem/2`, account_id, \
         plugin_id, binding, idempotency_key written as `<UTF-8 byte length>:<bytes>`, \
         concatenated; its SHA-256 (hex) names the Redis key `<prefix>:idem:<sha256>` (prefix \
         `tessera` here). Two requests are the same request exactly when the hashes are \
         equal; `same_request` lists pairs and the answer. A broker-side rule: a client \
         only needs it to know when a retry gets the earlier reply back.",
        "docs/protocol.md §3.4",
        cases,
    );
    file["same_request"] = SAME
        .iter()
        .map(|(a, b, same)| json!({"a": a, "b": b, "same": same}))
        .collect();
    ("idempotency.json", file)
}
