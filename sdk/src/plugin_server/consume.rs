//! The distribution consumer: `dist.<server_id>` applied in stream order, resumed from the
//! last applied sequence after a failure, a gap, a stall or a reconnect.
//!
//! A plugin server lives in an account of its own and may not create consumers on the
//! workers' distribution stream (a consumer's config names its deliver subject, and
//! JetStream would publish there in the workers' account). It asks the broker for one
//! (`distribution.open.<id>`: a pull consumer, no acks, filtered on its own id) and pulls
//! from it through the workers' JetStream API as its account imports it (`<prefix>.js`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use tessera_protocol::now_unix;
use tessera_runtime::Shutdown;
use tessera_schemas::messages::{DIST_EVENT, DIST_OPEN, DistEvent, DistOpenRequest};
use tessera_schemas::{Subjects, codec, headers};
use tokio::sync::watch;
use tracing::Instrument;

use super::TokenStore;
use super::verify::Verifier;

/// Applies `dist.<server_id>` in stream order, forever (a new consumer, from the last
/// applied sequence, after a reconnect, a gap or a silence).
pub(super) async fn consume(
    nats: async_nats::Client,
    subjects: Subjects,
    server_id: String,
    store: Arc<TokenStore>,
    verifier: Arc<Verifier>,
    caught_up: watch::Sender<bool>,
    shutdown: Shutdown,
) {
    // The workers' JetStream API, as the plugin servers' account imports it (pulls only).
    let js = jetstream::with_prefix(nats.clone(), &subjects.js_api_import());
    let mut backoff = Duration::from_millis(100);
    // Where to resume: a new consumer picks up after the last event applied instead of
    // replaying the whole stream. The sequence counts in one stream, whose name goes with
    // it: after the number of distribution shards changed, the broker answers with a
    // consumer on another stream, from its start.
    let mut next = Resume::default();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let cx = Consume {
            nats: &nats,
            js: &js,
            subjects: &subjects,
            server_id: &server_id,
            store: &store,
            verifier: &verifier,
        };
        match consume_once(&cx, &mut next, &caught_up, &shutdown).await {
            Ok(()) => return,
            Err(ConsumeError::Stalled) => {
                tracing::debug!(
                    server_id,
                    next_seq = next.seq,
                    "no distribution for a while; renewing the consumer"
                );
                backoff = Duration::from_millis(100);
            }
            Err(ConsumeError::Reconnected) => {
                tracing::info!(
                    server_id,
                    next_seq = next.seq,
                    "reconnected; renewing the consumer"
                );
                backoff = Duration::from_millis(100);
            }
            Err(ConsumeError::Failed(e)) => {
                tracing::warn!(server_id, error = %e, "distribution consumer failed; restarting");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// How long the consumer may be silent before it is renewed: a consumer can stop
/// delivering for good when its NATS node goes (seen with async-nats 0.51's consumers when
/// one node of a cluster stops); renewing it from the last applied sequence is cheap (one
/// broker request) and safe.
const STALL: Duration = Duration::from_secs(10);

/// How often the consumer checks whether the connection was re-established. After
/// nats-server restarts, the consumer (in memory) died with the server and nothing comes
/// until [`STALL`]: renewing it as soon as the connection is
/// back brings the distributions missed meanwhile within a fraction of a second
/// (`tests/tests/e2e/faults_servers.rs`).
const RECONNECT_CHECK: Duration = Duration::from_millis(250);

/// The stream sequence to resume from, and the stream it counts in.
#[derive(Default)]
struct Resume {
    seq: u64,
    stream: String,
}

struct Consume<'a> {
    nats: &'a async_nats::Client,
    js: &'a jetstream::Context,
    subjects: &'a Subjects,
    server_id: &'a str,
    store: &'a TokenStore,
    verifier: &'a Verifier,
}

enum ConsumeError {
    Stalled,
    /// The connection was re-established since the consumer was created.
    Reconnected,
    Failed(async_nats::Error),
}

impl<E: Into<async_nats::Error>> From<E> for ConsumeError {
    fn from(e: E) -> Self {
        ConsumeError::Failed(e.into())
    }
}

impl std::fmt::Display for ConsumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsumeError::Stalled => f.write_str("stalled"),
            ConsumeError::Reconnected => f.write_str("reconnected"),
            ConsumeError::Failed(e) => e.fmt(f),
        }
    }
}

