//! The request loop every Tessera service runs.
//!
//! One NATS micro service per worker (so `$SRV.PING/INFO/STATS` work), one queue group so
//! replicas share the load, one endpoint per request kind. For each request:
//!
//! 0. the reply subject must be a reply inbox ([`reply_allowed`]), or the request is dropped
//!    unserved, counted (`tessera_replies_refused_total`) and logged;
//! 1. a span with `subject`, `endpoint`, `request_id` and, once known, `outcome`: for
//!    OpenTelemetry a server span named by the endpoint, whose parent is the trace context
//!    the request carries (`traceparent`, [`tessera_protocol::trace`]);
//! 2. the handler decodes (size and schema-version checked) and answers;
//! 3. the reply is the body, or an error: the micro headers (`Nats-Service-Error-Code`,
//!    `Nats-Service-Error`) plus a MessagePack [`WireError`] body;
//! 4. once the reply is on the connection, the request is counted under its endpoint's
//!    name and outcome (never its subject, which a caller chooses: [`crate::metrics`]).
//!
//! Work in flight is bounded by a semaphore: when it is full the loop stops pulling, and
//! NATS buffers (then drops, as a slow consumer) rather than the worker running out of memory.
//! On shutdown (see `run_loop`): every endpoint unsubscribes (awaited), one server round
//! trip confirms the server processed that, then every request already received is
//! answered; all of it bounded by the grace period.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::service::ServiceExt;
use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Serialize, de::DeserializeOwned};
use tessera_protocol::rpc;
use tessera_schemas::{ErrorCode, Schema, WireError, codec, headers};
use tokio::sync::Semaphore;
use tracing::{Instrument, field};

use crate::Shutdown;

/// One received request, as a handler sees it.
#[derive(Debug)]
pub struct Incoming {
    pub subject: String,
    pub headers: Option<HeaderMap>,
    pub payload: Bytes,
    pub request_id: String,
    /// The request crossed from another account (its reply subject is one nats-server made,
    /// `_R_.`): a client app's or a plugin server's. Only on such a request does nats-server
    /// set the headers it shares (`Nats-Request-Info`), overwriting any the sender wrote.
    pub from_other_account: bool,
}

impl Incoming {
    /// A header value, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.as_ref()?.get(name).map(|v| v.as_str())
    }

    /// This request as the parent of a request it makes in turn ([`rpc::request_in`]): its
    /// request id and trace context travel on.
    pub fn parent(&self) -> rpc::Parent<'_> {
        rpc::Parent {
            request_id: &self.request_id,
            traceparent: self.header(headers::TRACEPARENT),
        }
    }

    /// Checks the size, the content type and the schema header, then decodes the body.
    pub fn decode<T: DeserializeOwned>(&self, schema: Schema) -> Result<T, WireError> {
        if self.payload.len() > codec::MAX_MESSAGE_BYTES {
            return Err(codec::DecodeError::TooLarge {
                len: self.payload.len(),
                max: codec::MAX_MESSAGE_BYTES,
            }
            .into());
        }
        let content_type = self
            .headers
            .as_ref()
            .and_then(|h| h.get(headers::CONTENT_TYPE));
        codec::check_content_type(content_type.map(|v| v.as_str()))?;
        schema.check(self.header(headers::SCHEMA))?;
        Ok(codec::decode(&self.payload)?)
    }
}

/// A successful reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub headers: HeaderMap,
    pub payload: Bytes,
}

impl Reply {
    /// A MessagePack body with its schema header.
    pub fn msgpack<T: Serialize>(schema: Schema, body: &T) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(headers::SCHEMA, schema.header_value().as_str());
        Reply {
            headers,
            payload: codec::encode(body).into(),
        }
    }

    /// A body with an explicit content type (e.g. the JSON JWKS).
    pub fn with_content_type(content_type: &str, payload: Bytes) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(headers::CONTENT_TYPE, content_type);
        Reply { headers, payload }
    }
}

