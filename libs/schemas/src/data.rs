//! Signed data-access packets: a client app asks the gateway for a plugin's
//! dynamic data on `data.<plugin_id>`.
//!
//! The packet carries the operation address, the verification info and a protocol
//! signature. The signature is an HMAC-SHA256, keyed with the client app's secret, over the
//! canonical signing string built by [`signing_string`]. This module is pure (no crypto):
//! it defines the bytes; `tessera_protocol::data_sign` computes and checks the HMAC.
//! docs/protocol.md ("Data access") has the same definition with a worked example.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::codec::Schema;
use crate::error::{ErrorCode, WireError};
use crate::ids;
use crate::strict;

pub const DATA_REQUEST: Schema = Schema::v1("data.request");

/// The packet format version this build speaks (the `version` field; it is signed).
pub const PACKET_VERSION: u32 = 1;
/// First line of the canonical signing string: a domain separator, so an HMAC made for this
/// purpose cannot be replayed as any other message signed with the same secret.
pub const SIGNING_DOMAIN: &str = "tessera-data/1";
/// Bounds on the nonce (base64url characters `A-Z a-z 0-9 - _`).
pub const NONCE_MIN_LEN: usize = 16;
pub const NONCE_MAX_LEN: usize = 64;
/// Bound on a device id (`A-Z a-z 0-9 - _ . :`).
pub const DEVICE_ID_MAX_LEN: usize = 128;
/// Bound on the query string.
pub const QUERY_MAX_LEN: usize = 4096;
/// Length of a client app's secret, in bytes.
pub const CLIENT_SECRET_LEN: usize = 32;
/// Bound on the plugin token's length (a JWT of ours is a few hundred bytes).
pub const MAX_TOKEN_LEN: usize = 8192;

/// Who the request is for, as the client app saw it: checked by the gateway after the
/// signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    #[serde(deserialize_with = "strict::text")]
    pub plugin_id: String,
    /// The user's IP address (IPv4 dotted or IPv6 text form).
    #[serde(deserialize_with = "strict::text")]
    pub user_ip: String,
    #[serde(deserialize_with = "strict::text")]
    pub device_id: String,
}

/// The data-access packet, body of a request on `data.<plugin_id>`. Decoded strictly
/// ([`crate::strict`]): strings are `str`, `body` is `bin`, `verification` is a map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRequest {
    pub version: u32,
    #[serde(deserialize_with = "strict::text")]
    pub app_id: String,
    /// The plugin token (a JWT from `token.request`); forwarded to the plugin server.
    #[serde(deserialize_with = "strict::text")]
    pub plugin_token: String,
    /// Unix time in milliseconds when the client app signed the packet.
    pub timestamp: u64,
    /// Random, unique per packet: 16-64 base64url characters.
    #[serde(deserialize_with = "strict::text")]
    pub nonce: String,
    /// The operation address: a data route `<plugin_id>.<operation>` names it.
    #[serde(deserialize_with = "strict::text")]
    pub operation: String,
    /// Free-form query (may be empty), forwarded in the `Tessera-Data-Query` header.
    #[serde(default, deserialize_with = "strict::text")]
    pub query: String,
    /// Forwarded to the plugin server as the request body.
    #[serde(
        default,
        serialize_with = "serde_bytes::serialize",
        deserialize_with = "strict::bytes"
    )]
    pub body: Vec<u8>,
    #[serde(deserialize_with = "strict::map")]
    pub verification: Verification,
    /// base64url (no padding) of the 32-byte HMAC-SHA256 of [`signing_string`].
    #[serde(deserialize_with = "strict::text")]
    pub signature: String,
}

