//! Reads of the assets store and the latest-manifest bucket as a client app's account
//! allows them: JetStream *direct gets* through the workers' API as imported under
//! `<prefix>.js` (docs/protocol.md, "Plugin assets"). No consumer, no stream info: a client
//! app can read, never write, and never make JetStream publish anywhere.
//!
//! - a KV value: `DIRECT.GET.KV_<bucket>.$KV.<bucket>.<key>` (the last message of the key);
//! - an object's info: `DIRECT.GET.OBJ_<bucket>.$O.<bucket>.M.<base64url(name)>` (JSON);
//! - its chunks, in order: `DIRECT.GET.OBJ_<bucket>` with `{"seq": n, "next_by_subj":
//!   "$O.<bucket>.C.<nuid>"}`, each answer's `Nats-Sequence` + 1 being the next `seq`.

use async_nats::StatusCode;
use async_nats::jetstream::object_store::ObjectInfo;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use bytes::Bytes;

use crate::{Error, ErrorKind};

/// JetStream's header with a direct get answer's stream sequence.
const SEQUENCE: &str = "Nats-Sequence";
/// A KV delete or purge marker's header.
const KV_OPERATION: &str = "KV-Operation";

/// The store answered something the SDK cannot use: unavailable, as a broken store is.
fn unavailable(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unavailable, message)
}

/// One direct get; `None` when the stream has no such message.
async fn get(
    nats: &async_nats::Client,
    subject: String,
    body: Bytes,
) -> Result<Option<async_nats::Message>, Error> {
    let msg = nats
        .request(subject, body)
        .await
        .map_err(Error::unavailable)?;
    match msg.status {
        None | Some(StatusCode::OK) => Ok(Some(msg)),
        Some(StatusCode::NOT_FOUND) => Ok(None),
        Some(other) => Err(unavailable(format!(
            "direct get answered {other}: {}",
            msg.description.as_deref().unwrap_or("")
        ))),
    }
}

/// The current value of `key` in KV bucket `bucket`; `None` if absent or deleted.
pub(super) async fn kv_get(
    nats: &async_nats::Client,
    js_api: &str,
    bucket: &str,
    key: &str,
) -> Result<Option<Bytes>, Error> {
    let subject = format!("{js_api}.DIRECT.GET.KV_{bucket}.$KV.{bucket}.{key}");
    let Some(msg) = get(nats, subject, Bytes::new()).await? else {
        return Ok(None);
    };
    let deleted = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(KV_OPERATION))
        .is_some_and(|op| op.as_str() != "PUT");
    Ok((!deleted).then_some(msg.payload))
}

/// An object of object store `bucket`, read chunk by chunk.
pub(super) struct Object {
    nats: async_nats::Client,
    subject: String,
    chunks_subject: String,
    pub(super) info: ObjectInfo,
    next_seq: u64,
    chunks_left: usize,
}

impl Object {
    /// The object's info; `None` if there is no such object (or it was deleted).
    pub(super) async fn open(
        nats: &async_nats::Client,
        js_api: &str,
        bucket: &str,
        name: &str,
    ) -> Result<Option<Object>, Error> {
        let subject = format!("{js_api}.DIRECT.GET.OBJ_{bucket}");
        let meta = format!("{subject}.$O.{bucket}.M.{}", URL_SAFE.encode(name));
        let Some(msg) = get(nats, meta, Bytes::new()).await? else {
            return Ok(None);
        };
        let info: ObjectInfo = serde_json::from_slice(&msg.payload)
            .map_err(|e| Error::context(ErrorKind::Unavailable, "unreadable object info", e))?;
        if info.deleted {
            return Ok(None);
        }
        Ok(Some(Object {
            nats: nats.clone(),
            chunks_subject: format!("$O.{bucket}.C.{}", info.nuid),
            subject,
            chunks_left: info.chunks,
            info,
            next_seq: 1,
        }))
    }

    /// The next chunk, or `None` after the last.
    pub(super) async fn next_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if self.chunks_left == 0 {
            return Ok(None);
        }
        let body = serde_json::json!({ "seq": self.next_seq, "next_by_subj": self.chunks_subject });
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let msg = get(&self.nats, self.subject.clone(), body)
            .await?
            .ok_or_else(|| unavailable("a chunk of the object is missing"))?;
        let seq: u64 = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(SEQUENCE))
            .and_then(|v| v.as_str().parse().ok())
            .ok_or_else(|| unavailable("a direct get answer without its sequence"))?;
        self.next_seq = seq + 1;
        self.chunks_left -= 1;
        Ok(Some(msg.payload))
    }
}
