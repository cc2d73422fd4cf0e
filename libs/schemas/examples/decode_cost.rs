//! What strict decoding costs on the hot path: `codec::decode` of a data packet and a token
//! request (map check plus the `strict` field decoders) against rmp-serde alone on mirror
//! structs with serde's default visitors, the decoding before strictness.
//!
//! `cargo run --release -p tessera-schemas --example decode_cost [iterations]`
//! (default 1,000,000). Prints nanoseconds per decode, best of 5 rounds each.

use std::hint::black_box;
use std::time::Instant;

use serde::Deserialize;
use tessera_schemas::codec::{decode, encode};
use tessera_schemas::data::{DataRequest, Verification};
use tessera_schemas::messages::TokenRequest;

#[derive(Deserialize)]
#[allow(dead_code)]
struct LenientVerification {
    plugin_id: String,
    user_ip: String,
    device_id: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct LenientData {
    version: u32,
    app_id: String,
    plugin_token: String,
    timestamp: u64,
    nonce: String,
    operation: String,
    #[serde(default)]
    query: String,
    #[serde(default, with = "serde_bytes")]
    body: Vec<u8>,
    verification: LenientVerification,
    signature: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct LenientToken {
    account_token: String,
    plugin_id: String,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    user_ip: Option<String>,
}

/// Best of five rounds, nanoseconds per call.
fn ns_per_call(iterations: u32, mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iterations)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("iterations"))
        .unwrap_or(1_000_000);
    // A packet shaped like the SDK's: a ~400-byte token, a 16-byte nonce, a small body.
    let packet = encode(&DataRequest {
        version: 1,
        app_id: "demo-app".into(),
        plugin_token: "x".repeat(400),
        timestamp: 1_764_000_000_000,
        nonce: "bm9uY2Utbm9uY2Utbm9uY2U".into(),
        operation: "forecast".into(),
        query: "city=Oslo".into(),
        body: br#"{"days":3}"#.to_vec(),
        verification: Verification {
            plugin_id: "weather".into(),
            user_ip: "192.0.2.10".into(),
            device_id: "device-42".into(),
        },
        signature: "wu6JCYjZNARHSZZAPkMtPk_QU9DEWUU301eEYfesOH4".into(),
    });
    let token = encode(&TokenRequest {
        account_token: "y".repeat(600),
        plugin_id: "weather".into(),
        idempotency_key: Some("0f8fad5b-d9cb-469f-a165-70867728950e".into()),
        device_id: None,
        user_ip: None,
    });

    let strict = ns_per_call(iterations, || {
        black_box(decode::<DataRequest>(black_box(&packet)).unwrap());
    });
    let lenient = ns_per_call(iterations, || {
        black_box(rmp_serde::from_slice::<LenientData>(black_box(&packet)).unwrap());
    });
    println!(
        "data.request ({} bytes): strict {strict:.0} ns, serde alone {lenient:.0} ns",
        packet.len()
    );
    let strict = ns_per_call(iterations, || {
        black_box(decode::<TokenRequest>(black_box(&token)).unwrap());
    });
    let lenient = ns_per_call(iterations, || {
        black_box(rmp_serde::from_slice::<LenientToken>(black_box(&token)).unwrap());
    });
    println!(
        "token.request ({} bytes): strict {strict:.0} ns, serde alone {lenient:.0} ns",
        token.len()
    );
}
