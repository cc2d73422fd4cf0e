//! Plugin static assets (the "data cache layer") and sealed sensitive data.
//!
//! - Assets: files are stored content-addressed in the object store
//!   [`crate::Subjects::assets_bucket`] under [`blob_name`]; the broker signs a manifest
//!   ([`ManifestClaims`], a compact JWS) per plugin version, keeps every version under
//!   [`manifest_name`] and the latest in the KV bucket
//!   [`crate::Subjects::asset_versions_bucket`].
//! - Plugin keys: each plugin's X25519 public key, registered by the admin in
//!   [`crate::Subjects::plugin_keys_bucket`] ([`PluginKeyRecord`]) and served by `plugins.key`.
//! - Sealed data: [`SealedBox`], an RFC 9180 HPKE single-shot seal to a plugin's key.
//!
//! The exact formats are in docs/protocol.md ("Plugin assets", "Sealed data").

use serde::{Deserialize, Serialize};

use crate::codec::Schema;
use crate::strict;

pub const ASSETS_PUBLISH: Schema = Schema::v1("assets.publish");
pub const PLUGINS_KEY: Schema = Schema::v1("plugins.key");
/// Not a bus message: the body a client app hands to a plugin.
pub const SEALED: Schema = Schema::v1("sealed");

/// `iss` of asset manifests (the broker signs them, as it signs plugin tokens).
pub const MANIFEST_ISSUER: &str = "tessera-broker";
/// `kind` claim of an asset manifest: a plugin token can never pass for a manifest.
pub const MANIFEST_KIND: &str = "asset-manifest/1";
/// A manifest lists at most this many files. The publish request must also fit in
/// [`crate::MAX_MESSAGE_BYTES`] (64 KiB): about 150 bytes per file with 40-byte paths, so a
/// bundle of 256 files with long paths can hit that limit first.
pub const MAX_ASSET_FILES: usize = 256;
/// Longest asset path, in bytes.
pub const MAX_ASSET_PATH: usize = 255;
/// Longest content type, in bytes.
pub const MAX_CONTENT_TYPE: usize = 127;

/// The HPKE suite of plugin keys and sealed boxes: DHKEM(X25519, HKDF-SHA256) (KEM 0x0020),
/// HKDF-SHA256 (KDF 0x0001), ChaCha20-Poly1305 (AEAD 0x0003), base mode.
pub const SEAL_SUITE: &str = "X25519-SHA256-CHACHA20POLY1305";
/// HPKE `info` of a sealed box is this, then the plugin id (ASCII): a box sealed for one
/// plugin does not open as another's, even under the same key.
pub const SEAL_INFO_PREFIX: &str = "tessera-seal/1:";

/// Object name of a blob: `blob/<lowercase hex sha256 of its bytes>`.
pub fn blob_name(sha256_hex: &str) -> String {
    format!("blob/{sha256_hex}")
}

/// Object name of one signed manifest version: `manifest/<plugin_id>/<version>`.
pub fn manifest_name(plugin_id: &str, version: u64) -> String {
    format!("manifest/{plugin_id}/{version}")
}

/// The HPKE `info` for sealing to `plugin_id`.
pub fn seal_info(plugin_id: &str) -> Vec<u8> {
    format!("{SEAL_INFO_PREFIX}{plugin_id}").into_bytes()
}

/// One file of a plugin's bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetFile {
    /// Relative path, `/`-separated (see [`check_path`]).
    #[serde(deserialize_with = "strict::text")]
    pub path: String,
    /// Lowercase hex SHA-256 of the file's bytes (64 characters).
    #[serde(deserialize_with = "strict::text")]
    pub sha256: String,
    pub size: u64,
    #[serde(deserialize_with = "strict::text")]
    pub content_type: String,
}

impl AssetFile {
    /// HTML, CSS and JavaScript are downloaded with the bundle; everything else (images,
    /// fonts, ...) is fetched on demand.
    pub fn is_bundle_file(&self) -> bool {
        let essence = self
            .content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        matches!(
            essence.as_str(),
            "text/html" | "text/css" | "text/javascript" | "application/javascript"
        )
    }
}

/// `assets.publish` (admin -> broker): every blob is already in the object store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetsPublishRequest {
    #[serde(deserialize_with = "strict::text")]
    pub plugin_id: String,
    #[serde(deserialize_with = "strict::maps")]
    pub files: Vec<AssetFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetsPublishResponse {
    pub plugin_id: String,
    /// 1 for the first publish of a plugin, then +1 each time.
    pub version: u64,
    /// How many files the manifest lists, and their total size.
    pub files: u32,
    pub bytes: u64,
    /// The key id the manifest is signed with.
    pub kid: String,
}