/// The canonical signing string, as UTF-8 bytes: ten lines joined by `\n` (0x0A), no
/// trailing newline.
///
/// ```text
/// tessera-data/1
/// <app_id>
/// <sha256 hex of plugin_token>
/// <timestamp, decimal>
/// <version, decimal>
/// <nonce>
/// <verification.plugin_id>
/// <verification.user_ip>
/// <verification.device_id>
/// <sha256 hex of (operation || 0x0A || query || 0x0A || body)>
/// ```
///
/// Hex is lowercase. The two digests are passed in, computed by the caller: this crate has
/// no crypto. Fields that could hold a newline are rejected by the gateway, so the lines are
/// unambiguous.
pub fn signing_string(p: &DataRequest, token_sha256_hex: &str, payload_sha256_hex: &str) -> String {
    let v = &p.verification;
    format!(
        "{SIGNING_DOMAIN}\n{}\n{token_sha256_hex}\n{}\n{}\n{}\n{}\n{}\n{}\n{payload_sha256_hex}",
        p.app_id, p.timestamp, p.version, p.nonce, v.plugin_id, v.user_ip, v.device_id
    )
}

/// The bytes whose SHA-256 is the last line of the signing string.
pub fn payload_digest_input(p: &DataRequest) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.operation.len() + p.query.len() + p.body.len() + 2);
    out.extend_from_slice(p.operation.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(p.query.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&p.body);
    out
}

/// Whether a nonce is well-formed: 16-64 base64url characters.
pub fn nonce_ok(nonce: &str) -> bool {
    (NONCE_MIN_LEN..=NONCE_MAX_LEN).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether a device id is well-formed: 1-128 of `A-Z a-z 0-9 - _ . :`.
pub fn device_id_ok(device_id: &str) -> bool {
    (1..=DEVICE_ID_MAX_LEN).contains(&device_id.len())
        && device_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn bad_request(msg: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::BadRequest, msg)
}

/// The gateway's first check on a decoded packet (step 1 of docs/protocol.md §8.1): shape
/// rules that need no secret. They also keep newlines out of every line of the signing
/// string that they cover (ids, base64url, no control characters); the verification info's
/// `user_ip` and `device_id` are checked later, by [`check_verification`], because the
/// protocol fixes that order. Pure, so the fuzzer runs exactly what the gateway runs.
pub fn check_shape(p: &DataRequest) -> Result<(), WireError> {
    if p.version != PACKET_VERSION {
        return Err(WireError::new(
            ErrorCode::UnsupportedVersion,
            format!("packet version {} is not supported (use 1)", p.version),
        ));
    }
    ids::check("app_id", &p.app_id).map_err(|e| bad_request(e.to_string()))?;
    ids::check("operation", &p.operation).map_err(|e| bad_request(e.to_string()))?;
    ids::check("verification.plugin_id", &p.verification.plugin_id)
        .map_err(|e| bad_request(e.to_string()))?;
    if !nonce_ok(&p.nonce) {
        return Err(bad_request("nonce must be 16-64 base64url characters"));
    }
    if p.plugin_token.is_empty() || p.plugin_token.len() > MAX_TOKEN_LEN {
        return Err(bad_request("plugin_token is empty or too long"));
    }
    if p.query.len() > QUERY_MAX_LEN || p.query.chars().any(char::is_control) {
        return Err(bad_request(
            "query must be at most 4096 bytes without control characters",
        ));
    }
    if p.signature.is_empty() {
        return Err(WireError::new(
            ErrorCode::BadSignature,
            "signature is missing",
        ));
    }
    Ok(())
}

/// Step 6 of the gateway's checks: the verification info's user IP parses and its device id
/// is well-formed. Returns the parsed address (the binding compares addresses, not text).
pub fn check_verification(v: &Verification) -> Result<IpAddr, WireError> {
    let Ok(user_ip) = v.user_ip.parse::<IpAddr>() else {
        return Err(bad_request("verification.user_ip is not an IP address"));
    };
    if !device_id_ok(&v.device_id) {
        return Err(bad_request(
            "verification.device_id must be 1-128 of A-Z a-z 0-9 - _ . :",
        ));
    }
    Ok(user_ip)
}

/// Value of the data-routes bucket, keyed `<plugin_id>.<operation>`: where the gateway
/// forwards a packet (`svc.<server_id>.<server_operation>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRoute {
    pub server_id: String,
    pub server_operation: String,
}

