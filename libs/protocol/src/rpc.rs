//! Calling a Tessera service: encode, request, and turn the reply into a body or a typed
//! error. Used by workers (broker -> auth) and by the SDK.

use std::time::Duration;

use async_nats::{Client, HeaderMap, Message, RequestErrorKind};
use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};
use tessera_schemas::{ErrorCode, Schema, WireError, codec, headers};
use thiserror::Error;
use tracing::{Instrument, field};

#[derive(Debug, Error)]
pub enum RpcError {
    /// The service answered with a typed error.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Nobody serves the subject. (A publish the bus refuses for lack of permission gets no
    /// reply at all: it surfaces as [`RpcError::Timeout`].)
    #[error("no service is listening on {0}")]
    NoResponders(String),
    #[error("no reply on {0} within {1:?}")]
    Timeout(String, Duration),
    #[error("transport error on {subject}: {message}")]
    Transport { subject: String, message: String },
    /// The reply could not be decoded.
    #[error("undecodable reply from {subject}: {message}")]
    BadReply { subject: String, message: String },
}

impl RpcError {
    /// The error code a caller would act on.
    pub fn code(&self) -> ErrorCode {
        match self {
            RpcError::Wire(w) => w.code,
            RpcError::NoResponders(_) | RpcError::Timeout(..) | RpcError::Transport { .. } => {
                ErrorCode::Unavailable
            }
            RpcError::BadReply { .. } => ErrorCode::Internal,
        }
    }
}

/// Sends a request with raw headers and body; returns the reply message, with error replies
/// (micro error headers) already turned into [`RpcError::Wire`].
///
/// In a span of its own (kind client, named by the subject), whose trace context the request
/// carries ([`crate::trace::inject`]): the service's span for it becomes its child.
pub async fn request_raw(
    client: &Client,
    subject: String,
    mut headers: HeaderMap,
    payload: Bytes,
    timeout: Duration,
) -> Result<Message, RpcError> {
    let span = tracing::info_span!(
        "rpc",
        otel.name = %subject,
        otel.kind = "client",
        subject = %subject,
        outcome = field::Empty,
    );
    async move {
        crate::trace::inject(&mut headers, None);
        let result = send(client, subject, headers, payload, timeout).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code().as_str(),
        };
        tracing::Span::current().record("outcome", outcome);
        result
    }
    .instrument(span)
    .await
}

async fn send(
    client: &Client,
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
    timeout: Duration,
) -> Result<Message, RpcError> {
    let req = async_nats::Request::new()
        .headers(headers)
        .payload(payload)
        .timeout(Some(timeout));
    let msg = client
        .send_request(subject.clone(), req)
        .await
        .map_err(|e| match e.kind() {
            RequestErrorKind::NoResponders => RpcError::NoResponders(subject.clone()),
            RequestErrorKind::TimedOut => RpcError::Timeout(subject.clone(), timeout),
            RequestErrorKind::InvalidSubject | RequestErrorKind::MaxPayloadExceeded => {
                RpcError::Wire(WireError::new(ErrorCode::BadRequest, e.to_string()))
            }
            _ => RpcError::Transport {
                subject: subject.clone(),
                message: e.to_string(),
            },
        })?;
    if let Some(err) = error_from_reply(msg.headers.as_ref(), &msg.payload) {
        return Err(RpcError::Wire(err));
    }
    Ok(msg)
}

/// The typed error a reply carries, or `None` when it is not an error reply
/// (docs/protocol.md §2: a reply is an error if and only if it has
/// `Nats-Service-Error-Code`). A body that does not decode as a [`WireError`] (absent, not
/// MessagePack, or a code outside the closed set) gives the status's generic code and the
/// `Nats-Service-Error` text. Pure, so the conformance vectors check exactly this.
pub fn error_from_reply(reply_headers: Option<&HeaderMap>, payload: &[u8]) -> Option<WireError> {
    let status = reply_headers?.get(headers::SERVICE_ERROR_CODE)?;
    Some(codec::decode::<WireError>(payload).unwrap_or_else(|_| {
        let code = status
            .as_str()
            .parse()
            .map(ErrorCode::from_status)
            .unwrap_or(ErrorCode::Internal);
        let text = reply_headers
            .and_then(|h| h.get(headers::SERVICE_ERROR))
            .map(|v| v.to_string());
        WireError::new(code, text.unwrap_or_default())
    }))
}

/// Sends a typed request and decodes the typed reply.
pub async fn request<Req: Serialize, Resp: DeserializeOwned>(
    client: &Client,
    subject: String,
    schema: Schema,
    body: &Req,
    timeout: Duration,
) -> Result<Resp, RpcError> {
    request_in(client, subject, schema, body, timeout, None).await
}

/// The request being handled on whose behalf a [`request_in`] goes out.
#[derive(Debug, Clone, Copy)]
pub struct Parent<'a> {
    pub request_id: &'a str,
    pub traceparent: Option<&'a str>,
}

/// [`request`] on behalf of a request being handled: its request id and trace context
/// travel on, so logs of both services join up. (With OpenTelemetry spans, the context sent
/// is the current span's, see [`request_raw`]; the parent's `traceparent` is the fallback.)
pub async fn request_in<Req: Serialize, Resp: DeserializeOwned>(
    client: &Client,
    subject: String,
    schema: Schema,
    body: &Req,
    timeout: Duration,
    parent: Option<Parent<'_>>,
) -> Result<Resp, RpcError> {
    let mut h = HeaderMap::new();
    h.insert(headers::SCHEMA, schema.header_value().as_str());
    if let Some(parent) = parent {
        h.insert(headers::REQUEST_ID, parent.request_id);
        if let Some(tp) = parent.traceparent {
            h.insert(headers::TRACEPARENT, tp);
        }
    }
    let msg = request_raw(
        client,
        subject.clone(),
        h,
        codec::encode(body).into(),
        timeout,
    )
    .await?;
    codec::decode(&msg.payload).map_err(|e| RpcError::BadReply {
        subject,
        message: e.to_string(),
    })
}
