//! Every request struct against bodies that differ from a good one in one place: a `str`
//! sent as `bin`, a `bin` sent as `str`, a map sent as an array. Each must be refused with
//! `bad_request` by [`crate::codec::decode`], which the workers' `Incoming::decode` calls.

use rmpv::Value as Mp;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::assets::{AssetsPublishRequest, PluginKeyRequest};
use crate::codec::decode;
use crate::data::{DataRequest, Verification};
use crate::messages::{
    IntrospectRequest, LoginRequest, RevokeRequest, TokenRequest, UsersAddRequest, VerifyRequest,
};
use crate::packages::{PackageManifest, PackageUploadRequest};
use crate::{ErrorCode, WireError};

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

fn bytes(v: &Mp) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).unwrap();
    out
}

/// The value at `path` (map keys; array indexes as numbers).
fn at<'a>(v: &'a mut Mp, path: &[String]) -> &'a mut Mp {
    path.iter().fold(v, |v, step| match v {
        Mp::Map(entries) => {
            &mut entries
                .iter_mut()
                .find(|(k, _)| k.as_str() == Some(step))
                .unwrap()
                .1
        }
        Mp::Array(items) => &mut items[step.parse::<usize>().unwrap()],
        other => panic!("no {step} in {other}"),
    })
}

/// Paths of every `str` inside `v`, map keys excepted.
fn str_paths(v: &Mp, here: Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Mp::String(_) => out.push(here),
        Mp::Map(entries) => {
            for (k, v) in entries {
                let mut p = here.clone();
                p.push(k.as_str().unwrap().to_owned());
                str_paths(v, p, out);
            }
        }
        Mp::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let mut p = here.clone();
                p.push(i.to_string());
                str_paths(v, p, out);
            }
        }
        _ => {}
    }
}

fn refused<T: DeserializeOwned + std::fmt::Debug>(body: &[u8], what: &str) {
    match decode::<T>(body) {
        Ok(v) => panic!("{what}: accepted as {v:?}"),
        Err(e) => assert_eq!(WireError::from(e).code, ErrorCode::BadRequest, "{what}"),
    }
}

/// The good body decodes; each of its strings sent as `bin`, and the whole body sent as an
/// array of its values, is refused.
fn strict_about<T: DeserializeOwned + std::fmt::Debug>(good: Value) {
    let good = mp(&good);
    decode::<T>(&bytes(&good)).expect("the good body");
    let mut paths = Vec::new();
    str_paths(&good, Vec::new(), &mut paths);
    assert!(!paths.is_empty());
    for path in paths {
        let mut body = good.clone();
        let leaf = at(&mut body, &path);
        *leaf = Mp::Binary(leaf.as_str().unwrap().as_bytes().to_vec());
        refused::<T>(&bytes(&body), &format!("bin at {path:?}"));
    }
    let Mp::Map(entries) = &good else {
        unreachable!()
    };
    let array = Mp::Array(entries.iter().map(|(_, v)| v.clone()).collect());
    refused::<T>(&bytes(&array), "the body as an array");
}

fn data_packet() -> Value {
    json!({
        "version": 1, "app_id": "demo-app", "plugin_token": "a.b.c",
        "timestamp": 1_764_000_000_000u64, "nonce": "bm9uY2Utbm9uY2Utbm9uY2U",
        "operation": "now", "query": "city=Oslo",
        "verification": {"plugin_id": "weather", "user_ip": "192.0.2.1", "device_id": "d1"},
        "signature": "sig"
    })
}

fn manifest() -> Value {
    json!({"name": "p", "version": "1.0.0", "interface": 1, "sha256": "ab",
           "publisher_key": "k", "signature": "s"})
}

#[test]
fn every_request_refuses_bin_for_str_and_arrays_for_maps() {
    strict_about::<TokenRequest>(json!({
        "account_token": "t", "plugin_id": "weather", "idempotency_key": "k",
        "device_id": "d", "user_ip": "192.0.2.1"}));
    strict_about::<VerifyRequest>(json!({"account_token": "t"}));
    strict_about::<UsersAddRequest>(json!({"username": "ann", "password": "pw"}));
    strict_about::<LoginRequest>(json!({"username": "ann", "password": "pw"}));
    strict_about::<LoginRequest>(json!({"app_id": "acme", "params": {"username": "ann"}}));
    strict_about::<RevokeRequest>(json!({"token_id": "x"}));
    strict_about::<RevokeRequest>(json!({"account_id": "x"}));
    strict_about::<IntrospectRequest>(json!({"token": "t"}));
    strict_about::<PluginKeyRequest>(json!({"plugin_id": "weather"}));
    strict_about::<AssetsPublishRequest>(json!({"plugin_id": "weather", "files": [
        {"path": "a.html", "sha256": "ab", "size": 3, "content_type": "text/html"}]}));
    strict_about::<PackageUploadRequest>(json!({"manifest": manifest(), "staging": "x"}));
    strict_about::<DataRequest>(data_packet());
}

