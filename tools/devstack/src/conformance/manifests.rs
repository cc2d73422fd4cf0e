//! §9.2 signed asset manifests: a compact JWS (EdDSA, the broker's key) that verifies
//! against the given JWKS for the given plugin, and manifests a client must refuse.

use serde::Serialize;
use serde_json::{Value, json};
use tessera_protocol::signing::{PublishedKey, SigningKey};
use tessera_schemas::assets::{AssetFile, MANIFEST_ISSUER, MANIFEST_KIND, ManifestClaims};

use super::identities::signing_key;
use super::{b64url, fixed_bytes, vector_file};

const IAT: u64 = 1_764_000_000;

fn asset(path: &str, content: &[u8], content_type: &str) -> AssetFile {
    AssetFile {
        path: path.into(),
        sha256: tessera_protocol::data_sign::sha256_hex(content),
        size: content.len() as u64,
        content_type: content_type.into(),
    }
}

fn manifest(plugin_id: &str, version: u64, files: Vec<AssetFile>) -> ManifestClaims {
    ManifestClaims {
        iss: MANIFEST_ISSUER.into(),
        kind: MANIFEST_KIND.into(),
        plugin_id: plugin_id.into(),
        version,
        iat: IAT,
        files,
    }
}

fn bundle() -> Vec<AssetFile> {
    vec![
        asset("css/app.css", b"body{margin:0}\n", "text/css"),
        asset("img/logo.png", b"\x89PNG\r\n\x1a\n", "image/png"),
        asset(
            "index.html",
            b"<!doctype html><title>w</title>\n",
            "text/html; charset=utf-8",
        ),
    ]
}

fn sign<T: Serialize>(key: &SigningKey, claims: &T) -> String {
    key.sign(claims).expect("claims serialise")
}

fn jwks(key: &SigningKey) -> Value {
    let published = PublishedKey {
        jwk: key.public_jwk(),
        expires_at: Some(IAT + 3600),
    };
    json!({"keys": [published.to_value()]})
}

/// The JWS with its payload replaced and the signature kept.
fn with_payload<T: Serialize>(jws: &str, claims: &T) -> String {
    let mut parts = jws.split('.');
    let header = parts.next().expect("a header");
    let _payload = parts.next();
    let signature = parts.next().expect("a signature");
    let payload = b64url(&serde_json::to_vec(claims).expect("claims serialise"));
    format!("{header}.{payload}.{signature}")
}

fn valid(name: &str, key: &SigningKey, claims: &ManifestClaims) -> Value {
    let jws = sign(key, claims);
    let mut parts = jws.split('.');
    let header_b64 = parts.next().expect("a header");
    let payload_b64 = parts.next().expect("a payload");
    let header = String::from_utf8(base64_decode(header_b64)).expect("JSON header");
    json!({
        "name": name,
        "kind": "valid",
        "plugin_id": claims.plugin_id,
        "jwks": jwks(key),
        "jws": jws,
        "expect": {
            "verifies": true,
            "header_json": header,
            "payload_json": String::from_utf8(base64_decode(payload_b64)).expect("JSON payload"),
            "signing_input": format!("{header_b64}.{payload_b64}"),
            "claims": serde_json::to_value(claims).expect("claims serialise"),
        },
    })
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("our own base64url")
}

fn refused(
    name: &str,
    why: &str,
    key: &SigningKey,
    plugin_id: &str,
    jws: String,
    reason: &str,
) -> Value {
    json!({
        "name": name,
        "kind": "refused",
        "why": why,
        "plugin_id": plugin_id,
        "jwks": jwks(key),
        "jws": jws,
        "expect": {"verifies": false, "reason": reason},
    })
}