/// Headers and body of an error reply. Shared by every service so all errors look alike.
pub fn error_reply(err: &WireError) -> (HeaderMap, Bytes) {
    let mut h = HeaderMap::new();
    h.insert(
        headers::SERVICE_ERROR_CODE,
        err.code.status().to_string().as_str(),
    );
    // Header values cannot hold newlines; keep the description on one line.
    let description: String = err
        .message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    h.insert(headers::SERVICE_ERROR, description.as_str());
    (h, codec::encode(err).into())
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Reply, WireError>> + Send>>;
/// What an endpoint runs for each request.
pub type Handler = Arc<dyn Fn(Incoming) -> HandlerFuture + Send + Sync>;

/// Wraps an async function as a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Incoming) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply, WireError>> + Send + 'static,
{
    Arc::new(move |req| Box::pin(f(req)))
}

/// An endpoint whose handler receives the service's shared state with each request.
pub fn endpoint_with<S, F, Fut>(state: &Arc<S>, name: &str, subject: String, f: F) -> Endpoint
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, Incoming) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = Result<Reply, WireError>> + Send + 'static,
{
    let state = state.clone();
    Endpoint {
        name: name.into(),
        subject,
        handler: handler(move |req| f(state.clone(), req)),
    }
}

pub struct Endpoint {
    /// Endpoint name in `$SRV.INFO` (e.g. `token-request`), and the `endpoint` label of
    /// its request metrics: a fixed name, so the label's values are a closed set.
    pub name: String,
    pub subject: String,
    pub handler: Handler,
}

pub struct ServiceSpec {
    /// Micro service name (see [`tessera_schemas::Subjects::service_name`]).
    pub name: String,
    pub description: String,
    pub queue_group: String,
    pub endpoints: Vec<Endpoint>,
    /// Requests handled concurrently by this replica.
    pub max_in_flight: usize,
    /// How long shutdown waits for requests in flight.
    pub grace: Duration,
}

/// Registers the service and its endpoints, then runs the request loop in a task until
/// `shutdown` fires. When this returns, the endpoints are subscribed (the server has seen
/// the subscriptions), so requests sent afterwards are served. The task ends once every
/// request this replica accepted has been answered (or the grace period ran out).
pub async fn start(
    client: Client,
    spec: ServiceSpec,
    shutdown: Shutdown,
) -> Result<tokio::task::JoinHandle<()>, async_nats::Error> {
    let service = client
        .service_builder()
        .description(spec.description.clone())
        .queue_group(spec.queue_group.clone())
        .start(spec.name.clone(), env!("CARGO_PKG_VERSION"))
        .await?;

    let mut requests = RequestStream::new();
    for ep in &spec.endpoints {
        let endpoint = service
            .endpoint_builder()
            .name(ep.name.clone())
            .add(ep.subject.clone())
            .await?;
        requests.push(Tagged {
            endpoint,
            name: ep.name.as_str().into(),
            handler: ep.handler.clone(),
        });
    }
    client.flush().await?;
    tracing::info!(service = %spec.name, endpoints = spec.endpoints.len(), "serving");
    Ok(tokio::spawn(run_loop(
        client, service, requests, spec, shutdown,
    )))
}

/// An endpoint's requests, each paired with the endpoint's handler and name. Kept as the
/// endpoint itself (not a boxed stream) so shutdown can unsubscribe it.
struct Tagged {
    endpoint: async_nats::service::endpoint::Endpoint,
    /// The endpoint's name, shared (a metric label per request costs a reference count).
    name: Arc<str>,
    handler: Handler,
}

/// One request with what serves it.
type Served = (async_nats::service::Request, Handler, Arc<str>);

impl futures::Stream for Tagged {
    type Item = Served;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let handler = self.handler.clone();
        let name = self.name.clone();
        self.endpoint
            .poll_next_unpin(cx)
            .map(|r| r.map(|req| (req, handler, name)))
    }
}

type RequestStream = futures::stream::SelectAll<Tagged>;

