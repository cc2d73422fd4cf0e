//! Reading the audit stream (admin): the last events, optionally of one kind or one
//! group of kinds, and optionally following new ones as they arrive.
//!
//! ```no_run
//! # async fn demo(admin: tessera_sdk::Client) -> Result<(), tessera_sdk::Error> {
//! use tessera_sdk::operator::audit::AuditQuery;
//! let query = AuditQuery { last: Some(20), kind: Some("login".into()), follow: false };
//! for entry in admin.audit_events(&query).await? {
//!     println!("{} {:?}", entry.seq, entry.event.map(|e| e.kind));
//! }
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use tessera_schemas::audit::{AUDIT_EVENT, AUDIT_EVENTS, AuditEvent, AuditEvents, AuditKind};
use tessera_schemas::{codec, headers, ids};

use crate::{Client, Error, ErrorKind};

/// Silence after which a follower re-creates its consumer from the next sequence (an
/// async-nats ordered pull consumer can stall; the plugin-server SDK does the same).
const STALL: Duration = Duration::from_secs(10);

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only the last this many matching events (`None`: all that are kept).
    pub last: Option<usize>,
    /// A kind (`token.issued`) or a group of kinds (`token`, `login`, `package`, `user`).
    pub kind: Option<String>,
    /// Keep waiting for new events after the stored ones.
    pub follow: bool,
}

/// One event as stored, with its stream sequence. An event this build cannot decode (a
/// newer worker's) is given as its error, so a reader can still show the sequence.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub seq: u64,
    pub event: Result<AuditEvent, String>,
}

impl Client {
    /// The stored events matching `query`, oldest first (`follow` is ignored).
    pub async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, Error> {
        let query = AuditQuery {
            follow: false,
            ..query.clone()
        };
        let mut out = Vec::new();
        self.audit_read(&query, |entry| {
            out.push(entry);
            ControlFlow::Continue(())
        })
        .await?;
        Ok(out)
    }

    /// Calls `on_event` for each event matching `query`, oldest first. Without `follow`,
    /// returns once the events stored when it started have been read; with it, runs until
    /// `on_event` breaks (or an error).
    pub async fn audit_read(
        &self,
        query: &AuditQuery,
        mut on_event: impl FnMut(AuditEntry) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        let filter = filter_subject(self, query.kind.as_deref())?;
        let js = self.js();
        let stream = js
            .get_stream(self.subjects().audit_stream())
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "audit stream {}: {e} (it is created when a broker or auth worker starts)",
                        self.subjects().audit_stream()
                    ),
                )
                .with_source(e)
            })?;
        // With `last`, the stored events are kept back, the last `n` of them, and handed on
        // once the stored ones are read (a message may hold several events, so the start
        // sequence reaches back at least `n` events, perhaps more).
        let (mut next_seq, mut keep_last) = match query.last {
            Some(n) => (start_for_last(&stream, &filter, n).await?, Some(n)),
            None => (0, None),
        };
        let mut tail: VecDeque<AuditEntry> = VecDeque::new();
        loop {
            let mut consumer = ordered(&stream, &filter, next_seq).await?;
            let pending = consumer
                .info()
                .await
                .map_err(|e| Error::context(ErrorKind::Unavailable, "audit consumer", e))?
                .num_pending;
            if pending == 0 {
                if hand_on_tail(&mut tail, &mut keep_last, &mut on_event).is_break() {
                    return Ok(());
                }
                if !query.follow {
                    return Ok(());
                }
            }
            let mut messages = consumer
                .messages()
                .await
                .map_err(|e| Error::context(ErrorKind::Unavailable, "audit consumer", e))?;
            loop {
                let Ok(next) = tokio::time::timeout(STALL, messages.next()).await else {
                    break; // silence: resume from next_seq with a fresh consumer
                };
                let msg = match next {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        return Err(Error::context(ErrorKind::Unavailable, "audit stream", e));
                    }
                    None => break,
                };
                let (seq, left) = msg
                    .info()
                    .map(|i| (i.stream_sequence, i.pending))
                    .unwrap_or((0, 0));
                next_seq = seq + 1;
                for event in decode(&msg) {
                    let entry = AuditEntry { seq, event };
                    match keep_last {
                        Some(n) => {
                            tail.push_back(entry);
                            if tail.len() > n {
                                tail.pop_front();
                            }
                        }
                        None => {
                            if on_event(entry).is_break() {
                                return Ok(());
                            }
                        }
                    }
                }
                if left == 0 {
                    if hand_on_tail(&mut tail, &mut keep_last, &mut on_event).is_break() {
                        return Ok(());
                    }
                    if !query.follow {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// The stored events kept back for `last`, handed on; from then on events go straight on.
fn hand_on_tail(
    tail: &mut VecDeque<AuditEntry>,
    keep_last: &mut Option<usize>,
    on_event: &mut impl FnMut(AuditEntry) -> ControlFlow<()>,
) -> ControlFlow<()> {
    *keep_last = None;
    tail.drain(..).try_for_each(on_event)
}

/// The events of one stored message: several (`audit.events`, what workers publish) or one
/// (`audit.event`, older workers). A message this build cannot read is one error entry.
fn decode(msg: &jetstream::Message) -> Vec<Result<AuditEvent, String>> {
    let schema = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::SCHEMA))
        .map(|v| v.as_str());
    if AUDIT_EVENTS.check(schema).is_ok() {
        return match codec::decode::<AuditEvents>(&msg.payload) {
            Ok(batch) => batch.events.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e.to_string())],
        };
    }
    vec![
        AUDIT_EVENT
            .check(schema)
            .map_err(|e| e.to_string())
            .and_then(|()| codec::decode(&msg.payload).map_err(|e| e.to_string())),
    ]
}

