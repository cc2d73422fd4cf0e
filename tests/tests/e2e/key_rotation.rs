//! Broker key rotation end to end, with short lifetimes so it takes seconds: a new
//! key is published before it signs; while replicas with the old and the new key run side by
//! side both kinds of token are served; the old key stays published until every token it
//! signed has expired (token TTL + leeway), then lapses and is removed, and from then on a
//! token signed by it is refused with `unauthenticated [kid]` by the plugin server (which
//! had the key cached), the gateway and introspection, and counted.

use std::time::Duration;

use async_nats::jetstream;
use tessera_protocol::now_unix;
use tessera_protocol::signing::PublishedKey;
use tessera_schemas::ErrorCode;
use tessera_schemas::claims::{PLUGIN_TOKEN_ISSUER, PluginClaims};
use tessera_sdk::Client;
use tessera_sdk::data::{DataCall, build_packet, new_nonce, now_ms};
use tessera_tests::metrics::tokens_rejected;
use tessera_tests::{Backend, Role, Stack, assert_eventually};

const TTL: Duration = Duration::from_secs(3);
const LEEWAY: Duration = Duration::from_secs(1);
const RENEW: Duration = Duration::from_millis(500);

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn published(client: &Client) -> Vec<PublishedKey> {
    client.published_keys().await.unwrap()
}

async fn find(client: &Client, kid: &str) -> Option<PublishedKey> {
    published(client)
        .await
        .into_iter()
        .find(|k| k.kid() == Some(kid))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_out_key_stays_until_its_tokens_expired_then_is_refused_everywhere() {
    tessera_tests::init_logging();
    let mut stack = Stack::builder()
        .backend(Backend::Local)
        .gateways(1)
        .token_ttl(TTL)
        .clock_leeway(LEEWAY)
        .key_renew(RENEW)
        .start()
        .await;
    let ann = stack.user("ann", "correct horse battery").await;
    stack.route("weather", &["ps1"]).await;
    let ps1 = stack.plugin_server("ps1").await;
    let admin = stack.admin().await;
    let app = admin.add_client_app("demo-app").await.unwrap();
    admin
        .set_data_route("weather", "now", "ps1", "echo")
        .await
        .unwrap();
    let client = stack.client().await;
    let packet = |token: &str| {
        let call = DataCall::new("weather", token, "now", "192.0.2.10", "device-42");
        build_packet(&app, &call, now_ms(), &new_nonce())
    };

    // Before: one key; its tokens are served (ps1 and the gateway now hold the key).
    let old = stack.broker_key().clone();
    let t1 = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    assert_eq!(kid_of(&t1.token), old.kid());
    client.echo("ps1", &t1.token, b"x".to_vec()).await.unwrap();
    client
        .send_packet("weather", &packet(&t1.token))
        .await
        .unwrap();

    // Rotation: a replica with the new key starts. It published the key before serving.
    let new = stack.rotate_broker_key();
    stack.start_broker().await;
    assert!(
        find(&client, new.kid()).await.is_some(),
        "new key published before use"
    );
    assert!(
        find(&client, old.kid()).await.is_some(),
        "old key still published"
    );
    // Side by side: whichever replica answers, the token is served.
    let mut kids = std::collections::HashSet::new();
    // The latest expiry of a token the old key signed.
    let mut last_old_exp = t1.expires_at;
    for _ in 0..6 {
        let t = client
            .request_token(&ann.account_token, "weather", None)
            .await
            .unwrap();
        if kid_of(&t.token) == old.kid() {
            last_old_exp = last_old_exp.max(t.expires_at);
        }
        kids.insert(kid_of(&t.token));
        client.echo("ps1", &t.token, b"x".to_vec()).await.unwrap();
    }
    assert!(kids.is_subset(&[old.kid().to_owned(), new.kid().to_owned()].into()));

    // The old replica stops: only the new key signs from now on.
    stack.stop_broker(0).await;
    let t2 = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    assert_eq!(kid_of(&t2.token), new.kid());
    client.echo("ps1", &t2.token, b"x".to_vec()).await.unwrap();
    // The old key's publication covers every token it signed, leeway included.
    let old_pub = find(&client, old.kid())
        .await
        .expect("old key still published");
    assert!(
        old_pub.expires_at.unwrap() >= last_old_exp + LEEWAY.as_secs(),
        "old key published until {:?}, its last token expires at {last_old_exp}",
        old_pub.expires_at
    );

    // It lapses (renewed by nobody) and leaves the JWKS, never before its tokens expired.
    assert_eventually!(
        timeout = Duration::from_secs(20),
        find(&client, old.kid()).await.is_none(),
        "old key removed from the JWKS"
    );
    assert!(now_unix() >= last_old_exp + LEEWAY.as_secs());
    // ... and from the bucket (any replica removes lapsed records).
    let kv = jetstream::new(stack.nats(Role::Broker).await)
        .get_key_value(stack.subjects().keys_bucket())
        .await
        .unwrap();
    assert_eventually!(
        timeout = Duration::from_secs(10),
        kv.get(old.kid()).await.unwrap().is_none(),
        "old key deleted from the keys bucket"
    );

    // A token minted with the retired key (a stolen old key file), fresh and well formed.
    let now = now_unix();
    let forged = old
        .sign(&PluginClaims {
            iss: PLUGIN_TOKEN_ISSUER.into(),
            sub: ann.account_id.clone(),
            plugin_id: "weather".into(),
            aud: vec!["ps1".into()],
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            exp: now + 60,
            device_id: None,
            user_ip: None,
        })
        .unwrap();
    let before = tokens_rejected("plugin_server", "kid");
    let err = client
        .echo("ps1", &forged, b"x".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthenticated, "{err}");
    assert!(err.to_string().contains("[kid]"), "{err}");
    assert!(tokens_rejected("plugin_server", "kid") > before);

    let before = tokens_rejected("gateway", "kid");
    let err = client
        .send_packet("weather", &packet(&forged))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthenticated, "{err}");
    assert!(err.to_string().contains("[kid]"), "{err}");
    assert!(tokens_rejected("gateway", "kid") > before);

    let before = tokens_rejected("broker", "kid");
    assert!(!admin.introspect(&forged).await.unwrap().active);
    assert!(tokens_rejected("broker", "kid") > before);

    // The new key goes on working.
    let t3 = client
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    client.echo("ps1", &t3.token, b"x".to_vec()).await.unwrap();
    client
        .send_packet("weather", &packet(&t3.token))
        .await
        .unwrap();
    drop(ps1);
}
