//! The protocol signature of a data-access packet: HMAC-SHA256 (aws-lc-rs), keyed with the
//! client app's 32-byte secret, over the canonical signing string of
//! [`tessera_schemas::data::signing_string`], sent as base64url without padding.
//!
//! The SDK signs with [`sign`]; the gateway checks with [`verify`], which compares in
//! constant time (aws-lc-rs `hmac::verify`).

use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera_schemas::data::{DataRequest, payload_digest_input, signing_string};

use crate::signing::token_hash;

/// Lowercase hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes))
}

/// The canonical signing string of `packet` (the `signature` field is not part of it).
pub fn canonical(packet: &DataRequest) -> String {
    canonical_with_token_hash(packet, &token_hash(&packet.plugin_token))
}

/// [`canonical`] when the caller already has the token's SHA-256 (the gateway needs it for
/// the token check too).
pub fn canonical_with_token_hash(packet: &DataRequest, token_sha256_hex: &str) -> String {
    signing_string(
        packet,
        token_sha256_hex,
        &sha256_hex(&payload_digest_input(packet)),
    )
}

/// The signature of `packet` under `secret`, base64url without padding.
pub fn sign(secret: &[u8], packet: &DataRequest) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    URL_SAFE_NO_PAD.encode(hmac::sign(&key, canonical(packet).as_bytes()).as_ref())
}

/// Whether `packet.signature` is the HMAC of its canonical string under `secret`.
pub fn verify(secret: &[u8], packet: &DataRequest, token_sha256_hex: &str) -> bool {
    let Ok(tag) = URL_SAFE_NO_PAD.decode(packet.signature.as_bytes()) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let msg = canonical_with_token_hash(packet, token_sha256_hex);
    hmac::verify(&key, msg.as_bytes(), &tag).is_ok()
}

#[cfg(test)]
mod tests {
    use tessera_schemas::data::Verification;

    use super::*;

    /// Lowercase hex of raw bytes (the name says what the doc shows: the tag in hex).
    fn hex(tag: &[u8]) -> String {
        tag.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The worked example of docs/protocol.md ("Data access"): another implementation can
    /// check itself against these exact values.
    #[test]
    fn worked_example_from_the_protocol_doc() {
        let secret: Vec<u8> = (0u8..32).collect();
        let mut p = DataRequest {
            version: 1,
            app_id: "demo-app".into(),
            plugin_token: "eyJhbGciOiJFZERTQSJ9.e30.c2ln".into(),
            timestamp: 1_764_000_000_000,
            nonce: "bm9uY2Utbm9uY2Utbm9uY2U".into(),
            operation: "forecast".into(),
            query: "city=Oslo".into(),
            body: b"{\"days\":3}".to_vec(),
            verification: Verification {
                plugin_id: "weather".into(),
                user_ip: "192.0.2.10".into(),
                device_id: "device-42".into(),
            },
            signature: String::new(),
        };
        let expected_string = "tessera-data/1\n\
            demo-app\n\
            b8cc7dd5077a7f74fc0ab6a7289d7c4a1b60a09c605ddc290dea02911bb94bf5\n\
            1764000000000\n\
            1\n\
            bm9uY2Utbm9uY2Utbm9uY2U\n\
            weather\n\
            192.0.2.10\n\
            device-42\n\
            26f0a1cfa41275a82dafc0ead30cfc4c876946317862ed77abeb0439f91b7b30";
        assert_eq!(canonical(&p), expected_string);
        // The same HMAC in hex (c2ee89...) and as sent (base64url, no padding).
        let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
        let tag = hmac::sign(&key, expected_string.as_bytes());
        assert_eq!(
            hex(tag.as_ref()),
            "c2ee890988d93404474996403e432d3e4fd053d0c4594537d3578461f7ac387e"
        );
        let sig = sign(&secret, &p);
        assert_eq!(sig, "wu6JCYjZNARHSZZAPkMtPk_QU9DEWUU301eEYfesOH4");
        p.signature = sig;
        assert!(verify(&secret, &p, &token_hash(&p.plugin_token)));
        let mut wrong = secret.clone();
        wrong[0] ^= 1;
        assert!(!verify(&wrong, &p, &token_hash(&p.plugin_token)));
        p.timestamp += 1;
        assert!(!verify(&secret, &p, &token_hash(&p.plugin_token)));
    }
}
