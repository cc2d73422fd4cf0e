//! Bad input on every request subject, as a table: one row per (subject, case, expected
//! outcome). Each request is sent raw (async-nats, MessagePack by hand) with the role the
//! subject is for, against real servers and workers; each must be answered (a reply within
//! a bound shorter than any worker-side timeout, never a client timeout) with the row's
//! typed error, and nothing may be written: Redis, the distribution stream and the buckets
//! a subject writes hold what they held before that subject's rows.
//!
//! The cases (docs/protocol.md §1 gives the rules they check):
//! - `Probe`: a well-formed body that fails a check past decoding (a wrong password, an
//!   unknown app, ...), or is answered without writing; the other cases start from it;
//! - `Empty`, `Truncated` (the probe's bytes cut in half), `WrongType` (a string field set
//!   to an integer; for bodiless subjects the body is an integer), `InvalidUtf8` (a string
//!   field holding bytes that are not UTF-8): `bad_request`;
//! - `UnknownField`: the probe plus a field no version defines: unknown fields are ignored,
//!   so the answer is the probe's;
//! - `UnknownVersion` (`<schema>/2`): `unsupported_version`; `WrongSchema` (another
//!   message's name): `bad_request`;
//! - `HugeWithin` (a string field of 60 KiB, the body under the 64 KiB limit): the field's
//!   own rule; `HugeBeyond` (70 KiB): `payload_too_large`;
//! - `WrongContentType` (the probe as JSON, `Content-Type: application/json`): `bad_request`.
//!
//! `keys` takes no body and ignores body and headers (§3.7): only the size limit applies.
//! `auth.nodes.status` takes no body either, but checks size, content type and schema
//! header like every MessagePack request (§3.3b).

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use futures::TryStreamExt;
use serde_json::{Value, json};
use tessera_core::rpc::{self, RpcError};
use tessera_schemas::{ErrorCode, headers};
use tessera_tests::{Backend, Role, Stack};

use Case::*;
use ErrorCode::*;
use Expect::{Code, Reply};

/// Shorter than any bound on the workers' side: an answer within it is an answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
const PASSWORD: &str = "correct horse battery";
/// Stands in for a string field's value in `InvalidUtf8`; its bytes are then overwritten.
const MARKER: &str = "@@not-utf8-here@@";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Probe,
    Empty,
    Truncated,
    WrongType,
    UnknownField,
    UnknownVersion,
    WrongSchema,
    HugeWithin,
    HugeBeyond,
    InvalidUtf8,
    WrongContentType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A typed error with this code.
    Code(ErrorCode),
    /// A reply that is not an error.
    Reply,
}

