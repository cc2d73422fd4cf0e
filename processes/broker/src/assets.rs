//! `assets.publish` and `plugins.key` (the data cache layer and sealed data).
//!
//! Publishing: the admin has already uploaded every blob (`blob/<sha256>`) to the assets
//! object store; the broker checks each is there with the claimed size and digest (from the
//! object's info: the client re-checks the bytes themselves), signs the manifest with the
//! platform key, moves the plugin's pointer in the versions bucket with a compare-and-set
//! (two publishes racing get consecutive versions, never the same one), then keeps a copy
//! of the manifest under `manifest/<plugin_id>/<version>`.
//!
//! Only the broker holds the signing key and only the broker may write the versions bucket,
//! so a version a client sees is one the platform signed.

use std::sync::Arc;

use async_nats::jetstream::kv;
use async_nats::jetstream::object_store::{InfoErrorKind, ObjectStore};
use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use futures::StreamExt as _;
use tessera_protocol::now_unix;
use tessera_runtime::service::{Incoming, Reply};
use tessera_schemas::assets::{
    ASSETS_PUBLISH, AssetFile, AssetsPublishRequest, AssetsPublishResponse, MANIFEST_ISSUER,
    MANIFEST_KIND, ManifestClaims, PLUGINS_KEY, PluginKeyRecord, PluginKeyRequest,
    PluginKeyResponse, blob_name, check_files, manifest_name,
};
use tessera_schemas::{ErrorCode, WireError, ids};

use crate::State;

/// Blob lookups in flight per publish.
const CHECK_CONCURRENCY: usize = 16;
/// Compare-and-set attempts when another publish of the same plugin moves the pointer first.
const CAS_ATTEMPTS: usize = 10;

fn unavailable(what: &str, e: impl std::fmt::Display) -> WireError {
    tracing::warn!(error = %e, "{what} failed");
    WireError::new(ErrorCode::Unavailable, format!("{what} unavailable"))
}

pub async fn publish(state: Arc<State>, req: Incoming) -> Result<Reply, WireError> {
    let mut body: AssetsPublishRequest = req.decode(ASSETS_PUBLISH)?;
    ids::check("plugin_id", &body.plugin_id)
        .map_err(|e| WireError::new(ErrorCode::BadRequest, e.to_string()))?;
    check_files(&body.files).map_err(|e| WireError::new(ErrorCode::BadRequest, e))?;
    // Only routed plugins exist as far as the platform is concerned.
    let route = state
        .routes
        .get_or_fetch(&body.plugin_id)
        .await
        .map_err(|e| unavailable("routes", e))?;
    if route.is_none_or(|r| r.servers.is_empty()) {
        return Err(WireError::new(
            ErrorCode::NotFound,
            format!("unknown plugin {:?}: no route", body.plugin_id),
        ));
    }

    check_blobs(&state.assets, &body.files).await?;
    body.files.sort_by(|a, b| a.path.cmp(&b.path));
    let bytes = body.files.iter().map(|f| f.size).sum();
    let files = body.files.len() as u32;

    let (version, jws) = sign_and_point(&state, body.plugin_id.clone(), body.files).await?;
    // The history copy comes after the pointer, so it can only ever hold a version that
    // was published. Clients never read it; losing it is logged, not an error.
    if let Err(e) = state
        .assets
        .put(
            manifest_name(&body.plugin_id, version).as_str(),
            &mut jws.as_bytes(),
        )
        .await
    {
        tracing::warn!(error = %e, plugin_id = %body.plugin_id, version, "keeping the manifest copy failed");
    }
    tracing::info!(plugin_id = %body.plugin_id, version, files, bytes, "assets published");
    Ok(Reply::msgpack(
        ASSETS_PUBLISH,
        &AssetsPublishResponse {
            plugin_id: body.plugin_id,
            version,
            files,
            bytes,
            kid: state.config.signing_key.kid().to_owned(),
        },
    ))
}

/// Every distinct blob must be in the store with the claimed size and SHA-256.
async fn check_blobs(store: &ObjectStore, files: &[AssetFile]) -> Result<(), WireError> {
    let mut distinct: Vec<AssetFile> = files.to_vec();
    distinct.sort_by(|a, b| a.sha256.cmp(&b.sha256));
    distinct.dedup_by(|a, b| a.sha256 == b.sha256);
    // Owned futures: a borrowing closure here makes the handler's future not `'static`.
    let lookups: Vec<_> = distinct
        .into_iter()
        .map(|f| {
            let store = store.clone();
            async move {
                let info = store.info(blob_name(&f.sha256)).await;
                (f, info)
            }
        })
        .collect();
    let mut checks = futures::stream::iter(lookups).buffer_unordered(CHECK_CONCURRENCY);
    while let Some((f, info)) = checks.next().await {
        let info = match info {
            Ok(i) if !i.deleted => i,
            Ok(_) => return Err(missing(&f)),
            Err(e) if e.kind() == InfoErrorKind::NotFound => return Err(missing(&f)),
            Err(e) => return Err(unavailable("the assets store", e)),
        };
        let digest_ok = info
            .digest
            .as_deref()
            .and_then(|d| d.strip_prefix("SHA-256="))
            .and_then(|b64| {
                URL_SAFE
                    .decode(b64)
                    .or_else(|_| URL_SAFE_NO_PAD.decode(b64))
                    .ok()
            })
            .is_some_and(|d| hex(&d) == f.sha256);
        if info.size as u64 != f.size || !digest_ok {
            return Err(WireError::new(
                ErrorCode::BadRequest,
                format!(
                    "{:?}: the stored blob does not match the claimed size and sha256",
                    f.path
                ),
            ));
        }
    }
    Ok(())
}