/// `P.audit.>`, `P.audit.<group>.>` or `P.audit.<kind>`.
fn filter_subject(client: &Client, kind: Option<&str>) -> Result<String, Error> {
    let s = client.subjects();
    let Some(kind) = kind else {
        return Ok(s.audit_all());
    };
    if let Some(k) = AuditKind::parse(kind) {
        return Ok(s.audit(k));
    }
    if ids::check("kind", kind).is_ok()
        && AuditKind::ALL
            .iter()
            .any(|k| k.as_str().split('.').next() == Some(kind))
    {
        return Ok(format!("{}.{kind}.>", s.audit_all().trim_end_matches(".>")));
    }
    let known: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
    Err(Error::invalid_input(format!(
        "unknown audit kind {kind:?}: use one of {} or a group (token, login, user, package)",
        known.join(", ")
    )))
}

async fn ordered(
    stream: &jetstream::stream::Stream,
    filter: &str,
    start: u64,
) -> Result<consumer::Consumer<consumer::pull::OrderedConfig>, Error> {
    let deliver_policy = match start {
        0 => consumer::DeliverPolicy::All,
        start_sequence => consumer::DeliverPolicy::ByStartSequence { start_sequence },
    };
    stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: filter.to_owned(),
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::context(ErrorKind::Unavailable, "audit consumer", e))
}

/// Where to start so that the last `n` matching events are read: widen a window back from
/// the stream's end until it holds `n` matching messages (the server counts them for a
/// consumer; each holds one event or more) or reaches the first one.
async fn start_for_last(
    stream: &jetstream::stream::Stream,
    filter: &str,
    n: usize,
) -> Result<u64, Error> {
    let mut stream = stream.clone();
    let state = stream
        .info()
        .await
        .map_err(|e| Error::context(ErrorKind::Unavailable, "audit stream", e))?
        .state
        .clone();
    let (first, last) = (state.first_sequence.max(1), state.last_sequence);
    let n = n as u64;
    if n == 0 || last == 0 {
        // Nothing wanted or nothing stored: start after the end.
        return Ok(last + 1);
    }
    let mut window = n;
    loop {
        let start = last.saturating_sub(window - 1).max(first);
        let mut consumer = ordered(&stream, filter, start).await?;
        let pending = consumer
            .info()
            .await
            .map_err(|e| Error::context(ErrorKind::Unavailable, "audit consumer", e))?
            .num_pending;
        // Counting is all this consumer was for; the server would drop it when idle anyway.
        let name = consumer.cached_info().name.clone();
        let _ = stream.delete_consumer(&name).await;
        if pending >= n || start == first {
            return Ok(start);
        }
        window = window.saturating_mul(4);
    }
}
