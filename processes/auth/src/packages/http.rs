//! The packages' one way out: `tessera_http_request`, a host function of our own.
//!
//! Extism's built-in host HTTP checked only the first URL's host name (any port, then up to
//! ten redirects to anywhere: an allowed host answering `302 Location:
//! http://127.0.0.1:<redis port>/` reached Redis) and built a new connection for every call.
//! This one, per app:
//!
//! - allows a request only to an entry of the app's allow-list, matched on scheme, host and
//!   port ([`AllowList`]);
//! - never follows a redirect: the package gets the 3xx as it is, and any next request it
//!   makes is checked again;
//! - checks where the name resolves: a host name must resolve to public addresses only
//!   (no loopback, private, link-local, unique-local, CGNAT, multicast or unspecified
//!   address), so DNS cannot point an allowed name inside the network; an IP literal is
//!   reached only when an entry names exactly that IP;
//! - keeps one pooled keep-alive client (TLS with the platform's trust roots, aws-lc-rs),
//!   ignores proxy settings from the environment, and bounds the response size and time.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tessera_schemas::packages::AppConfig;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// The host function's name (namespace `extism:host/user`).
pub const HOST_FUNCTION: &str = "tessera_http_request";
/// Largest response body handed to a package.
pub const MAX_RESPONSE_BYTES: u64 = 1 << 20;
/// Headers a package may not set: the connection's target is the checked URL's.
const FORBIDDEN_HEADERS: [&str; 4] = ["host", "connection", "transfer-encoding", "upgrade"];

/// What a package asks for.
#[derive(Debug, Deserialize)]
pub struct HttpCall {
    #[serde(default = "get")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A text body (form or JSON), sent as is.
    #[serde(default)]
    pub body: Option<String>,
}

fn get() -> String {
    "GET".into()
}

/// What a package gets: the response whatever its status, or an error that says why there
/// is none (`host not allowed: ...` for a request the allow-list refused).
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct HttpResult {
    pub status: u16,
    /// The body as text (UTF-8; invalid sequences replaced).
    pub body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl HttpResult {
    fn error(text: impl Into<String>) -> HttpResult {
        HttpResult {
            error: Some(text.into()),
            ..HttpResult::default()
        }
    }
}

/// One allow-list entry: a scheme, a host (an IP literal, or a name glob) and a port.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    scheme: String,
    host: Host,
    port: u16,
}

#[derive(Debug, Clone, PartialEq)]
enum Host {
    Ip(IpAddr),
    /// Lower case; `*` matches any run of characters, `?` one.
    Name(String),
}

/// An app's allow-list. An entry is `scheme://host:port` (the port defaults to the scheme's)
/// or a bare `host`, which means the app's own scheme and port. Host globs as before
/// (`*.example.com`); an IP literal matches only itself, never a glob.
#[derive(Debug, Clone)]
pub struct AllowList {
    entries: Vec<Entry>,
}

impl AllowList {
    pub fn for_app(app: &AppConfig) -> Result<AllowList, String> {
        let entries = app
            .allowed_hosts
            .iter()
            .map(|e| parse_entry(e, &app.scheme, app.port))
            .collect::<Result<_, _>>()?;
        Ok(AllowList { entries })
    }

    /// Whether a request to `scheme://host:port` is allowed.
    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        self.entries.iter().any(|e| {
            e.scheme == scheme
                && e.port == port
                && match (&e.host, ip) {
                    (Host::Ip(allowed), Some(ip)) => *allowed == ip,
                    (Host::Name(glob), None) => glob_match(glob, &host.to_ascii_lowercase()),
                    _ => false,
                }
        })
    }
}