/// Claims of a signed asset manifest (a compact JWS, `alg: EdDSA`, with the broker's `kid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestClaims {
    /// [`MANIFEST_ISSUER`].
    pub iss: String,
    /// [`MANIFEST_KIND`].
    pub kind: String,
    pub plugin_id: String,
    pub version: u64,
    /// Unix seconds.
    pub iat: u64,
    /// Sorted by path.
    pub files: Vec<AssetFile>,
}

/// Checks one file entry: path, digest form, content type.
pub fn check_file(f: &AssetFile) -> Result<(), String> {
    check_path(&f.path)?;
    if f.sha256.len() != 64
        || !f
            .sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "{:?}: sha256 must be 64 lowercase hex digits",
            f.path
        ));
    }
    if f.content_type.is_empty()
        || f.content_type.len() > MAX_CONTENT_TYPE
        || !f.content_type.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        return Err(format!(
            "{:?}: content_type must be 1-{MAX_CONTENT_TYPE} printable ASCII characters",
            f.path
        ));
    }
    Ok(())
}

/// An asset path: 1-255 bytes, `/`-separated segments, none empty, `.` or `..`, no
/// backslash, NUL or control character, not starting with `/`. So a path joined under a
/// cache directory always stays inside it.
pub fn check_path(path: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("asset path {path:?}: {why}"));
    if path.is_empty() || path.len() > MAX_ASSET_PATH {
        return bad("must be 1-255 bytes");
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return bad("control characters and backslashes are not allowed");
    }
    for seg in path.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return bad("empty, `.` and `..` segments are not allowed");
        }
    }
    Ok(())
}

/// Checks a whole file list: 1..=[`MAX_ASSET_FILES`] valid entries with distinct paths.
pub fn check_files(files: &[AssetFile]) -> Result<(), String> {
    if files.is_empty() {
        return Err("no files: a bundle needs at least one".into());
    }
    if files.len() > MAX_ASSET_FILES {
        return Err(format!(
            "{} files: a bundle holds at most {MAX_ASSET_FILES}",
            files.len()
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in files {
        check_file(f)?;
        if !seen.insert(f.path.as_str()) {
            return Err(format!("{:?} is listed twice", f.path));
        }
    }
    Ok(())
}

/// `plugins.key` (anyone -> broker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginKeyRequest {
    #[serde(deserialize_with = "strict::text")]
    pub plugin_id: String,
}

/// The value of a plugin-keys KV entry, MessagePack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginKeyRecord {
    /// Base64url (no padding) of the 32-byte X25519 public key.
    pub public_key: String,
    /// [`SEAL_SUITE`].
    pub suite: String,
    /// Unix seconds.
    pub created_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginKeyResponse {
    pub plugin_id: String,
    pub public_key: String,
    pub suite: String,
    pub created_at: u64,
}

/// Sensitive data sealed to a plugin's public key (MessagePack map).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBox {
    /// [`SEAL_SUITE`].
    pub suite: String,
    /// HPKE encapsulated key (the sender's ephemeral X25519 public key, 32 bytes).
    #[serde(with = "serde_bytes")]
    pub enc: Vec<u8>,
    /// HPKE ciphertext: the plaintext's length plus a 16-byte tag.
    #[serde(with = "serde_bytes")]
    pub ct: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, ct: &str) -> AssetFile {
        AssetFile {
            path: path.into(),
            sha256: "a".repeat(64),
            size: 1,
            content_type: ct.into(),
        }
    }

    #[test]
    fn paths() {
        for ok in [
            "index.html",
            "css/app.css",
            "img/a b.png",
            "x/.well-known/y",
        ] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/./b",
            "a\\b",
            "a/",
            "a\nb",
            &"x".repeat(256),
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_lists() {
        assert!(check_files(&[]).is_err());
        assert!(check_files(&[file("a", "text/html"), file("a", "text/css")]).is_err());
        let mut f = file("a", "text/html");
        f.sha256 = "A".repeat(64);
        assert!(check_files(&[f]).is_err());
        assert!(check_files(&[file("a", "")]).is_err());
        assert!(check_files(&[file("a", "text/html"), file("b", "image/png")]).is_ok());
    }

    #[test]
    fn bundle_files_are_html_css_js() {
        assert!(file("a", "text/html; charset=utf-8").is_bundle_file());
        assert!(file("a", "text/css").is_bundle_file());
        assert!(file("a", "application/javascript").is_bundle_file());
        assert!(file("a", "text/javascript").is_bundle_file());
        assert!(!file("a", "image/png").is_bundle_file());
        assert!(!file("a", "application/json").is_bundle_file());
    }
}