async fn run_loop(
    client: Client,
    service: async_nats::service::Service,
    mut requests: RequestStream,
    spec: ServiceSpec,
    shutdown: Shutdown,
) {
    let limit = Arc::new(Semaphore::new(spec.max_in_flight));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = limit.clone().acquire_owned() => permit.expect("semaphore is never closed"),
        };
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = requests.next() => next,
        };
        let Some((req, handler, endpoint)) = next else {
            break;
        };
        tokio::spawn(async move {
            handle(req, handler, endpoint).await;
            drop(permit);
        });
    }

    tracing::info!(service = %spec.name, "draining");
    let drained = async {
        // 1. Stop taking new work: UNSUB every endpoint. Awaited, so each UNSUB is queued on
        //    the connection (the micro service's own stop only *tries* to queue it, on the
        //    endpoint's next poll, and a full command channel would leave the replica
        //    subscribed, taking new work until the grace period ran out).
        for tagged in requests.iter_mut() {
            if let Err(e) = tagged.endpoint.stop().await {
                tracing::warn!(service = %spec.name, error = %e, "could not unsubscribe an endpoint");
            }
        }
        let _ = service.stop().await;
        // 2. A server round trip after the UNSUBs: once it is answered the server has
        //    processed them, so it routes nothing more to this replica. (async-nats 0.51
        //    forgets a subscription as soon as it sends the UNSUB, with no way to keep it
        //    until such a round trip: a request the server routed here in between is
        //    dropped by the client library and times out at its sender; the SDK retries it
        //    under the same idempotency key. docs/reliability.md, "Faults".)
        fence(&client, &spec.name).await;
        // 3. Answer every request delivered before the UNSUB (the endpoint streams end once
        //    their buffers are empty) and wait for the ones in flight.
        while let Some((req, handler, endpoint)) = requests.next().await {
            let permit = limit
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            tokio::spawn(async move {
                handle(req, handler, endpoint).await;
                drop(permit);
            });
        }
        let _ = limit.acquire_many(spec.max_in_flight as u32).await;
        let _ = client.flush().await;
    };
    if tokio::time::timeout(spec.grace, drained).await.is_err() {
        tracing::warn!(service = %spec.name, grace = ?spec.grace, "grace period ran out with requests in flight");
    }
    tracing::info!(service = %spec.name, "stopped");
}

/// One request the server answers itself (JetStream account info; every worker role may
/// send it, see bus-config's roles): the server handles a connection's messages in order,
/// so its answer comes after it processed everything sent before it. An error reply (no
/// JetStream) is an answer too; only a timeout leaves the question open.
async fn fence(client: &Client, service: &str) {
    let js = async_nats::jetstream::new(client.clone());
    match tokio::time::timeout(FENCE_TIMEOUT, js.query_account()).await {
        Ok(_) => tracing::debug!(service, "the server has processed the unsubscriptions"),
        Err(_) => {
            tracing::warn!(service, timeout = ?FENCE_TIMEOUT, "no server round trip after unsubscribing")
        }
    }
}

