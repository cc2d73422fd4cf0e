use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::cache::CacheMode;
use super::*;
use tessera_schemas::packages::AppConfig;

fn app(allowed: &[&str]) -> AppConfig {
    AppConfig {
        app_id: "a".into(),
        domain: "127.0.0.1".into(),
        port: 8443,
        scheme: "https".into(),
        client_id: String::new(),
        secret_ref: None,
        package: "p".into(),
        package_version: None,
        enabled: true,
        allowed_hosts: allowed.iter().map(|s| s.to_string()).collect(),
        settings: Default::default(),
        timeout_ms: None,
        max_memory_pages: None,
    }
}

#[test]
fn entries_are_scheme_host_and_port() {
    let list = AllowList::for_app(&app(&[
        "idp.example.com",
        "http://*.example.org:8080",
        "https://10.0.0.7",
        "https://[::1]:9443",
    ]))
    .unwrap();
    // A bare host: the app's own scheme and port, no other.
    assert!(list.allows("https", "idp.example.com", 8443));
    assert!(list.allows("https", "IDP.example.com", 8443));
    assert!(!list.allows("https", "idp.example.com", 6379));
    assert!(!list.allows("http", "idp.example.com", 8443));
    // Globs on names.
    assert!(list.allows("http", "a.b.example.org", 8080));
    assert!(!list.allows("http", "example.org", 8080));
    assert!(!list.allows("http", "a.example.org", 80));
    // IP literals: exactly, with the scheme's default port.
    assert!(list.allows("https", "10.0.0.7", 443));
    assert!(!list.allows("https", "10.0.0.8", 443));
    assert!(list.allows("https", "[::1]", 9443));
}

#[test]
fn a_glob_never_matches_an_ip_literal() {
    let list = AllowList::for_app(&app(&["*"])).unwrap();
    assert!(list.allows("https", "anything.example", 8443));
    assert!(!list.allows("https", "127.0.0.1", 8443));
    assert!(!list.allows("https", "[::1]", 8443));
}

#[test]
fn malformed_entries_are_refused() {
    for bad in [
        "ftp://h",
        "https://",
        "https://h:notaport",
        "h/path",
        "user@h",
        "[::1",
    ] {
        assert!(AllowList::for_app(&app(&[bad])).is_err(), "{bad}");
    }
}

#[test]
fn only_public_addresses_count_as_public() {
    for private in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "::",
    ] {
        assert!(!is_public(private.parse().unwrap()), "{private}");
    }
    for public in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
        assert!(is_public(public.parse().unwrap()), "{public}");
    }
}

/// A one-response-per-connection HTTP server on 127.0.0.1 answering `response`, counting
/// the requests it got.
fn serve(response: &'static str) -> (u16, Arc<AtomicUsize>) {
    serve_in_turn(vec![response])
}

/// Like [`serve`], with the responses in turn, the last one repeated.
fn serve_in_turn(responses: Vec<&'static str>) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let n = counted.fetch_add(1, Ordering::SeqCst);
            let response = responses[n.min(responses.len() - 1)];
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (port, hits)
}

fn client(allowed: &[&str]) -> Arc<HostHttp> {
    client_for(allowed, Addresses::PublicOnly)
}

fn client_for(allowed: &[&str], addresses: Addresses) -> Arc<HostHttp> {
    let mut app = app(allowed);
    app.scheme = "http".into();
    HostHttp::new(
        AllowList::for_app(&app).unwrap(),
        Duration::from_secs(5),
        addresses,
    )
}

fn call(url: String) -> HttpCall {
    HttpCall {
        method: "GET".into(),
        url,
        headers: BTreeMap::new(),
        body: None,
        cache: None,
    }
}

#[test]
fn a_redirect_is_handed_to_the_package_not_followed() {
    let (target, target_hits) = serve("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nin");
    let location: &'static str = Box::leak(
        format!("HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{target}/\r\ncontent-length: 0\r\n\r\n")
            .into_boxed_str(),
    );
    let (port, _) = serve(location);
    let http = client(&[&format!("http://127.0.0.1:{port}")]);
    let result = http.request(&call(format!("http://127.0.0.1:{port}/login")));
    assert_eq!(result.status, 302, "{result:?}");
    assert_eq!(
        target_hits.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
    // And the package's own next request to the target is checked like any other.
    let next = http.request(&call(format!("http://127.0.0.1:{target}/")));
    assert!(next.error.unwrap().contains("host not allowed"));
    assert_eq!(target_hits.load(Ordering::SeqCst), 0);
}