pub(super) fn file() -> (&'static str, Value) {
    let broker = signing_key(&fixed_bytes("manifests/broker-key", 32));
    let stranger = signing_key(&fixed_bytes("manifests/other-key", 32));
    let good = manifest("weather", 3, bundle());
    let one_file = manifest(
        "news",
        1,
        vec![asset("img/ä b.png", b"not really a png", "image/png")],
    );
    let with = |f: fn(&mut ManifestClaims)| {
        let mut m = good.clone();
        f(&mut m);
        sign(&broker, &m)
    };
    let mut cases = vec![
        valid("three_files", &broker, &good),
        valid("one_file_non_ascii_path", &broker, &one_file),
    ];
    let plugin_token = json!({
        "iss": MANIFEST_ISSUER, "sub": "6f1c2a9e-3b7d-4c1e-9a55-0d2f8e4b7c31",
        "plugin_id": "weather", "aud": ["ps1"], "jti": "0b7e4c1a-2f3d-4e5f-8a9b-1c2d3e4f5a6b",
        "iat": IAT, "exp": IAT + 900,
    });
    let mut newer = good.clone();
    newer.version = 4;
    let refusals = [
        (
            "other_plugin",
            "a genuine manifest of plugin `news`, asked for `weather`",
            "weather",
            sign(&broker, &one_file),
            "plugin",
        ),
        (
            "wrong_kind",
            "kind `asset-manifest/2`",
            "weather",
            with(|m| m.kind = "asset-manifest/2".into()),
            "kind",
        ),
        (
            "plugin_token_as_manifest",
            "a plugin token's claims (no kind, no files), signed by the same key",
            "weather",
            sign(&broker, &plugin_token),
            "kind",
        ),
        (
            "wrong_issuer",
            "iss `tessera-auth`",
            "weather",
            with(|m| m.iss = "tessera-auth".into()),
            "issuer",
        ),
        (
            "path_with_dotdot",
            "a path `../index.html` leaves the cache directory",
            "weather",
            with(|m| m.files[0].path = "../index.html".into()),
            "files",
        ),
        (
            "path_absolute",
            "a path `/etc/passwd`",
            "weather",
            with(|m| m.files[0].path = "/etc/passwd".into()),
            "files",
        ),
        (
            "path_with_backslash",
            "a path `css\\app.css`",
            "weather",
            with(|m| m.files[0].path = "css\\app.css".into()),
            "files",
        ),
        (
            "path_with_empty_segment",
            "a path `css//app.css`",
            "weather",
            with(|m| m.files[0].path = "css//app.css".into()),
            "files",
        ),
        (
            "path_listed_twice",
            "two entries with one path",
            "weather",
            with(|m| m.files[1].path = m.files[0].path.clone()),
            "files",
        ),
        (
            "no_files",
            "an empty file list",
            "weather",
            with(|m| m.files.clear()),
            "files",
        ),
        (
            "uppercase_sha256",
            "sha256 in uppercase hex",
            "weather",
            with(|m| m.files[0].sha256 = m.files[0].sha256.to_ascii_uppercase()),
            "files",
        ),
        (
            "unknown_kid",
            "signed by a key the JWKS does not list",
            "weather",
            sign(&stranger, &good),
            "kid",
        ),
        (
            "payload_swapped",
            "version 4's payload under version 3's signature",
            "weather",
            with_payload(&sign(&broker, &good), &newer),
            "signature",
        ),
    ];
    for (name, why, plugin_id, jws, reason) in refusals {
        cases.push(refused(name, why, &broker, plugin_id, jws, reason));
    }
    (
        "asset_manifests.json",
        vector_file(
            "Signed asset manifests: a compact JWS, header {typ: JWT, alg: EdDSA, kid}, signed \
             with the broker's Ed25519 key over signing_input (base64url header `.` base64url \
             payload). Verify jws with the keys of jwks (as `P.keys` answers) for plugin_id: \
             the kid must be listed, alg EdDSA, the signature must hold, iss \
             `tessera-broker`, kind `asset-manifest/1`, plugin_id the one asked for, and the \
             file list valid (1-256 files, distinct paths of 1-255 bytes, `/`-separated, no \
             empty, `.` or `..` segment, no leading `/`, backslash or control character; sha256 \
             64 lowercase hex digits; content_type 1-127 printable ASCII). A valid case gives \
             the claims; a refused one the first rule it breaks, in that order (reason: kid, \
             signature, issuer, kind, plugin or files).",
            "docs/protocol.md §9.2",
            cases,
        ),
    )
}
