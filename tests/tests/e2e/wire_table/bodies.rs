//! The bodies and headers of the table's cases, built from one well-formed probe per
//! subject (`spec`). MessagePack is written with rmpv where a case needs a type the probe's
//! JSON cannot say (`bin`), and with rmp-serde otherwise.

use async_nats::HeaderMap;
use rmpv::Value as Mp;
use serde_json::{Value, json};
use tessera_schemas::headers;
use tessera_tests::{Role, Stack};

use super::Case::{self, *};

/// Stands in for a string field's value in `InvalidUtf8`; its bytes are then overwritten.
const MARKER: &str = "@@not-utf8-here@@";

/// How to reach one subject and the probe its cases start from.
pub struct Spec {
    pub subject: String,
    pub role: Role,
    /// Schema name for the `Tessera-Schema` header.
    schema: &'static str,
    /// A well-formed body (a JSON object, sent as MessagePack).
    probe: Value,
    /// The string field the type, size and UTF-8 cases change (`None`: the subject has no
    /// body, a `pad` field is added instead).
    field: Option<&'static str>,
    /// The body's fields in the request struct's declaration order: `ArrayBody` sends the
    /// probe's values as an array in this order, the one form serde alone would accept.
    order: &'static [&'static str],
    /// A struct-typed field (its path in the probe) and its fields in declaration order,
    /// for `NestedArray`.
    nested: Option<(&'static [&'static str], &'static [&'static str])>,
}

pub fn spec(stack: &Stack, name: &str, account_token: &str) -> Spec {
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
    let (order, nested) = shapes(name);
    Spec {
        subject,
        role,
        schema,
        probe,
        field,
        order,
        nested,
    }
}

/// Declaration order of each request struct's fields (libs/schemas/src), and its nested struct.
#[allow(clippy::type_complexity)]
fn shapes(
    name: &str,
) -> (
    &'static [&'static str],
    Option<(&'static [&'static str], &'static [&'static str])>,
) {
    match name {
        "token.request" => (&["account_token", "plugin_id"], None),
        "token.revoke" => (&["token_id", "account_id"], None),
        "token.introspect" => (&["token"], None),
        "auth.login" => (&["username", "password"], None),
        "auth.verify" => (&["account_token"], None),
        "users.add" => (&["username", "password"], None),
        "assets.publish" => (
            &["plugin_id", "files"],
            Some((&["files", "0"], &["path", "sha256", "size", "content_type"])),
        ),
        "plugins.key" => (&["plugin_id"], None),
        "data.weather" => (
            &[
                "version",
                "app_id",
                "plugin_token",
                "timestamp",
                "nonce",
                "operation",
                "query",
                "body",
                "verification",
                "signature",
            ],
            Some((&["verification"], &["plugin_id", "user_ip", "device_id"])),
        ),
        "auth.packages.upload" => (
            &["manifest", "staging"],
            Some((
                &["manifest"],
                &[
                    "name",
                    "version",
                    "interface",
                    "sha256",
                    "publisher_key",
                    "signature",
                ],
            )),
        ),
        // No body: the cases add a `pad` field.
        _ => (&["pad"], None),
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

fn mp(v: &Value) -> Mp {
    match v {
        Value::Null => Mp::Nil,
        Value::Bool(b) => Mp::Boolean(*b),
        Value::Number(n) => Mp::from(n.as_u64().expect("unsigned numbers only")),
        Value::String(s) => Mp::from(s.as_str()),
        Value::Array(a) => Mp::Array(a.iter().map(mp).collect()),
        Value::Object(o) => Mp::Map(
            o.iter()
                .map(|(k, v)| (Mp::from(k.as_str()), mp(v)))
                .collect(),
        ),
    }
}

fn write(v: &Mp) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).unwrap();
    out
}

/// `fields` of `v` (a JSON object) as an array, in that order: an absent `body` is an empty
/// `bin`, any other absent field `nil` (optional fields), trailing absent ones left out.
fn as_array(v: &Value, fields: &[&str]) -> Mp {
    let mut items: Vec<Mp> = fields
        .iter()
        .map(|f| match v.get(*f) {
            Some(x) => mp(x),
            None if *f == "body" => Mp::Binary(Vec::new()),
            None => Mp::Nil,
        })
        .collect();
    while items.last() == Some(&Mp::Nil) {
        items.pop();
    }
    Mp::Array(items)
}

/// Paths (JSON pointers) of every string in `v`, map keys excepted.
fn string_paths(v: &Value, here: String, out: &mut Vec<String>) {
    match v {
        Value::String(_) => out.push(here),
        Value::Object(o) => o
            .iter()
            .for_each(|(k, v)| string_paths(v, format!("{here}/{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| string_paths(v, format!("{here}/{i}"), out)),
        _ => {}
    }
}

/// The value at a JSON pointer of an rmpv value built by [`mp`].
fn at<'a>(v: &'a mut Mp, pointer: &str) -> &'a mut Mp {
    pointer.split('/').skip(1).fold(v, |v, step| match v {
        Mp::Map(entries) => {
            &mut entries
                .iter_mut()
                .find(|(k, _)| k.as_str() == Some(step))
                .expect("a key of the probe")
                .1
        }
        Mp::Array(items) => &mut items[step.parse::<usize>().unwrap()],
        other => panic!("no {step} in {other}"),
    })
}

/// The probe, with a `pad` string when the subject takes no body (so there is a string).
fn padded(spec: &Spec) -> Value {
    match spec.field {
        Some(_) => spec.probe.clone(),
        None => with_field(spec, json!("x")),
    }
}

/// The requests of one case, each with a label naming its variant: one for most cases;
/// `BinForStr` sends one per string in the probe, that string as a `bin`.
pub fn requests(spec: &Spec, case: Case) -> Vec<(String, HeaderMap, Vec<u8>)> {
    let mut h = HeaderMap::new();
    let v1 = format!("{}/1", spec.schema);
    h.insert(headers::SCHEMA, v1.as_str());
    let one = |h: HeaderMap, body: Vec<u8>| vec![(String::new(), h, body)];
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
        ArrayBody => write(&as_array(&padded(spec), spec.order)),
        NestedArray => {
            let (path, fields) = spec.nested.expect("a nested struct");
            let pointer: String = path.iter().map(|p| format!("/{p}")).collect();
            let nested = spec.probe.pointer(&pointer).expect("the nested struct");
            let mut body = mp(&spec.probe);
            *at(&mut body, &pointer) = as_array(nested, fields);
            write(&body)
        }
        StrForBin => {
            // The probe with a `body`, sent as a `str` (the field is `bin`).
            let mut body = spec.probe.clone();
            body["body"] = json!("hello");
            write(&mp(&body))
        }
        BinForStr => {
            let probe = padded(spec);
            let mut paths = Vec::new();
            string_paths(&probe, String::new(), &mut paths);
            return paths
                .into_iter()
                .map(|pointer| {
                    let mut body = mp(&probe);
                    let leaf = at(&mut body, &pointer);
                    *leaf = Mp::Binary(leaf.as_str().unwrap().as_bytes().to_vec());
                    (pointer, h.clone(), write(&body))
                })
                .collect();
        }
    };
    one(h, body)
}
