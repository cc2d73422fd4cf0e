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
//! - `WrongContentType` (the probe as JSON, `Content-Type: application/json`): `bad_request`;
//! - strict decoding (§1: maps with named fields, `str` where str, `bin` where bin), each
//!   `bad_request` where serde alone would have served the probe: `ArrayBody` (the probe's
//!   values as an array, in the struct's field order), `NestedArray` (a struct-typed field
//!   as such an array), `BinForStr` (each string of the probe in turn sent as a `bin`: one
//!   request per string), `StrForBin` (the data packet's `body` as a `str`).
//!
//! `keys` takes no body and ignores body and headers (§3.7): only the size limit applies.
//! `auth.nodes.status` takes no body either, but checks size, content type and schema
//! header like every MessagePack request (§3.3b).

use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use futures::TryStreamExt;
use tessera_protocol::rpc::{self, RpcError};
use tessera_schemas::ErrorCode;
use tessera_tests::{Backend, Role, Stack};

mod bodies;

use Case::*;
use ErrorCode::*;
use Expect::{Code, Reply};

/// Shorter than any bound on the workers' side: an answer within it is an answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
const PASSWORD: &str = "correct horse battery";

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
    ArrayBody,
    NestedArray,
    BinForStr,
    StrForBin,
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
    ("token.request", ArrayBody, Code(BadRequest)),
    ("token.request", BinForStr, Code(BadRequest)),

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
    ("token.revoke", ArrayBody, Code(BadRequest)),
    ("token.revoke", BinForStr, Code(BadRequest)),

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
    ("token.introspect", ArrayBody, Code(BadRequest)),
    ("token.introspect", BinForStr, Code(BadRequest)),

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
    ("auth.login", ArrayBody, Code(BadRequest)),
    ("auth.login", BinForStr, Code(BadRequest)),

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
    ("auth.verify", ArrayBody, Code(BadRequest)),
    ("auth.verify", BinForStr, Code(BadRequest)),

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
    ("users.add", ArrayBody, Code(BadRequest)),
    ("users.add", BinForStr, Code(BadRequest)),

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
    ("keys", ArrayBody, Reply),
    ("keys", BinForStr, Reply),

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
    ("assets.publish", ArrayBody, Code(BadRequest)),
    ("assets.publish", BinForStr, Code(BadRequest)),
    ("assets.publish", NestedArray, Code(BadRequest)),

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
    ("plugins.key", ArrayBody, Code(BadRequest)),
    ("plugins.key", BinForStr, Code(BadRequest)),

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
    ("data.weather", ArrayBody, Code(BadRequest)),
    ("data.weather", BinForStr, Code(BadRequest)),
    ("data.weather", NestedArray, Code(BadRequest)),
    ("data.weather", StrForBin, Code(BadRequest)),

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
    ("auth.packages.upload", ArrayBody, Code(BadRequest)),
    ("auth.packages.upload", BinForStr, Code(BadRequest)),
    ("auth.packages.upload", NestedArray, Code(BadRequest)),

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
    ("auth.nodes.status", ArrayBody, Reply),
    ("auth.nodes.status", BinForStr, Reply),
];

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
    let mut requests = 0;
    for name in subjects {
        let spec = bodies::spec(&stack, name, &ann.account_token);
        let nats = stack.nats(spec.role).await;
        let before = written(&stack).await;
        for (_, case, expect) in TABLE.iter().filter(|(s, _, _)| *s == name) {
            for (variant, h, body) in bodies::requests(&spec, *case) {
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
                    Err(other) => panic!("{name} {case:?} {variant}: no typed answer: {other}"),
                };
                requests += 1;
                if got != *expect {
                    failures.push(format!(
                        "{name} {case:?} {variant}: expected {expect:?}, got {got:?}"
                    ));
                }
            }
        }
        let after = written(&stack).await;
        assert_eq!(before, after, "{name}: bad input changed the stored state");
    }
    println!("{} rows, {requests} requests", TABLE.len());
    assert!(
        failures.is_empty(),
        "rows that failed:\n{}",
        failures.join("\n")
    );
}
