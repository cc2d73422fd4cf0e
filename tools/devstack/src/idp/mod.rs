//! A test identity provider for the auth-package tests and the benchmark: the endpoints the
//! shipped packages `http-password` and `oauth2-code` call (docs/auth-packages.md), and an
//! OpenID Connect provider (discovery, JWKS, signed ID tokens, PKCE), served by axum on
//! `127.0.0.1:0`. It stands in for a *third party*, not for any part of Tessera: the packages
//! run unchanged against it over real TCP.
//!
//! | Request | Answer |
//! |---|---|
//! | `POST /userinfo`, Basic auth, `X-Client-Id`/`X-Client-Secret` | 200 `{"sub","name"}`; 401 bad user or password; 400 `invalid_client` |
//! | `POST /oauth/token`, form body (RFC 6749 4.1.3) | 200 `{"access_token","token_type","expires_in","id_token"}`; 400 `invalid_grant`, `invalid_request`, `unsupported_grant_type`; 401 `invalid_client` |
//! | `GET /userinfo`, `Authorization: Bearer <token>` | 200 `{"sub","name"?}`; 401 `invalid_token` |
//! | `GET /.well-known/openid-configuration` | the discovery document ([`StubIdp::issuer`] is the base URL) |
//! | `GET /jwks` | the public signing keys |
//!
//! Discovery and the JWKS carry `Cache-Control: max-age` ([`StubIdp::set_max_age`]).
//! Knobs for the tests: [`StubIdp::rotate_keys`], [`StubIdp::tamper_next_login`] (forged
//! signature, wrong audience or nonce, another user at userinfo), [`StubIdp::require_pkce`],
//! [`StubIdp::accept_client_auth`], and [`StubIdp::set_unavailable`] / [`StubIdp::fail_with`]
//! (every request answers an error status). The server stops when the [`StubIdp`] is dropped.
//!
//! # Layout
//! - `keys`: signing keys, JWKs, JWS signing, the PKCE challenge.
//! - `routes`: the axum router and the handlers.

mod keys;
mod routes;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::net::TcpListener;
use tokio::sync::watch;

use keys::SigningKey;
pub use keys::{SigningAlg, pkce_challenge};

/// How a client may authenticate at the token endpoint (RFC 6749 2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic` with the form-urlencoded id and secret.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// What the next token response gets wrong (one login; then the provider behaves again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// The ID token is signed by a key that is not in the JWKS, under the current key's kid
    /// (a forgery).
    ForeignKey,
    /// The ID token's `aud` is another client.
    WrongAudience,
    /// The ID token's `nonce` is not the one the code was issued with.
    WrongNonce,
    /// Userinfo answers, for this access token, a `sub` other than the ID token's.
    UserinfoSub,
}

/// A running test identity provider. Cheap to share behind an `Arc`; stops on drop.
pub struct StubIdp {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
}

struct State {
    client_id: String,
    client_secret: String,
    issuer: String,
    inner: Mutex<Inner>,
    next_id: AtomicU64,
}

struct Inner {
    /// username -> user
    users: HashMap<String, User>,
    /// code -> what it was issued for; removed on first use.
    codes: HashMap<String, Grant>,
    /// access token -> sub
    tokens: HashMap<String, String>,
    /// sub -> display name, so `GET /userinfo` needs no scan of the users.
    names: HashMap<String, String>,
    hits: HashMap<String, u64>,
    fail_with: Option<u16>,
    key: SigningKey,
    key_serial: u64,
    max_age_secs: u64,
    require_pkce: bool,
    client_auth: Vec<ClientAuth>,
    tamper: Option<Tamper>,
}

struct User {
    password: String,
    sub: String,
}

/// What an authorization code was issued for.
struct Grant {
    redirect_uri: String,
    sub: String,
    code_challenge: Option<String>,
    nonce: Option<String>,
}

