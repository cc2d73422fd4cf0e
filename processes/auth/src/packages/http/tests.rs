use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

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
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            counted.fetch_add(1, Ordering::SeqCst);
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (port, hits)
}

fn client(allowed: &[&str]) -> Arc<HostHttp> {
    let mut app = app(allowed);
    app.scheme = "http".into();
    HostHttp::new(AllowList::for_app(&app).unwrap(), Duration::from_secs(5))
}

fn call(url: String) -> HttpCall {
    HttpCall {
        method: "GET".into(),
        url,
        headers: BTreeMap::new(),
        body: None,
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