fn missing(f: &AssetFile) -> WireError {
    WireError::new(
        ErrorCode::NotFound,
        format!(
            "{:?}: blob {} is not in the assets store (upload it first)",
            f.path, f.sha256
        ),
    )
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Signs version N+1 and moves the pointer from N (compare-and-set on the KV revision).
async fn sign_and_point(
    state: &State,
    plugin_id: String,
    files: Vec<AssetFile>,
) -> Result<(u64, String), WireError> {
    let mut claims = ManifestClaims {
        iss: MANIFEST_ISSUER.to_owned(),
        kind: MANIFEST_KIND.to_owned(),
        plugin_id,
        version: 0,
        iat: 0,
        files,
    };
    for _ in 0..CAS_ATTEMPTS {
        let current = state
            .asset_versions
            .entry(claims.plugin_id.as_str())
            .await
            .map_err(|e| unavailable("the versions bucket", e))?
            .filter(|e| e.operation == kv::Operation::Put);
        let (previous, revision) = match &current {
            Some(entry) => (
                version_of(&entry.value).ok_or_else(|| {
                    WireError::new(ErrorCode::Internal, "the current manifest is unreadable")
                })?,
                Some(entry.revision),
            ),
            None => (0, None),
        };
        claims.version = previous + 1;
        claims.iat = now_unix();
        let jws = state
            .config
            .signing_key
            .sign(&claims)
            .map_err(|e| WireError::new(ErrorCode::Internal, format!("signing: {e}")))?;
        let value = bytes::Bytes::from(jws.clone());
        let moved = match revision {
            Some(r) => state
                .asset_versions
                .update(claims.plugin_id.as_str(), value, r)
                .await
                .map_err(|e| {
                    (
                        e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                        e.to_string(),
                    )
                }),
            None => state
                .asset_versions
                .create(claims.plugin_id.as_str(), value)
                .await
                .map_err(|e| {
                    (
                        e.kind() == kv::CreateErrorKind::AlreadyExists,
                        e.to_string(),
                    )
                }),
        };
        match moved {
            Ok(_) => return Ok((claims.version, jws)),
            Err((true, _)) => {
                tracing::debug!(plugin_id = %claims.plugin_id, "another publish moved the pointer first; again");
            }
            Err((false, e)) => return Err(unavailable("the versions bucket", e)),
        }
    }
    Err(WireError::new(
        ErrorCode::Conflict,
        "other publishes of this plugin kept winning; try again",
    ))
}

/// The `version` claim of a manifest we signed (the payload of a compact JWS).
fn version_of(jws: &[u8]) -> Option<u64> {
    let payload = std::str::from_utf8(jws).ok()?.split('.').nth(1)?;
    let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: ManifestClaims = serde_json::from_slice(&json).ok()?;
    Some(claims.version)
}

/// `plugins.key`: the plugin's registered public key, from the watched bucket.
pub async fn plugin_key(state: Arc<State>, req: Incoming) -> Result<Reply, WireError> {
    let body: PluginKeyRequest = req.decode(PLUGINS_KEY)?;
    ids::check("plugin_id", &body.plugin_id)
        .map_err(|e| WireError::new(ErrorCode::BadRequest, e.to_string()))?;
    let record = state
        .plugin_keys
        .get_or_fetch(&body.plugin_id)
        .await
        .map_err(|e| unavailable("plugin keys", e))?
        .ok_or_else(|| {
            WireError::new(
                ErrorCode::NotFound,
                format!("plugin {:?} has no registered key", body.plugin_id),
            )
        })?;
    Ok(Reply::msgpack(
        PLUGINS_KEY,
        &PluginKeyResponse {
            plugin_id: body.plugin_id,
            public_key: record.public_key.clone(),
            suite: record.suite.clone(),
            created_at: record.created_at,
        },
    ))
}

/// A plugin-key record that does not decode is ignored (and logged by the view).
pub fn decode_key_record(bytes: &[u8]) -> Result<PluginKeyRecord, String> {
    tessera_schemas::codec::decode(bytes).map_err(|e| e.to_string())
}
