//! Plugin tokens bound to a device and/or user IP where the plugin's route says so: the
//! broker refuses a token request that lacks a bound field, and the gateway refuses packets
//! whose verification info differs from what the token was issued for. Real nats-server,
//! real redis-server, in-process workers.

use tessera_schemas::ErrorCode;
use tessera_schemas::messages::EchoReply;
use tessera_sdk::data::{ClientAppCredentials, DataCall};
use tessera_sdk::{Binding, Client, Error, RoutePolicy};
use tessera_tests::{Backend, Stack};

const PASSWORD: &str = "correct horse battery";
const SERVER: &str = "ps1";
/// Route policies of the three plugins of the world.
const DEVICE_BOUND: &str = "weather";
const IP_BOUND: &str = "news";
const UNBOUND: &str = "maps";

struct World {
    // Kept so the servers live as long as the world.
    _stack: Stack,
    client: Client,
    app: ClientAppCredentials,
    account_token: String,
    _ps1: tessera_tests::PluginServerHandle,
}

impl World {
    async fn start() -> World {
        tessera_tests::init_logging();
        let stack = Stack::builder()
            .backend(Backend::Local)
            .gateways(1)
            .start()
            .await;
        let ann = stack.user("ann", PASSWORD).await;
        let admin = stack.admin().await;
        let servers = [SERVER.to_owned()];
        for (plugin, bind_device, bind_ip) in [
            (DEVICE_BOUND, true, false),
            (IP_BOUND, false, true),
            (UNBOUND, false, false),
        ] {
            let policy = RoutePolicy {
                bind_device,
                bind_ip,
            };
            admin
                .set_route_with(plugin, &servers, policy)
                .await
                .unwrap();
            admin
                .set_data_route(plugin, "now", SERVER, "echo")
                .await
                .unwrap();
        }
        let ps1 = stack.plugin_server(SERVER).await;
        let app = admin.add_client_app("demo-app").await.unwrap();
        World {
            client: stack.client().await,
            _stack: stack,
            app,
            account_token: ann.account_token,
            _ps1: ps1,
        }
    }

    async fn token(&self, plugin: &str, binding: Binding) -> Result<String, Error> {
        self.token_with_key(plugin, None, binding).await
    }

    async fn token_with_key(
        &self,
        plugin: &str,
        key: Option<&str>,
        binding: Binding,
    ) -> Result<String, Error> {
        self.client
            .request_token_bound(&self.account_token, plugin, key, binding)
            .await
            .map(|r| r.token)
    }

    /// Sends one packet for `plugin` with this verification info; the error code, or None
    /// when the plugin server's echo came back.
    async fn send(&self, plugin: &str, token: &str, ip: &str, device: &str) -> Option<ErrorCode> {
        let call = DataCall::new(plugin, token, "now", ip, device).body(b"hi".to_vec());
        match self.client.data_request(&self.app, &call).await {
            Ok(reply) => {
                let echo: EchoReply = tessera_schemas::codec::decode(&reply.body).unwrap();
                assert_eq!(echo.plugin_id, plugin);
                None
            }
            Err(e) => Some(e.code()),
        }
    }
}

fn device(d: &str) -> Binding {
    Binding {
        device_id: Some(d.into()),
        user_ip: None,
    }
}

fn ip(i: &str) -> Binding {
    Binding {
        device_id: None,
        user_ip: Some(i.into()),
    }
}

