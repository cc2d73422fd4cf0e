//! The closed set of error codes that can appear on the wire, and the error body.
//!
//! Internal errors (Redis, JetStream, crypto) are mapped to one of these in exactly one place
//! per worker; their detail is logged, never sent.

use serde::{Deserialize, Serialize};

/// Every error a caller can receive. Closed: adding a code is a protocol change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body could not be decoded, a field is missing or invalid.
    BadRequest,
    /// The schema header names a version this worker does not speak.
    UnsupportedVersion,
    /// The message is larger than [`crate::MAX_MESSAGE_BYTES`].
    PayloadTooLarge,
    /// Missing, expired, forged or revoked credentials.
    Unauthenticated,
    /// Valid credentials that do not allow this.
    Forbidden,
    /// Unknown plugin, route, user or token.
    NotFound,
    /// The thing already exists.
    Conflict,
    /// Too many requests; retry later.
    RateLimited,
    /// A dependency (Redis, JetStream, another worker) is down; retry later.
    Unavailable,
    /// A bug or an unexpected failure. Logged with detail on the worker.
    Internal,
}

impl ErrorCode {
    /// Every code, for exhaustive tests and docs.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::BadRequest,
        ErrorCode::UnsupportedVersion,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The number sent in `Nats-Service-Error-Code` (HTTP-like, as the micro spec suggests).
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest | ErrorCode::UnsupportedVersion => 400,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }

    /// Whether the same request may succeed if sent again later.
    pub fn retryable(self) -> bool {
        matches!(self, ErrorCode::Unavailable | ErrorCode::RateLimited)
    }

    /// The snake_case name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// Best guess of a code from a micro status number alone (a reply with headers but no
    /// body, e.g. from a non-Tessera responder).
    pub fn from_status(status: u16) -> ErrorCode {
        match status {
            400 => ErrorCode::BadRequest,
            401 => ErrorCode::Unauthenticated,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            409 => ErrorCode::Conflict,
            413 => ErrorCode::PayloadTooLarge,
            429 => ErrorCode::RateLimited,
            503 => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The MessagePack body of every error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
    pub retryable: bool,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retryable: code.retryable(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_on_the_wire() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn status_round_trips_for_distinct_codes() {
        for code in ErrorCode::ALL {
            if code != ErrorCode::UnsupportedVersion {
                assert_eq!(ErrorCode::from_status(code.status()), code);
            }
        }
    }
}
