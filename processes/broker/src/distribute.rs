//! Publishing distribution events to `dist.<server_id>` on JetStream (in the server's shard:
//! `tessera_schemas::dist_shards`).
//!
//! Tokens are gathered per plugin server ([`Distribution`]), a group commit: a request
//! that finds nothing in flight to a server publishes its token itself, as a `tokens` event
//! of one; tokens issued for that server while an event awaits its ack wait, and when the
//! ack comes one task publishes them as one event (at most `MAX_DIST_BATCH` tokens), then
//! the next, until nothing waits. With one request in flight nothing waits and no other
//! task is involved; under load one stored message and one ack stand for many tokens
//! (JetStream's work per message was most of nats-server's per token: BENCHMARKS.md).
//! Revocations are published as they come, each an event of its own.
//!
//! Each publish carries `Nats-Msg-Id` (a `tokens` event: its first token's id and the
//! server), so a retried publish is stored once (the stream's de-duplication window), and a
//! token is answered only after its event's ack: a reply means the token is durably on its
//! way to every plugin server it names.

use std::collections::HashMap;
use std::future::IntoFuture as _;
use std::sync::{Arc, Mutex};

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::future::try_join_all;
use tessera_schemas::dist_shards::dist_shard;
use tessera_schemas::messages::{DIST_EVENT, DistEvent, MAX_DIST_BATCH, MAX_DIST_BATCH_BYTES};
use tessera_schemas::{ErrorCode, Subjects, WireError, codec, headers};
use tokio::sync::oneshot;

/// A replica's distribution: its JetStream connection and one queue per plugin server.
pub(crate) struct Distribution {
    js: jetstream::Context,
    subjects: Subjects,
    shards: u32,
    queues: Mutex<HashMap<String, Arc<Server>>>,
}

/// One plugin server's queue. While an event to it awaits its ack (`busy`), tokens for it
/// wait here; when that ack comes, one task publishes what waited, as one event at a time,
/// until nothing waits.
struct Server {
    subject: String,
    id: String,
    state: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    busy: bool,
    waiting: Vec<Queued>,
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
        let sent = servers
            .iter()
            .map(|server| self.token_to(self.server(server), token_id, token));
        try_join_all(sent).await?;
        Ok(())
    }

    /// `token` to one server: published by this request at once when nothing is in flight
    /// to the server (one request in flight waits for nothing), else queued for the event
    /// after the one in flight.
    async fn token_to(
        &self,
        server: Arc<Server>,
        token_id: &str,
        token: &str,
    ) -> Result<(), WireError> {
        let mut trace = HeaderMap::new();
        // The request's trace goes on to the plugin server's receipt of the event.
        tessera_protocol::trace::inject(&mut trace, None);
        let queued = {
            let mut queue = server.state.lock().unwrap_or_else(|p| p.into_inner());
            if queue.busy {
                let (done, wait) = oneshot::channel();
                queue.waiting.push(Queued {
                    token_id: token_id.to_owned(),
                    token: token.to_owned(),
                    trace,
                    done,
                });
                Ok(wait)
            } else {
                queue.busy = true;
                Err(trace)
            }
        };
        let trace = match queued {
            Ok(wait) => {
                return wait
                    .await
                    .unwrap_or_else(|_| Err(dist_error("queue", "the event was dropped")));
            }
            Err(trace) => trace,
        };
        // This request publishes; whatever waits meanwhile goes out after it (also if this
        // future is dropped half-way: the guard hands the queue on).
        let _hand_on = HandOn {
            server: server.clone(),
            js: self.js.clone(),
        };
        let msg_id = format!("{token_id}.{}", server.id);
        let payload = codec::encode(&DistEvent::Tokens {
            tokens: vec![token.to_owned()],
        })
        .into();
        publish_acked(&self.js, &server.subject, trace, &msg_id, payload).await
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

    fn server(&self, id: &str) -> Arc<Server> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(server) = queues.get(id) {
            return server.clone();
        }
        let server = Arc::new(Server {
            subject: self.subject(id),
            id: id.to_owned(),
            state: Mutex::new(Queue::default()),
        });
        queues.insert(id.to_owned(), server.clone());
        server
    }
}

/// Hands a server's queue on when its publisher is done: what waited goes out from a task
/// of its own, or, with nothing waiting, the server is free for the next request.
struct HandOn {
    server: Arc<Server>,
    js: jetstream::Context,
}

impl Drop for HandOn {
    fn drop(&mut self) {
        let mut queue = self.server.state.lock().unwrap_or_else(|p| p.into_inner());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !queue.waiting.is_empty() => {
                runtime.spawn(publish_waiting(self.server.clone(), self.js.clone()));
            }
            // Nothing waits; or no runtime is left to publish with (the waiting requests
            // get an error as their senders drop).
            _ => {
                queue.waiting.clear();
                queue.busy = false;
            }
        }
    }
}

/// What waits for `server`, one event at a time, until nothing waits (then the server is
/// free again).
async fn publish_waiting(server: Arc<Server>, js: jetstream::Context) {
    loop {
        let batch = {
            let mut queue = server.state.lock().unwrap_or_else(|p| p.into_inner());
            if queue.waiting.is_empty() {
                queue.busy = false;
                return;
            }
            let mut bytes = 0;
            let take = queue
                .waiting
                .iter()
                .take(MAX_DIST_BATCH)
                .take_while(|q| {
                    let fits = bytes < MAX_DIST_BATCH_BYTES;
                    bytes += q.token.len();
                    fits
                })
                .count();
            queue.waiting.drain(..take).collect::<Vec<_>>()
        };
        let msg_id = format!("{}.{}", batch[0].token_id, server.id);
        let mut tokens = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        let mut trace = None;
        for q in batch {
            trace.get_or_insert(q.trace);
            tokens.push(q.token);
            waiting.push(q.done);
        }
        let payload = codec::encode(&DistEvent::Tokens { tokens }).into();
        let result = publish_acked(
            &js,
            &server.subject,
            trace.unwrap_or_default(),
            &msg_id,
            payload,
        )
        .await;
        for done in waiting {
            let _ = done.send(result.clone());
        }
    }
}

/// Publishes one event and waits for its ack.
async fn publish_acked(
    js: &jetstream::Context,
    subject: &str,
    h: HeaderMap,
    msg_id: &str,
    payload: bytes::Bytes,
) -> Result<(), WireError> {
    let ack = publish(js, subject.to_owned(), h, msg_id, payload).await?;
    ack.await.map(drop).map_err(|e| dist_error("ack", e))
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
