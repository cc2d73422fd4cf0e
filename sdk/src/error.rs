//! The SDK's error: a [`ErrorKind`] to match on, a message, and the error that caused it.
//!
//! Like async-nats' errors: match on [`Error::kind`], read [`Error::code`] for the wire
//! [`ErrorCode`] to act on, and follow [`std::error::Error::source`] for the cause (an
//! async-nats request or JetStream error, an I/O error, a [`crate::sealed::SealError`]).

use std::fmt;

use tessera_protocol::rpc::RpcError;
use tessera_schemas::{ErrorCode, WireError};

/// What went wrong, to match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The service answered with a typed error: [`Error::wire`] holds it, [`Error::code`]
    /// its code.
    Rejected,
    /// The bus refused to carry the request: this connection's credentials may not publish
    /// on the subject ([`Error::subject`]), e.g. an admin call on a client connection.
    /// nats-server drops such a publish and tells only the sender's connection; the SDK's
    /// own connections ([`crate::Client::connect`]) watch for that and answer promptly.
    Forbidden,
    /// The service could not be reached or did not answer in time.
    Unavailable,
    /// The input was refused before anything was sent.
    InvalidInput,
    /// Connecting to NATS failed.
    Connect,
    /// A reply that does not follow the protocol.
    BadReply,
    /// Assets: a manifest that is not signed by a platform key, or not for this plugin
    /// ([`Error::plugin_id`]).
    BadManifest,
    /// Assets: a blob whose bytes are not what the signed manifest says ([`Error::path`]
    /// names the file). Nothing in the cache was changed.
    Corrupted,
    /// Reading or writing local files (the publish directory, the asset cache).
    Io,
    /// Sealed data: a bad key or box (the source is a [`crate::sealed::SealError`]).
    Sealed,
}

