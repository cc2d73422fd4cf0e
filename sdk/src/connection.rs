//! The SDK's NATS connections: named, logging their events under that name, and watching
//! for the publishes the server refuses.
//!
//! nats-server drops a publish the connection's permissions do not allow, sends nothing to
//! the reply subject, and reports `-ERR 'Permissions Violation for Publish to "<subject>"'`
//! to that connection alone. async-nats hands the error to the connection's event callback;
//! the callback installed here records the subject and wakes the requests waiting on it, so
//! a refused request fails at once as [`ErrorKind::Forbidden`] instead of timing out as
//! unavailable.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{ConnectOptions, Event, ServerError};
use tokio::sync::broadcast;
use tokio::time::Instant;

use tessera_protocol::rpc::RpcError;

use crate::error::{Error, ErrorKind};

/// How long a refusal is remembered: longer than any request timeout the SDK uses, so a
/// request that timed out can still be told it was refused.
const REMEMBER: Duration = Duration::from_secs(60);

/// What nats-server says before the quoted subject of a refused publish.
const PUBLISH_VIOLATION: &str = "permissions violation for publish to ";

/// The publishes the server refused on one connection, recently.
#[derive(Debug)]
pub(crate) struct Refusals {
    /// The connection's name, as given at connect (logged with every event).
    name: String,
    recent: Mutex<HashMap<String, Instant>>,
    refused: broadcast::Sender<Arc<str>>,
}

impl Refusals {
    fn new(name: &str) -> Refusals {
        Refusals {
            name: name.to_owned(),
            recent: Mutex::new(HashMap::new()),
            // Only wakes waiting requests; a lagging one checks `recent` instead.
            refused: broadcast::channel(64).0,
        }
    }

    fn record(&self, subject: &str) {
        let now = Instant::now();
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            recent.retain(|_, at| now.duration_since(*at) < REMEMBER);
            recent.insert(subject.to_owned(), now);
        }
        // No receiver is fine: nobody is waiting on a request right now.
        let _ = self.refused.send(subject.into());
    }

    fn refused_since(&self, subject: &str, since: Instant) -> bool {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.get(subject).is_some_and(|at| *at >= since)
    }

    fn on_event(&self, event: Event) {
        let name = self.name.as_str();
        match event {
            Event::ServerError(ServerError::Other(message)) => {
                if let Some(subject) = refused_publish(&message) {
                    tracing::warn!(
                        connection = name,
                        subject,
                        "the server refused a publish (permissions violation)"
                    );
                    self.record(subject);
                    return;
                }
                tessera_protocol::bus::log_event(
                    name,
                    &Event::ServerError(ServerError::Other(message)),
                );
            }
            other => tessera_protocol::bus::log_event(name, &other),
        }
    }

    /// Runs a request on `subject`, failing it as forbidden as soon as the server says it
    /// refused a publish there (or, if the request timed out or found no responders first,
    /// when a refusal for it arrived since it started).
    pub(crate) async fn guard<T>(
        &self,
        subject: &str,
        request: impl Future<Output = Result<T, RpcError>>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        // Subscribed before the request goes out, so its refusal cannot be missed.
        let mut refused = self.refused.subscribe();
        let wait_refused = async {
            loop {
                match refused.recv().await {
                    Ok(s) if &*s == subject => return,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if self.refused_since(subject, started) {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        };
        tokio::select! {
            r = request => match r {
                Err(RpcError::Timeout(..) | RpcError::NoResponders(_))
                    if self.refused_since(subject, started) =>
                {
                    Err(Error::forbidden(subject))
                }
                r => Ok(r?),
            },
            () = wait_refused => Err(Error::forbidden(subject)),
        }
    }
}

/// The subject of a `Permissions Violation for Publish to "<subject>"` error.
fn refused_publish(message: &str) -> Option<&str> {
    let head = message.get(..PUBLISH_VIOLATION.len())?;
    if !head.eq_ignore_ascii_case(PUBLISH_VIOLATION) {
        return None;
    }
    let quoted = message[PUBLISH_VIOLATION.len()..].trim();
    quoted.strip_prefix('"')?.strip_suffix('"')
}

/// Connects as `name` (see [`tessera_protocol::bus::connect_with`]) with the SDK's event
/// callback; returns the connection and its refusals.
pub(crate) async fn connect(
    url: &str,
    name: &str,
    wait: Duration,
    customize: impl Fn(ConnectOptions) -> ConnectOptions,
) -> Result<(async_nats::Client, Arc<Refusals>), Error> {
    let refusals = Arc::new(Refusals::new(name));
    let nats = tessera_protocol::bus::connect_with(url, name, wait, |o| {
        let watching = refusals.clone();
        customize(o).event_callback(move |event| {
            let watching = watching.clone();
            async move { watching.on_event(event) }
        })
    })
    .await
    .map_err(|e| Error::caused(ErrorKind::Connect, e))?;
    Ok((nats, refusals))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_subject_of_a_refused_publish() {
        assert_eq!(
            refused_publish(r#"Permissions Violation for Publish to "tessera.users.add""#),
            Some("tessera.users.add")
        );
        assert_eq!(
            refused_publish(r#"permissions violation for publish to "a.b""#),
            Some("a.b")
        );
        assert_eq!(
            refused_publish(r#"Permissions Violation for Subscription to "a.b""#),
            None
        );
        assert_eq!(refused_publish("Authorization Violation"), None);
    }

    #[tokio::test]
    async fn a_refusal_fails_the_waiting_request_at_once() {
        let refusals = Arc::new(Refusals::new("test"));
        let r = refusals.clone();
        // A request that would never end unless refused.
        let waiting = tokio::spawn(async move {
            r.guard(
                "p.users.add",
                std::future::pending::<Result<(), RpcError>>(),
            )
            .await
        });
        // Another subject's refusal does not end it; its own does.
        tokio::task::yield_now().await;
        while !waiting.is_finished() {
            refusals.record("p.other");
            refusals.record("p.users.add");
            tokio::task::yield_now().await;
        }
        let err = waiting.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Forbidden);
        assert_eq!(err.subject(), Some("p.users.add"));
    }

    #[tokio::test]
    async fn a_timeout_after_a_refusal_is_forbidden_and_before_one_unavailable() {
        let refusals = Refusals::new("test");
        let timeout =
            || async { Err::<(), _>(RpcError::Timeout("p.x".into(), Duration::from_millis(1))) };
        let err = refusals.guard("p.x", timeout()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        let err = refusals
            .guard("p.x", async {
                refusals.record("p.x");
                timeout().await
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Forbidden);
    }
}