/// A refused request's code and message.
fn rejected(r: Result<String, Error>) -> (ErrorCode, String) {
    match r {
        Err(e) if e.wire().is_some() => {
            let w = e.wire().unwrap();
            (w.code, w.message.clone())
        }
        other => panic!("expected a typed refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_bound_tokens_serve_only_their_device() {
    let w = World::start().await;

    // The route binds devices: a request without one, or with a malformed one, is refused.
    let (code, msg) = rejected(w.token(DEVICE_BOUND, Binding::default()).await);
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(
        msg.contains("device_id") && msg.contains(DEVICE_BOUND),
        "{msg}"
    );
    let (code, _) = rejected(w.token(DEVICE_BOUND, device("a b")).await);
    assert_eq!(code, ErrorCode::BadRequest);

    let token = w.token(DEVICE_BOUND, device("device-A")).await.unwrap();
    assert_eq!(
        w.send(DEVICE_BOUND, &token, "192.0.2.1", "device-A").await,
        None
    );
    // Any IP: only the device is bound.
    assert_eq!(
        w.send(DEVICE_BOUND, &token, "198.51.100.7", "device-A")
            .await,
        None
    );
    assert_eq!(
        w.send(DEVICE_BOUND, &token, "192.0.2.1", "device-B").await,
        Some(ErrorCode::WrongPlugin)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_bound_tokens_serve_only_their_ip() {
    let w = World::start().await;

    let (code, msg) = rejected(w.token(IP_BOUND, Binding::default()).await);
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(msg.contains("user_ip") && msg.contains(IP_BOUND), "{msg}");
    let (code, _) = rejected(w.token(IP_BOUND, ip("not-an-ip")).await);
    assert_eq!(code, ErrorCode::BadRequest);

    let token = w.token(IP_BOUND, ip("2001:db8::1")).await.unwrap();
    // The same address spelled differently still matches; any device does.
    assert_eq!(
        w.send(IP_BOUND, &token, "2001:db8:0::1", "device-A").await,
        None
    );
    assert_eq!(
        w.send(IP_BOUND, &token, "2001:db8::1", "device-B").await,
        None
    );
    assert_eq!(
        w.send(IP_BOUND, &token, "2001:db8::2", "device-A").await,
        Some(ErrorCode::WrongPlugin)
    );
    assert_eq!(
        w.send(IP_BOUND, &token, "192.0.2.1", "device-A").await,
        Some(ErrorCode::WrongPlugin)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_routes_serve_any_device_and_ip() {
    let w = World::start().await;
    // A device given for an unbound plugin is ignored: the token is not bound to it.
    for binding in [Binding::default(), device("device-A")] {
        let token = w.token(UNBOUND, binding).await.unwrap();
        assert_eq!(w.send(UNBOUND, &token, "192.0.2.1", "device-A").await, None);
        assert_eq!(
            w.send(UNBOUND, &token, "2001:db8::9", "device-B").await,
            None
        );
    }
    // Same for the device-bound plugin's IP: only the device is carried.
    let token = w
        .token(
            DEVICE_BOUND,
            Binding {
                device_id: Some("device-A".into()),
                user_ip: Some("192.0.2.1".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        w.send(DEVICE_BOUND, &token, "203.0.113.5", "device-A")
            .await,
        None
    );
}

/// The idempotency replay never hands a token bound to device A to a request for device B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_are_scoped_by_binding() {
    let w = World::start().await;
    let key = Some("retry-1");
    let a = w
        .token_with_key(DEVICE_BOUND, key, device("device-A"))
        .await
        .unwrap();
    let a_again = w
        .token_with_key(DEVICE_BOUND, key, device("device-A"))
        .await
        .unwrap();
    assert_eq!(
        a, a_again,
        "a retry for the same device gets the same token"
    );
    let b = w
        .token_with_key(DEVICE_BOUND, key, device("device-B"))
        .await
        .unwrap();
    assert_ne!(a, b);
    assert_eq!(
        w.send(DEVICE_BOUND, &b, "192.0.2.1", "device-B").await,
        None
    );
    assert_eq!(
        w.send(DEVICE_BOUND, &b, "192.0.2.1", "device-A").await,
        Some(ErrorCode::WrongPlugin)
    );
    // The IPs of an IP-bound plugin compare canonically here too: a retry spelled
    // differently is the same binding.
    let x = w
        .token_with_key(IP_BOUND, key, ip("2001:db8::1"))
        .await
        .unwrap();
    let y = w
        .token_with_key(IP_BOUND, key, ip("2001:db8:0::1"))
        .await
        .unwrap();
    assert_eq!(x, y);
}
