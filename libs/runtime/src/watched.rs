//! An in-memory view of a JetStream KV bucket, kept current by a watch.
//!
//! Workers read configuration (routes, keys, apps) on every request; a round trip per
//! request would cost more than the request. The view is filled from the bucket's history at
//! start and then follows every change. A miss falls back to one direct read, so a value
//! written a moment ago is never reported missing while its watch event is in flight.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use futures::StreamExt;

use crate::Shutdown;

type Decoder<T> = Arc<dyn Fn(&[u8]) -> Result<T, String> + Send + Sync>;
type Map<T> = Arc<RwLock<HashMap<String, Arc<T>>>>;

pub struct WatchedKv<T> {
    store: kv::Store,
    map: Map<T>,
    decode: Decoder<T>,
}

impl<T> Clone for WatchedKv<T> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            map: self.map.clone(),
            decode: self.decode.clone(),
        }
    }
}

impl<T: Send + Sync + 'static> WatchedKv<T> {
    /// Loads the bucket and starts following it until `shutdown`. Waits (bounded) for the
    /// initial contents, so the first requests see them.
    pub async fn start(
        store: kv::Store,
        decode: impl Fn(&[u8]) -> Result<T, String> + Send + Sync + 'static,
        shutdown: Shutdown,
    ) -> Result<WatchedKv<T>, kv::WatchError> {
        let view = WatchedKv {
            store,
            map: Arc::default(),
            decode: Arc::new(decode),
        };
        let watch = view.store.watch_with_history(">").await?;
        let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
        let empty = view
            .store
            .status()
            .await
            .map(|s| s.values() == 0)
            .unwrap_or(false);
        let synced = if empty { None } else { Some(synced_tx) };
        tokio::spawn(view.clone().follow(watch, synced, shutdown));
        if !empty {
            // The stream may hold only deletes; either way we stop waiting after a bound.
            let _ = tokio::time::timeout(Duration::from_secs(5), synced_rx).await;
        }
        Ok(view)
    }

    async fn follow(
        self,
        mut watch: kv::Watch,
        mut synced: Option<tokio::sync::oneshot::Sender<()>>,
        shutdown: Shutdown,
    ) {
        let bucket = self.store.name.clone();
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                next = watch.next() => next,
            };
            match next {
                Some(Ok(entry)) => {
                    self.apply(&entry);
                    if entry.delta == 0
                        && let Some(tx) = synced.take()
                    {
                        let _ = tx.send(());
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(bucket = %bucket, error = %e, "watch error; continuing")
                }
                None => {
                    // The watch ended (e.g. the server restarted). Start again from history:
                    // applying the same values twice is harmless.
                    tracing::warn!(bucket = %bucket, "watch ended; re-watching");
                    loop {
                        if shutdown.is_cancelled() {
                            return;
                        }
                        match self.store.watch_with_history(">").await {
                            Ok(w) => {
                                watch = w;
                                break;
                            }
                            Err(e) => {
                                tracing::debug!(bucket = %bucket, error = %e, "re-watch failed; retrying");
                                tokio::select! {
                                    _ = shutdown.cancelled() => return,
                                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn apply(&self, entry: &kv::Entry) {
        let mut map = self.map.write().expect("lock poisoned");
        match entry.operation {
            Operation::Put => match (self.decode)(&entry.value) {
                Ok(v) => {
                    map.insert(entry.key.clone(), Arc::new(v));
                }
                Err(e) => {
                    tracing::warn!(bucket = %self.store.name, key = %entry.key, error = %e, "ignoring undecodable value");
                    map.remove(&entry.key);
                }
            },
            Operation::Delete | Operation::Purge => {
                map.remove(&entry.key);
            }
        }
    }

    /// The value in memory, if any.
    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        self.map.read().expect("lock poisoned").get(key).cloned()
    }

    /// The value in memory, or one direct read of the bucket when memory has none.
    pub async fn get_or_fetch(&self, key: &str) -> Result<Option<Arc<T>>, kv::EntryError> {
        if let Some(v) = self.get(key) {
            return Ok(Some(v));
        }
        let Some(bytes) = self.store.get(key).await? else {
            return Ok(None);
        };
        match (self.decode)(&bytes) {
            Ok(v) => {
                let v = Arc::new(v);
                self.map
                    .write()
                    .expect("lock poisoned")
                    .insert(key.to_owned(), v.clone());
                Ok(Some(v))
            }
            Err(_) => Ok(None),
        }
    }

    /// Every value in memory.
    pub fn snapshot(&self) -> Vec<(String, Arc<T>)> {
        let map = self.map.read().expect("lock poisoned");
        let mut all: Vec<_> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The bucket itself, for writes.
    pub fn store(&self) -> &kv::Store {
        &self.store
    }
}
