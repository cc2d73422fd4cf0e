//! Authentication packages on one auth node.
//!
//! - `manifest`: trusted publisher, Ed25519 signature, SHA-256 digest.
//! - `store`: the shared store (object store + index bucket) and files under the plugin path.
//! - `runtime`: Extism, one compiled plugin and warm pool per app.
//! - `sync`: install everything before serving (node join), then converge on the store by
//!   broadcast, index watch and a periodic pass; answer `auth.nodes.status`.
//! - `upload`: `auth.packages.upload`.
//!
//! The hot path ([`Packages::runtime_for`]) compares the installed build with the watched
//! index record in memory and `stat`s the installed file; no store round trip per login.

pub mod manifest;
pub mod runtime;
pub mod store;
pub mod sync;
pub mod upload;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use async_nats::jetstream::{self, object_store::ObjectStore};
use tessera_bus_config::provision;
use tessera_runtime::Shutdown;
use tessera_runtime::audit::Auditor;
use tessera_runtime::watched::WatchedKv;
use tessera_schemas::packages::{
    AppConfig, InstalledPackage, NodeStatus, PackageManifest, PackageRecord,
};
use tessera_schemas::{ErrorCode, WireError, codec};
use tokio::sync::Notify;

use crate::apps::Secret;
use crate::config::AuthConfig;
use runtime::AppRuntime;
use store::FileStamp;

/// A package as this node has it installed.
pub struct Installed {
    pub manifest: PackageManifest,
    pub path: PathBuf,
    pub stamp: FileStamp,
    pub wasm: Arc<Vec<u8>>,
}

impl Installed {
    /// Whether the file on disk is still the one this node wrote (size and mtime).
    pub fn on_disk(&self) -> bool {
        FileStamp::of(&self.path).is_ok_and(|s| s == self.stamp)
    }
}

pub struct Packages {
    pub node_id: String,
    plugin_path: PathBuf,
    trusted: Vec<[u8; 32]>,
    pool: usize,
    index: WatchedKv<PackageRecord>,
    objects: ObjectStore,
    staging: ObjectStore,
    installed: RwLock<HashMap<String, Arc<Installed>>>,
    runtimes: RwLock<HashMap<String, Arc<AppRuntime>>>,
    /// Serialises compiles (Cranelift is CPU-heavy; two at once only compete).
    compiling: tokio::sync::Mutex<()>,
    /// Wakes the sync task: a broadcast, an index change, or a mismatch seen by a login.
    wake: Notify,
    started_at: u64,
    /// Installs and removals on this node are audit events.
    auditor: Auditor,
}

impl Packages {
    pub async fn start(
        js: &jetstream::Context,
        config: &AuthConfig,
        auditor: Auditor,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Arc<Packages>> {
        let s = &config.subjects;
        let d = config.durability;
        let index_kv = provision::package_index_bucket(js, s, d).await?;
        let objects = provision::packages_store(js, s, d).await?;
        let staging = provision::package_staging_store(js, s, d).await?;
        let index = WatchedKv::start(
            index_kv,
            |b| codec::decode::<PackageRecord>(b).map_err(|e| e.to_string()),
            shutdown.clone(),
        )
        .await?;
        std::fs::create_dir_all(&config.plugin_path)?;
        Ok(Arc::new(Packages {
            node_id: config.node_id.clone(),
            plugin_path: config.plugin_path.clone(),
            trusted: config.trusted_keys.clone(),
            pool: config.package_pool,
            index,
            objects,
            staging,
            installed: RwLock::default(),
            runtimes: RwLock::default(),
            compiling: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            started_at: tessera_protocol::now_unix(),
            auditor,
        }))
    }

    /// Asks the sync task for a pass (cheap; coalesces).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn installed(&self, name: &str) -> Option<Arc<Installed>> {
        self.installed
            .read()
            .expect("lock poisoned")
            .get(name)
            .cloned()
    }

