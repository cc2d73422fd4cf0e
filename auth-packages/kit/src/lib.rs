//! The auth-package interface, version 1 (docs/auth-packages.md), as the shipped packages use it.
//!
//! Everything here is plain Rust over `serde_json`, so every failure becomes an [`Outcome`]
//! instead of a panic: the node maps a trap to `package_failed`, but an `error` output names
//! what went wrong.
// `deny`, not `forbid`: the one call of the node's HTTP host function is an `unsafe` FFI call,
// allowed on that call alone (`send`).
#![deny(unsafe_code)]

pub mod jwt;

use std::collections::BTreeMap;

use extism_pdk::{Json, host_fn};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The interface version this kit speaks; also what `interface_version` exports.
pub const INTERFACE: u32 = 1;

/// The input object the node passes to `authenticate`.
#[derive(Debug, Deserialize)]
pub struct Input {
    pub interface: u32,
    pub app: App,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The node's clock, Unix seconds (a package has no clock of its own); absent from nodes
    /// older than this field.
    #[serde(default)]
    pub now: Option<u64>,
}

/// The app's non-secret configuration (the secret is in the plug-in config).
#[derive(Debug, Deserialize)]
pub struct App {
    pub app_id: String,
    pub base_url: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

/// One of the three output shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok {
        subject: String,
        name: Option<String>,
    },
    Denied(String),
    Error(String),
}

impl Outcome {
    pub fn error(text: impl Into<String>) -> Self {
        Outcome::Error(text.into())
    }

    pub fn denied(reason: impl Into<String>) -> Self {
        Outcome::Denied(reason.into())
    }

    /// The output JSON text, exactly one of the shapes in the interface.
    pub fn to_json(&self) -> String {
        let v = match self {
            Outcome::Ok {
                subject,
                name: Some(name),
            } => {
                json!({"ok": true, "subject": subject, "name": name})
            }
            Outcome::Ok {
                subject,
                name: None,
            } => json!({"ok": true, "subject": subject}),
            Outcome::Denied(reason) => json!({"ok": false, "reason": reason}),
            Outcome::Error(text) => json!({"error": text}),
        };
        v.to_string()
    }
}

/// Parses the input, refusing other interface versions (an `error`, so `package_failed`:
/// a node speaking another version is a deployment problem, not the user's).
pub fn parse_input(bytes: &[u8]) -> Result<Input, Outcome> {
    let input: Input =
        serde_json::from_slice(bytes).map_err(|e| Outcome::error(format!("bad input: {e}")))?;
    if input.interface != INTERFACE {
        return Err(Outcome::error(format!(
            "interface {} not supported (this package speaks {INTERFACE})",
            input.interface
        )));
    }
    Ok(input)
}

impl Input {
    /// A user parameter; missing or empty is the user's mistake, so `ok: false`.
    pub fn param(&self, key: &str) -> Result<&str, Outcome> {
        match self.params.get(key).map(String::as_str) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(Outcome::denied(format!("missing parameter {key}"))),
        }
    }
}

impl App {
    /// A setting, or its default when absent or empty.
    pub fn setting<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        match self.settings.get(key).map(String::as_str) {
            Some(v) if !v.is_empty() => v,
            _ => default,
        }
    }

    /// `base_url` + `path`, with exactly one slash between them.
    pub fn url(&self, path: &str) -> String {
        join_url(&self.base_url, path)
    }
}

pub fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// The app's client secret from the plug-in config (never from the input).
pub fn client_secret() -> Result<String, Outcome> {
    match extism_pdk::config::get("client_secret") {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(Outcome::error("plug-in config has no client_secret")),
        Err(e) => Err(Outcome::error(format!("reading client_secret: {e}"))),
    }
}

/// How the node may answer a GET from its per-app response cache (docs/auth-packages.md,
/// "HTTP"): for documents that change rarely and say so (discovery, JWKS), so a login does
/// not fetch them every time. A node without the cache ignores the field and fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cache {
    /// A cached copy while it is fresh (the response's `Cache-Control: max-age`), else fetch.
    Use,
    /// Fetch now (the node rate-limits this per URL and serves the stale copy on failure):
    /// for a document that turned out to be out of date, such as a JWKS without the kid.
    Refresh,
}

/// A request to the third party (sent with [`send`]).
#[derive(Debug, Clone)]
pub struct Request {
    pub url: String,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    pub cache: Option<Cache>,
}

impl Request {
    pub fn new(url: impl Into<String>) -> Request {
        Request {
            url: url.into(),
            method: "GET".into(),
            headers: BTreeMap::new(),
            cache: None,
        }
    }
    pub fn with_cache(mut self, cache: Cache) -> Request {
        self.cache = Some(cache);
        self
    }
    pub fn with_method(mut self, method: impl Into<String>) -> Request {
        self.method = method.into();
        self
    }
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// What the node's HTTP host function takes (docs/auth-packages.md, "HTTP").
#[derive(Serialize)]
struct HttpCall<'a> {
    method: &'a str,
    url: &'a str,
    headers: &'a BTreeMap<String, String>,
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<Cache>,
}

/// What it answers: the response whatever its status, or why there is none.
#[derive(Deserialize)]
struct HttpResult {
    #[serde(default)]
    status: u16,
    #[serde(default)]
    body: String,
    #[serde(default)]
    error: Option<String>,
}

