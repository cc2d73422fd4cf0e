//! A stub third-party identity provider for the auth-package tests and the benchmark: the
//! endpoints the shipped packages `http-password` and `oauth2-code` call
//! (docs/auth-packages.md), on a real HTTP/1.1 server on `127.0.0.1:0`.
//!
//! The HTTP is hand-written and minimal (request line, headers, `Content-Length` body,
//! keep-alive) so the dev stack needs no HTTP framework. It is a test double for a *third
//! party*, not for any part of Tessera: the packages run unchanged against it over real TCP.
//!
//! | Request | Answer |
//! |---|---|
//! | `POST /userinfo`, Basic auth, `X-Client-Id`/`X-Client-Secret` | 200 `{"sub","name"}`; 401 bad user or password; 400 `invalid_client` |
//! | `POST /oauth/token`, form body (RFC 6749 4.1.3) | 200 `{"access_token","token_type":"Bearer"}`; 400 `invalid_grant`; 401 `invalid_client` |
//! | `GET /userinfo`, `Authorization: Bearer <token>` | 200 `{"sub","name"?}`; 401 `invalid_token` |
//!
//! [`StubIdp::fail_with`] makes every request answer a given status (an upstream outage).
//! The server stops when the [`StubIdp`] is dropped.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Longest request line or header line accepted.
const MAX_LINE: u64 = 8 * 1024;
const MAX_HEADERS: usize = 64;
const MAX_BODY: usize = 64 * 1024;

/// A running stub identity provider. Cheap to share behind an `Arc`; stops on drop.
pub struct StubIdp {
    addr: SocketAddr,
    state: Arc<State>,
    server: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    client_id: String,
    client_secret: String,
    inner: Mutex<Inner>,
    next_token: AtomicU64,
}

#[derive(Default)]
struct Inner {
    /// username -> user
    users: HashMap<String, User>,
    /// code -> (redirect_uri, sub); removed on first use.
    codes: HashMap<String, (String, String)>,
    /// access token -> sub
    tokens: HashMap<String, String>,
    /// sub -> display name, so `GET /userinfo` needs no scan of the users.
    names: HashMap<String, String>,
    hits: HashMap<String, u64>,
    fail_with: Option<u16>,
}

struct User {
    password: String,
    sub: String,
    name: String,
}

