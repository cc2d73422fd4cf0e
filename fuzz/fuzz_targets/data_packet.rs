//! The data-access packet (`data.<plugin_id>`), as the gateway takes it apart before any
//! secret or Redis is involved: decode, the shape checks, the verification-info checks, and
//! the canonical signing string (libs/schemas/src/data.rs; the gateway calls these functions).
//!
//! Properties: no panic; a packet that passes every check gives a signing string of exactly
//! ten lines (no field can smuggle in a newline and shift the lines an HMAC covers), and the
//! payload digest input starts with the operation and a newline; decode round-trips.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_schemas::data::{
    DataRequest, check_shape, check_verification, payload_digest_input, signing_string,
};
use tessera_schemas::{ErrorCode, codec};

/// Stand-ins for the two digests (64 lowercase hex characters each, like the real ones).
const HEX: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fuzz_target!(|data: &[u8]| {
    let packet: DataRequest = match codec::decode(data) {
        Ok(p) => p,
        Err(e) => {
            let w = tessera_schemas::WireError::from(e);
            assert_eq!(w.code, ErrorCode::BadRequest, "{w}");
            return;
        }
    };
    let again: DataRequest = codec::decode(&codec::encode(&packet)).expect("re-encoded packet");
    assert_eq!(again, packet);

    // The string is built for any packet (the gateway builds it only after the shape
    // checks, but it must never panic).
    let signing = signing_string(&packet, HEX, HEX);
    let payload = payload_digest_input(&packet);
    assert!(payload.starts_with(packet.operation.as_bytes()));

    let shape = check_shape(&packet);
    if let Err(e) = &shape {
        assert!(
            matches!(
                e.code,
                ErrorCode::BadRequest | ErrorCode::UnsupportedVersion | ErrorCode::BadSignature
            ),
            "{e}"
        );
        return;
    }
    match check_verification(&packet.verification) {
        Ok(ip) => {
            assert_eq!(
                signing.split('\n').count(),
                10,
                "a checked packet's signing string is not ten lines: {signing:?}"
            );
            assert_eq!(payload[packet.operation.len()], b'\n');
            assert_eq!(
                ip,
                packet
                    .verification
                    .user_ip
                    .parse::<std::net::IpAddr>()
                    .unwrap()
            );
        }
        Err(e) => assert_eq!(e.code, ErrorCode::BadRequest, "{e}"),
    }
});
