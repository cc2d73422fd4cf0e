//! Streams and KV buckets, created if missing. Idempotent: every replica of a worker calls
//! the function for what it owns at start, so the order in which things start never matters.
//!
//! Whoever creates a store first (a worker, or an admin command run before any worker) gives
//! it the [`Durability`] it was given; a store found with fewer replicas than this caller's
//! is brought up to them (stream update; logged). So an admin that ran `routes set` before the
//! workers, with the library default of one replica, does not leave the routes on one node
//! for good: the broker's start raises them to `TESSERA_JS_REPLICAS`.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store, stream};
use tessera_schemas::Subjects;
use tessera_schemas::dist_shards::DIST_SHARDS_METADATA;
use thiserror::Error;

#[derive(Debug, Error)]
#[error("provisioning {what}: {source}")]
pub struct ProvisionError {
    pub what: String,
    #[source]
    pub source: async_nats::Error,
}

/// How durable the JetStream state is. One replica on a dev server; three in a cluster.
#[derive(Debug, Clone, Copy)]
pub struct Durability {
    pub replicas: usize,
}

impl Default for Durability {
    fn default() -> Self {
        Self { replicas: 1 }
    }
}

/// How long JetStream remembers a `Nats-Msg-Id` (the distribution and audit streams). A
/// publish is retried within its request's life (seconds), so this is plenty; every id in
/// the window is an entry nats-server keeps in memory, and at 2 x 12k ids/s a 120 s window
/// (the earlier setting) held ~3M of them and made issuance p99 climb for as long as it
/// filled (BENCHMARKS.md).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(20);

/// The distribution stream keeps events for the longest token lifetime, so a restarted
/// plugin server replays exactly what can still be valid. The de-duplication window makes a
/// retried publish (same `Nats-Msg-Id`) land once.
pub async fn dist_stream(
    js: &jetstream::Context,
    s: &Subjects,
    max_token_ttl: Duration,
    d: Durability,
) -> Result<stream::Stream, ProvisionError> {
    dist_shard_stream(js, s, 0, max_token_ttl, d, HashMap::new()).await
}

/// The distribution split into `shards` streams (`tessera_schemas::dist_shards`): each
/// shard's stream created if missing, and the layout checked against the one recorded in
/// shard 0's stream, which its creator writes. A stream from before shards existed records
/// nothing, which means 1. Brokers that disagree on the number would publish a server's
/// revocations where its consumer does not read, so a mismatch is an error: the caller
/// refuses to start (changing the number: [`set_dist_shards`]).
pub async fn dist_streams(
    js: &jetstream::Context,
    s: &Subjects,
    shards: u32,
    max_token_ttl: Duration,
    d: Durability,
) -> Result<Vec<stream::Stream>, ProvisionError> {
    let record = HashMap::from([(DIST_SHARDS_METADATA.to_owned(), shards.to_string())]);
    let mut first = dist_shard_stream(js, s, 0, max_token_ttl, d, record).await?;
    let recorded = recorded_dist_shards(first.info().await.map_err(|e| ProvisionError {
        what: format!("stream {}", s.dist_stream()),
        source: e.into(),
    })?);
    if recorded != shards {
        return Err(ProvisionError {
            what: "the distribution layout".to_owned(),
            source: format!(
                "the streams are laid out for {recorded} shard(s) (metadata of stream {}) but \
                 TESSERA_DIST_SHARDS is {shards}: every broker replica must use the same \
                 number; change it with `tessera dist-shards set {shards}` while no broker \
                 runs (docs/reliability.md, \"Changing the number of distribution shards\")",
                s.dist_stream()
            )
            .into(),
        });
    }
    let mut streams = vec![first];
    for k in 1..shards {
        streams.push(dist_shard_stream(js, s, k, max_token_ttl, d, HashMap::new()).await?);
    }
    Ok(streams)
}

