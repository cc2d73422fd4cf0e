//! The broker's signing key in the keys bucket: published before it signs anything, kept
//! published while this replica signs with it, and removed once nobody has signed with it
//! for a token lifetime plus the clock leeway.
//!
//! Each record carries `exp` (see [`PublishedKey`]): verifiers use a key only before it.
//! Every replica pushes its own key's `exp` to `now + lifetime` every `key_renew` (a
//! compare-and-set that only ever moves `exp` later, so replicas sharing a key never pull
//! it back), and mints a token only while the published `exp` is past the token's `exp`
//! plus the leeway: **no token outlives the publication of its key**. Rotation is a new key
//! file and a rolling restart; the old key is then renewed by nobody and lapses on its own,
//! after every token it signed has expired. Any replica deletes lapsed records (cleanup
//! only: verifiers already refuse them by `exp`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use tessera_protocol::now_unix;
use tessera_protocol::signing::{PublishedKey, SigningKey};
use tessera_runtime::Shutdown;
use tessera_runtime::watched::WatchedKv;

/// How long a record is published past its last renewal: a token lifetime, the leeway, and
/// two renewals (so one late or failed renewal does not stop minting).
pub fn lifetime(token_ttl: Duration, leeway: Duration, renew: Duration) -> Duration {
    token_ttl + leeway + renew * 2
}

/// When a record published now for `lifetime` expires, in Unix seconds, rounded *up*: the
/// mint check compares it with a token's expiry in whole seconds from a truncated clock, and
/// rounding down lost up to a second of the renewal margin (with short test settings, a
/// refusal window every second).
fn expiry(lifetime: Duration) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (now + lifetime).as_secs_f64().ceil() as u64
}

/// Until when this replica's key is known to be published (Unix seconds; 0: not yet).
#[derive(Debug, Default)]
pub struct Published(AtomicU64);

impl Published {
    pub fn until(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    fn extend(&self, until: u64) {
        self.0.fetch_max(until, Ordering::AcqRel);
    }
}

/// Publishes `key` until at least `until` (never earlier than what the bucket holds);
/// returns the `exp` now stored.
pub async fn publish(
    kv: &kv::Store,
    key: &SigningKey,
    until: u64,
) -> Result<u64, async_nats::Error> {
    for _ in 0..8 {
        let entry = kv.entry(key.kid()).await?;
        let stored = entry
            .as_ref()
            .filter(|e| e.operation == Operation::Put)
            .and_then(|e| PublishedKey::from_json(&e.value).ok())
            .and_then(|p| p.expires_at);
        let exp = stored.map_or(until, |s| s.max(until));
        let value = PublishedKey {
            jwk: key.public_jwk(),
            expires_at: Some(exp),
        }
        .to_json();
        let written = match &entry {
            Some(e) => kv
                .update(key.kid(), value.into(), e.revision)
                .await
                .map(drop)
                .map_err(|e| (e.kind() == kv::UpdateErrorKind::WrongLastRevision, e.into())),
            None => kv
                .create(key.kid(), value.into())
                .await
                .map(drop)
                .map_err(|e| (e.kind() == kv::CreateErrorKind::AlreadyExists, e.into())),
        };
        match written {
            Ok(()) => return Ok(exp),
            // Another replica wrote in between: read again.
            Err((true, _)) => continue,
            Err((false, e)) => return Err(e),
        }
    }
    Err("publishing the signing key: too many concurrent writers".into())
}

/// Deletes lapsed records (compare-and-set on their revision, so a record renewed in the
/// meantime stays).
async fn remove_lapsed(kv: &kv::Store, view: &WatchedKv<PublishedKey>, now: u64) {
    for (kid, key) in view.snapshot() {
        if key.usable_at(now) {
            continue;
        }
        let Ok(Some(entry)) = kv.entry(&kid).await else {
            continue;
        };
        let still_lapsed = entry.operation == Operation::Put
            && PublishedKey::from_json(&entry.value).is_ok_and(|p| !p.usable_at(now));
        if still_lapsed {
            match kv.delete_expect_revision(&kid, Some(entry.revision)).await {
                Ok(()) => tracing::info!(kid, "removed a retired signing key from the keys bucket"),
                Err(e) => {
                    tracing::debug!(kid, error = %e, "retired key not removed (renewed or removed elsewhere)")
                }
            }
        }
    }
}

/// Renews this replica's key every `renew` and removes lapsed ones, until `shutdown`.
pub async fn maintain(
    kv: kv::Store,
    view: WatchedKv<PublishedKey>,
    key: Arc<SigningKey>,
    lifetime: Duration,
    renew: Duration,
    published: Arc<Published>,
    shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(renew);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = now_unix();
        match publish(&kv, &key, expiry(lifetime)).await {
            Ok(exp) => published.extend(exp),
            Err(e) => {
                tracing::warn!(error = %e, kid = key.kid(), "renewing the signing key failed")
            }
        }
        remove_lapsed(&kv, &view, now).await;
    }
}

/// Publishes `key` once (at start, before serving) and records until when.
pub async fn publish_initial(
    kv: &kv::Store,
    key: &SigningKey,
    lifetime: Duration,
    published: &Published,
) -> Result<(), async_nats::Error> {
    let exp = publish(kv, key, expiry(lifetime)).await?;
    published.extend(exp);
    Ok(())
}
