//! Publishing a plugin's static files (admin role): hash every file, upload the blobs the
//! store does not already hold (content addressing: an unchanged file is never stored
//! twice), then ask the broker to sign the manifest (`assets.publish`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use aws_lc_rs::digest;
use futures::StreamExt as _;
use tessera_schemas::assets::{
    ASSETS_PUBLISH, AssetFile, AssetsPublishRequest, AssetsPublishResponse, blob_name, check_files,
};
use tessera_schemas::{codec, ids};
use tokio::io::{AsyncRead, AsyncReadExt as _, ReadBuf};

use crate::assets::{OnProgress, Progress, hex};
use crate::{Client, Error, ErrorKind};

/// Blob lookups in flight while deciding what to upload.
const LOOKUP_CONCURRENCY: usize = 16;

/// What [`Client::publish_assets`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishReport {
    /// The version the broker signed.
    pub version: u64,
    pub kid: String,
    /// Files in the manifest, and their total size.
    pub files: usize,
    pub bytes: u64,
    /// Blobs uploaded, and their size.
    pub stored: usize,
    pub bytes_stored: u64,
    /// Blobs the store already held (unchanged files), not uploaded again.
    pub skipped: usize,
}

/// The content type recorded for a path, by its extension. HTML, CSS and JavaScript are
/// what clients keep in their bundle cache; the rest is fetched on demand.
pub fn content_type_for(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "txt" => "text/plain",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// The SHA-256 the object store recorded for an object (`SHA-256=<base64url>`), as hex.
fn object_digest_hex(info: &async_nats::jetstream::object_store::ObjectInfo) -> Option<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
    let b64 = info.digest.as_deref()?.strip_prefix("SHA-256=")?;
    let bytes = URL_SAFE
        .decode(b64)
        .or_else(|_| URL_SAFE_NO_PAD.decode(b64))
        .ok()?;
    Some(hex(&bytes))
}

/// Every regular file under `dir` (symbolic links are not followed), sorted, as
/// (`/`-separated relative path, absolute path).
fn walk(dir: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| Error::context(ErrorKind::InvalidInput, dir.display(), e))?;
    if !meta.is_dir() {
        return Err(Error::invalid_input(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        let entries =
            std::fs::read_dir(&abs).map_err(|e| Error::context(ErrorKind::Io, abs.display(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::context(ErrorKind::Io, abs.display(), e))?;
            let rel = rel.join(entry.file_name());
            let kind = entry
                .file_type()
                .map_err(|e| Error::context(ErrorKind::Io, rel.display(), e))?;
            if kind.is_dir() {
                stack.push(rel);
            } else if kind.is_file() {
                let name = rel.to_str().ok_or_else(|| {
                    Error::invalid_input(format!("{}: not a UTF-8 file name", rel.display()))
                })?;
                out.push((name.replace(std::path::MAIN_SEPARATOR, "/"), dir.join(&rel)));
            }
        }
    }
    out.sort();
    Ok(out)
}

async fn hash_file(path: &Path) -> Result<(String, u64), Error> {
    let io = |e: std::io::Error| Error::context(ErrorKind::Io, path.display(), e);
    let mut f = tokio::fs::File::open(path).await.map_err(io)?;
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        ctx.update(&buf[..n]);
    }
    Ok((hex(ctx.finish().as_ref()), size))
}

/// An `AsyncRead` that reports how many bytes went through it.
struct Counting<'a, R> {
    inner: R,
    progress: OnProgress<'a>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counting<'_, R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            (self.progress)(Progress::Bytes(n as u64));
        }
        poll
    }
}

impl Client {
    /// Publishes every file under `dir` as the next version of `plugin_id`'s assets (admin
    /// role). Blobs the store already holds are not uploaded again. The plugin must be
    /// routed (`not_found` otherwise); an empty directory is `bad_request`.
    pub async fn publish_assets(
        &self,
        plugin_id: &str,
        dir: &Path,
        progress: OnProgress<'_>,
    ) -> Result<PublishReport, Error> {
        ids::check("plugin_id", plugin_id)?;
        let found = walk(dir)?;
        if found.is_empty() {
            return Err(Error::invalid_input(format!(
                "{}: no files to publish",
                dir.display()
            )));
        }
        let mut files = Vec::with_capacity(found.len());
        let mut sources = BTreeMap::new();
        for (path, abs) in found {
            let (sha256, size) = hash_file(&abs).await?;
            sources.entry(sha256.clone()).or_insert(abs);
            files.push(AssetFile {
                content_type: content_type_for(&path).to_owned(),
                path,
                sha256,
                size,
            });
        }
        check_files(&files).map_err(Error::invalid_input)?;
        let request = AssetsPublishRequest {
            plugin_id: plugin_id.to_owned(),
            files,
        };
        let encoded = codec::encode(&request).len();
        if encoded > codec::MAX_MESSAGE_BYTES {
            return Err(Error::invalid_input(format!(
                "the file list takes {encoded} bytes, over the {} byte request limit: fewer files or shorter paths",
                codec::MAX_MESSAGE_BYTES
            )));
        }

        // Create the store if no broker has yet (like routes, so the order never matters).
        let store = tessera_bus_config::provision::assets_store(
            &self.js(),
            self.subjects(),
            self.durability(),
        )
        .await
        .map_err(Error::unavailable)?;
        let sizes: BTreeMap<&str, u64> = request
            .files
            .iter()
            .map(|f| (f.sha256.as_str(), f.size))
            .collect();
        let lookups: Vec<_> = sizes
            .iter()
            .map(|(sha, size)| {
                let store = store.clone();
                let (sha, size) = (sha.to_string(), *size);
                async move {
                    // Size and digest: a damaged blob is uploaded again, so a re-publish
                    // repairs it.
                    let have = store.info(blob_name(&sha)).await.is_ok_and(|i| {
                        !i.deleted
                            && i.size as u64 == size
                            && object_digest_hex(&i).as_deref() == Some(sha.as_str())
                    });
                    (sha, have)
                }
            })
            .collect();
        let present: Vec<(String, bool)> = futures::stream::iter(lookups)
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .collect()
            .await;
        let missing: Vec<&String> = present
            .iter()
            .filter(|(_, have)| !have)
            .map(|(sha, _)| sha)
            .collect();
        let bytes_stored: u64 = missing.iter().map(|s| sizes[s.as_str()]).sum();
        progress(Progress::Started {
            files: missing.len(),
            bytes: bytes_stored,
        });
        for sha in &missing {
            let path = &sources[sha.as_str()];
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| Error::context(ErrorKind::Io, path.display(), e))?;
            let mut reader = Counting {
                inner: file,
                progress,
            };
            store
                .put(blob_name(sha).as_str(), &mut reader)
                .await
                .map_err(Error::unavailable)?;
            progress(Progress::FileDone(sha));
        }

        let reply: AssetsPublishResponse = self
            .call(self.subjects().assets_publish(), ASSETS_PUBLISH, &request)
            .await?;
        Ok(PublishReport {
            version: reply.version,
            kid: reply.kid,
            files: request.files.len(),
            bytes: request.files.iter().map(|f| f.size).sum(),
            stored: missing.len(),
            bytes_stored,
            skipped: sizes.len() - missing.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::content_type_for;

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type_for("a/index.HTML"), "text/html");
        assert_eq!(content_type_for("app.mjs"), "text/javascript");
        assert_eq!(content_type_for("logo.png"), "image/png");
        assert_eq!(content_type_for("README"), "application/octet-stream");
    }
}