impl StubIdp {
    /// Starts the server on a free loopback port for the client `client_id`/`client_secret`
    /// (what the app config and the package's `client_secret` must carry). It signs ID tokens
    /// with a fresh RS256 key, accepts both client authentication methods and PKCE when the
    /// code was issued with a challenge.
    pub async fn start(client_id: &str, client_secret: &str) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            issuer: format!("http://{addr}"),
            inner: Mutex::new(Inner {
                users: HashMap::new(),
                codes: HashMap::new(),
                tokens: HashMap::new(),
                names: HashMap::new(),
                hits: HashMap::new(),
                fail_with: None,
                key: SigningKey::generate(SigningAlg::Rs256, "key-1".into()),
                key_serial: 1,
                max_age_secs: 300,
                require_pkce: false,
                client_auth: vec![ClientAuth::Basic, ClientAuth::Post],
                tamper: None,
            }),
            next_id: AtomicU64::new(1),
        });
        let (shutdown, mut stop) = watch::channel(false);
        let app = routes::router(Arc::clone(&state));
        tokio::spawn(async move {
            let serving = axum::serve(listener, app).with_graceful_shutdown(async move {
                // Dropping the sender (the StubIdp) ends the wait as well.
                let _ = stop.wait_for(|stopped| *stopped).await;
            });
            if let Err(e) = serving.await {
                tracing::warn!(error = %e, "stub idp: server failed");
            }
        });
        Ok(Self {
            addr,
            state,
            shutdown,
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

    /// The OpenID issuer identifier: the base URL (no trailing slash). Discovery is at
    /// `<issuer>/.well-known/openid-configuration`, the JWKS at `<issuer>/jwks`.
    pub fn issuer(&self) -> String {
        self.state.issuer.clone()
    }

    /// The `jwks_uri` discovery names.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.state.issuer)
    }

    /// Adds (or replaces) a user for `POST /userinfo`.
    pub fn add_user(&self, username: &str, password: &str, sub: &str, name: &str) {
        let user = User {
            password: password.into(),
            sub: sub.into(),
        };
        let mut inner = self.state.lock();
        inner.names.insert(sub.into(), name.into());
        inner.users.insert(username.into(), user);
    }

    /// Adds an authorization code, usable once at `POST /oauth/token` with this redirect URI
    /// (no PKCE challenge, no nonce).
    pub fn add_code(&self, code: &str, redirect_uri: &str, sub: &str) {
        self.state.lock().codes.insert(
            code.into(),
            Grant {
                redirect_uri: redirect_uri.into(),
                sub: sub.into(),
                code_challenge: None,
                nonce: None,
            },
        );
    }

    /// What the authorization endpoint would do after the user signed in (there is no
    /// browser in the tests): a fresh single-use code for `sub`, bound to `redirect_uri`, to
    /// the PKCE S256 `code_challenge` ([`pkce_challenge`]) and to the `nonce` its ID token
    /// will carry, when given.
    pub fn issue_code(
        &self,
        sub: &str,
        redirect_uri: &str,
        code_challenge: Option<&str>,
        nonce: Option<&str>,
    ) -> String {
        let code = format!("code-{}", self.state.next());
        self.state.lock().codes.insert(
            code.clone(),
            Grant {
                redirect_uri: redirect_uri.into(),
                sub: sub.into(),
                code_challenge: code_challenge.map(str::to_owned),
                nonce: nonce.map(str::to_owned),
            },
        );
        code
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

    /// `true`: every request answers 503 `temporarily_unavailable`; `false`: service again.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.fail_with(unavailable.then_some(503));
    }

    /// Replaces the signing key by a new one of the same algorithm with a new kid, and
    /// returns the kid: the JWKS then lists only the new key, and ID tokens are signed by it.
    pub fn rotate_keys(&self) -> String {
        let alg = self.state.lock().key.alg;
        self.use_signing_alg(alg)
    }

    /// Like [`rotate_keys`](Self::rotate_keys), with a key of `alg`.
    pub fn use_signing_alg(&self, alg: SigningAlg) -> String {
        let mut inner = self.state.lock();
        inner.key_serial += 1;
        let kid = format!("key-{}", inner.key_serial);
        inner.key = SigningKey::generate(alg, kid.clone());
        kid
    }

    /// The kid of the current signing key (the only one in the JWKS).
    pub fn kid(&self) -> String {
        self.state.lock().key.kid.clone()
    }

    /// The `max-age` of discovery and JWKS responses (`Cache-Control`), 300 s by default.
    pub fn set_max_age(&self, secs: u64) {
        self.state.lock().max_age_secs = secs;
    }

    /// `true`: a token request without `code_verifier` is refused with 400 `invalid_grant`
    /// (RFC 7636 4.6), whether or not its code was issued with a challenge.
    pub fn require_pkce(&self, required: bool) {
        self.state.lock().require_pkce = required;
    }

    /// The client authentication methods the token endpoint accepts (both by default); a
    /// request using another answers 401 `invalid_client`. Discovery lists these.
    pub fn accept_client_auth(&self, methods: &[ClientAuth]) {
        self.state.lock().client_auth = methods.to_vec();
    }

    /// Makes the next successful token response wrong in one way (see [`Tamper`]).
    pub fn tamper_next_login(&self, tamper: Tamper) {
        self.state.lock().tamper = Some(tamper);
    }
}

impl Drop for StubIdp {
    fn drop(&mut self) {
        // Graceful shutdown: the listener closes and idle keep-alive connections are closed.
        let _ = self.shutdown.send(true);
    }
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking handler cannot leave the maps half-updated (single inserts/removes).
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next(&self) -> u64 {
        self.next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
