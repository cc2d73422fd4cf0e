//! Third-party apps and authentication packages: the app configuration stored in
//! the apps bucket, the package manifest and what it signs, the package index record, and the
//! bodies of the package and node subjects.
//!
//! App configs and manifests are JSON documents (an operator writes them by hand); the
//! index record and the bus bodies are MessagePack like every other message.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::Schema;
use crate::strict;

pub const PACKAGES_UPLOAD: Schema = Schema::v1("auth.packages.upload");
pub const PACKAGES_UPDATED: Schema = Schema::v1("auth.packages.updated");
pub const NODES_JOINED: Schema = Schema::v1("auth.nodes.joined");
pub const NODES_STATUS: Schema = Schema::v1("auth.nodes.status");

/// The package interface version this build speaks (see docs/auth-packages.md).
pub const INTERFACE_VERSION: u32 = 1;
/// Domain separation of the publisher signature.
pub const SIGNATURE_CONTEXT: &str = "tessera-auth-package/1";
pub const MAX_VERSION_LEN: usize = 32;

/// One third-party app: the value of the apps bucket, keyed by `app_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppConfig {
    pub app_id: String,
    /// Host name (or IP) of the third party.
    pub domain: String,
    pub port: u16,
    /// `http` or `https` (default).
    #[serde(default = "default_scheme")]
    pub scheme: String,
    #[serde(default)]
    pub client_id: String,
    /// Where the node finds the client secret: `kv:<key>` (the app-secrets bucket). Written by
    /// `tessera apps put` when the file carries `client_secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<String>,
    /// Name of the authentication package that runs this app's logins.
    pub package: String,
    /// If set, only this version of the package may serve the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_version: Option<String>,
    #[serde(default)]
    pub enabled: bool,
    /// Hosts the package may reach over HTTP (Extism `allowed_hosts`, globs allowed).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Free-form settings handed to the package (paths, scopes, ...).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Per-call time limit (default 2000 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Per-instance memory limit in 64 KiB pages (default 256 = 16 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_pages: Option<u32>,
}

fn default_scheme() -> String {
    "https".to_owned()
}

impl AppConfig {
    /// `scheme://domain:port`, what the package gets as `base_url`.
    pub fn base_url(&self) -> String {
        format!("{}://{}:{}", self.scheme, self.domain, self.port)
    }

    /// Checks the fields a node relies on; the message names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        crate::ids::check("app_id", &self.app_id).map_err(|e| e.to_string())?;
        check_package_name(&self.package)?;
        if let Some(v) = &self.package_version {
            check_version(v)?;
        }
        if !matches!(self.scheme.as_str(), "http" | "https") {
            return Err(format!("scheme {:?} must be http or https", self.scheme));
        }
        // No whitespace or control characters either: the package gets `base_url` as is
        // (found by fuzz/package_manifest: a DEL passed).
        if self.domain.is_empty()
            || self.domain.contains(['/', '@', '?', '#'])
            || self
                .domain
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!("domain {:?} is not a host name", self.domain));
        }
        if self.allowed_hosts.iter().any(|h| h.is_empty()) {
            return Err("allowed_hosts holds an empty entry".into());
        }
        if let Some(r) = &self.secret_ref
            && r.strip_prefix("kv:")
                .is_none_or(|k| crate::ids::check("secret key", k).is_err())
        {
            return Err(format!("secret_ref {r:?} must be kv:<key>"));
        }
        Ok(())
    }
}

/// Package names: `[a-z0-9][a-z0-9-]{0,62}`.
pub fn check_package_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "package name {:?} must match [a-z0-9][a-z0-9-]{{0,62}}",
            name.chars().take(80).collect::<String>()
        ))
    }
}

/// Versions: 1-32 bytes of `[A-Za-z0-9.+-]` (semver-like text).
pub fn check_version(v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= MAX_VERSION_LEN
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'+' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "version {:?} must be 1-{MAX_VERSION_LEN} characters of A-Z a-z 0-9 . + -",
            v.chars().take(40).collect::<String>()
        ))
    }
}

/// The manifest beside a package's `.wasm` (what `tessera packages sign` writes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageManifest {
    #[serde(deserialize_with = "strict::text")]
    pub name: String,
    #[serde(deserialize_with = "strict::text")]
    pub version: String,
    /// The package interface version it implements.
    pub interface: u32,
    /// Lower-case hex SHA-256 of the `.wasm`.
    #[serde(deserialize_with = "strict::text")]
    pub sha256: String,
    /// base64url (no padding) raw Ed25519 public key of the publisher.
    #[serde(deserialize_with = "strict::text")]
    pub publisher_key: String,
    /// base64url (no padding) Ed25519 signature over [`PackageManifest::signed_bytes`].
    #[serde(deserialize_with = "strict::text")]
    pub signature: String,
}

