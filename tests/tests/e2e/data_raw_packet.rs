//! A data-access packet built without the SDK, from docs/protocol.md alone: raw NATS
//! (async-nats), MessagePack (rmp-serde) and the crypto crate (aws-lc-rs: SHA-256, HMAC,
//! randomness). If this passes, another language following the document gets the same
//! answers. The harness and SDK only set the stack up (user, token, client app, route).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::{digest, hmac};
use serde::{Deserialize, Serialize};
use tessera_tests::{Backend, Role, Stack};

#[derive(Serialize)]
struct Verification<'a> {
    plugin_id: &'a str,
    user_ip: &'a str,
    device_id: &'a str,
}

#[derive(Serialize)]
struct Packet<'a> {
    version: u32,
    app_id: &'a str,
    plugin_token: &'a str,
    timestamp: u64,
    nonce: &'a str,
    operation: &'a str,
    query: &'a str,
    #[serde(with = "serde_bytes")]
    body: &'a [u8],
    verification: Verification<'a>,
    signature: &'a str,
}

#[derive(Deserialize)]
struct Echo {
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    plugin_id: String,
}

#[derive(Deserialize)]
struct WireError {
    code: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256_hex(b: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, b).as_ref())
}

/// RFC 4648 section 5, no padding.
fn base64url(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &x)| n | (u32::from(x) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn base64url_decode(s: &str) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let vals: Vec<u32> = s
        .bytes()
        .map(|c| A.iter().position(|&a| a == c).expect("base64url") as u32)
        .collect();
    let mut out = Vec::new();
    for chunk in vals.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &v)| n | (v << (18 - 6 * i)));
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[test]
fn base64url_matches_the_worked_example() {
    // The HMAC of docs/protocol.md's worked example, hex and base64url.
    let tag = (0..32)
        .map(|i| {
            u8::from_str_radix(
                &"c2ee890988d93404474996403e432d3e4fd053d0c4594537d3578461f7ac387e"
                    [2 * i..2 * i + 2],
                16,
            )
            .unwrap()
        })
        .collect::<Vec<u8>>();
    assert_eq!(
        base64url(&tag),
        "wu6JCYjZNARHSZZAPkMtPk_QU9DEWUU301eEYfesOH4"
    );
    assert_eq!(
        base64url_decode("wu6JCYjZNARHSZZAPkMtPk_QU9DEWUU301eEYfesOH4"),
        tag
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_built_from_the_protocol_doc_is_served() {
    let stack = Stack::builder()
        .backend(Backend::Local)
        .gateways(1)
        .start()
        .await;
    let ann = stack.user("ann", "correct horse battery").await;
    stack.route("weather", &["ps1"]).await;
    let _ps1 = stack.plugin_server("ps1").await;
    let admin = stack.admin().await;
    let secret = admin
        .add_client_app("raw-app")
        .await
        .unwrap()
        .secret_base64();
    admin
        .set_data_route("weather", "now", "ps1", "echo")
        .await
        .unwrap();
    let token = stack
        .client()
        .await
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap()
        .token;

    // From here on: only the document, async-nats, rmp-serde and aws-lc-rs.
    let secret = base64url_decode(&secret);
    assert_eq!(secret.len(), 32);
    let nats = stack.nats(Role::Client).await;
    let send = |packet: Vec<u8>| {
        let nats = nats.clone();
        async move {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Tessera-Schema", "data.request/1");
            let req = async_nats::Request::new()
                .headers(h)
                .payload(packet.into())
                .timeout(Some(Duration::from_secs(5)));
            nats.send_request("tessera.data.weather", req)
                .await
                .unwrap()
        }
    };
    let mut nonce_bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut nonce_bytes).unwrap();
    let nonce = base64url(&nonce_bytes);
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (operation, query, body) = ("now", "city=Oslo", b"raw hello".as_slice());
    let (user_ip, device_id) = ("2001:db8::1", "device-7");
    let mut payload = Vec::new();
    payload.extend_from_slice(operation.as_bytes());
    payload.push(b'\n');
    payload.extend_from_slice(query.as_bytes());
    payload.push(b'\n');
    payload.extend_from_slice(body);
    let signing_string = [
        "tessera-data/1".to_owned(),
        "raw-app".to_owned(),
        sha256_hex(token.as_bytes()),
        timestamp.to_string(),
        "1".to_owned(),
        nonce.clone(),
        "weather".to_owned(),
        user_ip.to_owned(),
        device_id.to_owned(),
        sha256_hex(&payload),
    ]
    .join("\n");
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
    let signature = base64url(hmac::sign(&key, signing_string.as_bytes()).as_ref());
    let packet = |signature: &str| {
        rmp_serde::to_vec_named(&Packet {
            version: 1,
            app_id: "raw-app",
            plugin_token: &token,
            timestamp,
            nonce: &nonce,
            operation,
            query,
            body,
            verification: Verification {
                plugin_id: "weather",
                user_ip,
                device_id,
            },
            signature,
        })
        .unwrap()
    };

    let reply = send(packet(&signature)).await;
    let headers = reply.headers.clone().unwrap_or_default();
    assert!(
        headers.get("Nats-Service-Error-Code").is_none(),
        "error reply: {:?}",
        rmp_serde::from_slice::<WireError>(&reply.payload).map(|e| e.code)
    );
    assert_eq!(
        headers.get("Tessera-Schema").map(|v| v.as_str()),
        Some("svc.echo/1")
    );
    let echo: Echo = rmp_serde::from_slice(&reply.payload).unwrap();
    assert_eq!(echo.body, body);
    assert_eq!(echo.plugin_id, "weather");

    // The same packet again: the typed error body names the check.
    let replay = send(packet(&signature)).await;
    assert_eq!(
        replay
            .headers
            .unwrap()
            .get("Nats-Service-Error-Code")
            .unwrap()
            .as_str(),
        "401"
    );
    let err: WireError = rmp_serde::from_slice(&replay.payload).unwrap();
    assert_eq!(err.code, "replayed_nonce");
}
