//! Plugin static assets: the client side of the data cache layer.
//!
//! A plugin's files live content-addressed in the assets object store (`blob/<sha256>`);
//! the latest manifest (a JWS the broker signed, listing path -> sha256, size, content type)
//! sits in the versions bucket under the plugin id. A client:
//!
//! 1. reads the manifest and verifies it with the broker's JWKS ([`Client::asset_manifest`]);
//! 2. keeps the HTML/CSS/JS in a cache directory, fetching only files whose bytes on disk
//!    do not have the manifest's digest ([`Client::download_bundle`]); every fetched blob is
//!    checked against the manifest before anything in the cache changes;
//! 3. fetches anything else (images) on demand, verified ([`Client::fetch_asset`]).
//!
//! Operators publish a directory with `Client::publish_assets` (feature `operator`,
//! `operator/assets_publish.rs`).
//!
//! ```no_run
//! # async fn demo(client: tessera_sdk::Client) -> Result<(), tessera_sdk::Error> {
//! let report = client
//!     .download_bundle("weather", std::path::Path::new("cache"), &|_| {})
//!     .await?;
//! println!("version {}: {} fetched, {} reused", report.version, report.fetched, report.reused);
//! let logo = client.fetch_asset("weather", "img/logo.png").await?;
//! # drop(logo); Ok(()) }
//! ```

mod cache;
mod direct;
mod manifest;

use std::path::PathBuf;

use aws_lc_rs::digest;
use bytes::Bytes;
use tessera_schemas::assets::{AssetFile, ManifestClaims, blob_name};
use tessera_schemas::{ErrorCode, WireError, ids};

pub use cache::BundleReport;

use crate::{Client, Error, ErrorKind};

/// What a long publish or download reports as it goes (to drive a progress bar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress<'a> {
    /// The work is known: this many files and bytes will move.
    Started { files: usize, bytes: u64 },
    /// This many more bytes moved.
    Bytes(u64),
    /// One file is done: in a download its path, in a publish the uploaded blob's sha256.
    FileDone(&'a str),
}