/// The table. Subjects are named as in docs/protocol.md §3, §8, §9.
#[rustfmt::skip]
const TABLE: &[(&str, Case, Expect)] = &[
    ("token.request", Probe, Code(Unauthenticated)),
    ("token.request", Empty, Code(BadRequest)),
    ("token.request", Truncated, Code(BadRequest)),
    ("token.request", WrongType, Code(BadRequest)),
    ("token.request", UnknownField, Code(Unauthenticated)),
    ("token.request", UnknownVersion, Code(UnsupportedVersion)),
    ("token.request", WrongSchema, Code(BadRequest)),
    ("token.request", HugeWithin, Code(Unauthenticated)),
    ("token.request", HugeBeyond, Code(PayloadTooLarge)),
    ("token.request", InvalidUtf8, Code(BadRequest)),
    ("token.request", WrongContentType, Code(BadRequest)),

    ("token.revoke", Probe, Reply),
    ("token.revoke", Empty, Code(BadRequest)),
    ("token.revoke", Truncated, Code(BadRequest)),
    ("token.revoke", WrongType, Code(BadRequest)),
    ("token.revoke", UnknownField, Reply),
    ("token.revoke", UnknownVersion, Code(UnsupportedVersion)),
    ("token.revoke", WrongSchema, Code(BadRequest)),
    ("token.revoke", HugeWithin, Reply),
    ("token.revoke", HugeBeyond, Code(PayloadTooLarge)),
    ("token.revoke", InvalidUtf8, Code(BadRequest)),
    ("token.revoke", WrongContentType, Code(BadRequest)),

    ("token.introspect", Probe, Reply),
    ("token.introspect", Empty, Code(BadRequest)),
    ("token.introspect", Truncated, Code(BadRequest)),
    ("token.introspect", WrongType, Code(BadRequest)),
    ("token.introspect", UnknownField, Reply),
    ("token.introspect", UnknownVersion, Code(UnsupportedVersion)),
    ("token.introspect", WrongSchema, Code(BadRequest)),
    ("token.introspect", HugeWithin, Reply),
    ("token.introspect", HugeBeyond, Code(PayloadTooLarge)),
    ("token.introspect", InvalidUtf8, Code(BadRequest)),
    ("token.introspect", WrongContentType, Code(BadRequest)),

    ("auth.login", Probe, Code(Unauthenticated)),
    ("auth.login", Empty, Code(BadRequest)),
    ("auth.login", Truncated, Code(BadRequest)),
    ("auth.login", WrongType, Code(BadRequest)),
    ("auth.login", UnknownField, Code(Unauthenticated)),
    ("auth.login", UnknownVersion, Code(UnsupportedVersion)),
    ("auth.login", WrongSchema, Code(BadRequest)),
    ("auth.login", HugeWithin, Code(Unauthenticated)),
    ("auth.login", HugeBeyond, Code(PayloadTooLarge)),
    ("auth.login", InvalidUtf8, Code(BadRequest)),
    ("auth.login", WrongContentType, Code(BadRequest)),

    ("auth.verify", Probe, Code(Unauthenticated)),
    ("auth.verify", Empty, Code(BadRequest)),
    ("auth.verify", Truncated, Code(BadRequest)),
    ("auth.verify", WrongType, Code(BadRequest)),
    ("auth.verify", UnknownField, Code(Unauthenticated)),
    ("auth.verify", UnknownVersion, Code(UnsupportedVersion)),
    ("auth.verify", WrongSchema, Code(BadRequest)),
    ("auth.verify", HugeWithin, Code(Unauthenticated)),
    ("auth.verify", HugeBeyond, Code(PayloadTooLarge)),
    ("auth.verify", InvalidUtf8, Code(BadRequest)),
    ("auth.verify", WrongContentType, Code(BadRequest)),

    ("users.add", Probe, Code(Conflict)),
    ("users.add", Empty, Code(BadRequest)),
    ("users.add", Truncated, Code(BadRequest)),
    ("users.add", WrongType, Code(BadRequest)),
    ("users.add", UnknownField, Code(Conflict)),
    ("users.add", UnknownVersion, Code(UnsupportedVersion)),
    ("users.add", WrongSchema, Code(BadRequest)),
    ("users.add", HugeWithin, Code(BadRequest)),
    ("users.add", HugeBeyond, Code(PayloadTooLarge)),
    ("users.add", InvalidUtf8, Code(BadRequest)),
    ("users.add", WrongContentType, Code(BadRequest)),

    ("keys", Probe, Reply),
    ("keys", Empty, Reply),
    ("keys", Truncated, Reply),
    ("keys", WrongType, Reply),
    ("keys", UnknownField, Reply),
    ("keys", UnknownVersion, Reply),
    ("keys", WrongSchema, Reply),
    ("keys", HugeWithin, Reply),
    ("keys", HugeBeyond, Code(PayloadTooLarge)),
    ("keys", InvalidUtf8, Reply),
    ("keys", WrongContentType, Reply),

    ("assets.publish", Probe, Code(NotFound)),
    ("assets.publish", Empty, Code(BadRequest)),
    ("assets.publish", Truncated, Code(BadRequest)),
    ("assets.publish", WrongType, Code(BadRequest)),
    ("assets.publish", UnknownField, Code(NotFound)),
    ("assets.publish", UnknownVersion, Code(UnsupportedVersion)),
    ("assets.publish", WrongSchema, Code(BadRequest)),
    ("assets.publish", HugeWithin, Code(BadRequest)),
    ("assets.publish", HugeBeyond, Code(PayloadTooLarge)),
    ("assets.publish", InvalidUtf8, Code(BadRequest)),
    ("assets.publish", WrongContentType, Code(BadRequest)),

    ("plugins.key", Probe, Code(NotFound)),
    ("plugins.key", Empty, Code(BadRequest)),
    ("plugins.key", Truncated, Code(BadRequest)),
    ("plugins.key", WrongType, Code(BadRequest)),
    ("plugins.key", UnknownField, Code(NotFound)),
    ("plugins.key", UnknownVersion, Code(UnsupportedVersion)),
    ("plugins.key", WrongSchema, Code(BadRequest)),
    ("plugins.key", HugeWithin, Code(BadRequest)),
    ("plugins.key", HugeBeyond, Code(PayloadTooLarge)),
    ("plugins.key", InvalidUtf8, Code(BadRequest)),
    ("plugins.key", WrongContentType, Code(BadRequest)),

    ("data.weather", Probe, Code(BadSignature)),
    ("data.weather", Empty, Code(BadRequest)),
    ("data.weather", Truncated, Code(BadRequest)),
    ("data.weather", WrongType, Code(BadRequest)),
    ("data.weather", UnknownField, Code(BadSignature)),
    ("data.weather", UnknownVersion, Code(UnsupportedVersion)),
    ("data.weather", WrongSchema, Code(BadRequest)),
    ("data.weather", HugeWithin, Code(BadRequest)),
    ("data.weather", HugeBeyond, Code(PayloadTooLarge)),
    ("data.weather", InvalidUtf8, Code(BadRequest)),
    ("data.weather", WrongContentType, Code(BadRequest)),

    ("auth.packages.upload", Probe, Code(PackageRejected)),
    ("auth.packages.upload", Empty, Code(BadRequest)),
    ("auth.packages.upload", Truncated, Code(BadRequest)),
    ("auth.packages.upload", WrongType, Code(BadRequest)),
    ("auth.packages.upload", UnknownField, Code(PackageRejected)),
    ("auth.packages.upload", UnknownVersion, Code(UnsupportedVersion)),
    ("auth.packages.upload", WrongSchema, Code(BadRequest)),
    ("auth.packages.upload", HugeWithin, Code(BadRequest)),
    ("auth.packages.upload", HugeBeyond, Code(PayloadTooLarge)),
    ("auth.packages.upload", InvalidUtf8, Code(BadRequest)),
    ("auth.packages.upload", WrongContentType, Code(BadRequest)),

    ("auth.nodes.status", Probe, Reply),
    ("auth.nodes.status", Empty, Reply),
    ("auth.nodes.status", Truncated, Reply),
    ("auth.nodes.status", WrongType, Reply),
    ("auth.nodes.status", UnknownField, Reply),
    ("auth.nodes.status", UnknownVersion, Code(UnsupportedVersion)),
    ("auth.nodes.status", WrongSchema, Code(BadRequest)),
    ("auth.nodes.status", HugeWithin, Reply),
    ("auth.nodes.status", HugeBeyond, Code(PayloadTooLarge)),
    ("auth.nodes.status", InvalidUtf8, Reply),
    ("auth.nodes.status", WrongContentType, Code(BadRequest)),
];