impl PackageManifest {
    /// What the publisher signs: `tessera-auth-package/1\n<name>\n<version>\n<interface>\n<sha256>`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "{SIGNATURE_CONTEXT}\n{}\n{}\n{}\n{}",
            self.name, self.version, self.interface, self.sha256
        )
        .into_bytes()
    }

    /// Shape checks (not the signature): name, version, interface, digest format.
    pub fn validate(&self) -> Result<(), String> {
        check_package_name(&self.name)?;
        check_version(&self.version)?;
        if self.interface != INTERFACE_VERSION {
            return Err(format!(
                "interface {} is not supported (this node speaks {INTERFACE_VERSION})",
                self.interface
            ));
        }
        let hex = self.sha256.len() == 64
            && self
                .sha256
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        if !hex {
            return Err("sha256 must be 64 lower-case hex characters".into());
        }
        Ok(())
    }

    /// Whether two manifests name the same build (name, version, digest).
    pub fn same_build(&self, other: &PackageManifest) -> bool {
        self.name == other.name && self.version == other.version && self.sha256 == other.sha256
    }
}

/// The package index (KV, key = package name): the manifest of the stored copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageRecord {
    pub manifest: PackageManifest,
    /// Object name in the packages object store.
    pub object: String,
    pub size: u64,
    /// Unix seconds.
    pub uploaded_at: u64,
    /// Node id of the auth node that accepted the upload.
    pub uploaded_by: String,
}

/// `auth.packages.upload` (admin -> any auth node): the manifest, and the staging object the
/// `.wasm` was put in (packages exceed the bus's message limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageUploadRequest {
    #[serde(deserialize_with = "strict::map")]
    pub manifest: PackageManifest,
    /// Object name in the staging object store.
    #[serde(deserialize_with = "strict::text")]
    pub staging: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageUploadResponse {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// Whether a previous package of that name was replaced.
    pub replaced: bool,
    /// The node that stored it.
    pub node_id: String,
}

/// `auth.packages.updated` (broadcast to every auth node): the stored package changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackagesUpdated {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// One package as a node has it installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledPackage {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// Whether it is the build the package index holds.
    pub matches_store: bool,
}

/// `auth.nodes.joined` (broadcast, one per node start) and each reply to
/// `auth.nodes.status` (scatter-gather: every node answers an empty request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node_id: String,
    /// Every package in the index is installed and matches.
    pub in_sync: bool,
    pub packages: Vec<InstalledPackage>,
    /// Packages in the index this node has not installed (yet).
    #[serde(default)]
    pub missing: Vec<String>,
    /// Unix seconds.
    pub started_at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions() {
        assert!(check_package_name("http-password").is_ok());
        for bad in ["", "-a", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(check_package_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_version("1.0.0-rc.1+b2").is_ok());
        for bad in ["", "1 0", "1/0", &"1".repeat(33)] {
            assert!(check_version(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn signed_bytes_follow_the_interface() {
        let m = PackageManifest {
            name: "p".into(),
            version: "1.0.0".into(),
            interface: 1,
            sha256: "ab".into(),
            publisher_key: String::new(),
            signature: String::new(),
        };
        assert_eq!(
            m.signed_bytes(),
            b"tessera-auth-package/1\np\n1.0.0\n1\nab".to_vec()
        );
    }

    #[test]
    fn app_config_defaults_and_checks() {
        let app: AppConfig = serde_json::from_str(
            r#"{"app_id":"acme","domain":"127.0.0.1","port":8080,"package":"http-password"}"#,
        )
        .unwrap();
        assert_eq!(app.scheme, "https");
        assert!(!app.enabled);
        assert_eq!(app.base_url(), "https://127.0.0.1:8080");
        assert!(app.validate().is_ok());
        let mut bad = app.clone();
        bad.secret_ref = Some("env:X".into());
        assert!(bad.validate().is_err());
        let mut bad = app.clone();
        bad.domain = "a/b".into();
        assert!(bad.validate().is_err());
        // Regression (fuzz/package_manifest): whitespace and control characters.
        for domain in ["a b", "a\u{7f}b", "a\nb", "a\tb", "a\u{85}b"] {
            let mut bad = app.clone();
            bad.domain = domain.into();
            assert!(bad.validate().is_err(), "{domain:?}");
        }
    }
}
