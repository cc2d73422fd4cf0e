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
            // Bounded: the message goes back in a reply header (found by fuzz/wire_decode).
            return Err(DecodeError::WrongSchema {
                expected: self.name,
                got: name.chars().take(64).collect(),
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

/// The `Content-Type` of a MessagePack body. Requests need not send it (every request body is
/// MessagePack); one that names anything else is refused, see [`check_content_type`].
pub const MSGPACK_CONTENT_TYPE: &str = "application/msgpack";

/// Checks a request's `Content-Type` header: absent, or MessagePack (`application/msgpack`,
/// or the older spellings `application/vnd.msgpack` and `application/x-msgpack`; case and
/// parameters ignored). A body that says it is JSON, text or anything else is refused
/// before decoding rather than misread as MessagePack.
pub fn check_content_type(header: Option<&str>) -> Result<(), DecodeError> {
    let Some(value) = header else { return Ok(()) };
    let essence = value.split(';').next().unwrap_or("").trim();
    let ok = [
        MSGPACK_CONTENT_TYPE,
        "application/vnd.msgpack",
        "application/x-msgpack",
    ]
    .iter()
    .any(|t| essence.eq_ignore_ascii_case(t));
    if ok {
        Ok(())
    } else {
        Err(DecodeError::WrongContentType {
            got: value.chars().take(64).collect(),
        })
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
    #[error("content type {got:?} is not MessagePack (send application/msgpack or none)")]
    WrongContentType { got: String },
    #[error("invalid body: expected a MessagePack map with named fields, got {got}")]
    NotAMap { got: &'static str },
    #[error("invalid body: {0}")]
    Body(#[from] rmp_serde::decode::Error),
}

impl From<DecodeError> for WireError {
    fn from(err: DecodeError) -> Self {
        let code = match err {
            DecodeError::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            DecodeError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            DecodeError::WrongSchema { .. }
            | DecodeError::MissingSchema
            | DecodeError::WrongContentType { .. }
            | DecodeError::NotAMap { .. }
            | DecodeError::Body(_) => ErrorCode::BadRequest,
        };
        WireError::new(code, err.to_string())
    }
}

/// Encodes a body as a MessagePack map with named fields.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising our own plain structs into a Vec cannot fail; a failure is a bug.
    rmp_serde::to_vec_named(value).expect("wire types always serialise")
}

/// Encodes the map `{ <field>: [<items>] }` from items each already encoded with
/// [`encode`], without encoding them again: how a publisher that sizes what it gathers
/// (the audit queue) frames a batch. The bytes are those [`encode`] gives for a struct
/// whose one field `field` holds the items.
pub fn encode_list(field: &str, items: &[Vec<u8>]) -> Vec<u8> {
    let len = items.iter().map(Vec::len).sum::<usize>() + field.len() + 16;
    let mut out = Vec::with_capacity(len);
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_map_len(&mut out, 1);
    let _ = rmp::encode::write_str(&mut out, field);
    let _ = rmp::encode::write_array_len(&mut out, items.len() as u32);
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

/// Decodes a body, refusing oversized input before looking at it, and any body that is not
/// a MessagePack map (every Tessera body is one: [`encode`] writes named fields).
///
/// The map check is the first byte's marker: rmp-serde would otherwise take an array of a
/// struct's fields in declaration order, a form the protocol does not have (§1). One
/// comparison, no parse. Fields inside the map are held to their types by the
/// [`crate::strict`] decoders on the request structs.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    check_map_marker(bytes)?;
    Ok(rmp_serde::from_slice(bytes)?)
}

/// Whether `bytes` starts with a MessagePack map marker (fixmap, map 16, map 32).
fn check_map_marker(bytes: &[u8]) -> Result<(), DecodeError> {
    let got = match bytes.first() {
        Some(0x80..=0x8f | 0xde | 0xdf) => return Ok(()),
        None => "an empty body",
        Some(0x90..=0x9f | 0xdc | 0xdd) => "an array",
        Some(0xa0..=0xbf | 0xd9..=0xdb) => "a string",
        Some(0xc4..=0xc6) => "binary",
        Some(0xc0) => "nil",
        Some(0xc2 | 0xc3) => "a boolean",
        Some(0xc1) => "an invalid marker",
        Some(0xc7..=0xc9 | 0xd4..=0xd8) => "an extension",
        Some(_) => "a number",
    };
    Err(DecodeError::NotAMap { got })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::TokenRequest;

    const S: Schema = Schema::v1("token.request");

    #[test]
    fn a_list_framed_from_encoded_items_is_the_struct_encoded_whole() {
        use crate::messages::DistEvent;
        for n in [0usize, 1, 15, 16, 300] {
            let tokens: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
            let whole = encode(&DistEvent::Tokens {
                tokens: tokens.clone(),
            });
            // DistEvent is tagged, so compare the untagged part: `{tokens: [...]}`.
            #[derive(serde::Serialize)]
            struct List {
                tokens: Vec<String>,
            }
            let items: Vec<Vec<u8>> = tokens.iter().map(encode).collect();
            assert_eq!(
                encode_list("tokens", &items),
                encode(&List { tokens }),
                "{n}"
            );
            assert!(whole.len() > 1);
        }
    }

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

    /// Regression (fuzz/wire_decode): an error never echoes an unbounded header back.
    #[test]
    fn header_errors_stay_short() {
        let long = format!("{}/1", "n".repeat(10_000));
        let err = WireError::from(S.check(Some(&long)).unwrap_err());
        assert_eq!(err.code, ErrorCode::BadRequest);
        assert!(err.message.len() < 200, "{}", err.message.len());
        let long = format!("token.request/{}", "9".repeat(10_000));
        let err = WireError::from(S.check(Some(&long)).unwrap_err());
        assert_eq!(err.code, ErrorCode::UnsupportedVersion);
        assert!(err.message.len() < 200, "{}", err.message.len());
        let long = "x".repeat(10_000);
        let err = WireError::from(check_content_type(Some(&long)).unwrap_err());
        assert!(err.message.len() < 200, "{}", err.message.len());
    }

    #[test]
    fn content_type_rules() {
        for ok in [
            None,
            Some("application/msgpack"),
            Some("Application/MsgPack; charset=binary"),
            Some("application/vnd.msgpack"),
            Some("application/x-msgpack"),
        ] {
            assert!(check_content_type(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "application/json",
            "text/plain",
            "",
            "application/msgpack+json",
        ] {
            let err = check_content_type(Some(bad)).unwrap_err();
            assert_eq!(WireError::from(err).code, ErrorCode::BadRequest, "{bad:?}");
        }
    }

    #[test]
    fn oversized_is_refused_before_decoding() {
        let big = vec![0u8; MAX_MESSAGE_BYTES + 1];
        let err = decode::<TokenRequest>(&big).unwrap_err();
        assert_eq!(WireError::from(err).code, ErrorCode::PayloadTooLarge);
    }

    /// Every first byte: only the three map markers pass, whatever follows.
    #[test]
    fn only_a_map_is_a_body() {
        for b in 0..=u8::MAX {
            let is_map = matches!(b, 0x80..=0x8f | 0xde | 0xdf);
            assert_eq!(check_map_marker(&[b]).is_ok(), is_map, "{b:#04x}");
        }
        assert!(check_map_marker(&[]).is_err());
        // The token request's fields as an array, which rmp-serde alone decodes.
        let array = rmp_serde::to_vec(&("t", "p")).unwrap();
        assert!(rmp_serde::from_slice::<TokenRequest>(&array).is_ok());
        let err = WireError::from(decode::<TokenRequest>(&array).unwrap_err());
        assert_eq!(err.code, ErrorCode::BadRequest);
        assert!(err.message.contains("got an array"), "{}", err.message);
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
