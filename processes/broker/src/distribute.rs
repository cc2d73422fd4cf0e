//! Publishing distribution events to `dist.<server_id>` on JetStream (in the server's shard:
//! `tessera_schemas::dist_shards`).
//!
//! Tokens are gathered per plugin server ([`Distribution`]): one task per server this
//! replica publishes to sends what is queued for that server as one `tokens` event, awaits
//! JetStream's ack, then answers every token of it; the tokens queued meanwhile make the
//! next event. With one request in flight an event holds one token and waits for nothing;
//! with many, one stored message and one ack stand for many tokens (JetStream's work per
//! message was most of nats-server's per token: BENCHMARKS.md). Revocations are published
//! as they come, each an event of its own.
//!
//! Each publish carries `Nats-Msg-Id` (a `tokens` event: its first token's id and the
//! server), so a retried publish is stored once (the stream's de-duplication window), and a
//! token is answered only after its event's ack: a reply means the token is durably on its
//! way to every plugin server it names.

use std::collections::HashMap;
use std::future::IntoFuture as _;
use std::sync::Mutex;

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::future::try_join_all;
use tessera_schemas::dist_shards::dist_shard;
use tessera_schemas::messages::{DIST_EVENT, DistEvent, MAX_DIST_BATCH, MAX_DIST_BATCH_BYTES};
use tessera_schemas::{ErrorCode, Subjects, WireError, codec, headers};
use tokio::sync::{mpsc, oneshot};

/// A replica's distribution: its JetStream connection and one queue per plugin server.
pub(crate) struct Distribution {
    js: jetstream::Context,
    subjects: Subjects,
    shards: u32,
    /// A server's queue and its task are made at the first token for it; the task ends
    /// when this is dropped (the senders with it).
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<Queued>>>,
}

/// A token waiting for its server's next event.
struct Queued {
    token_id: String,
    token: String,
    /// The trace context of the request that issued it (the event carries the first one's).
    trace: HeaderMap,
    done: oneshot::Sender<Result<(), WireError>>,
}

impl Distribution {
    /// `js`: a connection of its own (the hot path's publishes and acks do not queue behind
    /// requests and replies: BENCHMARKS.md).
    pub fn new(js: jetstream::Context, subjects: Subjects, shards: u32) -> Distribution {
        Distribution {
            js,
            subjects,
            shards,
            queues: Mutex::new(HashMap::new()),
        }
    }

    /// Distributes `token` to every server in `servers`; returns once each server's event
    /// holding it is acked.
    pub async fn token(
        &self,
        servers: &[String],
        token_id: &str,
        token: &str,
    ) -> Result<(), WireError> {
        let waits = servers.iter().map(|server| {
            let (done, wait) = oneshot::channel();
            let mut trace = HeaderMap::new();
            // The request's trace goes on to the plugin server's receipt of the event.
            tessera_protocol::trace::inject(&mut trace, None);
            let queued = Queued {
                token_id: token_id.to_owned(),
                token: token.to_owned(),
                trace,
                done,
            };
            let sent = self.queue(server).send(queued);
            async move {
                if sent.is_err() {
                    return Err(dist_error("queue", "the server's publishing task ended"));
                }
                wait.await
                    .unwrap_or_else(|_| Err(dist_error("queue", "the event was dropped")))
            }
        });
        try_join_all(waits).await?;
        Ok(())
    }

    /// Publishes `event` (a revocation) to every server in `servers` at once, each an event
    /// of its own; `msg_id` makes each publish idempotent.
    pub async fn event(
        &self,
        servers: &[String],
        msg_id: &str,
        event: &DistEvent,
    ) -> Result<(), WireError> {
        let payload: bytes::Bytes = codec::encode(event).into();
        let mut acks = Vec::with_capacity(servers.len());
        for server in servers {
            let mut h = HeaderMap::new();
            tessera_protocol::trace::inject(&mut h, None);
            let ack = publish(
                &self.js,
                self.subject(server),
                h,
                &format!("{msg_id}.{server}"),
                payload.clone(),
            )
            .await?;
            acks.push(ack.into_future());
        }
        try_join_all(acks).await.map_err(|e| dist_error("ack", e))?;
        Ok(())
    }

    fn subject(&self, server: &str) -> String {
        self.subjects
            .dist_in(dist_shard(server, self.shards), server)
    }

    /// The queue of `server`'s task (started now if there is none, or if it ended).
    fn queue(&self, server: &str) -> mpsc::UnboundedSender<Queued> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = queues.get(server)
            && !tx.is_closed()
        {
            return tx.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(publish_batches(
            self.js.clone(),
            self.subject(server),
            server.to_owned(),
            rx,
        ));
        queues.insert(server.to_owned(), tx.clone());
        tx
    }
}

/// One server's task: what is queued, as one `tokens` event at a time (unbounded queue:
/// its length is bounded by the replica's requests in flight).
async fn publish_batches(
    js: jetstream::Context,
    subject: String,
    server: String,
    mut rx: mpsc::UnboundedReceiver<Queued>,
) {
    while let Some(first) = rx.recv().await {
        let mut bytes = first.token.len();
        let mut batch = vec![first];
        while batch.len() < MAX_DIST_BATCH && bytes < MAX_DIST_BATCH_BYTES {
            match rx.try_recv() {
                Ok(q) => {
                    bytes += q.token.len();
                    batch.push(q);
                }
                Err(_) => break,
            }
        }
        let msg_id = format!("{}.{server}", batch[0].token_id);
        let trace = std::mem::take(&mut batch[0].trace);
        let mut tokens = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for q in batch {
            tokens.push(q.token);
            waiting.push(q.done);
        }
        let payload = codec::encode(&DistEvent::Tokens { tokens }).into();
        let result = match publish(&js, subject.clone(), trace, &msg_id, payload).await {
            Ok(ack) => ack.await.map(drop).map_err(|e| dist_error("ack", e)),
            Err(e) => Err(e),
        };
        for done in waiting {
            let _ = done.send(result.clone());
        }
    }
}

/// Sends one event (schema and message id added to `h`); the future is its ack.
async fn publish(
    js: &jetstream::Context,
    subject: String,
    mut h: HeaderMap,
    msg_id: &str,
    payload: bytes::Bytes,
) -> Result<jetstream::context::PublishAckFuture, WireError> {
    h.insert(headers::SCHEMA, DIST_EVENT.header_value().as_str());
    h.insert(headers::MSG_ID, msg_id);
    js.publish_with_headers(subject, h, payload)
        .await
        .map_err(|e| dist_error("publish", e))
}

fn dist_error(stage: &str, e: impl std::fmt::Display) -> WireError {
    tracing::warn!(stage, error = %e, "distribution failed");
    WireError::new(ErrorCode::Unavailable, "token distribution unavailable")
}