/// The number of shards recorded in shard 0's stream (absent: 1, the layout before shards).
pub fn recorded_dist_shards(info: &stream::Info) -> u32 {
    info.config
        .metadata
        .get(DIST_SHARDS_METADATA)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// The layout recorded in shard 0's stream; `None` while no broker has created it.
pub async fn dist_shards(
    js: &jetstream::Context,
    s: &Subjects,
) -> Result<Option<u32>, ProvisionError> {
    let name = s.dist_stream();
    let err = |e: async_nats::Error| ProvisionError {
        what: format!("stream {name}"),
        source: e,
    };
    match js.get_stream(&name).await {
        Ok(mut stream) => Ok(Some(recorded_dist_shards(
            stream.info().await.map_err(|e| err(e.into()))?,
        ))),
        Err(e) => match e.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(je)
                if je.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(None)
            }
            _ => Err(err(e.into())),
        },
    }
}

/// Records `shards` as the distribution layout in shard 0's stream and returns the number
/// it replaced. Only for a change of the number while no broker runs (the operator command
/// checks that first): a running broker keeps publishing in the layout it started with.
/// Before any broker has made the stream there is nothing to change: the first broker
/// records its own `TESSERA_DIST_SHARDS`.
pub async fn set_dist_shards(
    js: &jetstream::Context,
    s: &Subjects,
    shards: u32,
) -> Result<u32, ProvisionError> {
    let name = s.dist_stream();
    let err = |e: async_nats::Error| ProvisionError {
        what: format!("the layout recorded in stream {name}"),
        source: e,
    };
    let mut stream = js.get_stream(&name).await.map_err(|e| err(e.into()))?;
    let info = stream.info().await.map_err(|e| err(e.into()))?;
    let before = recorded_dist_shards(info);
    let mut config = info.config.clone();
    config
        .metadata
        .insert(DIST_SHARDS_METADATA.to_owned(), shards.to_string());
    js.update_stream(config).await.map_err(|e| err(e.into()))?;
    Ok(before)
}

/// Shard `shard`'s stream, with `metadata` if this call creates it.
async fn dist_shard_stream(
    js: &jetstream::Context,
    s: &Subjects,
    shard: u32,
    max_token_ttl: Duration,
    d: Durability,
    metadata: HashMap<String, String>,
) -> Result<stream::Stream, ProvisionError> {
    let name = s.dist_stream_in(shard);
    let config = stream::Config {
        name: name.clone(),
        subjects: vec![s.dist_all_in(shard)],
        metadata,
        max_age: max_token_ttl,
        storage: stream::StorageType::File,
        num_replicas: d.replicas,
        // JetStream refuses a window longer than the retention (short token lifetimes).
        duplicate_window: DUPLICATE_WINDOW.min(max_token_ttl),
        allow_direct: true,
        ..Default::default()
    };
    let stream = js
        .get_or_create_stream(config)
        .await
        .map_err(|e| ProvisionError {
            what: format!("stream {name}"),
            source: e.into(),
        })?;
    raise_replicas(js, &name, d).await?;
    Ok(stream)
}

/// Brings stream `name` up to `d.replicas` if it has fewer (never lowers them: fewer replicas
/// than a store has is a decision for an operator, not a side effect of a start).
pub async fn raise_replicas(
    js: &jetstream::Context,
    name: &str,
    d: Durability,
) -> Result<(), ProvisionError> {
    let err = |e: async_nats::Error| ProvisionError {
        what: format!("replicas of stream {name}"),
        source: e,
    };
    let mut stream = js.get_stream(name).await.map_err(|e| err(e.into()))?;
    let info = stream.info().await.map_err(|e| err(e.into()))?;
    let from = info.config.num_replicas;
    if from >= d.replicas {
        return Ok(());
    }
    let mut config = info.config.clone();
    config.num_replicas = d.replicas;
    js.update_stream(config).await.map_err(|e| err(e.into()))?;
    tracing::info!(
        stream = name,
        from,
        to = d.replicas,
        "raised the replicas of an existing stream to the configured number"
    );
    Ok(())
}