    /// The consistency check, then the app's warm runtime.
    ///
    /// In memory: the watched index record against the installed build (name, version,
    /// digest) and the app's version pin; on disk: one `stat` of the installed file. On any
    /// difference: `package_mismatch` (retryable) and a reinstall from the stored copy.
    pub async fn runtime_for(
        &self,
        app: &Arc<AppConfig>,
        secret: Secret,
    ) -> Result<Arc<AppRuntime>, WireError> {
        let name = &app.package;
        let stored = match self.index.get(name) {
            Some(r) => Some(r),
            // Not seen by the watch yet: one direct read (a package uploaded a moment ago).
            None => self.index.get_or_fetch(name).await.map_err(|e| {
                tracing::warn!(error = %e, "package index failed");
                WireError::new(ErrorCode::Unavailable, "package index unavailable")
            })?,
        };
        let Some(stored) = stored else {
            return Err(WireError::new(
                ErrorCode::PackageFailed,
                format!(
                    "app {}: package {name} is not in the package store",
                    app.app_id
                ),
            ));
        };
        if let Some(pin) = &app.package_version
            && *pin != stored.manifest.version
        {
            return Err(WireError::new(
                ErrorCode::PackageFailed,
                format!(
                    "app {}: pins {name} {pin}, the store holds {}",
                    app.app_id, stored.manifest.version
                ),
            ));
        }
        let installed = self.installed(name);
        let consistent = installed
            .as_ref()
            .is_some_and(|i| i.manifest.same_build(&stored.manifest) && i.on_disk());
        let Some(installed) = installed.filter(|_| consistent) else {
            self.wake();
            return Err(WireError::new(
                ErrorCode::PackageMismatch,
                format!(
                    "app {}: installed {name} differs from the stored {} ({}); reinstalling",
                    app.app_id,
                    stored.manifest.version,
                    &stored.manifest.sha256[..12.min(stored.manifest.sha256.len())]
                ),
            ));
        };
        let cached = self
            .runtimes
            .read()
            .expect("lock poisoned")
            .get(&app.app_id)
            .cloned();
        if let Some(rt) = cached.filter(|rt| rt.serves(app, &installed.manifest, &secret)) {
            return Ok(rt);
        }
        self.build_runtime(app.clone(), secret, installed).await
    }

    async fn build_runtime(
        &self,
        app: Arc<AppConfig>,
        secret: Secret,
        installed: Arc<Installed>,
    ) -> Result<Arc<AppRuntime>, WireError> {
        let _one = self.compiling.lock().await;
        // Another request may have built it while this one waited.
        if let Some(rt) = self
            .runtimes
            .read()
            .expect("lock poisoned")
            .get(&app.app_id)
            .filter(|rt| rt.serves(&app, &installed.manifest, &secret))
        {
            return Ok(rt.clone());
        }
        let pool = self.pool;
        let app_id = app.app_id.clone();
        let rt = tokio::task::spawn_blocking(move || {
            AppRuntime::build(
                app,
                secret,
                installed.manifest.clone(),
                &installed.wasm,
                pool,
            )
        })
        .await
        .map_err(|e| WireError::new(ErrorCode::Internal, e.to_string()))??;
        let rt = Arc::new(rt);
        tracing::info!(app = %app_id, package = %rt.package.name, version = %rt.package.version, "package runtime ready");
        self.runtimes
            .write()
            .expect("lock poisoned")
            .insert(app_id, rt.clone());
        Ok(rt)
    }

    /// What `auth.nodes.status` and `auth.nodes.joined` carry.
    pub fn status(&self) -> NodeStatus {
        let installed: Vec<Arc<Installed>> = {
            let map = self.installed.read().expect("lock poisoned");
            map.values().cloned().collect()
        };
        let mut packages: Vec<InstalledPackage> = installed
            .iter()
            .map(|i| InstalledPackage {
                name: i.manifest.name.clone(),
                version: i.manifest.version.clone(),
                sha256: i.manifest.sha256.clone(),
                matches_store: self
                    .index
                    .get(&i.manifest.name)
                    .is_some_and(|r| r.manifest.same_build(&i.manifest))
                    && i.on_disk(),
            })
            .collect();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        let missing: Vec<String> = self
            .index
            .snapshot()
            .into_iter()
            .map(|(name, _)| name)
            .filter(|n| !packages.iter().any(|p| &p.name == n))
            .collect();
        NodeStatus {
            node_id: self.node_id.clone(),
            in_sync: missing.is_empty() && packages.iter().all(|p| p.matches_store),
            packages,
            missing,
            started_at: self.started_at,
        }
    }
}

/// The package build a manifest names, as the audit stream records it.
fn audit_package(m: &PackageManifest) -> tessera_schemas::audit::AuditPackage {
    tessera_schemas::audit::AuditPackage {
        name: m.name.clone(),
        version: m.version.clone(),
        sha256: m.sha256.clone(),
    }
}