/// An SDK error. Cheap to match on ([`Error::kind`]); the cause is kept as its source.
pub struct Error {
    kind: ErrorKind,
    message: String,
    wire: Option<WireError>,
    /// What the error is about: the subject (forbidden, unavailable), the plugin id (bad
    /// manifest) or the asset path (corrupted).
    about: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            wire: None,
            about: None,
            source: None,
        }
    }

    /// The same error, caused by `source`.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Error {
        self.source = Some(source.into());
        self
    }

    pub(crate) fn about(mut self, about: impl Into<String>) -> Error {
        self.about = Some(about.into());
        self
    }

    /// A typed error the service answered with.
    pub fn rejected(wire: WireError) -> Error {
        Error {
            message: wire.to_string(),
            wire: Some(wire),
            ..Error::new(ErrorKind::Rejected, String::new())
        }
    }

    /// `kind`, with `source` as both the message and the cause.
    pub(crate) fn caused(
        kind: ErrorKind,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::new(kind, source.to_string()).with_source(source)
    }

    /// `kind`, saying `context: source`, with `source` kept as the cause.
    #[cfg(feature = "app")]
    pub(crate) fn context(
        kind: ErrorKind,
        context: impl fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::new(kind, format!("{context}: {source}")).with_source(source)
    }

    /// The bus (or a bucket or store on it) failed: unavailable, with the cause kept.
    pub(crate) fn unavailable(source: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::caused(ErrorKind::Unavailable, source)
    }

    #[cfg(any(feature = "app", feature = "plugin-server"))]
    pub(crate) fn invalid_input(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidInput, message)
    }

    pub(crate) fn bad_reply(source: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::caused(ErrorKind::BadReply, source)
    }

    /// A refused publish on `subject` (see [`ErrorKind::Forbidden`]).
    pub(crate) fn forbidden(subject: &str) -> Error {
        Error::new(
            ErrorKind::Forbidden,
            format!("this connection may not publish to {subject:?} (permissions violation)"),
        )
        .about(subject)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The typed error the service answered with ([`ErrorKind::Rejected`]).
    pub fn wire(&self) -> Option<&WireError> {
        self.wire.as_ref()
    }

    /// The subject a forbidden or unanswered request was sent on, when known.
    pub fn subject(&self) -> Option<&str> {
        match self.kind {
            ErrorKind::Forbidden | ErrorKind::Unavailable => self.about.as_deref(),
            _ => None,
        }
    }

    /// The asset file whose bytes were wrong ([`ErrorKind::Corrupted`]).
    pub fn path(&self) -> Option<&str> {
        match self.kind {
            ErrorKind::Corrupted => self.about.as_deref(),
            _ => None,
        }
    }

    /// The plugin whose manifest was refused ([`ErrorKind::BadManifest`]).
    pub fn plugin_id(&self) -> Option<&str> {
        match self.kind {
            ErrorKind::BadManifest => self.about.as_deref(),
            _ => None,
        }
    }

    /// The wire error code this error corresponds to.
    pub fn code(&self) -> ErrorCode {
        match self.kind {
            ErrorKind::Rejected => self.wire.as_ref().map_or(ErrorCode::Internal, |w| w.code),
            ErrorKind::Forbidden => ErrorCode::Forbidden,
            ErrorKind::Unavailable | ErrorKind::Connect => ErrorCode::Unavailable,
            ErrorKind::InvalidInput | ErrorKind::Sealed => ErrorCode::BadRequest,
            ErrorKind::BadReply | ErrorKind::Io => ErrorCode::Internal,
            // Never sent on the wire; the nearest code: a bundle whose manifest signature or
            // digest is wrong or untrusted, refused (not retryable).
            ErrorKind::BadManifest | ErrorKind::Corrupted => ErrorCode::PackageRejected,
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.code().retryable()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Rejected | ErrorKind::Sealed => f.write_str(&self.message),
            ErrorKind::Forbidden => write!(f, "forbidden: {}", self.message),
            ErrorKind::Unavailable => write!(f, "unavailable: {}", self.message),
            ErrorKind::InvalidInput => write!(f, "invalid input: {}", self.message),
            ErrorKind::Connect => write!(f, "connect: {}", self.message),
            ErrorKind::BadReply => write!(f, "bad reply: {}", self.message),
            ErrorKind::BadManifest => write!(
                f,
                "manifest of {:?} refused: {}",
                self.about.as_deref().unwrap_or_default(),
                self.message
            ),
            ErrorKind::Corrupted => write!(
                f,
                "asset {:?} is corrupted: {}",
                self.about.as_deref().unwrap_or_default(),
                self.message
            ),
            ErrorKind::Io => write!(f, "local files: {}", self.message),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(w) = &self.wire {
            d.field("wire", w);
        }
        if let Some(a) = &self.about {
            d.field("about", a);
        }
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<RpcError> for Error {
    fn from(e: RpcError) -> Self {
        match e {
            RpcError::Wire(w) => Error::rejected(w),
            RpcError::NoResponders(ref subject)
            | RpcError::Timeout(ref subject, _)
            | RpcError::Transport { ref subject, .. } => {
                let subject = subject.clone();
                Error::unavailable(e).about(subject)
            }
            RpcError::BadReply { .. } => Error::bad_reply(e),
        }
    }
}

impl From<WireError> for Error {
    fn from(w: WireError) -> Self {
        Error::rejected(w)
    }
}

impl From<tessera_schemas::ids::InvalidId> for Error {
    fn from(e: tessera_schemas::ids::InvalidId) -> Self {
        Error::caused(ErrorKind::InvalidInput, e)
    }
}

#[cfg(feature = "app")]
impl From<crate::sealed::SealError> for Error {
    fn from(e: crate::sealed::SealError) -> Self {
        Error::caused(ErrorKind::Sealed, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_is_kept_and_the_kind_is_matched() {
        let rpc = RpcError::Timeout("p.users.add".into(), std::time::Duration::from_secs(1));
        let e = Error::from(rpc);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(e.subject(), Some("p.users.add"));
        assert!(e.is_retryable());
        let source = std::error::Error::source(&e).expect("the rpc error is kept");
        assert!(source.downcast_ref::<RpcError>().is_some(), "{source:?}");

        let f = Error::forbidden("p.users.add");
        assert_eq!(f.kind(), ErrorKind::Forbidden);
        assert_eq!(f.code(), ErrorCode::Forbidden);
        assert!(!f.is_retryable());
        assert!(f.to_string().starts_with("forbidden: "), "{f}");

        let w = Error::from(RpcError::Wire(WireError::new(ErrorCode::NotFound, "no")));
        assert_eq!(w.kind(), ErrorKind::Rejected);
        assert_eq!(w.code(), ErrorCode::NotFound);
        assert_eq!(w.wire().map(|w| w.message.as_str()), Some("no"));
    }
}
