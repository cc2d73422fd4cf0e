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
    /// Auth packages: the installed package differs from the stored one (name, version or
    /// digest). The node is reinstalling it; retry shortly.
    PackageMismatch,
    /// Auth packages: the app's package is missing, broken, ran out of time or memory, or
    /// answered something undecodable. The message names the app.
    PackageFailed,
    /// A package whose manifest, digest or signature is wrong or untrusted: an auth-package
    /// upload (nothing was stored), or, in the SDK, a plugin asset bundle whose signed
    /// manifest or file digest does not verify (the cache keeps its previous copy).
    PackageRejected,
    /// Data access: the packet's protocol signature does not verify (or the app is unknown).
    BadSignature,
    /// Data access: the packet's timestamp is outside the allowed skew.
    StaleTimestamp,
    /// Data access: the packet's nonce was already seen within the skew window.
    ReplayedNonce,
    /// Data access: the plugin token is valid but bound to another plugin (or the
    /// verification info does not match what it was issued for).
    WrongPlugin,
    /// Data access: no data route for the packet's operation address.
    UnknownOperation,
}

impl ErrorCode {
    /// Every code, for exhaustive tests and docs.
    pub const ALL: [ErrorCode; 18] = [
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
        ErrorCode::PackageMismatch,
        ErrorCode::PackageFailed,
        ErrorCode::PackageRejected,
        ErrorCode::BadSignature,
        ErrorCode::StaleTimestamp,
        ErrorCode::ReplayedNonce,
        ErrorCode::WrongPlugin,
        ErrorCode::UnknownOperation,
    ];

    /// The codes [`ErrorCode::from_status`] gives back: one per status. The specific codes
    /// share a status with one of these and are told apart by the body.
    pub const GENERIC: [ErrorCode; 9] = [
        ErrorCode::BadRequest,
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
            ErrorCode::PackageMismatch => 503,
            ErrorCode::PackageFailed => 502,
            ErrorCode::PackageRejected => 422,
            ErrorCode::BadSignature | ErrorCode::StaleTimestamp | ErrorCode::ReplayedNonce => 401,
            ErrorCode::WrongPlugin => 403,
            ErrorCode::UnknownOperation => 404,
        }
    }

    /// Whether the same request may succeed if sent again later.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Unavailable | ErrorCode::RateLimited | ErrorCode::PackageMismatch
        )
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
            ErrorCode::PackageMismatch => "package_mismatch",
            ErrorCode::PackageFailed => "package_failed",
            ErrorCode::PackageRejected => "package_rejected",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::StaleTimestamp => "stale_timestamp",
            ErrorCode::ReplayedNonce => "replayed_nonce",
            ErrorCode::WrongPlugin => "wrong_plugin",
            ErrorCode::UnknownOperation => "unknown_operation",
        }
    }

    /// Best guess of a code from a micro status number alone (a reply with headers but no
    /// body, e.g. from a non-Tessera responder).
    pub fn from_status(status: u16) -> ErrorCode {
        match status {
            400 | 422 => ErrorCode::BadRequest,
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
    /// With `rate_limited`: how long to wait before trying again, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retryable: code.retryable(),
            retry_after_ms: None,
        }
    }

    /// `rate_limited`, with the time after which a retry can succeed (at least 1 ms).
    pub fn rate_limited(message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        Self {
            retry_after_ms: Some((retry_after.as_millis() as u64).max(1)),
            ..Self::new(ErrorCode::RateLimited, message)
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
    fn status_round_trips_for_generic_codes() {
        for code in ErrorCode::GENERIC {
            assert_eq!(ErrorCode::from_status(code.status()), code);
        }
        // Every specific code falls back to a generic one (502 and unknown statuses: internal).
        for code in ErrorCode::ALL {
            let generic = ErrorCode::from_status(code.status());
            assert!(ErrorCode::GENERIC.contains(&generic), "{code}");
        }
    }
}