/// A progress callback; `&|_| {}` for none.
pub type OnProgress<'a> = &'a (dyn Fn(Progress<'_>) + Send + Sync);

/// A manifest whose signature, issuer, kind and plugin id have been checked.
#[derive(Debug, Clone)]
pub struct VerifiedManifest {
    pub claims: ManifestClaims,
    /// The compact JWS as the broker signed it.
    pub jws: String,
}

impl VerifiedManifest {
    pub fn file(&self, path: &str) -> Option<&AssetFile> {
        self.claims.files.iter().find(|f| f.path == path)
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn bad_manifest(plugin_id: &str, message: impl Into<String>) -> Error {
    Error::new(ErrorKind::BadManifest, message).about(plugin_id)
}

/// Verifies a signed manifest against a JWKS: EdDSA with a known `kid`, our issuer and
/// kind, the expected plugin, and a file list that could not escape a cache directory.
pub fn verify_manifest(
    jws: &str,
    keys: &jsonwebtoken::jwk::JwkSet,
    plugin_id: &str,
) -> Result<VerifiedManifest, Error> {
    let claims = manifest::check_manifest(jws, keys, plugin_id)
        .map_err(|message| bad_manifest(plugin_id, message))?;
    Ok(VerifiedManifest {
        claims,
        jws: jws.to_owned(),
    })
}

impl Client {
    /// The latest manifest of `plugin_id`, verified with the broker's published keys.
    /// `not_found` if nothing was published for it.
    pub async fn asset_manifest(&self, plugin_id: &str) -> Result<VerifiedManifest, Error> {
        ids::check("plugin_id", plugin_id)?;
        let not_found = || {
            Error::rejected(WireError::new(
                ErrorCode::NotFound,
                format!("no assets published for plugin {plugin_id:?}"),
            ))
        };
        let jws = direct::kv_get(
            self.nats(),
            &self.subjects().js_api_import(),
            &self.subjects().asset_versions_bucket(),
            plugin_id,
        )
        .await?
        .ok_or_else(not_found)?;
        let jws = std::str::from_utf8(&jws).map_err(|_| bad_manifest(plugin_id, "not UTF-8"))?;
        let keys = self.keys().await?;
        verify_manifest(jws, &keys, plugin_id)
    }

    /// One file of the latest version, verified against the signed manifest (for images
    /// and anything else not kept in the bundle cache).
    pub async fn fetch_asset(&self, plugin_id: &str, path: &str) -> Result<Bytes, Error> {
        let manifest = self.asset_manifest(plugin_id).await?;
        self.fetch_asset_of(&manifest, path, &|_| {}).await
    }

    /// One file of a manifest already verified (saves the manifest round trips).
    pub async fn fetch_asset_of(
        &self,
        manifest: &VerifiedManifest,
        path: &str,
        progress: OnProgress<'_>,
    ) -> Result<Bytes, Error> {
        let file = manifest.file(path).ok_or_else(|| {
            Error::rejected(WireError::new(
                ErrorCode::NotFound,
                format!(
                    "{path:?} is not in version {} of {:?}",
                    manifest.claims.version, manifest.claims.plugin_id
                ),
            ))
        })?;
        let mut out = Vec::with_capacity(file.size.min(1 << 24) as usize);
        self.read_blob(file, progress, &mut out).await?;
        Ok(out.into())
    }
}

impl Client {
    /// Reads `file`'s blob into `out`, reporting progress, and checks its size and SHA-256
    /// against the manifest entry. On a mismatch `out` holds bytes that must not be used.
    async fn read_blob(
        &self,
        file: &AssetFile,
        progress: OnProgress<'_>,
        out: &mut (impl tokio::io::AsyncWrite + Unpin),
    ) -> Result<(), Error> {
        use tokio::io::AsyncWriteExt as _;
        let corrupted = |why: String| Error::new(ErrorKind::Corrupted, why).about(&file.path);
        let mut object = direct::Object::open(
            self.nats(),
            &self.subjects().js_api_import(),
            &self.subjects().assets_bucket(),
            &blob_name(&file.sha256),
        )
        .await?
        .ok_or_else(|| corrupted("its blob is missing from the store".into()))?;
        if object.info.size as u64 != file.size {
            return Err(corrupted(format!(
                "the store holds {} bytes, the manifest says {}",
                object.info.size, file.size
            )));
        }
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut total = 0u64;
        while let Some(chunk) = object.next_chunk().await? {
            total += chunk.len() as u64;
            // Never take more than the manifest promises.
            if total > file.size {
                return Err(corrupted(format!(
                    "more than the {} bytes the manifest says",
                    file.size
                )));
            }
            ctx.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(|e| Error::caused(ErrorKind::Io, e))?;
            progress(Progress::Bytes(chunk.len() as u64));
        }
        let actual = hex(ctx.finish().as_ref());
        if total != file.size || actual != file.sha256 {
            return Err(corrupted(format!(
                "expected {} bytes with sha256 {}, got {total} bytes with sha256 {actual}",
                file.size, file.sha256
            )));
        }
        out.flush()
            .await
            .map_err(|e| Error::caused(ErrorKind::Io, e))?;
        progress(Progress::FileDone(&file.path));
        Ok(())
    }
}

/// Where the bundle of `plugin_id` is cached under `cache_dir`.
pub fn bundle_dir(cache_dir: &std::path::Path, plugin_id: &str) -> PathBuf {
    cache_dir.join(plugin_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_protocol::signing::SigningKey;
    use tessera_schemas::assets::{MANIFEST_ISSUER, MANIFEST_KIND};

    fn claims(path: &str) -> ManifestClaims {
        ManifestClaims {
            iss: MANIFEST_ISSUER.into(),
            kind: MANIFEST_KIND.into(),
            plugin_id: "weather".into(),
            version: 1,
            iat: 0,
            files: vec![AssetFile {
                path: path.into(),
                sha256: sha256_hex(b"x"),
                size: 1,
                content_type: "text/html".into(),
            }],
        }
    }

    fn jwks(key: &SigningKey) -> jsonwebtoken::jwk::JwkSet {
        jsonwebtoken::jwk::JwkSet {
            keys: vec![key.public_jwk()],
        }
    }

    #[test]
    fn a_signed_manifest_verifies_only_as_what_it_is() {
        let key = SigningKey::generate();
        let keys = jwks(&key);
        let jws = key.sign(&claims("index.html")).unwrap();
        let ok = verify_manifest(&jws, &keys, "weather").unwrap();
        assert_eq!(ok.claims, claims("index.html"));
        let refused = |jws: &str, plugin: &str| {
            matches!(
                verify_manifest(jws, &keys, plugin),
                Err(e) if e.kind() == ErrorKind::BadManifest
            )
        };
        assert!(refused(&jws, "other"), "another plugin");
        assert!(refused("not a jws", "weather"));
        // Even the platform's own signature does not make an unsafe path acceptable.
        assert!(refused(
            &key.sign(&claims("../../etc/x")).unwrap(),
            "weather"
        ));
        let mut c = claims("index.html");
        c.kind = "something-else".into();
        assert!(refused(&key.sign(&c).unwrap(), "weather"), "wrong kind");
        let mut c = claims("index.html");
        c.iss = "tessera-auth".into();
        assert!(refused(&key.sign(&c).unwrap(), "weather"), "wrong issuer");
        let other = SigningKey::generate();
        assert!(
            refused(&other.sign(&claims("index.html")).unwrap(), "weather"),
            "unknown key"
        );
    }
}