#[host_fn]
extern "ExtismHost" {
    fn tessera_http_request(call: Json<HttpCall<'_>>) -> Json<HttpResult>;
}

/// A response from the third party.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    body: Vec<u8>,
}

impl Response {
    pub fn status_code(&self) -> u16 {
        self.status
    }
    pub fn body(&self) -> Vec<u8> {
        self.body.clone()
    }
}

/// Maps the host's refusal or a network failure to an `error` output; the interface asks
/// for "host not allowed" in the text of a refused host.
pub fn http_error(text: &str) -> Outcome {
    if text.contains("not allowed") {
        Outcome::error(format!("host not allowed: {text}"))
    } else {
        Outcome::error(format!("http request failed: {text}"))
    }
}

/// Sends a request through the node (the app's allow-list applies; redirects are returned,
/// not followed) and maps a failure.
pub fn send(req: &Request, body: Option<String>) -> Result<Response, Outcome> {
    let call = HttpCall {
        method: &req.method,
        url: &req.url,
        headers: &req.headers,
        body,
        cache: req.cache,
    };
    // SAFETY: an import the node provides (namespace extism:host/user); the PDK passes and
    // reads memory handles, checked by the runtime.
    #[allow(unsafe_code)]
    let answer = unsafe { tessera_http_request(Json(call)) };
    let Json(result) = answer.map_err(|e| http_error(&format!("{e:#}")))?;
    match result.error {
        Some(error) => Err(http_error(&error)),
        None => Ok(Response {
            status: result.status,
            body: result.body.into_bytes(),
        }),
    }
}

/// A JSON object body, or an `error` naming the step.
pub fn json_body(resp: &Response, what: &str) -> Result<Value, Outcome> {
    serde_json::from_slice::<Value>(&resp.body())
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| Outcome::error(format!("{what} answered 200 without a JSON object")))
}

/// `{"sub": ..., "name": ...}` from a userinfo body: `sub` must be a non-empty string
/// (a number is accepted and written in decimal, as some providers do).
pub fn identity(body: &Value, what: &str) -> Outcome {
    let subject = match body.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Outcome::error(format!("{what} answered without a sub")),
    };
    let name = body.get("name").and_then(Value::as_str).map(str::to_owned);
    Outcome::Ok { subject, name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_have_the_interface_shapes() {
        let ok = Outcome::Ok {
            subject: "u".into(),
            name: Some("N".into()),
        }
        .to_json();
        assert_eq!(ok, r#"{"name":"N","ok":true,"subject":"u"}"#);
        let bare = Outcome::Ok {
            subject: "u".into(),
            name: None,
        }
        .to_json();
        assert_eq!(bare, r#"{"ok":true,"subject":"u"}"#);
        assert_eq!(
            Outcome::denied("no").to_json(),
            r#"{"ok":false,"reason":"no"}"#
        );
        assert_eq!(Outcome::error("x").to_json(), r#"{"error":"x"}"#);
    }

    #[test]
    fn input_parsing_checks_version_and_params() {
        let raw = br#"{"interface":1,"app":{"app_id":"a","base_url":"http://h:1/","client_id":"c",
            "settings":{"userinfo_path":""}},"params":{"username":"ann","password":""}}"#;
        let input = parse_input(raw).unwrap();
        assert_eq!(input.param("username").unwrap(), "ann");
        assert_eq!(
            input.param("password"),
            Err(Outcome::denied("missing parameter password"))
        );
        assert_eq!(input.app.setting("userinfo_path", "/userinfo"), "/userinfo");
        assert_eq!(input.app.url("/userinfo"), "http://h:1/userinfo");
        let v2 = br#"{"interface":2,"app":{"app_id":"a","base_url":"b"}}"#;
        assert!(matches!(parse_input(v2), Err(Outcome::Error(_))));
        assert!(matches!(parse_input(b"nope"), Err(Outcome::Error(_))));
    }

    #[test]
    fn the_cache_hint_is_sent_only_when_asked_for() {
        let call = |req: &Request| {
            serde_json::to_value(HttpCall {
                method: &req.method,
                url: &req.url,
                headers: &req.headers,
                body: None,
                cache: req.cache,
            })
            .unwrap()
        };
        let plain = call(&Request::new("http://h/jwks"));
        assert!(plain.get("cache").is_none(), "{plain}");
        let cached = call(&Request::new("http://h/jwks").with_cache(Cache::Use));
        assert_eq!(cached["cache"], "use");
        let fresh = call(&Request::new("http://h/jwks").with_cache(Cache::Refresh));
        assert_eq!(fresh["cache"], "refresh");
    }

    #[test]
    fn identity_requires_a_subject() {
        let v = json!({"sub": "s1", "name": "Ann"});
        assert_eq!(
            identity(&v, "u"),
            Outcome::Ok {
                subject: "s1".into(),
                name: Some("Ann".into())
            }
        );
        assert!(matches!(
            identity(&json!({"sub": ""}), "u"),
            Outcome::Error(_)
        ));
        assert_eq!(
            identity(&json!({"sub": 42}), "u"),
            Outcome::Ok {
                subject: "42".into(),
                name: None
            }
        );
    }
}
