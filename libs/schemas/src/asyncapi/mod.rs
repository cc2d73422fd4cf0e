//! docs/asyncapi.json (the AsyncAPI 3.0 description of the bus API) against this crate, so
//! the two cannot drift:
//!
//! - every subject a [`Subjects`](crate::Subjects) function builds (wildcards aside) is a
//!   channel address, and every channel address is one of them, with its parameters;
//! - every MessagePack message is one of this crate's types: its payload's field names,
//!   which are required (derived by decoding a sample without the field) and their types
//!   (from the sample's MessagePack) match;
//! - every schema name this crate defines is some message's `x-tessera-schema`, and back;
//! - every `$ref` in the document resolves.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::codec;

mod samples;
use samples::check_every_message;

fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/asyncapi.json");
    let text = std::fs::read_to_string(path).expect("docs/asyncapi.json");
    serde_json::from_str(&text).expect("docs/asyncapi.json is JSON")
}

fn source(file: &str) -> String {
    let path = format!("{}/src/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Resolves a local `$ref` (`#/a/b/c`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = doc
                .pointer(r.strip_prefix('#').unwrap_or(r))
                .unwrap_or_else(|| panic!("{r} does not resolve"));
            resolve(doc, target)
        }
        None => v,
    }
}

/// The subject templates `Subjects` builds with `self.sub(...)`: `{prefix}.` + the literal or
/// format string, positional `{}` named after the function's parameters. Wildcard subjects
/// (subscriptions and permissions over the channels) and the JetStream API prefix are not
/// channels.
fn subject_templates() -> BTreeSet<String> {
    let src = source("subjects.rs");
    let mut out = BTreeSet::new();
    for chunk in src.split("pub fn ").skip(1) {
        let body = &chunk[..chunk.find("\n    }").unwrap_or(chunk.len())];
        let Some(at) = body.find("self.sub(") else {
            continue;
        };
        let call = &body[at..];
        let start = call.find('"').expect("a string literal") + 1;
        let end = start + call[start..].find('"').expect("a closed literal");
        let mut template = call[start..end].to_owned();
        let params: Vec<&str> = body
            [body.find('(').expect("params") + 1..body.find(')').expect("params")]
            .split(',')
            .filter_map(|p| p.trim().split_once(':').map(|(n, _)| n.trim()))
            .collect();
        for name in params {
            if template.contains("{}") {
                template = template.replacen("{}", &format!("{{{name}}}"), 1);
            }
        }
        if template.contains('*') || template.contains('>') || template == "js" {
            continue;
        }
        out.insert(format!("{{prefix}}.{template}"));
    }
    out
}

#[test]
fn every_subject_is_a_channel_and_every_channel_a_subject() {
    let doc = document();
    let templates = subject_templates();
    assert!(
        templates.len() >= 18,
        "the parse lost subjects: {templates:?}"
    );
    let mut addresses = BTreeSet::new();
    for (id, channel) in doc["channels"].as_object().expect("channels") {
        let Some(address) = channel["address"].as_str() else {
            continue; // the requester's inbox: an address the requester makes up
        };
        addresses.insert(address.to_owned());
        let named: BTreeSet<&str> = address
            .split('{')
            .skip(1)
            .map(|p| &p[..p.find('}').expect("a closed parameter")])
            .collect();
        let declared: BTreeSet<&str> = channel["parameters"]
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(named, declared, "channel {id}: parameters");
    }
    assert_eq!(
        addresses, templates,
        "channel addresses vs Subjects (docs/asyncapi.json)"
    );
}

/// One field of a message as this crate reads and writes it.
#[derive(Debug, PartialEq)]
struct Field {
    required: bool,
    value: rmpv::Value,
}

/// The fields of `sample` (every optional field filled in), and whether each is required:
/// a field is required when the sample without it does not decode.
fn fields_of<T: Serialize + DeserializeOwned>(sample: &T) -> BTreeMap<String, Field> {
    let bytes = codec::encode(sample);
    let rmpv::Value::Map(map) = rmpv::decode::read_value(&mut bytes.as_slice()).expect("msgpack")
    else {
        panic!("a message encodes as a map")
    };
    let mut out = BTreeMap::new();
    for (i, (key, value)) in map.iter().enumerate() {
        let mut without = map.clone();
        without.remove(i);
        let mut body = Vec::new();
        rmpv::encode::write_value(&mut body, &rmpv::Value::Map(without)).expect("to a Vec");
        let required = codec::decode::<T>(&body).is_err();
        let name = key.as_str().expect("a field name").to_owned();
        out.insert(
            name,
            Field {
                required,
                value: value.clone(),
            },
        );
    }
    out
}

