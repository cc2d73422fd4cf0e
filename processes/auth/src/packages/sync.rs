//! Keeping a node's installed packages equal to the store.
//!
//! One task does every install, one pass at a time. A pass reads the package index from the
//! store itself (the source of truth, not the watched view) and, for each package whose
//! installed build differs or whose file changed on disk, fetches the stored copy, checks
//! its signature and digest, and installs it. Passes are triggered by the
//! `auth.packages.updated` broadcast, by the index watch, by a login that saw a mismatch, and
//! by a timer; so a node that missed a broadcast converges anyway.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::{StreamExt, TryStreamExt};
use tessera_runtime::Shutdown;
use tessera_schemas::audit::{AuditKind, AuditOutcome, AuditRole};
use tessera_schemas::packages::{NODES_JOINED, NODES_STATUS, PackageRecord};
use tessera_schemas::{Subjects, WireError, codec, headers};

use super::store::{self, FileStamp};
use super::{Installed, Packages, manifest};

impl Packages {
    /// The index as the store holds it now.
    async fn stored_records(&self) -> anyhow::Result<Vec<PackageRecord>> {
        let kv = self.index.store();
        let keys: Vec<String> = kv.keys().await?.try_collect().await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(bytes) = kv.get(&key).await? {
                match codec::decode::<PackageRecord>(&bytes) {
                    Ok(r) => out.push(r),
                    Err(e) => {
                        tracing::warn!(package = %key, error = %e, "undecodable index record")
                    }
                }
            }
        }
        Ok(out)
    }

    /// One reconcile pass. Returns how many packages it (re)installed.
    pub async fn reconcile(&self) -> anyhow::Result<usize> {
        let records = self.stored_records().await?;
        let mut changed = 0;
        for record in &records {
            let name = &record.manifest.name;
            let current = self.installed(name);
            let ok = match current.filter(|i| i.manifest.same_build(&record.manifest)) {
                // The hot path only `stat`s the file; a pass also re-hashes it, so a change
                // that kept size and mtime is caught here (a few hundred KiB per package).
                Some(i) if i.on_disk() => {
                    let (path, want) = (i.path.clone(), i.manifest.sha256.clone());
                    tokio::task::spawn_blocking(move || {
                        std::fs::read(&path).is_ok_and(|b| manifest::sha256_hex(&b) == want)
                    })
                    .await
                    .unwrap_or(false)
                }
                _ => false,
            };
            if ok {
                continue;
            }
            match self.install(record).await {
                Ok(()) => changed += 1,
                Err(e) => {
                    tracing::warn!(package = %name, version = %record.manifest.version, error = %format!("{e:#}"), "install failed; will retry")
                }
            }
        }
        // Packages deleted from the store are uninstalled.
        let stale: Vec<String> = {
            let map = self.installed.read().expect("lock poisoned");
            map.keys()
                .filter(|n| !records.iter().any(|r| &r.manifest.name == *n))
                .cloned()
                .collect()
        };
        for name in stale {
            let removed = self.installed.write().expect("lock poisoned").remove(&name);
            let _ = std::fs::remove_dir_all(self.plugin_path.join(&name));
            changed += 1;
            if let Some(old) = removed {
                let mut event = self
                    .auditor
                    .event(AuditKind::PackageRemoved, AuditOutcome::Ok);
                event.actor.role = Some(AuditRole::Node);
                event.target.package = Some(super::audit_package(&old.manifest));
                self.auditor.emit(event);
            }
        }
        Ok(changed)
    }

    /// Installs one stored build: from the plugin path if an intact copy is there, else from
    /// the object store. The record must carry a trusted signature and the bytes its digest.
    pub async fn install(&self, record: &PackageRecord) -> anyhow::Result<()> {
        let m = &record.manifest;
        manifest::verify(m, &self.trusted).map_err(|e| anyhow::anyhow!(e.message))?;
        let (plugin_path, mc) = (self.plugin_path.clone(), m.clone());
        let local =
            tokio::task::spawn_blocking(move || store::read_installed(&plugin_path, &mc)).await?;
        let (wasm, path, stamp) = match local {
            // Only reuse a file this node did not see change under it.
            Some((bytes, stamp))
                if self
                    .installed(&m.name)
                    .is_none_or(|i| !i.manifest.same_build(m)) =>
            {
                (bytes, store::wasm_path(&self.plugin_path, m), stamp)
            }
            _ => {
                let bytes = store::read_object(&self.objects, &record.object)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("object {} is missing", record.object))?;
                manifest::check_digest(m, &bytes).map_err(|e| anyhow::anyhow!(e.message))?;
                let (plugin_path, mc) = (self.plugin_path.clone(), m.clone());
                let (bytes, (path, stamp)) = tokio::task::spawn_blocking(move || {
                    let r = store::install_files(&plugin_path, &mc, &bytes);
                    r.map(|r| (bytes, r))
                })
                .await??;
                (bytes, path, stamp)
            }
        };
        self.put_installed(m.clone(), path, stamp, wasm);
        Ok(())
    }

    pub(super) fn put_installed(
        &self,
        manifest: tessera_schemas::packages::PackageManifest,
        path: std::path::PathBuf,
        stamp: FileStamp,
        wasm: Vec<u8>,
    ) {
        tracing::info!(package = %manifest.name, version = %manifest.version, sha256 = %manifest.sha256, path = %path.display(), "package installed");
        // Every install on this node (at join, after an upload, by a sync pass) is audited.
        let mut event = self
            .auditor
            .event(AuditKind::PackageInstalled, AuditOutcome::Ok);
        event.actor.role = Some(AuditRole::Node);
        event.target.package = Some(super::audit_package(&manifest));
        self.auditor.emit(event);
        let name = manifest.name.clone();
        self.installed.write().expect("lock poisoned").insert(
            name,
            Arc::new(Installed {
                manifest,
                path,
                stamp,
                wasm: Arc::new(wasm),
            }),
        );
    }
}