/// How to reach one subject and the probe its cases start from.
struct Spec {
    subject: String,
    role: Role,
    /// Schema name for the `Tessera-Schema` header.
    schema: &'static str,
    /// A well-formed body (a JSON object, sent as MessagePack).
    probe: Value,
    /// The string field the type, size and UTF-8 cases change (`None`: the subject has no
    /// body, a `pad` field is added instead).
    field: Option<&'static str>,
}

fn spec(stack: &Stack, name: &str, account_token: &str) -> Spec {
    let s = stack.subjects();
    let (subject, role, schema, probe, field) = match name {
        "token.request" => (
            s.token_request(),
            Role::Client,
            "token.request",
            // A forged account token: auth.verify refuses it, nothing is minted.
            json!({"account_token": "eyJhbGciOiJFZERTQSJ9.e30.c2ln", "plugin_id": "weather"}),
            Some("account_token"),
        ),
        "token.revoke" => (
            s.token_revoke(),
            Role::Admin,
            "token.revoke",
            // An id no token has: `revoked: 0`, nothing published or deleted.
            json!({"token_id": "no-such-token"}),
            Some("token_id"),
        ),
        "token.introspect" => (
            s.token_introspect(),
            // Plugin servers and the admin may introspect; plugin servers are not a role.
            Role::Admin,
            "token.introspect",
            // Not a token of ours: `active: false`.
            json!({"token": "eyJhbGciOiJFZERTQSJ9.e30.c2ln"}),
            Some("token"),
        ),
        "auth.login" => (
            s.auth_login(),
            Role::Client,
            "auth.login",
            json!({"username": "ann", "password": "wrong password"}),
            Some("password"),
        ),
        "auth.verify" => (
            s.auth_verify(),
            Role::Broker,
            "auth.verify",
            json!({"account_token": "eyJhbGciOiJFZERTQSJ9.e30.c2ln"}),
            Some("account_token"),
        ),
        "users.add" => (
            s.users_add(),
            Role::Admin,
            "users.add",
            // ann exists: `conflict`, the stored user unchanged.
            json!({"username": "ann", "password": "another password"}),
            Some("username"),
        ),
        "keys" => (s.keys(), Role::Client, "keys", json!({}), None),
        "assets.publish" => (
            s.assets_publish(),
            Role::Admin,
            "assets.publish",
            // A routed plugin, a blob never uploaded: `not_found`, no version made.
            json!({"plugin_id": "weather", "files": [{
                "path": "index.html", "sha256": "ab".repeat(32), "size": 3,
                "content_type": "text/html"}]}),
            Some("plugin_id"),
        ),
        "plugins.key" => (
            s.plugins_key(),
            Role::Client,
            "plugins.key",
            json!({"plugin_id": "weather"}),
            Some("plugin_id"),
        ),
        "data.weather" => (
            s.data("weather"),
            Role::Client,
            "data.request",
            // Well-formed, from an app nobody registered: `bad_signature`, before Redis.
            json!({
                "version": 1, "app_id": "no-such-app", "plugin_token": account_token,
                "timestamp": 1_764_000_000_000u64, "nonce": "bm9uY2Utbm9uY2Utbm9uY2U",
                "operation": "now", "query": "",
                "verification": {"plugin_id": "weather", "user_ip": "192.0.2.1",
                                 "device_id": "d1"},
                "signature": "wu6JCYjZNARHSZZAPkMtPk_QU9DEWUU301eEYfesOH4"}),
            Some("plugin_token"),
        ),
        "auth.packages.upload" => (
            s.auth_packages_upload(),
            Role::Admin,
            "auth.packages.upload",
            // Well-shaped, signed by a key no node trusts: `package_rejected`, nothing stored.
            json!({"manifest": {
                "name": "http-password", "version": "1.0.0", "interface": 1,
                "sha256": "ab".repeat(32),
                "publisher_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "signature": "AA"}, "staging": "never-uploaded"}),
            Some("staging"),
        ),
        "auth.nodes.status" => (
            s.auth_nodes_status(),
            Role::Admin,
            "auth.nodes.status",
            json!({}),
            None,
        ),
        other => panic!("no spec for {other}"),
    };
    Spec {
        subject,
        role,
        schema,
        probe,
        field,
    }
}

fn msgpack(v: &Value) -> Vec<u8> {
    rmp_serde::to_vec_named(v).unwrap()
}

/// The probe with `field` (or `pad`) set to `value`.
fn with_field(spec: &Spec, value: Value) -> Value {
    let mut body = spec.probe.clone();
    body[spec.field.unwrap_or("pad")] = value;
    body
}

/// Headers and body of one case.
fn request(spec: &Spec, case: Case) -> (HeaderMap, Vec<u8>) {
    let mut h = HeaderMap::new();
    let v1 = format!("{}/1", spec.schema);
    h.insert(headers::SCHEMA, v1.as_str());
    let body = match case {
        Probe => msgpack(&spec.probe),
        Empty => Vec::new(),
        Truncated => {
            let full = msgpack(&spec.probe);
            full[..full.len() / 2].to_vec()
        }
        WrongType => match spec.field {
            Some(_) => msgpack(&with_field(spec, json!(7))),
            None => msgpack(&json!(7)),
        },
        UnknownField => {
            let mut body = spec.probe.clone();
            body["zz_not_in_any_version"] = json!({"nested": [1, "two"]});
            msgpack(&body)
        }
        UnknownVersion => {
            h.insert(headers::SCHEMA, format!("{}/2", spec.schema).as_str());
            msgpack(&spec.probe)
        }
        WrongSchema => {
            h.insert(headers::SCHEMA, "sealed/1");
            msgpack(&spec.probe)
        }
        HugeWithin => msgpack(&with_field(spec, json!("x".repeat(60 * 1024)))),
        HugeBeyond => msgpack(&with_field(spec, json!("x".repeat(70 * 1024)))),
        InvalidUtf8 => {
            let mut body = msgpack(&with_field(spec, json!(MARKER)));
            let at = body
                .windows(MARKER.len())
                .position(|w| w == MARKER.as_bytes())
                .expect("marker in the encoding");
            body[at..at + MARKER.len()].fill(0xff);
            body
        }
        WrongContentType => {
            h.insert(headers::CONTENT_TYPE, "application/json");
            serde_json::to_vec(&spec.probe).unwrap()
        }
    };
    (h, body)
}

/// What the stack holds that bad input must not change.
#[derive(Debug, PartialEq, Eq)]
struct Written {
    redis_keys: u64,
    dist_messages: u64,
    users: usize,
    asset_versions: usize,
    plugin_keys: usize,
    package_index: usize,
}

async fn kv_len(js: &jetstream::Context, bucket: String) -> usize {
    let kv = js.get_key_value(bucket.clone()).await.unwrap();
    kv.keys()
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_or_else(|e| panic!("listing {bucket}: {e}"))
        .len()
}

async fn written(stack: &Stack) -> Written {
    let s = stack.subjects();
    let mut redis = redis::Client::open(stack.servers().redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let redis_keys: u64 = redis::cmd("DBSIZE").query_async(&mut redis).await.unwrap();
    let admin = jetstream::new(stack.nats(Role::Admin).await);
    let dist_messages = admin
        .get_stream(s.dist_stream())
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages;
    // Only the auth role may read the users bucket.
    let auth = jetstream::new(stack.nats(Role::Auth).await);
    let broker = jetstream::new(stack.nats(Role::Broker).await);
    Written {
        redis_keys,
        dist_messages,
        users: kv_len(&auth, s.users_bucket()).await,
        asset_versions: kv_len(&broker, s.asset_versions_bucket()).await,
        plugin_keys: kv_len(&broker, s.plugin_keys_bucket()).await,
        package_index: kv_len(&auth, s.package_index_bucket()).await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subject_answers_bad_input_with_its_typed_error() {
    let stack = Stack::builder()
        .backend(Backend::Local)
        .gateways(1)
        .start()
        .await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;

    let mut subjects: Vec<&str> = TABLE.iter().map(|(s, _, _)| *s).collect();
    subjects.dedup();
    let mut failures = Vec::new();
    for name in subjects {
        let spec = spec(&stack, name, &ann.account_token);
        let nats = stack.nats(spec.role).await;
        let before = written(&stack).await;
        for (_, case, expect) in TABLE.iter().filter(|(s, _, _)| *s == name) {
            let (h, body) = request(&spec, *case);
            let got = match rpc::request_raw(
                &nats,
                spec.subject.clone(),
                h,
                Bytes::from(body),
                ANSWER_WITHIN,
            )
            .await
            {
                Ok(_) => Reply,
                Err(RpcError::Wire(w)) => {
                    assert_eq!(w.retryable, w.code.retryable(), "{name} {case:?}: {w}");
                    Code(w.code)
                }
                Err(other) => panic!("{name} {case:?}: no typed answer: {other}"),
            };
            if got != *expect {
                failures.push(format!("{name} {case:?}: expected {expect:?}, got {got:?}"));
            }
        }
        let after = written(&stack).await;
        assert_eq!(before, after, "{name}: bad input changed the stored state");
    }
    assert!(
        failures.is_empty(),
        "rows that failed:\n{}",
        failures.join("\n")
    );
}
