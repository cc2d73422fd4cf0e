//! Idempotency keys across accounts: two third-party accounts whose ids, plugins and keys
//! joined by newlines gave the same bytes (the subject a third party returns may hold a
//! newline) each get their own token. Before the length-prefixed encoding
//! (`tessera_ledger::keys::idempotency_input`) the second was handed the first's token:
//! another account's, for another plugin. Real nats-server, Redis, Extism and a real HTTP
//! third party (`StubIdp`), the shipped `http-password` package.

use std::collections::BTreeMap;

use tessera_devstack::idp::StubIdp;
use tessera_tests::packages::{dist_wasm, local_app};
use tessera_tests::{Backend, Stack};

const SECRET: &str = "s3cret-of-tessera";

fn credentials(username: &str, password: &str) -> BTreeMap<String, String> {
    [("username", username), ("password", password)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_whose_fields_share_bytes_get_their_own_tokens() {
    tessera_tests::init_logging();
    let stack = Stack::builder().backend(Backend::Local).start().await;
    let idp = StubIdp::start("tessera", SECRET).await.unwrap();
    // Subjects are the third party's to choose; this one holds a newline.
    idp.add_user("first", "first-password", "u\nweather", "First");
    idp.add_user("second", "second-password", "u", "Second");
    stack
        .upload_package(&dist_wasm("http-password"), "http-password", "1.0.0")
        .await
        .expect("upload");
    stack
        .put_app(local_app("acme", "http-password", idp.port()), Some(SECRET))
        .await;
    stack.route("weather", &["ps1"]).await;
    stack.route("news", &["ps1"]).await;
    let _ps1 = stack.plugin_server("ps1").await;
    let client = stack.client().await;

    let first = client
        .login_app("acme", credentials("first", "first-password"))
        .await
        .expect("login");
    let second = client
        .login_app("acme", credentials("second", "second-password"))
        .await
        .expect("login");
    assert_eq!(first.account_id, "acme:u\nweather");
    assert_eq!(second.account_id, "acme:u");

    // Joined by newlines both are "acme:u\nweather\nnews\nK".
    let news = client
        .request_token(&first.account_token, "news", Some("K"))
        .await
        .unwrap();
    assert_eq!(news.account_id, first.account_id);
    let weather = client
        .request_token(&second.account_token, "weather", Some("news\nK"))
        .await
        .unwrap();
    assert_ne!(
        weather.token_id, news.token_id,
        "handed another account's token"
    );
    assert_eq!(weather.account_id, second.account_id);
    assert_eq!(weather.plugin_id, "weather");

    // Each retry still gets its own caller's token back.
    let again = client
        .request_token(&second.account_token, "weather", Some("news\nK"))
        .await
        .unwrap();
    assert_eq!(again.token_id, weather.token_id);
    let again = client
        .request_token(&first.account_token, "news", Some("K"))
        .await
        .unwrap();
    assert_eq!(again.token_id, news.token_id);
}

/// Whoever reads Redis (a leaked admin password, a backup, a replica's disk) finds no
/// bearer token in it, not even for the idempotency window: a retry's reply is signed again
/// from the token's record (the same bytes: Ed25519 is deterministic), and the key holds the
/// token id alone. Before, the whole reply, token included, sat there for 5 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_no_bearer_token_yet_a_retry_gets_the_same_one() {
    let stack = Stack::builder().backend(Backend::Local).start().await;
    let ann = stack.user("ann", "correct horse battery").await;
    stack.route("weather", &["ps1"]).await;
    let _ps1 = stack.plugin_server("ps1").await;
    let client = stack.client().await;
    let first = client
        .request_token(&ann.account_token, "weather", Some("k1"))
        .await
        .unwrap();
    let again = client
        .request_token(&ann.account_token, "weather", Some("k1"))
        .await
        .unwrap();
    assert_eq!(
        again, first,
        "the retry's reply is the first one, byte for byte"
    );

    let redis = redis::Client::open(stack.servers().redis_url()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    // The signature is the secret half of a JWT: neither it nor the whole token is there.
    let signature = first.token.rsplit('.').next().unwrap().to_owned();
    let mut strings = 0;
    for key in &keys {
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![
                redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
            ],
            "zset" => redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap(),
            other => panic!("{key}: a {other} the ledger does not write"),
        };
        strings += usize::from(kind == "string");
        for v in values {
            let v = String::from_utf8_lossy(&v);
            assert!(!v.contains(&signature), "{key} holds the token's signature");
        }
    }
    // The record and the remembered id, at least: the scan saw the ledger.
    assert!(strings >= 2, "{keys:?}");
}