#[test]
fn a_map_key_sent_as_bin_is_refused() {
    let mut body = mp(&json!({"app_id": "acme", "params": {"username": "ann"}}));
    let Mp::Map(params) = at(&mut body, &["params".into()]) else {
        unreachable!()
    };
    params[0].0 = Mp::Binary(b"username".to_vec());
    refused::<LoginRequest>(&bytes(&body), "a params key as bin");
}

#[test]
fn the_data_body_is_bin_only() {
    let mut body = mp(&data_packet());
    let Mp::Map(fields) = &mut body else {
        unreachable!()
    };
    fields.push((Mp::from("body"), Mp::Binary(b"hello".to_vec())));
    let p: DataRequest = decode(&bytes(&body)).unwrap();
    assert_eq!(p.body, b"hello");
    *at(&mut body, &["body".into()]) = Mp::from("hello");
    refused::<DataRequest>(&bytes(&body), "body as str");
    *at(&mut body, &["body".into()]) = Mp::Array(vec![Mp::from(104u64), Mp::from(105u64)]);
    refused::<DataRequest>(&bytes(&body), "body as an array of integers");
    // Absent is empty (the field has a default).
    let p: DataRequest = decode(&bytes(&mp(&data_packet()))).unwrap();
    assert!(p.body.is_empty());
}

/// Nested structs as arrays of their values: serde alone takes them (shown on the nested
/// type decoded by itself with rmp-serde); inside a request they are refused.
#[test]
fn nested_structs_must_be_maps() {
    let verification = Mp::Array(vec![
        Mp::from("weather"),
        Mp::from("192.0.2.1"),
        Mp::from("d1"),
    ]);
    assert!(rmp_serde::from_slice::<Verification>(&bytes(&verification)).is_ok());
    let mut body = mp(&data_packet());
    *at(&mut body, &["verification".into()]) = verification;
    refused::<DataRequest>(&bytes(&body), "verification as an array");

    let mut body = mp(&json!({"manifest": manifest(), "staging": "x"}));
    let Mp::Map(fields) = at(&mut body, &["manifest".into()]).clone() else {
        unreachable!()
    };
    *at(&mut body, &["manifest".into()]) = Mp::Array(fields.into_iter().map(|(_, v)| v).collect());
    refused::<PackageUploadRequest>(&bytes(&body), "manifest as an array");

    let file = Mp::Array(vec![
        Mp::from("a.html"),
        Mp::from("ab"),
        Mp::from(3u64),
        Mp::from("text/html"),
    ]);
    let mut body = mp(&json!({"plugin_id": "weather", "files": []}));
    *at(&mut body, &["files".into()]) = Mp::Array(vec![file]);
    refused::<AssetsPublishRequest>(&bytes(&body), "a file as an array");
    *at(&mut body, &["files".into()]) = Mp::Binary(vec![0x80]);
    refused::<AssetsPublishRequest>(&bytes(&body), "files as bin");
}

/// Optional strings: absent or `nil` is none; a `str` is some; nothing else.
#[test]
fn optional_strings_take_str_or_nil() {
    let req: TokenRequest = decode(&bytes(&mp(&json!({
        "account_token": "t", "plugin_id": "p", "idempotency_key": null}))))
    .unwrap();
    assert!(req.idempotency_key.is_none() && req.device_id.is_none());
    let req: TokenRequest = decode(&bytes(&mp(&json!({
        "account_token": "t", "plugin_id": "p", "idempotency_key": "k"}))))
    .unwrap();
    assert_eq!(req.idempotency_key.as_deref(), Some("k"));
    refused::<TokenRequest>(
        &bytes(&mp(
            &json!({"account_token": "t", "plugin_id": "p", "idempotency_key": 7}),
        )),
        "an integer key",
    );
}

/// The same structs are read from JSON too (package manifests on disk, asset files in a
/// signed manifest's claims): the strict decoders take JSON strings.
#[test]
fn json_documents_still_decode() {
    let m: PackageManifest = serde_json::from_value(manifest()).unwrap();
    assert_eq!(m.name, "p");
    let f: crate::assets::AssetFile = serde_json::from_value(
        json!({"path": "a.html", "sha256": "ab", "size": 3, "content_type": "text/html"}),
    )
    .unwrap();
    assert_eq!(f.path, "a.html");
}

/// What we write, we read: a packet with every field set round-trips through `encode`
/// (`str`, `bin`, maps) and `decode`.
#[test]
fn our_own_encoding_round_trips() {
    let p = DataRequest {
        version: 1,
        app_id: "demo-app".into(),
        plugin_token: "a.b.c".into(),
        timestamp: 1,
        nonce: "n".into(),
        operation: "now".into(),
        query: "q".into(),
        body: vec![0, 1, 0xff],
        verification: Verification {
            plugin_id: "weather".into(),
            user_ip: "192.0.2.1".into(),
            device_id: "d1".into(),
        },
        signature: "s".into(),
    };
    assert_eq!(decode::<DataRequest>(&crate::codec::encode(&p)).unwrap(), p);
}