fn parse_entry(entry: &str, app_scheme: &str, app_port: u16) -> Result<Entry, String> {
    let bad = |why: &str| format!("allowed_hosts entry {entry:?}: {why}");
    let (scheme, rest, default_port) = match entry.split_once("://") {
        Some((scheme, rest)) => {
            let port = match scheme {
                "http" => 80,
                "https" => 443,
                _ => return Err(bad("the scheme must be http or https")),
            };
            (scheme.to_owned(), rest, Some(port))
        }
        None => (app_scheme.to_owned(), entry, None),
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains(['/', '@', '?', '#']) {
        return Err(bad("give scheme://host:port or a host name"));
    }
    // `[v6]:port`, `host:port`, or a bare host (or bare v6 address).
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
        let port = after.strip_prefix(':').map(str::parse::<u16>).transpose();
        (addr.to_owned(), port.map_err(|_| bad("bad port"))?)
    } else if rest.matches(':').count() == 1 {
        let (h, p) = rest.split_once(':').expect("one colon");
        (
            h.to_owned(),
            Some(p.parse::<u16>().map_err(|_| bad("bad port"))?),
        )
    } else {
        (rest.to_owned(), None)
    };
    let port = match (port, default_port) {
        (Some(p), _) => p,
        (None, Some(d)) => d,
        // A bare host: the app's own port (its `base_url`).
        (None, None) => app_port,
    };
    let host = match host.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) if !host.is_empty() => Host::Name(host.to_ascii_lowercase()),
        Err(_) => return Err(bad("no host")),
    };
    Ok(Entry { scheme, host, port })
}

/// `*` matches any run of characters (dots included, as Extism's globs did), `?` one.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether an address is one a name on the public internet may resolve to.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                // Shared address space (RFC 6598) and "this network".
                || (a == 100 && (64..128).contains(&b))
                || a == 0)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local fc00::/7 and link-local fe80::/10.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Resolves as usual, then refuses a host name that resolves to any non-public address. An
/// IP literal passes: the allow-list already required an entry naming exactly it.
#[derive(Debug, Default)]
struct PublicOnly(DefaultResolver);

impl Resolver for PublicOnly {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = self.0.resolve(uri, config, timeout)?;
        let host = uri.host().unwrap_or_default();
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok();
        if !literal && addrs.iter().any(|a: &SocketAddr| !is_public(a.ip())) {
            return Err(ureq::Error::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("host not allowed: {host} resolves to a non-public address"),
            )));
        }
        Ok(addrs)
    }
}

/// One app's HTTP client: its allow-list and a pooled keep-alive agent.
pub struct HostHttp {
    allow: AllowList,
    agent: ureq::Agent,
}

impl HostHttp {
    pub fn new(allow: AllowList, timeout: Duration) -> Arc<HostHttp> {
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .unversioned_rustls_crypto_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .build();
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .max_redirects_will_error(false)
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(timeout))
            .tls_config(tls)
            .build();
        let agent = ureq::Agent::with_parts(config, DefaultConnector::new(), PublicOnly::default());
        Arc::new(HostHttp { allow, agent })
    }

    /// Runs one call; never panics, every failure is an [`HttpResult`] error.
    pub fn request(&self, call: &HttpCall) -> HttpResult {
        let uri: Uri = match call.url.parse() {
            Ok(u) => u,
            Err(e) => return HttpResult::error(format!("bad url {:?}: {e}", call.url)),
        };
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return HttpResult::error(format!("bad url {:?}: no scheme or host", call.url));
        };
        let port = uri.port_u16().unwrap_or(match scheme {
            "https" => 443,
            _ => 80,
        });
        if !matches!(scheme, "http" | "https") || !self.allow.allows(scheme, host, port) {
            return HttpResult::error(format!("host not allowed: {scheme}://{host}:{port}"));
        }
        let mut req = ureq::http::Request::builder()
            .method(call.method.as_str())
            .uri(uri.clone());
        for (name, value) in &call.headers {
            if !FORBIDDEN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                req = req.header(name, value);
            }
        }
        let sent = match &call.body {
            Some(body) => req
                .body(body.clone())
                .map_err(|e| e.to_string())
                .and_then(|r| self.agent.run(r).map_err(|e| e.to_string())),
            None => req
                .body(())
                .map_err(|e| e.to_string())
                .and_then(|r| self.agent.run(r).map_err(|e| e.to_string())),
        };
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) if e.contains("host not allowed") => return HttpResult::error(e),
            Err(e) => return HttpResult::error(format!("http request failed: {e}")),
        };
        let status = resp.status().as_u16();
        match resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
        {
            Ok(bytes) => HttpResult {
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
                error: None,
            },
            Err(e) => HttpResult::error(format!(
                "http response unreadable (limit {MAX_RESPONSE_BYTES} bytes): {e}"
            )),
        }
    }
}

#[cfg(test)]
mod tests;
