//! Conformance vectors: JSON files of inputs and the exact outputs the Rust implementation
//! gives for them (signing strings, HMACs, key ids, inbox prefixes, idempotency hashes,
//! sealed boxes, signed manifests, error replies), and inputs it must refuse, with why. An
//! implementation in another language reads them and checks itself without a running stack.
//! `tessera-dev conformance --out conformance` writes them; conformance/README.md says what
//! each file holds.
//!
//! # Layout
//!
//! - [`data_packets`]: §8.1 signing strings, HMACs, packets as sent, and refused packets.
//! - [`identities`]: §4/§3.7 key ids, §3.11 client inboxes and passwords, §3.4 idempotency.
//! - [`sealed`]: §9.5 sealed boxes, made with a deterministic ephemeral key.
//! - [`manifests`]: §9.2 signed asset manifests and the ones a client must refuse.
//! - [`errors`]: §2 error replies, encoded and decoded.
//!
//! Architecture invariant: the output is a pure function of the constants here (fixed keys
//! and seeds, no clock, no system randomness), and every JSON object is written with sorted
//! keys, so regenerating gives the same bytes; a unit test compares it with the checked-in
//! folder.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

mod data_packets;
mod errors;
mod identities;
mod manifests;
mod sealed;
#[cfg(test)]
mod tests;

/// How to regenerate the folder, written into every file.
pub const REGENERATE: &str = "tessera-dev conformance --out conformance";

/// One vector file: its name in the folder and its JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorFile {
    pub name: &'static str,
    pub text: String,
}

/// Every vector file, in a fixed order.
pub fn generate() -> Vec<VectorFile> {
    [
        data_packets::file(),
        identities::jwk_thumbprints(),
        identities::client_connections(),
        identities::idempotency(),
        sealed::file(),
        manifests::file(),
        errors::file(),
    ]
    .into_iter()
    .map(|(name, value)| VectorFile {
        name,
        text: to_text(&value),
    })
    .collect()
}

/// Writes every vector file into `out` (created if missing) and returns their names.
pub fn write(out: &Path) -> std::io::Result<Vec<&'static str>> {
    std::fs::create_dir_all(out)?;
    let mut names = Vec::new();
    for f in generate() {
        std::fs::write(out.join(f.name), f.text)?;
        names.push(f.name);
    }
    Ok(names)
}

/// The common head of every file: what it holds, the protocol section it tests, how to
/// regenerate it, then its cases.
fn vector_file(description: &str, section: &str, cases: Vec<Value>) -> Value {
    json!({
        "description": description,
        "section": section,
        "regenerate": REGENERATE,
        "cases": cases,
    })
}

/// Pretty JSON with every object's keys sorted (whatever serde_json's map type), two-space
/// indent, a final newline.
fn to_text(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(&sorted(value)).expect("JSON values serialise");
    text.push('\n');
    text
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `n` bytes that follow from `label` (SHA-256 of `label` and a counter, concatenated): the
/// fixed "random" inputs of the vectors, readable from the label alone.
fn fixed_bytes(label: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 32);
    let mut counter = 0u32;
    while out.len() < n {
        let block = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("{label}/{counter}").as_bytes(),
        );
        out.extend_from_slice(block.as_ref());
        counter += 1;
    }
    out.truncate(n);
    out
}
