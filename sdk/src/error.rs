//! The SDK's error: what went wrong, with the wire [`ErrorCode`] to act on.

use tessera_protocol::rpc::RpcError;
use tessera_schemas::{ErrorCode, WireError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The service answered with a typed error.
    #[error("{0}")]
    Rejected(WireError),
    /// The service could not be reached or did not answer in time.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The input was refused before anything was sent.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Connecting to NATS failed.
    #[error("connect: {0}")]
    Connect(String),
    /// A reply that does not follow the protocol.
    #[error("bad reply: {0}")]
    BadReply(String),
    /// Assets: a manifest that is not signed by a platform key, or not for this plugin.
    #[error("manifest of {plugin_id:?} refused: {message}")]
    BadManifest { plugin_id: String, message: String },
    /// Assets: a blob whose bytes are not what the signed manifest says (`path` names the
    /// file). Nothing in the cache was changed.
    #[error("asset {path:?} is corrupted: {message}")]
    Corrupted { path: String, message: String },
    /// Assets: reading or writing local files (the publish directory, the cache).
    #[error("local files: {0}")]
    Io(String),
    /// Sealed data: a bad key or box.
    #[error(transparent)]
    Sealed(#[from] crate::sealed::SealError),
}

impl Error {
    /// The wire error code this error corresponds to.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Rejected(w) => w.code,
            Error::Unavailable(_) | Error::Connect(_) => ErrorCode::Unavailable,
            Error::InvalidInput(_) => ErrorCode::BadRequest,
            Error::BadReply(_) | Error::Io(_) => ErrorCode::Internal,
            // Never sent on the wire; the nearest code: a bundle whose manifest signature or
            // digest is wrong or untrusted, refused (not retryable).
            Error::BadManifest { .. } | Error::Corrupted { .. } => ErrorCode::PackageRejected,
            Error::Sealed(_) => ErrorCode::BadRequest,
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.code().retryable()
    }
}

impl From<RpcError> for Error {
    fn from(e: RpcError) -> Self {
        match e {
            RpcError::Wire(w) => Error::Rejected(w),
            RpcError::NoResponders(_) | RpcError::Timeout(..) | RpcError::Transport { .. } => {
                Error::Unavailable(e.to_string())
            }
            RpcError::BadReply { .. } => Error::BadReply(e.to_string()),
        }
    }
}

impl From<tessera_schemas::ids::InvalidId> for Error {
    fn from(e: tessera_schemas::ids::InvalidId) -> Self {
        Error::InvalidInput(e.to_string())
    }
}