async fn consume_once(
    cx: &Consume<'_>,
    next: &mut Resume,
    caught_up: &watch::Sender<bool>,
    shutdown: &Shutdown,
) -> Result<(), ConsumeError> {
    let connects = || cx.nats.statistics().connects.load(Ordering::Relaxed);
    let connected_at = connects();
    let consumer = open(cx, next).await?;
    let stream = consumer.cached_info().stream_name.clone();
    if stream != next.stream {
        // A new stream (the first open, or the layout changed): sequences start over.
        *next = Resume { seq: 0, stream };
    }
    if consumer.cached_info().num_pending == 0 {
        caught_up.send_replace(true);
    }
    let mut messages = consumer.messages().await?;
    let mut reconnect_check = tokio::time::interval(RECONNECT_CHECK);
    // A deadline, not a timeout per poll: the reconnect check wakes the loop every
    // RECONNECT_CHECK and must not reset the stall clock.
    let mut silent_until = tokio::time::Instant::now() + STALL;
    // The consumer's own delivery count: a pull consumer without acks moves on when a
    // delivery is lost (a reconnect in between), so a skipped number means a gap, and the
    // consumer is renewed from the last applied stream sequence (what an ordered consumer
    // does by itself).
    let mut delivered = 0u64;
    loop {
        let polled = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = reconnect_check.tick() => {
                if connects() != connected_at {
                    return Err(ConsumeError::Reconnected);
                }
                continue;
            }
            next = tokio::time::timeout_at(silent_until, messages.next()) => next,
        };
        let Ok(polled) = polled else {
            return Err(ConsumeError::Stalled);
        };
        let Some(msg) = polled else {
            return Err(ConsumeError::Failed("distribution stream ended".into()));
        };
        silent_until = tokio::time::Instant::now() + STALL;
        let msg = msg?;
        let (pending, seq, consumer_seq) = msg
            .info()
            .map(|i| (i.pending, i.stream_sequence, i.consumer_sequence))
            .unwrap_or((0, 0, 0));
        if consumer_seq != delivered + 1 {
            return Err(ConsumeError::Failed(
                format!("distribution gap: delivery {consumer_seq} after {delivered}").into(),
            ));
        }
        delivered = consumer_seq;
        apply(&msg, cx.store, cx.verifier)
            .instrument(receipt_span(&msg))
            .await;
        if seq > 0 {
            next.seq = seq + 1;
        }
        if pending == 0 {
            caught_up.send_replace(true);
        }
    }
}

/// Asks the broker for a consumer of `dist.<server_id>` resuming at `from` (sequence 0: the
/// first event kept) and makes the pull consumer it named, read through the workers'
/// JetStream API as the plugin servers' account imports it.
async fn open(
    cx: &Consume<'_>,
    from: &Resume,
) -> Result<consumer::Consumer<consumer::pull::Config>, ConsumeError> {
    let subject = cx.subjects.dist_open(cx.server_id);
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::SCHEMA, DIST_OPEN.header_value().as_str());
    let body = codec::encode(&DistOpenRequest {
        start_seq: from.seq,
        stream: from.stream.clone(),
    });
    let reply = cx
        .nats
        .request_with_headers(subject, h, body.into())
        .await?;
    if let Some(err) = rpc_error(&reply) {
        return Err(ConsumeError::Failed(err.into()));
    }
    let info: consumer::Info = serde_json::from_slice(&reply.payload)?;
    let config = consumer::pull::Config {
        name: Some(info.name.clone()),
        filter_subject: info.config.filter_subject.clone(),
        ack_policy: consumer::AckPolicy::None,
        ..Default::default()
    };
    Ok(consumer::Consumer::new(config, info, cx.js.clone()))
}

/// The broker's error reply, if `reply` is one.
fn rpc_error(reply: &async_nats::Message) -> Option<String> {
    let code = reply.headers.as_ref()?.get(headers::SERVICE_ERROR_CODE)?;
    let message = codec::decode::<tessera_schemas::WireError>(&reply.payload)
        .map(|e| e.to_string())
        .unwrap_or_else(|_| code.as_str().to_owned());
    Some(format!("the broker refused to open a consumer: {message}"))
}

/// The receipt of one event, as the child of the broker span that published it (its
/// `traceparent`): so a token request's trace reaches every plugin server it was sent to.
fn receipt_span(msg: &jetstream::Message) -> tracing::Span {
    let span = tracing::info_span!(
        "distribution",
        otel.name = "distribution receive",
        otel.kind = "consumer",
        event = tracing::field::Empty,
    );
    tessera_protocol::trace::adopt(&span, msg.headers.as_ref());
    span
}

/// A distributed token, stored now, its signature checked on first use: the distribution
/// subject is writable by the broker role alone, and most tokens are never presented at
/// every server they are distributed to, so verifying each on receipt would spend an EdDSA
/// verification per token per server for nothing.
fn store_token(token: &str, store: &TokenStore, verifier: &Verifier) {
    match verifier.claims(token) {
        Ok(info) if info.expires_at + verifier.leeway().as_secs() > now_unix() => {
            store.insert_unverified(token, info);
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "dropping a distributed token with unreadable claims"),
    }
}

async fn apply(msg: &jetstream::Message, store: &TokenStore, verifier: &Verifier) {
    let schema = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::SCHEMA))
        .map(|v| v.as_str());
    if let Err(e) = DIST_EVENT.check(schema) {
        tracing::warn!(error = %e, "skipping distribution event of an unknown schema");
        return;
    }
    let event = match codec::decode::<DistEvent>(&msg.payload) {
        Ok(ev) => ev,
        Err(e) => {
            tracing::warn!(error = %e, "skipping undecodable distribution event");
            return;
        }
    };
    let kind = match &event {
        DistEvent::Token { .. } => "token",
        DistEvent::Tokens { .. } => "tokens",
        DistEvent::Revoke { .. } => "revoke",
    };
    tracing::Span::current().record("event", kind);
    match event {
        DistEvent::Token { token } => store_token(&token, store, verifier),
        DistEvent::Tokens { tokens } => {
            for token in &tokens {
                store_token(token, store, verifier);
            }
        }
        DistEvent::Revoke { token_ids } => {
            store.revoke(&token_ids, now_unix() + 24 * 3600);
            tracing::info!(count = token_ids.len(), "tokens revoked");
        }
    }
}
