//! The token flow with literal subjects, headers and MessagePack maps, without the SDK: what
//! docs/protocol.md promises a client in any language.

use async_nats::HeaderMap;
use serde::Deserialize;
use serde_json::json;
use tessera_protocol::now_unix;
use tessera_tests::{Backend, Role, Stack};

use super::PASSWORD;

#[derive(Debug, Deserialize)]
struct UsersAdded {
    account_id: String,
}

#[derive(Debug, Deserialize)]
struct LoggedIn {
    account_token: String,
    account_id: String,
    expires_at: u64,
}

#[derive(Debug, Deserialize)]
struct Token {
    token: String,
    token_id: String,
    plugin_id: String,
    account_id: String,
    expires_at: u64,
    servers: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Echoed {
    body: serde_bytes::ByteBuf,
    account_id: String,
    plugin_id: String,
    server_id: String,
}

#[derive(Debug, Deserialize)]
struct WireErr {
    code: String,
    message: String,
    retryable: bool,
}

fn schema(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("Tessera-Schema", value);
    h
}

pub(super) fn header(msg: &async_nats::Message, name: &str) -> Option<String> {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
}

/// A successful reply: no error header, the schema header echoed, a MessagePack map.
fn ok_body<T: serde::de::DeserializeOwned>(msg: &async_nats::Message, schema: &str) -> T {
    assert_eq!(header(msg, "Nats-Service-Error-Code"), None, "{msg:?}");
    assert_eq!(header(msg, "Tessera-Schema").as_deref(), Some(schema));
    let first = msg.payload.first().copied().unwrap_or(0);
    assert!(
        (0x80..=0x8f).contains(&first) || first == 0xde,
        "the body is a MessagePack map with named fields"
    );
    rmp_serde::from_slice(&msg.payload).expect("decoding the reply")
}

/// An error reply: the micro status header and a `{code, message, retryable}` map, and no
/// schema header.
fn err_body(msg: &async_nats::Message) -> (String, WireErr) {
    let status = header(msg, "Nats-Service-Error-Code").expect("an error reply");
    assert!(header(msg, "Nats-Service-Error").is_some());
    assert_eq!(header(msg, "Tessera-Schema"), None);
    let body: WireErr = rmp_serde::from_slice(&msg.payload).expect("decoding the error body");
    assert!(!body.message.is_empty());
    (status, body)
}

fn msgpack(value: serde_json::Value) -> bytes::Bytes {
    rmp_serde::to_vec_named(&value).expect("encoding").into()
}

/// The flow again with literal subjects, headers and MessagePack maps: what docs/protocol.md
/// promises a client in any language.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_wire_contract_without_the_sdk() {
    // Local: the literal subjects below assume the default `tessera` prefix.
    let stack = Stack::builder().backend(Backend::Local).start().await;
    // Plain async-nats connections (the harness only supplies the role credentials).
    let admin = stack.nats(Role::Admin).await;
    let client = stack.nats(Role::Client).await;

    let added = admin
        .request_with_headers(
            "tessera.users.add",
            schema("users.add/1"),
            msgpack(json!({"username": "bob", "password": PASSWORD})),
        )
        .await
        .unwrap();
    let added: UsersAdded = ok_body(&added, "users.add/1");

    let login = client
        .request_with_headers(
            "tessera.auth.login",
            schema("auth.login/1"),
            msgpack(json!({"username": "bob", "password": PASSWORD})),
        )
        .await
        .unwrap();
    let login: LoggedIn = ok_body(&login, "auth.login/1");
    assert_eq!(login.account_id, added.account_id);
    assert!(login.expires_at > now_unix());

    // Routes live in the TESSERA_ROUTES bucket: plugin id -> {servers}.
    let js = async_nats::jetstream::new(admin.clone());
    let routes = js.get_key_value("TESSERA_ROUTES").await.unwrap();
    routes
        .put("weather", msgpack(json!({"servers": ["ps1", "ps2"]})))
        .await
        .unwrap();
    let _ps1 = stack.plugin_server("ps1").await;
    let _ps2 = stack.plugin_server("ps2").await;

    let reply = client
        .request_with_headers(
            "tessera.token.request",
            schema("token.request/1"),
            msgpack(json!({"account_token": login.account_token, "plugin_id": "weather"})),
        )
        .await
        .unwrap();
    let token: Token = ok_body(&reply, "token.request/1");
    assert_eq!(token.servers, ["ps1", "ps2"]);
    assert_eq!(token.plugin_id, "weather");
    assert_eq!(token.account_id, login.account_id);
    assert!(token.expires_at > now_unix());
    assert!(!token.token_id.is_empty());

    for server in ["ps1", "ps2"] {
        let mut h = HeaderMap::new();
        h.insert("Authorization", format!("Bearer {}", token.token).as_str());
        let reply = client
            .request_with_headers(format!("tessera.svc.{server}.echo"), h, "ping".into())
            .await
            .unwrap();
        let echoed: Echoed = ok_body(&reply, "svc.echo/1");
        assert_eq!(echoed.body.as_slice(), b"ping");
        assert_eq!(echoed.account_id, login.account_id);
        assert_eq!(echoed.plugin_id, "weather");
        assert_eq!(echoed.server_id, server);
    }

    // Errors: status header plus a typed body, on every service. A caller's request id
    // comes back on error replies as on successful ones.
    let mut h = schema("token.request/1");
    h.insert("Tessera-Request-Id", "req-42");
    let reply = client
        .request_with_headers(
            "tessera.token.request",
            h,
            msgpack(json!({"account_token": "not-a-jwt", "plugin_id": "weather"})),
        )
        .await
        .unwrap();
    let (status, body) = err_body(&reply);
    assert_eq!(status, "401");
    assert_eq!(body.code, "unauthenticated");
    assert!(!body.retryable);
    assert_eq!(
        header(&reply, "Tessera-Request-Id").as_deref(),
        Some("req-42")
    );
    let mut h = schema("auth.login/1");
    h.insert("Tessera-Request-Id", "req-43");
    let reply = client
        .request_with_headers(
            "tessera.auth.login",
            h,
            msgpack(json!({"username": "bob", "password": PASSWORD})),
        )
        .await
        .unwrap();
    let _: LoggedIn = ok_body(&reply, "auth.login/1");
    assert_eq!(
        header(&reply, "Tessera-Request-Id").as_deref(),
        Some("req-43")
    );

    let reply = client
        .request("tessera.svc.ps1.echo", "no token".into())
        .await
        .unwrap();
    let (status, body) = err_body(&reply);
    assert_eq!(status, "401");
    assert_eq!(body.code, "unauthenticated");

    let reply = client
        .request_with_headers(
            "tessera.auth.login",
            schema("auth.login/1"),
            msgpack(json!({"username": "bob", "password": "wrong password"})),
        )
        .await
        .unwrap();
    let (status, body) = err_body(&reply);
    assert_eq!(status, "401");
    assert_eq!(body.code, "unauthenticated");

    // Unknown fields are ignored (additive evolution within a version); no schema header
    // means version 1.
    let reply = client
        .request(
            "tessera.token.request",
            msgpack(json!({
                "account_token": login.account_token,
                "plugin_id": "nope",
                "added_in_a_later_version": 7,
            })),
        )
        .await
        .unwrap();
    let (status, body) = err_body(&reply);
    assert_eq!(status, "404");
    assert_eq!(body.code, "not_found");
}
