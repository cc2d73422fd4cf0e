//! Redis is part of the trust boundary (docs/security.md, "Someone who can reach Redis"):
//! the default user is off and each worker has a Redis user with only the keys and commands
//! it needs (`libs/bus-config/src/redis_acl.rs`). Against the real redis-server of the harness,
//! with the ACL it renders.

use tessera_bus_config::redis_acl::RedisUser;
use tessera_tests::Stack;

const PASSWORD: &str = "correct horse battery";

async fn conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", tessera_protocol::bus::redact(url)))
}

/// The error code redis-server answered with (`NOAUTH`, `NOPERM`, `WRONGPASS`), if any.
fn refused<T>(r: redis::RedisResult<T>) -> Option<String> {
    r.err().map(|e| e.code().unwrap_or("?").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_worker_reaches_only_its_own_keys_in_redis() {
    let stack = Stack::builder().gateways(1).start().await;
    let ann = stack.user("ann", PASSWORD).await;
    stack.route("weather", &["ps1"]).await;
    let _ps1 = stack.plugin_server("ps1").await;
    let token = stack
        .client()
        .await
        .request_token(&ann.account_token, "weather", None)
        .await
        .unwrap();
    let keys = tessera_ledger::keys::RedisKeys::new(stack.subjects().prefix());
    let record = keys.token(&token.token_id);
    let servers = stack.servers();

    // No credentials: nothing but authentication (the default user is off).
    let admin_url = servers.redis_url();
    let (_, host) = admin_url.rsplit_once('@').unwrap();
    let mut anonymous = conn(&format!("redis://{host}")).await;
    let r: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("GET")
        .arg(&record)
        .query_async(&mut anonymous)
        .await;
    assert_eq!(refused(r).as_deref(), Some("NOAUTH"));
    let r: redis::RedisResult<()> = redis::cmd("SET")
        .arg(&record)
        .arg("forged")
        .query_async(&mut anonymous)
        .await;
    assert_eq!(refused(r).as_deref(), Some("NOAUTH"));
    // A wrong password is refused at connect.
    let wrong = format!("redis://gateway:not-the-password@{host}");
    let r = redis::Client::open(wrong.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await;
    assert!(r.is_err(), "a wrong password connects");

    // The gateway: reads token records, claims nonces, and nothing else.
    let mut gateway = conn(&servers.redis_url_as(RedisUser::Gateway)).await;
    let got: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&record)
        .query_async(&mut gateway)
        .await
        .expect("the gateway reads token records");
    assert!(got.is_some());
    let nonce = format!("{}:nonce:app1:n1", stack.subjects().prefix());
    let _: Option<String> = redis::cmd("SET")
        .arg(&nonce)
        .arg(1)
        .arg("NX")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut gateway)
        .await
        .expect("the gateway claims nonces");
    for (what, cmd) in [
        (
            "write a token record",
            redis::cmd("SET").arg(&record).arg("x").clone(),
        ),
        (
            "delete a token record",
            redis::cmd("DEL").arg(&record).clone(),
        ),
        (
            "read an idempotent reply",
            redis::cmd("GET")
                .arg(keys.idempotency("a", "p", "", "k"))
                .clone(),
        ),
        (
            "touch the pending set",
            redis::cmd("ZADD")
                .arg(keys.pending(tessera_ledger::keys::Shard(0)))
                .arg(0)
                .arg("x")
                .clone(),
        ),
        ("list keys", redis::cmd("KEYS").arg("*").clone()),
        ("flush", redis::cmd("FLUSHALL").clone()),
    ] {
        let r: redis::RedisResult<redis::Value> = cmd.query_async(&mut gateway).await;
        assert_eq!(
            refused(r).as_deref(),
            Some("NOPERM"),
            "the gateway may not {what}"
        );
    }
    // The record is untouched and the token still works.
    let still: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&record)
        .query_async(&mut conn(&admin_url).await)
        .await
        .unwrap();
    assert_eq!(still, got);

    // The broker: its token keys, not the gateway's nonces, not other commands.
    let mut broker = conn(&servers.redis_url_as(RedisUser::Broker)).await;
    for (what, cmd) in [
        (
            "claim a nonce",
            redis::cmd("SET").arg(&nonce).arg(1).clone(),
        ),
        (
            "read a key outside its own",
            redis::cmd("GET").arg("other:key").clone(),
        ),
        (
            "write a key of its prefix outside the shard layout",
            redis::cmd("SET")
                .arg(format!("{}:{{abc}}:token:x", stack.subjects().prefix()))
                .arg(1)
                .clone(),
        ),
        ("list keys", redis::cmd("KEYS").arg("*").clone()),
        ("flush", redis::cmd("FLUSHALL").clone()),
    ] {
        let r: redis::RedisResult<redis::Value> = cmd.query_async(&mut broker).await;
        assert_eq!(
            refused(r).as_deref(),
            Some("NOPERM"),
            "the broker may not {what}"
        );
    }
}