#[test]
fn another_port_of_an_allowed_host_is_refused() {
    let (allowed, _) = serve("HTTP/1.1 204 No Content\r\n\r\n");
    let (other, other_hits) = serve("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    let http = client(&[&format!("http://127.0.0.1:{allowed}")]);
    assert_eq!(
        http.request(&call(format!("http://127.0.0.1:{allowed}/")))
            .status,
        204
    );
    let refused = http.request(&call(format!("http://127.0.0.1:{other}/")));
    assert!(refused.error.unwrap().contains("host not allowed"));
    assert_eq!(other_hits.load(Ordering::SeqCst), 0);
}

#[test]
fn a_name_that_resolves_to_loopback_is_refused_unless_its_ip_is_listed() {
    let (port, hits) = serve("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    let by_name = client(&[&format!("http://localhost:{port}")]);
    let refused = by_name.request(&call(format!("http://localhost:{port}/")));
    let error = refused.error.unwrap();
    assert!(error.contains("host not allowed"), "{error}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[test]
fn an_oversized_response_is_an_error() {
    let big: &'static str = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{}",
            MAX_RESPONSE_BYTES + 1,
            "x".repeat(MAX_RESPONSE_BYTES as usize + 1)
        )
        .into_boxed_str(),
    );
    let (port, _) = serve(big);
    let http = client(&[&format!("http://127.0.0.1:{port}")]);
    let result = http.request(&call(format!("http://127.0.0.1:{port}/")));
    assert!(result.error.unwrap().contains("limit"));
}

#[test]
fn a_private_address_is_reached_only_when_the_client_allows_it() {
    let (port, hits) = serve("HTTP/1.1 204 No Content\r\n\r\n");
    let inside = client_for(
        &[&format!("http://localhost:{port}")],
        Addresses::AllowPrivate,
    );
    let result = inside.request(&call(format!("http://localhost:{port}/")));
    assert_eq!(result.status, 204, "{result:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

const JWKS_60S: &str =
    "HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 2\r\n\r\nk1";

#[test]
fn a_cached_get_is_answered_without_a_second_request() {
    let (port, hits) = serve(JWKS_60S);
    let http = client(&[&format!("http://127.0.0.1:{port}")]);
    let url = format!("http://127.0.0.1:{port}/jwks");
    for _ in 0..3 {
        let r = http.request(&HttpCall::cached_get(&url, CacheMode::Use));
        assert_eq!((r.status, r.body.as_str()), (200, "k1"), "{r:?}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Without the cache field nothing is cached.
    http.request(&call(url));
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[test]
fn a_request_with_credentials_is_never_cached() {
    let (port, hits) = serve(JWKS_60S);
    let http = client(&[&format!("http://127.0.0.1:{port}")]);
    let mut userinfo = HttpCall::cached_get(&format!("http://127.0.0.1:{port}/u"), CacheMode::Use);
    userinfo
        .headers
        .insert("Authorization".into(), "Bearer alice".into());
    http.request(&userinfo);
    userinfo
        .headers
        .insert("Authorization".into(), "Bearer bob".into());
    http.request(&userinfo);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "a user's answer was served to another"
    );
}

#[test]
fn the_last_answer_is_served_while_the_origin_fails() {
    let (port, hits) = serve_in_turn(vec![
        "HTTP/1.1 200 OK\r\ncache-control: no-cache\r\ncontent-length: 2\r\n\r\nk1",
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
    ]);
    let http = client(&[&format!("http://127.0.0.1:{port}")]);
    let url = format!("http://127.0.0.1:{port}/jwks");
    let first = http.request(&HttpCall::cached_get(&url, CacheMode::Use));
    assert_eq!(first.body, "k1");
    // no-cache: the next use asks the origin, which fails; the stored answer is served.
    let second = http.request(&HttpCall::cached_get(&url, CacheMode::Use));
    assert_eq!(
        (second.status, second.body.as_str()),
        (200, "k1"),
        "{second:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    // And the failing origin is not asked again at once.
    let third = http.request(&HttpCall::cached_get(&url, CacheMode::Refresh));
    assert_eq!(third.body, "k1");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}
