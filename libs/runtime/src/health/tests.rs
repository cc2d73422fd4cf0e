//! The health server against a real TCP listener on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::http::{Method, Request, parse_head};
use super::*;

/// Far above every limit a test sets: a connection still open after it was not closed.
const OUTER: Duration = Duration::from_secs(3);

async fn start(limits: Limits) -> (SocketAddr, Readiness, Shutdown, HealthServer) {
    let readiness = Readiness::default();
    let shutdown = Shutdown::new();
    let server = serve(
        "127.0.0.1:0".parse().unwrap(),
        limits,
        readiness.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    (server.local_addr, readiness, shutdown, server)
}

/// Sends `raw` and reads until the server closes (bounded by [`OUTER`]).
async fn exchange(addr: SocketAddr, raw: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(OUTER, s.read_to_end(&mut out))
        .await
        .expect("the server closes the connection after its answer")
        .unwrap();
    String::from_utf8(out).unwrap()
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let out = exchange(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")).await;
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

/// Whether the server closes `s` (EOF or reset) before [`OUTER`], without answering.
async fn closed_unanswered(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(OUTER, s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(n)) => panic!("answered: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(_) => false,
    }
}

#[tokio::test]
async fn live_ready_and_metrics() {
    let (addr, readiness, shutdown, server) = start(Limits::default()).await;
    assert_eq!(get(addr, "/healthz").await.0, 200);
    // Nothing registered yet: starting.
    assert_eq!(get(addr, "/readyz").await.0, 503);

    let worker = Shutdown::new();
    let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = up.clone();
    readiness.register("test/dep", &worker, move || {
        let ok = flag.load(std::sync::atomic::Ordering::SeqCst);
        async move { if ok { Ok(()) } else { Err("down".into()) } }
    });
    assert_eq!(get(addr, "/readyz").await, (200, "test/dep: ok\n".into()));
    up.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get(addr, "/readyz").await, (503, "test/dep: down\n".into()));
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    worker.cancel();
    assert_eq!(
        get(addr, "/readyz").await,
        (503, "test/dep: draining\n".into())
    );

    crate::metrics::record_request(&"keys".into(), "ok", Duration::from_millis(3));
    let (status, body) = get(addr, "/metrics?x=1").await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"tessera_requests_total{endpoint="keys",outcome="ok"} 1"#),
        "{body}"
    );
    assert!(
        body.contains("tessera_request_duration_seconds_bucket"),
        "{body}"
    );
    assert_eq!(get(addr, "/nope").await.0, 404);

    shutdown.cancel();
    server.join().await;
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let (addr, _, shutdown, _server) = start(Limits::default()).await;
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"] {
        let out = exchange(
            addr,
            &format!("{method} /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
        )
        .await;
        assert!(
            out.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{method}: {out}"
        );
        assert!(out.contains("\r\nAllow: GET, HEAD\r\n"), "{method}: {out}");
    }
    // Not HTTP at all: a 400, not silence.
    let out = exchange(addr, "hello there\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    shutdown.cancel();
}

#[tokio::test]
async fn head_gets_the_head_without_a_body() {
    let (addr, _, shutdown, _server) = start(Limits::default()).await;
    // Something to render on /metrics.
    crate::metrics::record_request(&"head-test".into(), "ok", Duration::from_millis(1));
    for path in ["/healthz", "/readyz", "/metrics", "/nope"] {
        let get = exchange(addr, &format!("GET {path} HTTP/1.1\r\n\r\n")).await;
        let head = exchange(addr, &format!("HEAD {path} HTTP/1.1\r\n\r\n")).await;
        let (get_head, get_body) = get.split_once("\r\n\r\n").unwrap();
        assert!(!get_body.is_empty(), "{path}: GET has a body");
        // Everything the server sent is the head: it ends at the blank line.
        assert!(head.ends_with("\r\n\r\n"), "{path}: {head:?}");
        assert_eq!(head.matches("\r\n\r\n").count(), 1, "{path}: {head:?}");
        let status = |s: &str| s.lines().next().unwrap().to_owned();
        assert_eq!(status(&head), status(get_head), "{path}");
        if path != "/metrics" {
            // The Content-Length a GET gets (the metrics text may grow in between).
            let len = format!("Content-Length: {}\r\n", get_body.len());
            assert!(head.contains(&len), "{path}: {head:?}");
        }
    }
    shutdown.cancel();
}

#[tokio::test]
async fn idle_and_trickling_connections_are_closed_within_the_read_timeout() {
    let limits = Limits {
        read_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let (addr, _, shutdown, _server) = start(limits).await;
    // Silent.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_unanswered(&mut idle).await,
        "an idle connection stayed open"
    );
    // Half a head, then silence: the bound is on the whole head, not each read.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /hea").await.unwrap();
    assert!(
        closed_unanswered(&mut slow).await,
        "a slow head stayed open"
    );
    // The server still answers.
    assert_eq!(get(addr, "/healthz").await.0, 200);
    shutdown.cancel();
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let limits = Limits {
        max_connections: 2,
        // Long: the two held connections keep their slots for the whole test.
        read_timeout: Duration::from_secs(30),
    };
    let (addr, _, shutdown, _server) = start(limits).await;
    let held_1 = TcpStream::connect(addr).await.unwrap();
    let mut held_2 = TcpStream::connect(addr).await.unwrap();
    // Accepted in order: the third finds both slots taken.
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_unanswered(&mut third).await,
        "a connection beyond the cap stayed open"
    );
    // The held ones are still served: one completes its request now.
    held_2
        .write_all(b"GET /healthz HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(OUTER, held_2.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    // Its slot is free again once the server has closed it: a new connection is served
    // (bounded: until then a new one is closed unanswered, and we try again).
    let deadline = tokio::time::Instant::now() + OUTER;
    loop {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").await.unwrap();
        let mut out = String::new();
        let _ = tokio::time::timeout(OUTER, s.read_to_string(&mut out)).await;
        if out.starts_with("HTTP/1.1 200 OK\r\n") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a freed slot was never reused"
        );
        tokio::task::yield_now().await;
    }
    drop(held_1);
    shutdown.cancel();
}

#[test]
fn request_lines() {
    let req = |m, p: &str| {
        Some(Request {
            method: m,
            path: p.to_owned(),
        })
    };
    assert_eq!(
        parse_head(b"GET /readyz?v=1 HTTP/1.1\r\n\r\n"),
        req(Method::Get, "/readyz")
    );
    assert_eq!(
        parse_head(b"HEAD /metrics HTTP/1.0\r\n\r\n"),
        req(Method::Head, "/metrics")
    );
    assert_eq!(
        parse_head(b"BREW /pot HTTP/1.1\r\n\r\n"),
        req(Method::Other, "/pot")
    );
    for bad in [
        &b"GET\r\n\r\n"[..],
        b"GET /x\r\n\r\n",
        b"GET /x HTTP/2\r\n\r\n",
        b"GET x HTTP/1.1\r\n\r\n",
        b"G3T /x HTTP/1.1\r\n\r\n",
        b"GET  /x HTTP/1.1\r\n\r\n",
        b"\xff /x HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(parse_head(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn limits_from_the_environment() {
    let env = |pairs: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let limits = |pairs: &[(&str, &str)]| crate::config::read(&env(pairs), Limits::read);
    assert_eq!(limits(&[]).unwrap(), Limits::default());
    let l = limits(&[
        (HEALTH_MAX_CONNECTIONS.name, "8"),
        (HEALTH_READ_TIMEOUT.name, "250ms"),
    ])
    .unwrap();
    assert_eq!(l.max_connections, 8);
    assert_eq!(l.read_timeout, Duration::from_millis(250));
    for (k, v) in [
        (HEALTH_MAX_CONNECTIONS.name, "0"),
        (HEALTH_MAX_CONNECTIONS.name, "x"),
        (HEALTH_READ_TIMEOUT.name, "0"),
        (HEALTH_READ_TIMEOUT.name, "2m"),
    ] {
        assert_eq!(limits(&[(k, v)]).unwrap_err().keys(), [k]);
    }
}
