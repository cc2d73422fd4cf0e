//! The shared store (object store + index bucket) and the node's plugin path on disk.
//!
//! On disk a package is `<plugin_path>/<name>/<version>-<sha256>.wasm` with its manifest at
//! `<...>.json`. Files are written to a temporary name in the same directory and renamed, so
//! a reader never sees half a package.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_nats::jetstream::object_store::ObjectStore;
use tessera_schemas::packages::PackageManifest;
use tokio::io::AsyncReadExt;

use super::runtime::MAX_PACKAGE_BYTES;

/// Reads a whole object, refusing one larger than [`MAX_PACKAGE_BYTES`].
pub async fn read_object(store: &ObjectStore, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let mut object = match store.get(name).await {
        Ok(o) => o,
        Err(e) if e.kind() == async_nats::jetstream::object_store::GetErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let size = object.info().size;
    if size > MAX_PACKAGE_BYTES {
        anyhow::bail!("object {name} is {size} bytes, more than {MAX_PACKAGE_BYTES}");
    }
    let mut buf = Vec::with_capacity(size);
    (&mut object)
        .take(MAX_PACKAGE_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .await?;
    if buf.len() > MAX_PACKAGE_BYTES {
        anyhow::bail!("object {name} is larger than {MAX_PACKAGE_BYTES} bytes");
    }
    Ok(Some(buf))
}

/// Object name of a stored build: one object per build, so the index never points at a
/// half-replaced object; the previous build's object is deleted after the index moves on.
pub fn object_name(m: &PackageManifest) -> String {
    format!("{}/{}", m.name, m.sha256)
}

/// Size and modification time: what the hot path compares to notice a changed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub len: u64,
    pub modified: Option<SystemTime>,
}

impl FileStamp {
    pub fn of(path: &Path) -> std::io::Result<FileStamp> {
        let meta = std::fs::metadata(path)?;
        Ok(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

pub fn wasm_path(plugin_path: &Path, m: &PackageManifest) -> PathBuf {
    plugin_path
        .join(&m.name)
        .join(format!("{}-{}.wasm", m.version, m.sha256))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Writes the package and its manifest under the plugin path, removes other builds of the
/// same package, and returns the file's stamp. Blocking.
pub fn install_files(
    plugin_path: &Path,
    m: &PackageManifest,
    wasm: &[u8],
) -> std::io::Result<(PathBuf, FileStamp)> {
    let path = wasm_path(plugin_path, m);
    let dir = path.parent().expect("wasm_path has a parent");
    std::fs::create_dir_all(dir)?;
    write_atomically(&path, wasm)?;
    let manifest = serde_json::to_vec_pretty(m).expect("a manifest serialises");
    write_atomically(&path.with_extension("json"), &manifest)?;
    let keep = path.file_stem().map(|s| s.to_owned());
    for entry in std::fs::read_dir(dir)?.flatten() {
        let p = entry.path();
        if p.file_stem().map(|s| s.to_owned()) != keep {
            let _ = std::fs::remove_file(&p);
        }
    }
    let stamp = FileStamp::of(&path)?;
    Ok((path, stamp))
}

/// The bytes of an installed build, if the file is there and matches its digest. Blocking.
pub fn read_installed(plugin_path: &Path, m: &PackageManifest) -> Option<(Vec<u8>, FileStamp)> {
    let path = wasm_path(plugin_path, m);
    let bytes = std::fs::read(&path).ok()?;
    if super::manifest::sha256_hex(&bytes) != m.sha256 {
        return None;
    }
    Some((bytes, FileStamp::of(&path).ok()?))
}