/// Runs until `shutdown`: passes on wake-ups, index changes and the timer.
pub fn spawn_sync(
    packages: Arc<Packages>,
    interval: Duration,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = packages.wake.notified() => {}
                _ = tick.tick() => {}
            }
            match packages.reconcile().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(changed = n, "packages reconciled"),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "reconcile failed; will retry");
                    // A store hiccup: try again soon rather than at the next tick.
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => packages.wake(),
                    }
                }
            }
        }
    })
}

/// Follows the index bucket and wakes the sync task on every change.
pub async fn spawn_index_watch(packages: Arc<Packages>, shutdown: Shutdown) -> anyhow::Result<()> {
    let mut watch: kv::Watch = packages.index.store().watch(">").await?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                next = watch.next() => match next {
                    Some(_) => packages.wake(),
                    None => return, // the timer still converges
                },
            }
        }
    });
    Ok(())
}

/// A status request carries no body fields, so its body is ignored; but like every other
/// request it is refused when over the size limit, or when its content type or schema
/// header says it is something else (docs/protocol.md §1).
fn status_request_ok(msg: &async_nats::Message) -> Result<(), WireError> {
    if msg.payload.len() > codec::MAX_MESSAGE_BYTES {
        return Err(codec::DecodeError::TooLarge {
            len: msg.payload.len(),
            max: codec::MAX_MESSAGE_BYTES,
        }
        .into());
    }
    let header = |name: &str| {
        msg.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str())
    };
    codec::check_content_type(header(headers::CONTENT_TYPE))?;
    NODES_STATUS.check(header(headers::SCHEMA))?;
    Ok(())
}

/// Subscribes (no queue group: every node gets each message) to the update broadcast, the
/// node-joined announcements and the status scatter-gather.
pub async fn spawn_broadcasts(
    nats: async_nats::Client,
    subjects: &Subjects,
    packages: Arc<Packages>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let mut updated = nats.subscribe(subjects.auth_packages_updated()).await?;
    let mut joined = nats.subscribe(subjects.auth_nodes_joined()).await?;
    let mut status = nats.subscribe(subjects.auth_nodes_status()).await?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                Some(_) = updated.next() => packages.wake(),
                Some(msg) = joined.next() => {
                    if let Ok(s) = codec::decode::<tessera_schemas::packages::NodeStatus>(&msg.payload) {
                        tracing::info!(node = %s.node_id, in_sync = s.in_sync, "auth node joined");
                    }
                }
                Some(msg) = status.next() => {
                    if let Some(reply) = msg.reply.clone() {
                        let (h, body) = match status_request_ok(&msg) {
                            Ok(()) => {
                                let mut h = async_nats::HeaderMap::new();
                                h.insert(headers::SCHEMA, NODES_STATUS.header_value().as_str());
                                (h, codec::encode(&packages.status()).into())
                            }
                            Err(err) => tessera_runtime::service::error_reply(&err),
                        };
                        if let Err(e) = nats.publish_with_headers(reply, h, body).await {
                            tracing::warn!(error = %e, "could not answer a status request");
                        }
                    }
                }
                else => return,
            }
        }
    });
    Ok(())
}

/// Announces this node on `auth.nodes.joined` (after it serves).
pub async fn announce_joined(
    nats: &async_nats::Client,
    subjects: &Subjects,
    packages: &Packages,
) -> anyhow::Result<()> {
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::SCHEMA, NODES_JOINED.header_value().as_str());
    nats.publish_with_headers(
        subjects.auth_nodes_joined(),
        h,
        codec::encode(&packages.status()).into(),
    )
    .await?;
    nats.flush().await?;
    Ok(())
}
