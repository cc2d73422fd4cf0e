//! The audit trail: how a worker appends [`AuditEvent`]s to the audit stream
//! without slowing the request that caused them.
//!
//! A handler builds an event ([`Auditor::event`]) and hands it over with [`Auditor::emit`],
//! which never waits: it puts the event in a bounded queue, or, if the queue is full, drops
//! it, counts it (`tessera_audit_events_total{outcome="dropped"}`) and logs a warning. One
//! background task per worker gathers the queue for a few milliseconds ([`LINGER`]) and
//! publishes what it gathered to JetStream, one `audit.events` message per kind
//! (`P.audit.<kind>`, the first event's id as `Nats-Msg-Id`), and awaits the acks, a
//! bounded number at a time; a failed publish is counted (`outcome="failed"`, per event)
//! and logged.
//!
//! The consequence, accepted on purpose: the reply to a request goes out before its audit
//! event is acknowledged, so a worker that dies right after replying (SIGKILL, power loss)
//! can lose the events still in its queue. A graceful shutdown flushes the queue
//! ([`Auditor::flush`], bounded). The token hot path gets no extra round trip.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tessera_schemas::audit::{AUDIT_EVENTS, AuditEvent, AuditKind, AuditOutcome, MAX_AUDIT_BATCH};
use tessera_schemas::{Subjects, WireError, codec, headers};
use tokio::sync::{mpsc, oneshot};

use crate::config::Reader;
use crate::config::registry::{AUDIT_MAX_AGE, AUDIT_MAX_BYTES, AUDIT_QUEUE};

/// Publishes awaiting their ack at once; beyond that the task stops taking from the queue.
const MAX_PENDING_ACKS: usize = 256;

/// The audit settings every worker that emits shares (and provisions the stream with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditConfig {
    pub max_age: Duration,
    pub max_bytes: i64,
    pub queue: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            max_age: AUDIT_MAX_AGE.default_duration(),
            max_bytes: AUDIT_MAX_BYTES.default_parsed(),
            queue: AUDIT_QUEUE.default_parsed(),
        }
    }
}

impl AuditConfig {
    pub fn read(r: &mut Reader) -> Self {
        let c = AuditConfig {
            max_age: r.duration(&AUDIT_MAX_AGE),
            max_bytes: r.parsed(&AUDIT_MAX_BYTES),
            queue: r.parsed(&AUDIT_QUEUE),
        };
        // JetStream's de-duplication window must not exceed the retention; a minute is the
        // least that still makes sense for an audit trail.
        r.check(
            &AUDIT_MAX_AGE,
            c.max_age >= Duration::from_secs(60),
            "must be at least 60s",
        );
        r.check(
            &AUDIT_MAX_BYTES,
            c.max_bytes >= 1024 * 1024,
            "must be at least 1048576 (1 MiB)",
        );
        r.check(&AUDIT_QUEUE, c.queue >= 1, "must be at least 1");
        c
    }
}

enum Command {
    Event(Box<AuditEvent>),
    Flush(oneshot::Sender<()>),
}

/// A worker's handle on its audit task. Cheap to clone; every clone feeds the same queue.
#[derive(Clone)]
pub struct Auditor {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Command>,
    worker: &'static str,
    node: String,
    dropped: AtomicU64,
}