/// The data-routes key of one operation address.
pub fn data_route_key(plugin_id: &str, operation: &str) -> String {
    format!("{plugin_id}.{operation}")
}

/// Value of the client-apps bucket, keyed by app id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientApp {
    /// The 32-byte HMAC key.
    #[serde(with = "serde_bytes")]
    pub secret: Vec<u8>,
    /// Unix seconds.
    pub created_at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_fields() {
        assert!(nonce_ok("AAAAAAAAAAAAAAAA"));
        assert!(nonce_ok(&"a-_".repeat(21)));
        assert!(!nonce_ok("short"));
        assert!(!nonce_ok(&"a".repeat(65)));
        assert!(!nonce_ok("AAAAAAAAAAAAAAA\n"));
        assert!(device_id_ok("phone-42.a:b"));
        assert!(!device_id_ok(""));
        assert!(!device_id_ok("a b"));
        assert!(!device_id_ok("a\nb"));
    }

    fn packet() -> DataRequest {
        DataRequest {
            version: PACKET_VERSION,
            app_id: "app".into(),
            plugin_token: "a.b.c".into(),
            timestamp: 1,
            nonce: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            operation: "now".into(),
            query: "q=1".into(),
            body: Vec::new(),
            verification: Verification {
                plugin_id: "weather".into(),
                user_ip: "192.0.2.1".into(),
                device_id: "d".into(),
            },
            signature: "sig".into(),
        }
    }

    /// Every line of the signing string that a packet controls is newline-free once the
    /// shape checks pass (user IP and device id are checked later, and fail there).
    #[test]
    fn shape_checks_name_the_right_code() {
        assert!(check_shape(&packet()).is_ok());
        let code = |f: fn(&mut DataRequest)| {
            let mut p = packet();
            f(&mut p);
            check_shape(&p).unwrap_err().code
        };
        assert_eq!(code(|p| p.version = 2), ErrorCode::UnsupportedVersion);
        assert_eq!(code(|p| p.app_id = "a\nb".into()), ErrorCode::BadRequest);
        assert_eq!(code(|p| p.operation = "a.b".into()), ErrorCode::BadRequest);
        assert_eq!(code(|p| p.nonce = "short".into()), ErrorCode::BadRequest);
        assert_eq!(code(|p| p.plugin_token.clear()), ErrorCode::BadRequest);
        assert_eq!(code(|p| p.query = "a\nb".into()), ErrorCode::BadRequest);
        assert_eq!(
            code(|p| p.verification.plugin_id = "x\n".into()),
            ErrorCode::BadRequest
        );
        assert_eq!(code(|p| p.signature.clear()), ErrorCode::BadSignature);
    }

    #[test]
    fn verification_info_is_checked() {
        let v = packet().verification;
        assert!(check_verification(&v).is_ok());
        let mut bad = v.clone();
        bad.user_ip = "192.0.2.1\n".into();
        assert_eq!(
            check_verification(&bad).unwrap_err().code,
            ErrorCode::BadRequest
        );
        let mut bad = v;
        bad.device_id = "a\nb".into();
        assert_eq!(
            check_verification(&bad).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn payload_digest_input_separates_fields() {
        let mut p = DataRequest {
            version: 1,
            app_id: "a".into(),
            plugin_token: "t".into(),
            timestamp: 1,
            nonce: "n".into(),
            operation: "forecast".into(),
            query: "city=Oslo".into(),
            body: b"{}".to_vec(),
            verification: Verification {
                plugin_id: "weather".into(),
                user_ip: "192.0.2.1".into(),
                device_id: "d".into(),
            },
            signature: String::new(),
        };
        assert_eq!(payload_digest_input(&p), b"forecast\ncity=Oslo\n{}");
        p.query.clear();
        p.body.clear();
        assert_eq!(payload_digest_input(&p), b"forecast\n\n");
    }
}