/// Checks a MessagePack value against a JSON Schema's type (and, for maps, its property
/// names; for arrays, their items).
fn check_type(doc: &Value, value: &rmpv::Value, schema: &Value, at: &str) {
    let schema = resolve(doc, schema);
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => panic!("{at}: no type in {schema}"),
    };
    let binary = schema["format"] == "binary";
    let got = match value {
        rmpv::Value::String(_) if !binary => "string",
        rmpv::Value::Binary(_) if binary => "string",
        rmpv::Value::String(_) => "string (str, but the document says bin)",
        rmpv::Value::Binary(_) => "string (bin, but the document says str)",
        rmpv::Value::Integer(_) => "integer",
        rmpv::Value::Boolean(_) => "boolean",
        rmpv::Value::Array(_) => "array",
        rmpv::Value::Map(_) => "object",
        other => panic!("{at}: a sample holds {other}"),
    };
    assert!(
        types.contains(&got),
        "{at}: {got}, the document says {types:?}"
    );
    match value {
        rmpv::Value::Map(entries) if schema.get("properties").is_some() => {
            let keys: BTreeSet<&str> = entries.iter().filter_map(|(k, _)| k.as_str()).collect();
            let props = schema["properties"].as_object().expect("properties");
            let documented: BTreeSet<&str> = props.keys().map(String::as_str).collect();
            assert_eq!(keys, documented, "{at}: field names");
            for (k, v) in entries {
                let k = k.as_str().expect("a name");
                check_type(doc, v, &props[k], &format!("{at}.{k}"));
            }
        }
        rmpv::Value::Array(items) => {
            for item in items {
                check_type(doc, item, &schema["items"], &format!("{at}[]"));
            }
        }
        _ => {}
    }
}

/// Checks message samples against the document, remembering which ids it checked.
struct Checker<'a> {
    doc: &'a Value,
    checked: BTreeSet<String>,
}

impl Checker<'_> {
    fn check<T: Serialize + DeserializeOwned>(&mut self, id: &str, sample: T) {
        check_message(self.doc, id, sample);
        self.checked.insert(id.to_owned());
    }
}

fn check_message<T: Serialize + DeserializeOwned>(doc: &Value, id: &str, sample: T) {
    let message = resolve(doc, &doc["components"]["messages"][id]);
    assert!(message.is_object(), "no message {id} in docs/asyncapi.json");
    let payload = resolve(doc, &message["payload"]);
    let fields = fields_of(&sample);
    let documented: BTreeSet<&str> = payload["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{id}: payload without properties"))
        .keys()
        .map(String::as_str)
        .collect();
    let ours: BTreeSet<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(ours, documented, "{id}: field names");
    let required: BTreeSet<&str> = payload["required"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let ours_required: BTreeSet<&str> = fields
        .iter()
        .filter(|(_, f)| f.required)
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(ours_required, required, "{id}: required fields");
    for (name, field) in &fields {
        check_type(
            doc,
            &field.value,
            &payload["properties"][name],
            &format!("{id}.{name}"),
        );
    }
}

#[test]
fn every_message_payload_matches_its_rust_type() {
    let doc = document();
    let checked = check_every_message(&doc);
    let msgpack: BTreeSet<String> = doc["components"]["messages"]
        .as_object()
        .expect("messages")
        .iter()
        .filter(|(_, m)| {
            m.get("contentType")
                .map_or(doc["defaultContentType"].as_str(), Value::as_str)
                == Some(codec::MSGPACK_CONTENT_TYPE)
        })
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(
        msgpack, checked,
        "MessagePack messages of docs/asyncapi.json vs the samples here"
    );
}

#[test]
fn every_schema_name_is_a_message_and_back() {
    let doc = document();
    let mut defined = BTreeSet::new();
    for file in [
        "messages.rs",
        "data.rs",
        "packages.rs",
        "assets.rs",
        "audit.rs",
    ] {
        let text = source(file);
        for (at, _) in text.match_indices("Schema::v1(\"") {
            let rest = &text[at + 12..];
            defined.insert(format!("{}/1", &rest[..rest.find('"').expect("closed")]));
        }
    }
    let documented: BTreeSet<String> = doc["components"]["messages"]
        .as_object()
        .expect("messages")
        .values()
        .filter_map(|m| m["x-tessera-schema"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        defined, documented,
        "schema names: Rust vs docs/asyncapi.json"
    );
}

#[test]
fn every_reference_resolves() {
    fn walk(doc: &Value, v: &Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    assert!(doc.pointer(&r[1..]).is_some(), "{r} does not resolve");
                }
                map.values().for_each(|x| walk(doc, x));
            }
            Value::Array(items) => items.iter().for_each(|x| walk(doc, x)),
            _ => {}
        }
    }
    let doc = document();
    assert_eq!(doc["asyncapi"], "3.0.0");
    walk(&doc, &doc);
}
