//! The local bundle cache: `<cache_dir>/<plugin_id>/manifest.jws` (the signed manifest of
//! the cached version) and `<cache_dir>/<plugin_id>/files/<path>` (its HTML, CSS and JS).
//!
//! An update stages every changed file in `.staging-<uuid>/` and verifies it; only when all
//! are good does it move them into `files/`, drop files the new version no longer lists,
//! and replace `manifest.jws` (temp file + rename). A failed update leaves the cache as it
//! was (a stray staging directory at most, removed on the next update).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use tessera_schemas::assets::AssetFile;
use tokio::io::AsyncReadExt as _;

use super::{OnProgress, Progress, VerifiedManifest, hex};
use crate::{Client, Error, ErrorKind};

const MANIFEST_FILE: &str = "manifest.jws";
const FILES_DIR: &str = "files";
const STAGING_PREFIX: &str = ".staging-";

/// What [`Client::download_bundle`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleReport {
    /// The manifest version now cached.
    pub version: u64,
    /// Bundle files fetched from the store.
    pub fetched: usize,
    /// Bundle files already in the cache with the right digest.
    pub reused: usize,
    /// Cached files the new version no longer lists, removed.
    pub removed: usize,
    /// Bytes fetched.
    pub bytes: u64,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::context(ErrorKind::Io, format!("{what} {}", path.display()), e)
}

/// SHA-256 of a cached file, or `None` if it is missing or unreadable.
async fn file_digest(path: &Path) -> Option<String> {
    let mut f = tokio::fs::File::open(path).await.ok()?;
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Some(hex(ctx.finish().as_ref()))
}

/// Every regular file under `root`, as `/`-separated relative paths.
fn cached_paths(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for entry in entries.flatten() {
            let rel = rel.join(entry.file_name());
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(rel),
                Ok(_) => {
                    if let Some(s) = rel.to_str() {
                        out.push(s.replace(std::path::MAIN_SEPARATOR, "/"));
                    }
                }
                Err(_) => {}
            }
        }
    }
    out
}

impl Client {
    /// Brings the cached bundle (HTML, CSS, JS) of `plugin_id` under `cache_dir` up to the
    /// latest signed version, fetching only files whose cached bytes differ, verifying
    /// every one. On any error the cache is left as it was.
    pub async fn download_bundle(
        &self,
        plugin_id: &str,
        cache_dir: &Path,
        progress: OnProgress<'_>,
    ) -> Result<BundleReport, Error> {
        let manifest = self.asset_manifest(plugin_id).await?;
        let dir = super::bundle_dir(cache_dir, plugin_id);
        let files_dir = dir.join(FILES_DIR);
        tokio::fs::create_dir_all(&files_dir)
            .await
            .map_err(|e| io("creating", &files_dir, e))?;

        let bundle: Vec<&AssetFile> = manifest
            .claims
            .files
            .iter()
            .filter(|f| f.is_bundle_file())
            .collect();
        let mut report = BundleReport {
            version: manifest.claims.version,
            ..Default::default()
        };
        let mut wanted = Vec::new();
        for f in &bundle {
            // The bytes on disk decide, not the cached manifest: a cache edited or damaged
            // by hand is repaired.
            if file_digest(&files_dir.join(&f.path)).await.as_deref() == Some(f.sha256.as_str()) {
                report.reused += 1;
            } else {
                wanted.push(*f);
            }
        }

        let staging = dir.join(format!("{STAGING_PREFIX}{}", uuid::Uuid::new_v4()));
        let fetched = self.stage(&wanted, &staging, progress).await;
        let result = match fetched {
            Ok(bytes) => {
                report.fetched = wanted.len();
                report.bytes = bytes;
                commit(&manifest, &bundle, &wanted, &staging, &dir, &mut report).await
            }
            Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_dir_all(&staging).await;
        result.map(|()| report)
    }

    /// Fetches and verifies `wanted` into `staging/<index>`; returns the bytes fetched.
    async fn stage(
        &self,
        wanted: &[&AssetFile],
        staging: &Path,
        progress: OnProgress<'_>,
    ) -> Result<u64, Error> {
        let bytes: u64 = wanted.iter().map(|f| f.size).sum();
        progress(Progress::Started {
            files: wanted.len(),
            bytes,
        });
        if wanted.is_empty() {
            return Ok(0);
        }
        tokio::fs::create_dir_all(staging)
            .await
            .map_err(|e| io("creating", staging, e))?;
        for (i, f) in wanted.iter().enumerate() {
            let path = staging.join(i.to_string());
            let mut out = tokio::fs::File::create(&path)
                .await
                .map_err(|e| io("creating", &path, e))?;
            self.read_blob(f, progress, &mut out).await?;
            out.sync_all().await.map_err(|e| io("syncing", &path, e))?;
        }
        Ok(bytes)
    }
}

/// Moves verified files into place, drops what the new version no longer lists, then
/// replaces the cached manifest.
async fn commit(
    manifest: &VerifiedManifest,
    bundle: &[&AssetFile],
    wanted: &[&AssetFile],
    staging: &Path,
    dir: &Path,
    report: &mut BundleReport,
) -> Result<(), Error> {
    let files_dir = dir.join(FILES_DIR);
    let keep: BTreeSet<&str> = bundle.iter().map(|f| f.path.as_str()).collect();
    // Stale files first, so a new `a/b` can replace an old file `a`.
    for rel in cached_paths(&files_dir) {
        if !keep.contains(rel.as_str()) {
            let p = files_dir.join(&rel);
            tokio::fs::remove_file(&p)
                .await
                .map_err(|e| io("removing", &p, e))?;
            report.removed += 1;
        }
    }
    for (i, f) in wanted.iter().enumerate() {
        let to = files_dir.join(&f.path);
        if let Some(parent) = to.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io("creating", parent, e))?;
        }
        // A directory left where the file goes (an old `a/` when `a` is now a file).
        if tokio::fs::metadata(&to).await.is_ok_and(|m| m.is_dir()) {
            let _ = tokio::fs::remove_dir_all(&to).await;
        }
        let from = staging.join(i.to_string());
        tokio::fs::rename(&from, &to)
            .await
            .map_err(|e| io("moving into place", &to, e))?;
    }
    let tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
    tokio::fs::write(&tmp, manifest.jws.as_bytes())
        .await
        .map_err(|e| io("writing", &tmp, e))?;
    let to = dir.join(MANIFEST_FILE);
    tokio::fs::rename(&tmp, &to)
        .await
        .map_err(|e| io("moving into place", &to, e))
}
