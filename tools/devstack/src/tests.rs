//! Against the real binaries, found the way `tessera-dev up` finds them.

use std::time::Instant;

use tessera_bus_config::{Credentials, Subjects};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::*;

/// Bound for every network wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

fn nats_options(dir: &Path) -> NatsOptions {
    let config = ServerConfig {
        host: "127.0.0.1".into(),
        port: None,
        store_dir: dir.join("js"),
        server_name: "devstack-test".into(),
        subjects: Subjects::default(),
        credentials: Credentials::generate(),
    };
    NatsOptions {
        binary: Some(find_nats_server().expect("nats-server")),
        ..NatsOptions::new(config, dir)
    }
}

/// Sends `request` (if any) and returns the first line of the reply.
async fn first_line(port: u16, request: &str) -> String {
    let talk = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).await?;
        io::Result::Ok(line)
    };
    tokio::time::timeout(WAIT, talk)
        .await
        .expect("reply in time")
        .expect("talk to server")
}

#[tokio::test]
async fn nats_serves_and_restarts_on_the_same_port() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut nats = LocalNats::start(nats_options(dir.path())).await.unwrap();
    let port = nats.port();
    assert!(first_line(port, "").await.starts_with("INFO "));
    let mode = std::fs::metadata(dir.path().join("nats.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the config holds passwords");
    assert!(
        nats.url_for(Role::Client)
            .ends_with(&format!("@127.0.0.1:{port}"))
    );

    let old_pid = nats.pid();
    nats.restart().await.unwrap();
    assert_eq!(nats.port(), port);
    assert_ne!(nats.pid(), old_pid);
    assert!(first_line(port, "").await.starts_with("INFO "));

    // After a crash, too.
    nats.kill().await;
    assert_eq!(nats.pid(), None);
    nats.restart().await.unwrap();
    assert!(first_line(port, "").await.starts_with("INFO "));
    nats.stop().await;
}

#[tokio::test]
async fn nats_monitoring_is_off_unless_asked_and_then_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let mut plain = LocalNats::start(nats_options(dir.path())).await.unwrap();
    assert_eq!(plain.monitor_url(), None);
    plain.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let mut nats = LocalNats::start(NatsOptions {
        monitor: true,
        ..nats_options(dir.path())
    })
    .await
    .unwrap();
    let url = nats.monitor_url().expect("a monitor URL");
    let port: u16 = url
        .strip_prefix("http://127.0.0.1:")
        .expect("on the listen host")
        .parse()
        .unwrap();
    assert_ne!(port, nats.port());
    let status = first_line(port, "GET /varz HTTP/1.0\r\n\r\n").await;
    assert!(status.contains(" 200 "), "{status}");
    nats.stop().await;
}

#[tokio::test]
async fn nats_startup_failure_reports_the_log_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut opts = nats_options(dir.path());
    opts.config.port = Some(taken.local_addr().unwrap().port());
    opts.ready_timeout = Duration::from_secs(120);
    let started = Instant::now();
    let err = LocalNats::start(opts).await.err().expect("port is taken");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "waited for the timeout"
    );
    let DevstackError::Startup { log_tail, .. } = &err else {
        panic!("{err}");
    };
    assert!(
        log_tail.iter().any(|l| l.contains("Error listening")),
        "{err}"
    );
}

#[tokio::test]
async fn redis_answers_ping_and_restarts_on_the_same_port() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = RedisOptions::new(dir.path());
    opts.binary = Some(find_redis_server().expect("redis-server"));
    let mut redis = LocalRedis::start(opts).await.unwrap();
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/"));
    assert_eq!(first_line(port, "PING\r\n").await, "+PONG\r\n");

    redis.restart().await.unwrap();
    assert_eq!(redis.port(), port);
    assert_eq!(first_line(port, "PING\r\n").await, "+PONG\r\n");
    redis.stop().await;
    assert_eq!(redis.pid(), None);
}

#[tokio::test]
async fn redis_requires_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = RedisOptions::new(dir.path());
    opts.password = Some("p w\"\n".into());
    let redis = LocalRedis::start(opts).await.unwrap();
    let port = redis.port();
    assert_eq!(
        redis.url(),
        format!("redis://:p%20w%22%0A@127.0.0.1:{port}/")
    );
    assert!(first_line(port, "PING\r\n").await.starts_with("-NOAUTH"));
    let auth = "*2\r\n$4\r\nAUTH\r\n$5\r\np w\"\n\r\n";
    assert_eq!(first_line(port, auth).await, "+OK\r\n");
}

#[tokio::test]
async fn a_missing_binary_is_reported_before_spawning() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = nats_options(dir.path());
    opts.binary = Some("/nonexistent".into());
    let err = LocalNats::start(opts).await.err().expect("no binary");
    assert!(matches!(err, DevstackError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("make setup"));

    let mut opts = RedisOptions::new(dir.path());
    opts.binary = Some("/nonexistent".into());
    let err = LocalRedis::start(opts).await.err().expect("no binary");
    assert!(matches!(err, DevstackError::NotFound { .. }), "{err}");
}
