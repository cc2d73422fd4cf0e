//! The auth node's one outbound HTTP client: the packages' host function
//! `tessera_http_request`, and the fetch of external issuers' keys (`verify`).
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
//!   ignores proxy settings from the environment, and bounds the response size and time;
//! - answers GETs from a small cache when the request asks for it ([`cache`]).
//!
//! An external issuer's client is the same, with an allow-list of its one key URL; the
//! operator may let that one resolve to private addresses (an SSO inside the network).

mod allow;
pub mod cache;

pub use allow::AllowList;
use allow::is_public;
use cache::{CacheMode, Fetched, Plan, ResponseCache};

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
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
    /// Answer from the cache (`use`) or refetch now (`refresh`); absent: no cache.
    #[serde(default)]
    pub cache: Option<CacheMode>,
}

impl HttpCall {
    /// A GET of `url`, through the cache.
    pub fn cached_get(url: &str, mode: CacheMode) -> HttpCall {
        HttpCall {
            method: get(),
            url: url.to_owned(),
            headers: BTreeMap::new(),
            body: None,
            cache: Some(mode),
        }
    }

    /// The cache mode, if this call may use the cache at all: a GET without a body or
    /// credentials (so no user's answer is ever served to another).
    fn cache_mode(&self) -> Option<CacheMode> {
        let personal = self
            .headers
            .keys()
            .any(|h| h.eq_ignore_ascii_case("authorization") || h.eq_ignore_ascii_case("cookie"));
        self.cache
            .filter(|_| self.method.eq_ignore_ascii_case("GET") && self.body.is_none() && !personal)
    }
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
    pub fn error(text: impl Into<String>) -> HttpResult {
        HttpResult {
            error: Some(text.into()),
            ..HttpResult::default()
        }
    }
}

/// Resolves as usual, then refuses a host name that resolves to any non-public address
/// (unless `private_ok`, an operator's explicit choice for an issuer inside the network). An
/// IP literal passes: the allow-list already required an entry naming exactly it.
#[derive(Debug, Default)]
struct CheckedResolver {
    inner: DefaultResolver,
    private_ok: bool,
}

impl Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = self.inner.resolve(uri, config, timeout)?;
        let host = uri.host().unwrap_or_default();
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok();
        if !literal && !self.private_ok && addrs.iter().any(|a: &SocketAddr| !is_public(a.ip())) {
            return Err(ureq::Error::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("host not allowed: {host} resolves to a non-public address"),
            )));
        }
        Ok(addrs)
    }
}

/// Which addresses a host name may resolve to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addresses {
    /// Public ones only (every package request).
    PublicOnly,
    /// Any (an external issuer the operator marked as inside the network).
    AllowPrivate,
}

/// One client: its allow-list, a pooled keep-alive agent and its GET cache.
pub struct HostHttp {
    allow: AllowList,
    agent: ureq::Agent,
    cache: ResponseCache,
}

impl HostHttp {
    pub fn new(allow: AllowList, timeout: Duration, addresses: Addresses) -> Arc<HostHttp> {
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
        let resolver = CheckedResolver {
            inner: DefaultResolver::default(),
            private_ok: addresses == Addresses::AllowPrivate,
        };
        let agent = ureq::Agent::with_parts(config, DefaultConnector::new(), resolver);
        Arc::new(HostHttp {
            allow,
            agent,
            cache: ResponseCache::default(),
        })
    }

    /// Runs one call; never panics, every failure is an [`HttpResult`] error.
    pub fn request(&self, call: &HttpCall) -> HttpResult {
        let Some(mode) = call.cache_mode() else {
            return self.send(call).0;
        };
        match self.cache.plan(&call.url, mode, Instant::now()) {
            Plan::Serve(body) => HttpResult {
                status: 200,
                body,
                error: None,
            },
            Plan::Refuse => HttpResult::error(format!(
                "http request failed: {} failed moments ago; next try in at most {} s",
                call.url,
                cache::MIN_REFETCH.as_secs()
            )),
            Plan::Fetch => {
                let (result, headers) = self.send(call);
                let fetched = match (&result, &headers) {
                    (r, Some(h)) if r.error.is_none() && r.status == 200 => Fetched::Ok {
                        body: &r.body,
                        cache_control: h.cache_control.as_deref(),
                        age: h.age.as_deref(),
                    },
                    (r, _) if r.error.is_some() || r.status >= 500 => Fetched::Failed,
                    _ => Fetched::Other,
                };
                match self.cache.record(&call.url, fetched, Instant::now()) {
                    Some(stale) => HttpResult {
                        status: 200,
                        body: stale,
                        error: None,
                    },
                    None => result,
                }
            }
        }
    }

    /// Sends the call as it is: the result, and the caching headers of an answer.
    fn send(&self, call: &HttpCall) -> (HttpResult, Option<CacheHeaders>) {
        let uri: Uri = match call.url.parse() {
            Ok(u) => u,
            Err(e) => {
                return (
                    HttpResult::error(format!("bad url {:?}: {e}", call.url)),
                    None,
                );
            }
        };
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            let e = format!("bad url {:?}: no scheme or host", call.url);
            return (HttpResult::error(e), None);
        };
        let port = uri.port_u16().unwrap_or(match scheme {
            "https" => 443,
            _ => 80,
        });
        if !matches!(scheme, "http" | "https") || !self.allow.allows(scheme, host, port) {
            let e = format!("host not allowed: {scheme}://{host}:{port}");
            return (HttpResult::error(e), None);
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
            Err(e) if e.contains("host not allowed") => return (HttpResult::error(e), None),
            Err(e) => return (HttpResult::error(format!("http request failed: {e}")), None),
        };
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let headers = CacheHeaders {
            cache_control: header("cache-control"),
            age: header("age"),
        };
        match resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
        {
            Ok(bytes) => (
                HttpResult {
                    status,
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                    error: None,
                },
                Some(headers),
            ),
            Err(e) => (
                HttpResult::error(format!(
                    "http response unreadable (limit {MAX_RESPONSE_BYTES} bytes): {e}"
                )),
                None,
            ),
        }
    }
}

/// The headers the cache reads.
struct CacheHeaders {
    cache_control: Option<String>,
    age: Option<String>,
}

#[cfg(test)]
pub(crate) mod test_origin;
#[cfg(test)]
mod tests;
