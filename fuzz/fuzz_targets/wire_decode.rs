//! Every MessagePack body a Tessera endpoint, consumer or bucket reader decodes, through
//! `tessera_schemas::codec::decode` (the size limit, then rmp-serde), plus the
//! `Tessera-Schema` and `Content-Type` header checks every request passes.
//!
//! Input: one selector byte, then the body (or header text). Properties:
//! - no panic, whatever the bytes;
//! - a body over `MAX_MESSAGE_BYTES` is refused as `TooLarge` (`payload_too_large`) before
//!   decoding, and nothing at or under the limit ever is;
//! - round trip: a body that decodes re-encodes to one that decodes to the same value;
//! - only a map decodes (docs/protocol.md §1): a body that decodes starts with a map marker;
//! - header checks answer a typed error whose message is bounded (it goes back in a reply
//!   header), however long the header was.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_schemas::assets::*;
use tessera_schemas::data::*;
use tessera_schemas::messages::*;
use tessera_schemas::packages::*;
use tessera_schemas::{DecodeError, ErrorCode, MAX_MESSAGE_BYTES, WireError, codec};

/// Decodes `bytes` as `T`; if that works, checks the round trip.
fn round_trip<T>(bytes: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    match codec::decode::<T>(bytes) {
        Ok(value) => {
            assert!(
                matches!(bytes.first(), Some(0x80..=0x8f | 0xde | 0xdf)),
                "a body that is not a map decoded: {value:?}"
            );
            let again: T = codec::decode(&codec::encode(&value))
                .unwrap_or_else(|e| panic!("re-encoded {value:?} does not decode: {e}"));
            assert_eq!(again, value, "round trip changed the value");
        }
        Err(DecodeError::TooLarge { .. }) => {
            panic!("{} bytes refused as too large", bytes.len())
        }
        Err(e) => {
            let w = WireError::from(e);
            assert_eq!(w.code, ErrorCode::BadRequest, "{w}");
        }
    }
}

/// Header checks quote at most 64 characters of the header, escaped (up to 10 bytes each):
/// the message, which goes back in a reply header, is bounded whatever the input.
const MAX_ERROR_MESSAGE: usize = 1024;

/// Every decodable type, by selector.
const TYPES: u8 = 30;

fn decode_as(sel: u8, b: &[u8]) {
    match sel {
        0 => round_trip::<LoginRequest>(b),
        1 => round_trip::<LoginResponse>(b),
        2 => round_trip::<VerifyRequest>(b),
        3 => round_trip::<VerifyResponse>(b),
        4 => round_trip::<UsersAddRequest>(b),
        5 => round_trip::<UsersAddResponse>(b),
        6 => round_trip::<TokenRequest>(b),
        7 => round_trip::<TokenResponse>(b),
        8 => round_trip::<RevokeRequest>(b),
        9 => round_trip::<RevokeResponse>(b),
        10 => round_trip::<IntrospectRequest>(b),
        11 => round_trip::<IntrospectResponse>(b),
        12 => round_trip::<DistEvent>(b),
        13 => round_trip::<Route>(b),
        14 => round_trip::<EchoReply>(b),
        15 => round_trip::<DataRequest>(b),
        16 => round_trip::<DataRoute>(b),
        17 => round_trip::<ClientApp>(b),
        18 => round_trip::<AssetsPublishRequest>(b),
        19 => round_trip::<AssetsPublishResponse>(b),
        20 => round_trip::<PluginKeyRequest>(b),
        21 => round_trip::<PluginKeyRecord>(b),
        22 => round_trip::<PluginKeyResponse>(b),
        23 => round_trip::<SealedBox>(b),
        24 => round_trip::<PackageUploadRequest>(b),
        25 => round_trip::<PackageUploadResponse>(b),
        26 => round_trip::<PackagesUpdated>(b),
        27 => round_trip::<NodeStatus>(b),
        28 => round_trip::<PackageRecord>(b),
        29 => round_trip::<WireError>(b),
        _ => unreachable!(),
    }
}

/// Header checks: the schema header against a few schemas, the content type.
fn headers(b: &[u8]) {
    let Ok(text) = std::str::from_utf8(b) else {
        return;
    };
    for schema in [TOKEN_REQUEST, AUTH_LOGIN, DATA_REQUEST, PACKAGES_UPLOAD] {
        match schema.check(Some(text)) {
            Ok(()) => assert!(
                text.starts_with(schema.name),
                "{text:?} passed as {schema:?}"
            ),
            Err(e) => {
                let w = WireError::from(e);
                assert!(
                    matches!(
                        w.code,
                        ErrorCode::BadRequest | ErrorCode::UnsupportedVersion
                    ),
                    "{w}"
                );
                assert!(
                    w.message.len() <= MAX_ERROR_MESSAGE,
                    "error message of {} bytes",
                    w.message.len()
                );
            }
        }
    }
    if let Err(e) = codec::check_content_type(Some(text)) {
        let w = WireError::from(e);
        assert_eq!(w.code, ErrorCode::BadRequest);
        assert!(
            w.message.len() <= MAX_ERROR_MESSAGE,
            "error message of {} bytes",
            w.message.len()
        );
    }
}

/// The size limit: the same bytes grown past the limit are refused before decoding.
fn oversized(sel: u8, b: &[u8]) {
    let len = MAX_MESSAGE_BYTES + 1 + b.len();
    let big: Vec<u8> = if b.is_empty() {
        vec![0x90; len]
    } else {
        b.iter().copied().cycle().take(len).collect()
    };
    fn refused<T: DeserializeOwned>(big: &[u8]) {
        match codec::decode::<T>(big) {
            Err(e @ DecodeError::TooLarge { .. }) => {
                assert_eq!(WireError::from(e).code, ErrorCode::PayloadTooLarge)
            }
            other => panic!(
                "{} bytes not refused as too large: {:?}",
                big.len(),
                other.err()
            ),
        }
    }
    match sel % 4 {
        0 => refused::<TokenRequest>(&big),
        1 => refused::<DataRequest>(&big),
        2 => refused::<AssetsPublishRequest>(&big),
        _ => refused::<PackageUploadRequest>(&big),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((sel, rest)) = tessera_fuzz::split(data) else {
        return;
    };
    match sel % (TYPES + 2) {
        s if s < TYPES => decode_as(s, rest),
        s if s == TYPES => headers(rest),
        _ => oversized(sel / (TYPES + 2), rest),
    }
});