/// Bound on the drain's server round trip (the whole drain is bounded by the grace period).
const FENCE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a responder may answer on `reply`: only on a reply inbox, `_R_.` (the reply
/// subject nats-server makes for a request that crossed accounts, the only kind a client
/// app or a plugin server can send) or `_INBOX.` (a worker's or the admin's own). Never on
/// a subject that names something: a `$KV.`/`$JS.`/`$O.`/`$SYS.` subject, the audit or
/// distribution stream, another service's request subject. The accounts already make that
/// impossible from outside the workers' account; this is the second wall
/// (docs/security.md).
pub fn reply_allowed(reply: &str) -> bool {
    const INBOXES: [&str; 2] = ["_R_.", "_INBOX."];
    INBOXES
        .iter()
        .any(|p| reply.len() > p.len() && reply.starts_with(p))
        && !reply.contains(['*', '>'])
}

async fn handle(req: async_nats::service::Request, handler: Handler, endpoint: Arc<str>) {
    let started = std::time::Instant::now();
    let msg = &req.message;
    let reply = msg.reply.as_ref().map(|r| r.as_str()).unwrap_or_default();
    if !reply_allowed(reply) {
        // Nothing runs: a request nobody can be answered for is not worth minting a
        // token or writing a record for. The reply subject is the sender's; cap it in logs.
        let shown: String = reply.chars().take(96).collect();
        tracing::warn!(subject = %msg.subject, endpoint = %endpoint, reply = %shown, "request refused: its reply subject is not a reply inbox");
        crate::metrics::count_reply_refused();
        return;
    }
    let request_id = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::REQUEST_ID))
        .map(|v| v.as_str().chars().take(64).collect())
        .unwrap_or_else(nuid_like);
    let span = tracing::info_span!(
        "request",
        otel.name = %endpoint,
        otel.kind = "server",
        otel.status_code = field::Empty,
        subject = %msg.subject,
        endpoint = %endpoint,
        request_id = %request_id,
        traceparent = field::Empty,
        outcome = field::Empty,
    );
    if let Some(tp) = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::TRACEPARENT))
    {
        span.record("traceparent", tp.as_str());
    }
    tessera_protocol::trace::adopt(&span, msg.headers.as_ref());
    let incoming = Incoming {
        subject: msg.subject.to_string(),
        headers: msg.headers.clone(),
        payload: msg.payload.clone(),
        request_id: request_id.clone(),
        from_other_account: reply.starts_with("_R_."),
    };
    async move {
        // The limit holds for every endpoint, whatever its body; checked before any work.
        let result = if incoming.payload.len() > codec::MAX_MESSAGE_BYTES {
            Err(WireError::from(codec::DecodeError::TooLarge {
                len: incoming.payload.len(),
                max: codec::MAX_MESSAGE_BYTES,
            }))
        } else {
            handler(incoming).await
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(err) => err.code.as_str(),
        };
        let sent = match result {
            Ok(mut reply) => {
                tracing::Span::current().record("outcome", "ok");
                tracing::debug!("answered");
                reply
                    .headers
                    .insert(headers::REQUEST_ID, request_id.as_str());
                req.respond_with_headers(Ok(reply.payload), reply.headers)
                    .await
            }
            Err(err) => {
                tracing::Span::current().record("outcome", err.code.as_str());
                // A failure of ours, not a refusal of the caller's input: marked as an
                // error in traces.
                if matches!(err.code, ErrorCode::Internal | ErrorCode::Unavailable) {
                    tracing::Span::current().record("otel.status_code", "error");
                }
                if err.code == ErrorCode::Internal {
                    tracing::error!(message = %err.message, "request failed");
                } else {
                    tracing::info!(code = %err.code, message = %err.message, "request refused");
                }
                let (mut headers, body) = error_reply(&err);
                headers.insert(headers::REQUEST_ID, request_id.as_str());
                req.respond_with_headers(Ok(body), headers).await
            }
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not send reply");
        }
        // Recorded once the reply is on the connection: a count means "answered". By
        // endpoint, not subject: the subject's last tokens are the caller's to choose.
        crate::metrics::record_request(&endpoint, outcome, started.elapsed());
    }
    .instrument(span)
    .await
}

/// A short random id for requests that came without one.
fn nuid_like() -> String {
    tessera_protocol::random_id(9)
}

#[cfg(test)]
mod tests {
    use super::reply_allowed;

    #[test]
    fn replies_go_to_reply_inboxes_only() {
        for ok in ["_R_.abc.def", "_INBOX.x1y2", "_INBOX.abc.1"] {
            assert!(reply_allowed(ok), "{ok}");
        }
        for refused in [
            "",
            "_R_.",
            "_INBOX.",
            "$KV.TESSERA_ROUTES.weather",
            "$JS.API.STREAM.PURGE.TESSERA_DIST",
            "$O.TESSERA_ASSETS.M.x",
            "$SYS.REQ.USER.AUTH",
            "tessera.audit.user.added",
            "tessera.dist.ps1",
            "tessera.users.add",
            "_C_INBOX.0123",
            "_PS_INBOX.tessera.ps1.x",
            "_INBOX.>",
            "_R_.*",
            "x_INBOX.a",
        ] {
            assert!(!reply_allowed(refused), "{refused}");
        }
    }
}
