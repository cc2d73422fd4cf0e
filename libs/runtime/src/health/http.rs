//! The health server's HTTP/1.1: one request per connection, its head read within the read
//! timeout, one answer written within [`super::WRITE_TIMEOUT`], then the connection closed.
//! Hand-written because three fixed routes need no HTTP stack; what it speaks is exactly:
//!
//! - `GET <path>`: the route's answer; `HEAD <path>`: the same head (with the
//!   `Content-Length` a `GET` would get), no body (RFC 9110 §9.3.2);
//! - any other method: `405 Method Not Allowed` with `Allow: GET, HEAD` (RFC 9110 §15.5.6);
//! - a head that is not `METHOD TARGET HTTP/x` within 8 KiB: `400 Bad Request`;
//! - nothing, or an incomplete head, before the read timeout: closed without an answer.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Limits, WRITE_TIMEOUT};

/// Largest request head read; a longer one is a bad request (ours need a few dozen bytes).
const MAX_HEAD: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// Any other method token: answered 405.
    Other,
}

/// A parsed request line.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The target without its query.
    pub path: String,
}

/// An answer. `allow` adds `Allow: GET, HEAD` (the 405's required header).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub allow: bool,
}

impl Response {
    pub fn text(status: u16, body: String) -> Response {
        Response {
            status,
            content_type: "text/plain",
            body,
            allow: false,
        }
    }

    fn reason(&self) -> &'static str {
        match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Service Unavailable",
        }
    }

    /// Status line and headers, ending with the blank line.
    pub fn head(&self) -> String {
        let allow = if self.allow {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            self.reason(),
            self.content_type,
            self.body.len()
        )
    }
}

/// Parses a request head (everything up to the blank line). `None`: not HTTP/1.x.
pub fn parse_head(head: &[u8]) -> Option<Request> {
    let line = std::str::from_utf8(head).ok()?.split("\r\n").next()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic());
    if parts.next().is_some() || !token(method) || !version.starts_with("HTTP/1.") {
        return None;
    }
    if !target.starts_with('/') {
        return None;
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => Method::Other,
    };
    let path = target.split('?').next().unwrap_or(target).to_owned();
    Some(Request { method, path })
}

/// What reading the head gave.
enum Head {
    /// Complete (up to and including the blank line).
    Complete(Vec<u8>),
    /// Over [`MAX_HEAD`] without a blank line.
    TooLong,
    /// The peer closed, failed or the read timeout ran out first.
    Nothing,
}

async fn read_head<S: AsyncRead + Unpin>(stream: &mut S, timeout: Duration) -> Head {
    let mut buf = Vec::with_capacity(512);
    let read = async {
        let mut chunk = [0u8; 512];
        loop {
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                return Head::Complete(std::mem::take(&mut buf));
            }
            if buf.len() >= MAX_HEAD {
                return Head::TooLong;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Head::Nothing,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    // The bound is on the whole head, not per read: a peer trickling a byte at a time
    // loses its connection as surely as a silent one.
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Head::Nothing)
}

/// Serves one connection: reads the head, answers through `route` (for `GET`; `HEAD`
/// sends its head only), and closes.
pub async fn serve_connection<S, F, Fut>(mut stream: S, limits: Limits, route: F)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Response>,
{
    let request = match read_head(&mut stream, limits.read_timeout).await {
        Head::Nothing => return,
        Head::TooLong => None,
        Head::Complete(head) => parse_head(&head),
    };
    let (response, with_body) = match request {
        None => (Response::text(400, "bad request\n".to_owned()), true),
        Some(Request {
            method: Method::Other,
            ..
        }) => (
            Response {
                allow: true,
                ..Response::text(405, "method not allowed\n".to_owned())
            },
            true,
        ),
        Some(Request { method, path }) => (route(path).await, method == Method::Get),
    };
    let write = async {
        stream.write_all(response.head().as_bytes()).await?;
        if with_body {
            stream.write_all(response.body.as_bytes()).await?;
        }
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, write).await;
}