async fn kv_bucket(
    js: &jetstream::Context,
    bucket: String,
    history: i64,
    d: Durability,
) -> Result<kv::Store, ProvisionError> {
    if let Ok(store) = js.get_key_value(&bucket).await {
        raise_replicas(js, &format!("KV_{bucket}"), d).await?;
        return Ok(store);
    }
    js.create_key_value(kv::Config {
        bucket: bucket.clone(),
        history,
        storage: stream::StorageType::File,
        num_replicas: d.replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| ProvisionError {
        what: format!("bucket {bucket}"),
        source: e.into(),
    })
}

/// Plugin id -> plugin server ids.
pub async fn routes_bucket(
    js: &jetstream::Context,
    s: &Subjects,
    d: Durability,
) -> Result<kv::Store, ProvisionError> {
    kv_bucket(js, s.routes_bucket(), 5, d).await
}

/// Key id -> public JWK of a broker signing key.
pub async fn keys_bucket(
    js: &jetstream::Context,
    s: &Subjects,
    d: Durability,
) -> Result<kv::Store, ProvisionError> {
    kv_bucket(js, s.keys_bucket(), 1, d).await
}

/// Username -> local account (owned by the auth worker).
pub async fn users_bucket(
    js: &jetstream::Context,
    s: &Subjects,
    d: Durability,
) -> Result<kv::Store, ProvisionError> {
    kv_bucket(js, s.users_bucket(), 1, d).await
}

/// Plugin server id -> SHA-256 of its bus secret (admin writes, the auth callout reads).
pub async fn plugin_servers_bucket(
    js: &jetstream::Context,
    s: &Subjects,
    d: Durability,
) -> Result<kv::Store, ProvisionError> {
    kv_bucket(js, s.plugin_servers_bucket(), 1, d).await
}

/// Client app id -> its signing secret (data access; gateway and admin only).
pub async fn client_apps_bucket(
    js: &jetstream::Context,
    s: &Subjects,
    d: Durability,
) -> Result<kv::Store, ProvisionError> {
    kv_bucket(js, s.client_apps_bucket(), 1, d).await
}

/// `<plugin_id>.<operation>` -> plugin-server operation (data access).
pub async fn data_routes_bucket(
    js: &jetstream::Context,
    s: &Subjects,
    d: Durability,
) -> Result<kv::Store, ProvisionError> {
    kv_bucket(js, s.data_routes_bucket(), 5, d).await
}

// --- plugin static assets and plugin keys ------------------------------------------------

/// The assets object store: content-addressed blobs and every signed manifest. Created by
/// the broker at start and by the admin before a publish, whichever comes first.
pub async fn assets_store(
    js: &jetstream::Context,
    s: &Subjects,
    d: Durability,
) -> Result<object_store::ObjectStore, ProvisionError> {
    object_store(js, s.assets_bucket(), Duration::ZERO, d).await
}

/// Plugin id -> the latest signed asset manifest. History 1: older versions live in the
/// object store; the broker moves this pointer with a compare-and-set on the revision.
pub async fn asset_versions_bucket(
    js: &jetstream::Context,
    s: &Subjects,
    d: Durability,
) -> Result<kv::Store, ProvisionError> {
    kv_bucket(js, s.asset_versions_bucket(), 1, d).await
}

/// Plugin id -> the plugin's registered X25519 public key.
pub async fn plugin_keys_bucket(
    js: &jetstream::Context,
    s: &Subjects,
    d: Durability,
) -> Result<kv::Store, ProvisionError> {
    kv_bucket(js, s.plugin_keys_bucket(), 5, d).await
}

// --- third-party apps and auth packages --------------------------------------------------

/// App id -> third-party app config (JSON). Written by admin, watched by auth nodes.
pub async fn apps_bucket(
    js: &jetstream::Context,
    s: &Subjects,
    d: Durability,
) -> Result<kv::Store, ProvisionError> {
    kv_bucket(js, s.apps_bucket(), 5, d).await
}

/// Secret key -> an app's client secret. Written by admin, readable by auth nodes only.
pub async fn app_secrets_bucket(
    js: &jetstream::Context,
    s: &Subjects,
    d: Durability,
) -> Result<kv::Store, ProvisionError> {
    kv_bucket(js, s.app_secrets_bucket(), 1, d).await
}

/// Package name -> manifest of the stored package (written by auth nodes only).
pub async fn package_index_bucket(
    js: &jetstream::Context,
    s: &Subjects,
    d: Durability,
) -> Result<kv::Store, ProvisionError> {
    kv_bucket(js, s.package_index_bucket(), 5, d).await
}

async fn object_store(
    js: &jetstream::Context,
    bucket: String,
    max_age: Duration,
    d: Durability,
) -> Result<object_store::ObjectStore, ProvisionError> {
    if let Ok(store) = js.get_object_store(&bucket).await {
        raise_replicas(js, &format!("OBJ_{bucket}"), d).await?;
        return Ok(store);
    }
    js.create_object_store(object_store::Config {
        bucket: bucket.clone(),
        max_age,
        storage: stream::StorageType::File,
        num_replicas: d.replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| ProvisionError {
        what: format!("object store {bucket}"),
        source: e.into(),
    })
}

/// The stored authentication packages (one object per package name).
pub async fn packages_store(
    js: &jetstream::Context,
    s: &Subjects,
    d: Durability,
) -> Result<object_store::ObjectStore, ProvisionError> {
    object_store(js, s.packages_store(), Duration::ZERO, d).await
}

/// How long an upload may wait in staging; an abandoned one (the CLI died between its put
/// and its request) expires by itself.
pub const STAGING_MAX_AGE: Duration = Duration::from_secs(3600);

/// Uploads waiting for an auth node to verify them.
pub async fn package_staging_store(
    js: &jetstream::Context,
    s: &Subjects,
    d: Durability,
) -> Result<object_store::ObjectStore, ProvisionError> {
    object_store(js, s.package_staging_store(), STAGING_MAX_AGE, d).await
}

// --- audit -------------------------------------------------------------------------------

/// The audit stream: every audit event on `P.audit.>`, kept for `max_age` and at most
/// `max_bytes` (oldest dropped first). Created by the broker and the auth worker at start,
/// whichever comes first; a later start with other bounds updates them, so the last
/// configuration started wins.
pub async fn audit_stream(
    js: &jetstream::Context,
    s: &Subjects,
    max_age: Duration,
    max_bytes: i64,
    d: Durability,
) -> Result<stream::Stream, ProvisionError> {
    let name = s.audit_stream();
    let config = stream::Config {
        name: name.clone(),
        subjects: vec![s.audit_all()],
        max_age,
        max_bytes,
        discard: stream::DiscardPolicy::Old,
        storage: stream::StorageType::File,
        num_replicas: d.replicas,
        // A publish retried with the same event id (`Nats-Msg-Id`) lands once.
        duplicate_window: DUPLICATE_WINDOW.min(max_age),
        allow_direct: true,
        ..Default::default()
    };
    let err = |e: async_nats::Error| ProvisionError {
        what: format!("stream {name}"),
        source: e,
    };
    let mut stream = js
        .get_or_create_stream(config.clone())
        .await
        .map_err(|e| err(e.into()))?;
    let current = &stream.cached_info().config;
    if current.max_age != config.max_age || current.max_bytes != config.max_bytes {
        let config = stream::Config {
            num_replicas: current.num_replicas.max(d.replicas),
            ..config
        };
        js.update_stream(config).await.map_err(|e| err(e.into()))?;
        stream = js.get_stream(&name).await.map_err(|e| err(e.into()))?;
    }
    raise_replicas(js, &name, d).await?;
    Ok(stream)
}
