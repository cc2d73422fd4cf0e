//! MessagePack with named fields (so fields added later stay readable by older readers),
//! a size limit checked before decoding, and the schema-version check.

use serde::{Serialize, de::DeserializeOwned};
use thiserror::Error;

use crate::error::{ErrorCode, WireError};

/// Largest body any Tessera endpoint accepts. Checked before decoding, so an oversized
/// message costs nothing.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A message kind: its name and the version this build speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    pub name: &'static str,
    pub version: u32,
}

impl Schema {
    pub const fn v1(name: &'static str) -> Self {
        Self { name, version: 1 }
    }

    /// Header value: `name/version`.
    pub fn header_value(&self) -> String {
        format!("{}/{}", self.name, self.version)
    }

    /// Checks a received `Tessera-Schema` header. `None` (no header) is version 1.
    pub fn check(&self, header: Option<&str>) -> Result<(), DecodeError> {
        let Some(value) = header else {
            return if self.version == 1 {
                Ok(())
            } else {
                Err(DecodeError::MissingSchema)
            };
        };
        let (name, version) = value.rsplit_once('/').unwrap_or((value, "1"));
        if name != self.name {
            return Err(DecodeError::WrongSchema {
                expected: self.name,
                got: name.to_owned(),
            });
        }
        match version.parse::<u32>() {
            Ok(v) if v == self.version => Ok(()),
            _ => Err(DecodeError::UnsupportedVersion {
                schema: self.name,
                got: version.chars().take(16).collect(),
            }),
        }
    }
}

#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("schema {schema} version {got:?} is not supported")]
    UnsupportedVersion { schema: &'static str, got: String },
    #[error("expected schema {expected}, got {got:?}")]
    WrongSchema { expected: &'static str, got: String },
    #[error("missing schema header")]
    MissingSchema,
    #[error("invalid body: {0}")]
    Body(#[from] rmp_serde::decode::Error),
}

impl From<DecodeError> for WireError {
    fn from(err: DecodeError) -> Self {
        let code = match err {
            DecodeError::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            DecodeError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            DecodeError::WrongSchema { .. } | DecodeError::MissingSchema | DecodeError::Body(_) => {
                ErrorCode::BadRequest
            }
        };
        WireError::new(code, err.to_string())
    }
}

/// Encodes a body as a MessagePack map with named fields.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising our own plain structs into a Vec cannot fail; a failure is a bug.
    rmp_serde::to_vec_named(value).expect("wire types always serialise")
}

/// Decodes a body, refusing oversized input before looking at it.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    Ok(rmp_serde::from_slice(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::TokenRequest;

    const S: Schema = Schema::v1("token.request");

    #[test]
    fn schema_header_rules() {
        assert!(S.check(None).is_ok());
        assert!(S.check(Some("token.request/1")).is_ok());
        assert!(matches!(
            S.check(Some("token.request/2")),
            Err(DecodeError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            S.check(Some("token.request/x")),
            Err(DecodeError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            S.check(Some("auth.login/1")),
            Err(DecodeError::WrongSchema { .. })
        ));
    }

    #[test]
    fn oversized_is_refused_before_decoding() {
        let big = vec![0u8; MAX_MESSAGE_BYTES + 1];
        let err = decode::<TokenRequest>(&big).unwrap_err();
        assert_eq!(WireError::from(err).code, ErrorCode::PayloadTooLarge);
    }

    #[test]
    fn unknown_fields_are_ignored_and_missing_ones_rejected() {
        #[derive(serde::Serialize)]
        struct Extra<'a> {
            account_token: &'a str,
            plugin_id: &'a str,
            future_field: u32,
        }
        let bytes = encode(&Extra {
            account_token: "t",
            plugin_id: "p",
            future_field: 7,
        });
        let req: TokenRequest = decode(&bytes).unwrap();
        assert_eq!(req.plugin_id, "p");

        #[derive(serde::Serialize)]
        struct Missing<'a> {
            account_token: &'a str,
        }
        let err = decode::<TokenRequest>(&encode(&Missing { account_token: "t" })).unwrap_err();
        assert_eq!(WireError::from(err).code, ErrorCode::BadRequest);
    }
}
