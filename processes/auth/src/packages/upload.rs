//! `auth.packages.upload`, served by whichever auth node the queue group
//! picks.
//!
//! Packages exceed the bus's 64 KiB message limit, so the admin first puts the `.wasm` into
//! the staging object store and sends only the manifest and the staging name. This node then
//! checks, in order: the manifest's shape, that its publisher key is trusted, the signature,
//! the staged bytes' digest, and that the module loads and exports the interface. Only then
//! does it write the packages object store and the index, install locally and broadcast
//! `auth.packages.updated`. The staging object is deleted whatever the outcome, so a rejected
//! upload leaves nothing stored.

use std::sync::Arc;

use tessera_runtime::audit::outcome_of;
use tessera_runtime::service::{Incoming, Reply};
use tessera_schemas::audit::{AuditKind, AuditRole};
use tessera_schemas::packages::{
    PACKAGES_UPDATED, PACKAGES_UPLOAD, PackageRecord, PackageUploadRequest, PackageUploadResponse,
    PackagesUpdated,
};
use tessera_schemas::{ErrorCode, WireError, codec, headers, ids};

use super::{manifest, runtime, store};
use crate::State;

fn unavailable(what: &str, e: impl std::fmt::Display) -> WireError {
    tracing::warn!(error = %e, "{what}");
    WireError::new(ErrorCode::Unavailable, format!("{what}; retry"))
}

pub async fn handle(state: Arc<State>, req: Incoming) -> Result<Reply, WireError> {
    let body: PackageUploadRequest = req.decode(PACKAGES_UPLOAD)?;
    ids::check("staging", &body.staging)
        .map_err(|e| WireError::new(ErrorCode::BadRequest, e.to_string()))?;
    let packages = &state.packages;
    let result = accept(state.clone(), &body).await;
    // Whatever happened, the staged copy goes: accepted, it now lives in the packages store.
    if let Err(e) = packages.staging.delete(&body.staging).await {
        tracing::debug!(staging = %body.staging, error = %e, "could not delete staging object");
    }
    // Accepted or not, the upload is audited with the build its manifest claims; a
    // rejection carries our own message (which check failed), never package contents.
    let kind = match &result {
        Ok(_) => AuditKind::PackageUploaded,
        Err(_) => AuditKind::PackageRejected,
    };
    let mut event = state.auditor.event(kind, outcome_of(&result));
    event.actor.role = Some(AuditRole::Admin);
    event.target.package = Some(super::audit_package(&body.manifest));
    event.detail = result.as_ref().err().map(|e| e.message.clone());
    event.request_id = Some(req.request_id.clone());
    state.auditor.emit(event);
    let response = result?;
    Ok(Reply::msgpack(PACKAGES_UPLOAD, &response))
}

async fn accept(
    state: Arc<State>,
    body: &PackageUploadRequest,
) -> Result<PackageUploadResponse, WireError> {
    let packages = &state.packages;
    let m = &body.manifest;
    manifest::verify(m, &packages.trusted)?;
    let wasm = store::read_object(&packages.staging, &body.staging)
        .await
        .map_err(|e| WireError::new(ErrorCode::PackageRejected, format!("staged upload: {e:#}")))?
        .ok_or_else(|| {
            WireError::new(
                ErrorCode::NotFound,
                format!("no staged upload named {:?}", body.staging),
            )
        })?;
    manifest::check_digest(m, &wasm)?;
    let wasm = {
        let _one = packages.compiling.lock().await;
        tokio::task::spawn_blocking(move || runtime::check_module(&wasm).map(|()| wasm))
            .await
            .map_err(|e| WireError::new(ErrorCode::Internal, e.to_string()))?
            .map_err(|e| {
                WireError::new(
                    ErrorCode::PackageRejected,
                    format!("package {} {}: {e}", m.name, m.version),
                )
            })?
    };

    // Store: the object first, then the index that points at it, then the old object.
    let object = store::object_name(m);
    let meta = async_nats::jetstream::object_store::ObjectMetadata {
        name: object.clone(),
        description: Some(format!("{} {}", m.name, m.version)),
        ..Default::default()
    };
    packages
        .objects
        .put(meta, &mut wasm.as_slice())
        .await
        .map_err(|e| unavailable("storing the package failed", e))?;
    let index = packages.index.store();
    let previous = index
        .get(&m.name)
        .await
        .map_err(|e| unavailable("reading the package index failed", e))?
        .and_then(|b| codec::decode::<PackageRecord>(&b).ok());
    let record = PackageRecord {
        manifest: m.clone(),
        object: object.clone(),
        size: wasm.len() as u64,
        uploaded_at: tessera_protocol::now_unix(),
        uploaded_by: packages.node_id.clone(),
    };
    index
        .put(&m.name, codec::encode(&record).into())
        .await
        .map_err(|e| unavailable("writing the package index failed", e))?;
    if let Some(prev) = &previous
        && prev.object != object
        && let Err(e) = packages.objects.delete(&prev.object).await
    {
        tracing::warn!(object = %prev.object, error = %e, "could not delete the replaced package object");
    }

    // Install here at once, then tell every node (each compares and reinstalls).
    let (plugin_path, mc) = (packages.plugin_path.clone(), m.clone());
    let (wasm, installed) = tokio::task::spawn_blocking(move || {
        let r = store::install_files(&plugin_path, &mc, &wasm);
        (wasm, r)
    })
    .await
    .map_err(|e| WireError::new(ErrorCode::Internal, e.to_string()))?;
    match installed {
        Ok((path, stamp)) => packages.put_installed(m.clone(), path, stamp, wasm),
        Err(e) => {
            tracing::warn!(error = %e, "local install after upload failed; the sync task retries");
            packages.wake();
        }
    }
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::SCHEMA, PACKAGES_UPDATED.header_value().as_str());
    let update = PackagesUpdated {
        name: m.name.clone(),
        version: m.version.clone(),
        sha256: m.sha256.clone(),
    };
    if let Err(e) = state
        .nats
        .publish_with_headers(
            state.config.subjects.auth_packages_updated(),
            h,
            codec::encode(&update).into(),
        )
        .await
    {
        // The index watch and the timer still carry the change to every node.
        tracing::warn!(error = %e, "update broadcast failed");
    }
    tracing::info!(package = %m.name, version = %m.version, sha256 = %m.sha256, replaced = previous.is_some(), "package stored");
    Ok(PackageUploadResponse {
        name: m.name.clone(),
        version: m.version.clone(),
        sha256: m.sha256.clone(),
        replaced: previous.is_some(),
        node_id: packages.node_id.clone(),
    })
}