impl Auditor {
    /// Starts the publishing task. The stream must exist (see
    /// `tessera_bus_config::provision::audit_stream`). `worker` is `broker` or `auth`,
    /// `node` the instance id written into every event.
    pub fn start(
        js: jetstream::Context,
        subjects: Subjects,
        worker: &'static str,
        node: String,
        queue: usize,
    ) -> Auditor {
        let (tx, rx) = mpsc::channel(queue.max(1));
        tokio::spawn(publish_loop(js, subjects, rx));
        Auditor {
            inner: Arc::new(Inner {
                tx,
                worker,
                node,
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// A new event of `kind` with `outcome`, stamped with a fresh id, the time, this worker
    /// and node. Fill in actor, target and request id, then [`Auditor::emit`] it.
    pub fn event(&self, kind: AuditKind, outcome: AuditOutcome) -> AuditEvent {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        AuditEvent {
            id: event_id(),
            at,
            kind,
            actor: Default::default(),
            target: Default::default(),
            outcome,
            detail: None,
            request_id: None,
            worker: self.inner.worker.to_owned(),
            node: self.inner.node.clone(),
        }
    }

    /// Queues `event` for publishing. Never waits: a full (or closed) queue drops the event,
    /// counts it and logs a warning (the first, second, fourth, ... drop, not every one).
    pub fn emit(&self, event: AuditEvent) {
        let kind = event.kind;
        if self
            .inner
            .tx
            .try_send(Command::Event(Box::new(event)))
            .is_err()
        {
            crate::metrics::record_audit("dropped");
            let n = self.inner.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(kind = %kind, dropped = n, "audit queue full: event dropped");
            }
        }
    }

    /// Waits, at most `bound`, until every event emitted before this call has been
    /// acknowledged by JetStream (or has failed): what is gathered is published at once.
    /// Returns whether it finished in time. Called by a worker after its requests have
    /// drained.
    pub async fn flush(&self, bound: Duration) -> bool {
        let (done, wait) = oneshot::channel();
        let flushed =
            async { self.inner.tx.send(Command::Flush(done)).await.is_ok() && wait.await.is_ok() };
        let ok = tokio::time::timeout(bound, flushed).await.unwrap_or(false);
        if !ok {
            tracing::warn!(bound = ?bound, "audit queue not flushed in time: events may be lost");
        }
        ok
    }
}

/// The outcome of a handler's result: `ok` or its error code.
pub fn outcome_of<T>(result: &Result<T, WireError>) -> AuditOutcome {
    match result {
        Ok(_) => AuditOutcome::Ok,
        Err(e) => AuditOutcome::Error(e.code),
    }
}

type Acked = Result<jetstream::publish::PublishAck, jetstream::context::PublishError>;
type AckFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = (AuditKind, usize, Acked)> + Send>>;

/// How long the task gathers events before publishing them. No reply waits on an event, so
/// a few milliseconds cost nothing, and at thousands of events a second they save
/// JetStream a stored message and an ack per event (the broker's one publish per token
/// was a third of its JetStream traffic: BENCHMARKS.md).
const LINGER: Duration = Duration::from_millis(5);

/// A batch is published once its encoded events pass this size (or reach
/// [`MAX_AUDIT_BATCH`]), far under what a reader decodes (`codec::MAX_MESSAGE_BYTES`).
const MAX_BATCH_BYTES: usize = 32 * 1024;

/// Events gathered for one kind: each encoded once, framed together when published.
struct Batch {
    kind: AuditKind,
    first_id: String,
    encoded: Vec<Vec<u8>>,
    bytes: usize,
}

async fn publish_loop(js: jetstream::Context, subjects: Subjects, mut rx: mpsc::Receiver<Command>) {
    let mut acks: FuturesUnordered<AckFuture> = FuturesUnordered::new();
    let failed = AtomicU64::new(0);
    let settle = |(kind, events, result): (AuditKind, usize, Acked)| match result {
        Ok(_) => crate::metrics::record_audit_n("published", events as u64),
        Err(e) => {
            crate::metrics::record_audit_n("failed", events as u64);
            let n = failed.fetch_add(events as u64, Ordering::Relaxed) + events as u64;
            if n.is_power_of_two() || events > 1 {
                tracing::warn!(kind = %kind, error = %e, events, failed = n, "audit events not stored");
            }
        }
    };
    // Sends one batch; the future it gives settles with the ack (or the send's error). The
    // send is awaited here, so batches go out in order; their acks are awaited together.
    #[allow(clippy::async_yields_async)]
    let publish = |batch: Batch| {
        let js = js.clone();
        let subject = subjects.audit(batch.kind);
        async move {
            let (kind, events) = (batch.kind, batch.encoded.len());
            let mut h = HeaderMap::new();
            h.insert(headers::SCHEMA, AUDIT_EVENTS.header_value().as_str());
            h.insert(headers::MSG_ID, batch.first_id.as_str());
            let payload = codec::encode_list("events", &batch.encoded).into();
            let sent = js.publish_with_headers(subject, h, payload).await;
            Box::pin(async move {
                match sent {
                    Ok(ack) => (kind, events, ack.await),
                    Err(e) => (kind, events, Err(e)),
                }
            }) as AckFuture
        }
    };
    let mut gathered: Vec<Batch> = Vec::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let linger = async move {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            Some(done) = acks.next(), if !acks.is_empty() => settle(done),
            _ = linger => {
                deadline = None;
                for batch in gathered.drain(..) {
                    let ack = publish(batch).await;
                    acks.push(ack);
                }
            }
            command = rx.recv(), if acks.len() < MAX_PENDING_ACKS => match command {
                None => break,
                Some(Command::Flush(done)) => {
                    deadline = None;
                    for batch in gathered.drain(..) {
                        let ack = publish(batch).await;
                        acks.push(ack);
                    }
                    while let Some(r) = acks.next().await {
                        settle(r);
                    }
                    let _ = done.send(());
                }
                Some(Command::Event(event)) => {
                    let encoded = codec::encode(&*event);
                    let at = match gathered.iter().position(|b| b.kind == event.kind) {
                        Some(at) => at,
                        None => {
                            gathered.push(Batch {
                                kind: event.kind,
                                first_id: event.id.clone(),
                                encoded: Vec::new(),
                                bytes: 0,
                            });
                            gathered.len() - 1
                        }
                    };
                    let batch = &mut gathered[at];
                    batch.bytes += encoded.len();
                    batch.encoded.push(encoded);
                    if batch.encoded.len() >= MAX_AUDIT_BATCH || batch.bytes >= MAX_BATCH_BYTES {
                        let ack = publish(gathered.swap_remove(at)).await;
                        acks.push(ack);
                    }
                    if gathered.is_empty() {
                        deadline = None;
                    } else if deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + LINGER);
                    }
                }
            },
        }
    }
    for batch in gathered.drain(..) {
        let ack = publish(batch).await;
        acks.push(ack);
    }
    while let Some(r) = acks.next().await {
        settle(r);
    }
}