impl StubIdp {
    /// Starts the server on a free loopback port for the client `client_id`/`client_secret`
    /// (what the app config and the package's `client_secret` must carry).
    pub async fn start(client_id: &str, client_secret: &str) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            ..State::default()
        });
        let server = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Ok(Self {
            addr,
            state,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>`, what the node builds as the package's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds (or replaces) a user for `POST /userinfo`.
    pub fn add_user(&self, username: &str, password: &str, sub: &str, name: &str) {
        let user = User {
            password: password.into(),
            sub: sub.into(),
            name: name.into(),
        };
        let mut inner = self.state.lock();
        inner.names.insert(sub.into(), name.into());
        inner.users.insert(username.into(), user);
    }

    /// Adds an authorization code, usable once at `POST /oauth/token` with this redirect URI.
    pub fn add_code(&self, code: &str, redirect_uri: &str, sub: &str) {
        self.state
            .lock()
            .codes
            .insert(code.into(), (redirect_uri.into(), sub.into()));
    }

    /// How many requests arrived for `path` (query string excluded), whatever their answer.
    pub fn hits(&self, path: &str) -> u64 {
        self.state.lock().hits.get(path).copied().unwrap_or(0)
    }

    /// `Some(status)`: every request is answered with that status and
    /// `{"error":"server_error"}` (an outage); `None`: normal service again.
    pub fn fail_with(&self, status: Option<u16>) {
        self.state.lock().fail_with = status;
    }
}

impl Drop for StubIdp {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every open connection.
        self.server.abort();
    }
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking handler cannot leave the maps half-updated (single inserts/removes).
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve(stream, Arc::clone(&state)));
                }
                // Out of descriptors and the like: keep serving the open connections.
                Err(e) => tracing::warn!(error = %e, "stub idp: accept failed"),
            },
            // Reap finished connections so the set does not grow with every connection.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// A parsed request: what the handlers need, no more.
struct Request {
    method: String,
    path: String,
    /// Lower-case names.
    headers: HashMap<String, String>,
    body: Vec<u8>,
    keep_alive: bool,
}

struct Response {
    status: u16,
    body: String,
}

fn json(status: u16, body: serde_json::Value) -> Response {
    Response {
        status,
        body: body.to_string(),
    }
}

fn oauth_error(status: u16, error: &str) -> Response {
    json(status, serde_json::json!({ "error": error }))
}

/// Serves one connection: requests in sequence until the client closes, asks to close, or
/// sends something unparsable (answered 400, then closed).
async fn serve(stream: TcpStream, state: Arc<State>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let (response, keep_alive) = match read_request(&mut reader).await {
            Ok(Some(request)) => (handle(&state, &request), request.keep_alive),
            Ok(None) => return,
            Err(reason) => (oauth_error(400, &reason), false),
        };
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
            response.status,
            reason_phrase(response.status),
            response.body.len(),
            if keep_alive {
                ""
            } else {
                "Connection: close\r\n"
            },
        );
        let sent = async {
            write.write_all(head.as_bytes()).await?;
            write.write_all(response.body.as_bytes()).await?;
            write.flush().await
        };
        if sent.await.is_err() || !keep_alive {
            return;
        }
    }
}

/// `Ok(None)` on a clean end of stream between requests.
async fn read_request<R>(reader: &mut BufReader<R>) -> Result<Option<Request>, String>
where
    R: tokio::io::AsyncRead + Unpin,
{
    let Some(line) = read_line(reader).await? else {
        return Ok(None);
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line".into());
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err("unsupported HTTP version".into()),
    };
    let mut headers = HashMap::new();
    loop {
        let line = read_line(reader)
            .await?
            .ok_or("connection closed in headers")?;
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err("too many headers".into());
        }
        let (name, value) = line.split_once(':').ok_or("malformed header")?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    // Extism's host HTTP (ureq) sends a body-less POST as `Transfer-Encoding: chunked` with
    // one empty chunk, so chunked bodies are read too (RFC 9112 7.1; no trailers).
    let body = match headers
        .get("transfer-encoding")
        .map(|v| v.to_ascii_lowercase())
    {
        Some(te) if te == "chunked" => read_chunked(reader).await?,
        Some(_) => return Err("unsupported Transfer-Encoding".into()),
        None => {
            let length = match headers.get("content-length") {
                Some(v) => v.parse::<usize>().map_err(|_| "bad Content-Length")?,
                None => 0,
            };
            if length > MAX_BODY {
                return Err("body too large".into());
            }
            let mut body = vec![0; length];
            reader
                .read_exact(&mut body)
                .await
                .map_err(|_| "connection closed in body")?;
            body
        }
    };
    let connection = headers.get("connection").map(|v| v.to_ascii_lowercase());
    let keep_alive = match connection.as_deref() {
        Some("close") => false,
        Some("keep-alive") => true,
        _ => http11,
    };
    let path = target.split('?').next().unwrap_or_default().to_owned();
    Ok(Some(Request {
        method: method.to_owned(),
        path,
        headers,
        body,
        keep_alive,
    }))
}

/// A chunked body: `<hex size>[;ext]` lines and their data, up to the zero chunk and the
/// empty line after it.
async fn read_chunked<R>(reader: &mut BufReader<R>) -> Result<Vec<u8>, String>
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)
            .await?
            .ok_or("connection closed in chunked body")?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        if size == 0 {
            // Trailer section (none expected) ends with an empty line.
            loop {
                let t = read_line(reader)
                    .await?
                    .ok_or("connection closed in trailers")?;
                if t.is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err("body too large".into());
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader
            .read_exact(&mut body[start..])
            .await
            .map_err(|_| "connection closed in chunk")?;
        let end = read_line(reader)
            .await?
            .ok_or("connection closed after chunk")?;
        if !end.is_empty() {
            return Err("chunk not followed by CRLF".into());
        }
    }
}

/// One CRLF- (or LF-) terminated line, bounded; `Ok(None)` at end of stream before any byte.
async fn read_line<R>(reader: &mut BufReader<R>) -> Result<Option<String>, String>
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut line = String::new();
    let n = (&mut *reader)
        .take(MAX_LINE)
        .read_line(&mut line)
        .await
        .map_err(|e| format!("unreadable request: {e}"))?;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with('\n') {
        return Err("line too long or truncated".into());
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

fn handle(state: &State, req: &Request) -> Response {
    let fail_with = {
        let mut inner = state.lock();
        *inner.hits.entry(req.path.clone()).or_default() += 1;
        inner.fail_with
    };
    if let Some(status) = fail_with {
        return oauth_error(status, "server_error");
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/userinfo") => password_userinfo(state, req),
        ("GET", "/userinfo") => bearer_userinfo(state, req),
        ("POST", "/oauth/token") => token(state, req),
        (_, "/userinfo" | "/oauth/token") => oauth_error(405, "method_not_allowed"),
        _ => oauth_error(404, "not_found"),
    }
}

fn password_userinfo(state: &State, req: &Request) -> Response {
    let header = |name: &str| req.headers.get(name).map(String::as_str);
    if header("x-client-id") != Some(&state.client_id)
        || header("x-client-secret") != Some(&state.client_secret)
    {
        // 400, not 401: the packages read 401 as "wrong user or password", and a wrong
        // client is the app's configuration, which must surface as an upstream error.
        return oauth_error(400, "invalid_client");
    }
    let Some((username, password)) = header("authorization").and_then(basic_credentials) else {
        return oauth_error(401, "invalid_request");
    };
    let inner = state.lock();
    match inner.users.get(&username) {
        Some(user) if user.password == password => json(
            200,
            serde_json::json!({ "sub": user.sub, "name": user.name }),
        ),
        _ => oauth_error(401, "invalid_credentials"),
    }
}

fn basic_credentials(value: &str) -> Option<(String, String)> {
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn token(state: &State, req: &Request) -> Response {
    let form = parse_form(&req.body);
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("grant_type") != Some("authorization_code") {
        return oauth_error(400, "unsupported_grant_type");
    }
    if field("client_id") != Some(&state.client_id)
        || field("client_secret") != Some(&state.client_secret)
    {
        return oauth_error(401, "invalid_client");
    }
    let mut inner = state.lock();
    // A presented code is spent whatever the outcome, like a real provider's single-use code.
    let Some((redirect_uri, sub)) = field("code").and_then(|c| inner.codes.remove(c)) else {
        return oauth_error(400, "invalid_grant");
    };
    if field("redirect_uri") != Some(&redirect_uri) {
        return oauth_error(400, "invalid_grant");
    }
    let n = state.next_token.fetch_add(1, Ordering::Relaxed);
    let access_token = format!("at-{}-{n}", std::process::id());
    inner.tokens.insert(access_token.clone(), sub);
    json(
        200,
        serde_json::json!({
            "access_token": access_token, "token_type": "Bearer", "expires_in": 3600
        }),
    )
}

fn bearer_userinfo(state: &State, req: &Request) -> Response {
    let token = req
        .headers
        .get("authorization")
        .and_then(|v| v.strip_prefix("Bearer "));
    let inner = state.lock();
    let Some(sub) = token.and_then(|t| inner.tokens.get(t.trim())) else {
        return oauth_error(401, "invalid_token");
    };
    match inner.names.get(sub) {
        Some(name) => json(200, serde_json::json!({ "sub": sub, "name": name })),
        None => json(200, serde_json::json!({ "sub": sub })),
    }
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space, `%XX` a byte).
fn parse_form(body: &[u8]) -> HashMap<String, String> {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut kv = pair.splitn(2, |&b| b == b'=');
            let key = percent_decode(kv.next().unwrap_or_default());
            let value = percent_decode(kv.next().unwrap_or_default());
            (key, value)
        })
        .collect()
}

fn percent_decode(raw: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let escaped = match raw.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (escaped, raw[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests;