/// 128 random bits, URL-safe base64: unique per event, used as its `Nats-Msg-Id`.
fn event_id() -> String {
    tessera_protocol::random_id(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_validated_and_named() {
        let read = |env: &std::collections::HashMap<String, String>| {
            crate::config::read(env, AuditConfig::read)
        };
        let mut env = std::collections::HashMap::new();
        assert_eq!(read(&env).unwrap(), AuditConfig::default());
        assert_eq!(
            AuditConfig::default().max_age,
            Duration::from_secs(30 * 24 * 3600)
        );
        env.insert(AUDIT_MAX_AGE.name.to_owned(), "10s".to_owned());
        assert_eq!(read(&env).unwrap_err().keys(), [AUDIT_MAX_AGE.name]);
        env.insert(AUDIT_MAX_AGE.name.to_owned(), "7d".to_owned());
        assert_eq!(read(&env).unwrap_err().keys(), [AUDIT_MAX_AGE.name]);
        // Both bad: both reported.
        env.insert(AUDIT_MAX_BYTES.name.to_owned(), "10".to_owned());
        assert_eq!(
            read(&env).unwrap_err().keys(),
            [AUDIT_MAX_AGE.name, AUDIT_MAX_BYTES.name]
        );
        env.insert(AUDIT_MAX_AGE.name.to_owned(), "48h".to_owned());
        env.remove(AUDIT_MAX_BYTES.name);
        let c = read(&env).unwrap();
        assert_eq!(c.max_age, Duration::from_secs(48 * 3600));
    }
}
