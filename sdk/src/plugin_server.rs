//! The plugin-server SDK (seed 000 steps 5-6).
//!
//! A plugin server with id `S`:
//!
//! 1. consumes `dist.S` from the start of the distribution stream with an ordered consumer,
//!    so every replica receives every token for `S` and a restarted replica replays all
//!    that can still be valid (the stream keeps events for the longest token lifetime);
//! 2. verifies each token **once**, on receipt (signature against the broker's JWKS,
//!    issuer, audience `S`, expiry), and stores it under the SHA-256 of the token string;
//! 3. serves `svc.S.<operation>`: a request carries `Authorization: Bearer <token>`, and is
//!    served only if that token is stored (or, when it has not arrived yet, the broker's
//!    introspection says it is live), unexpired, unrevoked, and for a plugin the operation
//!    serves. Per request that is one hash and one map lookup, no signature check.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tessera_core::Shutdown;
use tessera_core::now_unix;
use tessera_core::service::{self, Endpoint, Incoming, Reply, handler};
use tessera_schemas::claims::{PLUGIN_TOKEN_ISSUER, PluginClaims};
use tessera_schemas::messages::{DIST_EVENT, DistEvent};
use tessera_schemas::{ErrorCode, Subjects, WireError, codec, headers, ids};
use tokio::sync::watch;

use crate::{Client, Error};

/// What a stored token says. Handlers receive it with each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub token_id: String,
    pub account_id: String,
    pub plugin_id: String,
    pub expires_at: u64,
}

/// Which plugins' tokens an operation accepts.
#[derive(Debug, Clone)]
pub enum PluginScope {
    /// Any plugin routed to this server.
    Any,
    /// Only these plugin ids.
    Only(HashSet<String>),
}

impl PluginScope {
    pub fn only<I: IntoIterator<Item = S>, S: Into<String>>(plugins: I) -> PluginScope {
        PluginScope::Only(plugins.into_iter().map(Into::into).collect())
    }

    fn allows(&self, plugin_id: &str) -> bool {
        match self {
            PluginScope::Any => true,
            PluginScope::Only(set) => set.contains(plugin_id),
        }
    }
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token was distributed to this server for this bearer")]
    Unknown,
    #[error("token expired")]
    Expired,
    #[error("token revoked")]
    Revoked,
    #[error("token is for plugin {0:?}, which this operation does not serve")]
    WrongPlugin(String),
    /// Distributed but not yet verified: the caller verifies the signature once, then
    /// [`TokenStore::mark_verified`].
    #[error("token signature not verified yet")]
    Unverified,
}

impl From<AuthError> for WireError {
    fn from(e: AuthError) -> WireError {
        let code = match e {
            AuthError::WrongPlugin(_) => ErrorCode::Forbidden,
            _ => ErrorCode::Unauthenticated,
        };
        WireError::new(code, e.to_string())
    }
}

type Digest = [u8; 32];

fn digest(token: &str) -> Digest {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// A stored token. `verified` turns true once its signature has been checked; until then
/// its claims are only what the distribution said.
struct Slot {
    info: Arc<TokenInfo>,
    verified: bool,
}

#[derive(Default)]
struct Inner {
    by_digest: HashMap<Digest, Slot>,
    by_id: HashMap<String, Digest>,
    /// Revoked token ids, until they would have expired, so a late introspection or a
    /// reordered event cannot bring one back.
    revoked: HashMap<String, u64>,
}

/// The tokens distributed to one plugin server. Shared by all its request handlers.
#[derive(Default)]
pub struct TokenStore {
    inner: RwLock<Inner>,
}

impl TokenStore {
    /// Per-request authentication: a SHA-256 of the bearer string and a map lookup.
    pub fn authenticate(
        &self,
        bearer: &str,
        scope: &PluginScope,
        now: u64,
    ) -> Result<Arc<TokenInfo>, AuthError> {
        let d = digest(bearer);
        let info = {
            let inner = self.inner.read().expect("lock poisoned");
            let slot = inner.by_digest.get(&d).ok_or(AuthError::Unknown)?;
            if !slot.verified {
                return Err(AuthError::Unverified);
            }
            slot.info.clone()
        };
        if info.expires_at <= now {
            return Err(AuthError::Expired);
        }
        if !scope.allows(&info.plugin_id) {
            return Err(AuthError::WrongPlugin(info.plugin_id.clone()));
        }
        Ok(info)
    }

    /// Stores a verified token, unless it was revoked.
    pub fn insert(&self, token: &str, info: TokenInfo) -> bool {
        self.put(token, info, true)
    }

    /// Stores a distributed token whose signature will be checked on first use.
    pub fn insert_unverified(&self, token: &str, info: TokenInfo) -> bool {
        self.put(token, info, false)
    }

    fn put(&self, token: &str, info: TokenInfo, verified: bool) -> bool {
        let mut inner = self.inner.write().expect("lock poisoned");
        if inner.revoked.contains_key(&info.token_id) {
            return false;
        }
        let d = digest(token);
        inner.by_id.insert(info.token_id.clone(), d);
        inner.by_digest.insert(
            d,
            Slot {
                info: Arc::new(info),
                verified,
            },
        );
        true
    }

    /// Records that a stored token's signature checked out.
    pub fn mark_verified(&self, token: &str) {
        if let Some(slot) = self
            .inner
            .write()
            .expect("lock poisoned")
            .by_digest
            .get_mut(&digest(token))
        {
            slot.verified = true;
        }
    }

    /// Drops a stored token whose signature did not check out.
    pub fn remove(&self, token: &str) {
        let mut inner = self.inner.write().expect("lock poisoned");
        if let Some(slot) = inner.by_digest.remove(&digest(token)) {
            inner.by_id.remove(&slot.info.token_id);
        }
    }

    /// Drops tokens at once and remembers them as revoked.
    pub fn revoke(&self, token_ids: &[String], until: u64) {
        let mut inner = self.inner.write().expect("lock poisoned");
        for id in token_ids {
            let exp = inner
                .by_id
                .remove(id)
                .and_then(|d| inner.by_digest.remove(&d))
                .map_or(until, |s| s.info.expires_at);
            inner.revoked.insert(id.clone(), exp);
        }
    }

    pub fn is_revoked(&self, token_id: &str) -> bool {
        self.inner
            .read()
            .expect("lock poisoned")
            .revoked
            .contains_key(token_id)
    }

    /// Whether a token id is stored (and not revoked).
    pub fn contains(&self, token_id: &str) -> bool {
        self.inner
            .read()
            .expect("lock poisoned")
            .by_id
            .contains_key(token_id)
    }

    pub fn len(&self) -> usize {
        self.inner.read().expect("lock poisoned").by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets what has expired; memory stays bounded by the tokens alive at once.
    pub fn purge_expired(&self, now: u64) {
        let mut inner = self.inner.write().expect("lock poisoned");
        let expired: Vec<(String, Digest)> = inner
            .by_digest
            .iter()
            .filter(|(_, s)| s.info.expires_at <= now)
            .map(|(d, s)| (s.info.token_id.clone(), *d))
            .collect();
        for (id, d) in expired {
            inner.by_digest.remove(&d);
            inner.by_id.remove(&id);
        }
        inner.revoked.retain(|_, exp| *exp > now);
    }
}

/// Verifies plugin tokens against the broker's published keys, fetching them again when a
/// token names a `kid` not seen yet (key rotation, a new broker replica).
struct Verifier {
    client: Client,
    server_id: String,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// When the keys were last fetched.
    fetched: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

/// At most one key fetch per this interval.
const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

impl Verifier {
    fn new(client: Client, server_id: String) -> Verifier {
        Verifier {
            client,
            server_id,
            keys: RwLock::default(),
            fetched: tokio::sync::Mutex::new(None),
        }
    }

    /// Fetches the keys again, at most once per [`KEY_REFRESH_INTERVAL`]: tokens with
    /// made-up `kid`s must not turn into a flood of key requests to the broker.
    async fn refresh(&self, kid: &str) -> Result<(), Error> {
        let mut fetched = self.fetched.lock().await;
        if self.keys.read().expect("lock poisoned").contains_key(kid)
            || fetched.is_some_and(|at| at.elapsed() < KEY_REFRESH_INTERVAL)
        {
            return Ok(());
        }
        *fetched = Some(tokio::time::Instant::now());
        let set: JwkSet = self.client.keys().await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)) {
                keys.insert(kid, key);
            }
        }
        *self.keys.write().expect("lock poisoned") = keys;
        Ok(())
    }

    /// The claims of a distributed token, checked for issuer, audience (this server) and
    /// expiry but not (yet) for the signature.
    fn claims(&self, token: &str) -> Result<TokenInfo, WireError> {
        let bad = |m: String| WireError::new(ErrorCode::Unauthenticated, m);
        let c = jsonwebtoken::dangerous::insecure_decode_claims::<PluginClaims>(token)
            .map_err(|e| bad(format!("plugin token claims: {e}")))?;
        if c.iss != PLUGIN_TOKEN_ISSUER || !c.aud.contains(&self.server_id) {
            return Err(bad("plugin token not issued for this server".into()));
        }
        Ok(TokenInfo {
            token_id: c.jti,
            account_id: c.sub,
            plugin_id: c.plugin_id,
            expires_at: c.exp,
        })
    }

    /// Verifies signature, issuer, audience (this server) and expiry.
    async fn verify(&self, token: &str) -> Result<TokenInfo, VerifyError> {
        let bad = |m: &str| {
            VerifyError::Rejected(WireError::new(ErrorCode::Unauthenticated, m.to_owned()))
        };
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| bad("malformed plugin token"))?;
        let kid = header.kid.ok_or_else(|| bad("plugin token has no kid"))?;
        if !self.keys.read().expect("lock poisoned").contains_key(&kid) {
            self.refresh(&kid)
                .await
                .map_err(|e| VerifyError::KeysUnavailable(e.to_string()))?;
        }
        let keys = self.keys.read().expect("lock poisoned");
        let key = keys.get(&kid).ok_or(VerifyError::UnknownKey)?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[PLUGIN_TOKEN_ISSUER]);
        v.set_audience(&[&self.server_id]);
        v.leeway = 5;
        let claims = jsonwebtoken::decode::<PluginClaims>(token, key, &v)
            .map_err(|e| bad(&format!("plugin token rejected: {e}")))?
            .claims;
        Ok(TokenInfo {
            token_id: claims.jti,
            account_id: claims.sub,
            plugin_id: claims.plugin_id,
            expires_at: claims.exp,
        })
    }
}

/// Why [`Verifier::verify`] failed. The distribution path retries the last two (a key being
/// rotated in, the broker restarting); the request path answers them at once.
#[derive(Debug)]
enum VerifyError {
    Rejected(WireError),
    UnknownKey,
    KeysUnavailable(String),
}

impl From<VerifyError> for WireError {
    fn from(e: VerifyError) -> WireError {
        match e {
            VerifyError::Rejected(w) => w,
            VerifyError::UnknownKey => WireError::new(
                ErrorCode::Unauthenticated,
                "plugin token signed by an unknown key",
            ),
            VerifyError::KeysUnavailable(m) => {
                WireError::new(ErrorCode::Unavailable, format!("fetching keys: {m}"))
            }
        }
    }
}

/// A request to one operation, authenticated.
#[derive(Debug)]
pub struct ServiceRequest {
    pub operation: String,
    pub token: Arc<TokenInfo>,
    pub headers: Option<async_nats::HeaderMap>,
    pub body: bytes::Bytes,
}

type OpFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, WireError>> + Send>>;
type OpHandler = Arc<dyn Fn(ServiceRequest) -> OpFuture + Send + Sync>;

struct Operation {
    scope: PluginScope,
    handler: OpHandler,
}

/// Builds a [`PluginServer`].
///
/// ```no_run
/// # async fn demo(nats: async_nats::Client) -> Result<(), tessera_sdk::Error> {
/// use tessera_sdk::{PluginScope, PluginServerBuilder};
/// use tessera_core::service::Reply;
/// let shutdown = tessera_core::Shutdown::new();
/// let server = PluginServerBuilder::new(nats, Default::default(), "ps1")
///     .operation("hello", PluginScope::only(["weather"]), |req| async move {
///         Ok(Reply { headers: Default::default(), payload: format!("hi {}", req.token.account_id).into() })
///     })
///     .start(shutdown.clone())
///     .await?;
/// server.wait_caught_up(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
pub struct PluginServerBuilder {
    nats: async_nats::Client,
    subjects: Subjects,
    server_id: String,
    operations: HashMap<String, Operation>,
    max_in_flight: usize,
    grace: Duration,
}

impl PluginServerBuilder {
    pub fn new(nats: async_nats::Client, subjects: Subjects, server_id: impl Into<String>) -> Self {
        PluginServerBuilder {
            nats,
            subjects,
            server_id: server_id.into(),
            operations: HashMap::new(),
            max_in_flight: 256,
            grace: Duration::from_secs(10),
        }
    }

    /// Adds an operation, served at `svc.<server_id>.<name>`.
    pub fn operation<F, Fut>(mut self, name: &str, scope: PluginScope, f: F) -> Self
    where
        F: Fn(ServiceRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Reply, WireError>> + Send + 'static,
    {
        let handler: OpHandler = Arc::new(move |req| Box::pin(f(req)));
        self.operations
            .insert(name.to_owned(), Operation { scope, handler });
        self
    }

    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Starts consuming distributions and serving. Returns once both are running.
    pub async fn start(self, shutdown: Shutdown) -> Result<PluginServer, Error> {
        ids::check("server id", &self.server_id)?;
        for name in self.operations.keys() {
            ids::check("operation", name)?;
        }
        let client = Client::new(self.nats.clone(), self.subjects.clone());
        let store = Arc::new(TokenStore::default());
        let verifier = Arc::new(Verifier::new(client.clone(), self.server_id.clone()));
        let (caught_up_tx, caught_up) = watch::channel(false);

        let consumer = tokio::spawn(consume(
            self.nats.clone(),
            self.subjects.clone(),
            self.server_id.clone(),
            store.clone(),
            verifier.clone(),
            caught_up_tx,
            shutdown.clone(),
        ));
        tokio::spawn(sweep(store.clone(), shutdown.clone()));

        let state = Arc::new(Served {
            store: store.clone(),
            verifier,
            client,
            operations: self.operations,
        });
        let spec = service::ServiceSpec {
            name: self
                .subjects
                .service_name(&format!("svc-{}", self.server_id)),
            description: format!("Tessera plugin server {}", self.server_id),
            queue_group: self.subjects.svc_queue(&self.server_id),
            max_in_flight: self.max_in_flight,
            grace: self.grace,
            endpoints: vec![Endpoint {
                name: "operations".into(),
                subject: self.subjects.svc_server(&self.server_id),
                handler: handler(move |req| serve(state.clone(), req)),
            }],
        };
        let service = service::start(self.nats, spec, shutdown)
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        Ok(PluginServer {
            store,
            caught_up,
            service,
            consumer,
        })
    }
}

/// A running plugin server replica.
pub struct PluginServer {
    store: Arc<TokenStore>,
    caught_up: watch::Receiver<bool>,
    service: tokio::task::JoinHandle<()>,
    consumer: tokio::task::JoinHandle<()>,
}

impl PluginServer {
    /// The tokens this replica holds.
    pub fn tokens(&self) -> &Arc<TokenStore> {
        &self.store
    }

    /// Waits (bounded) until every distribution that existed at start has been applied.
    /// Returns whether it caught up in time.
    pub async fn wait_caught_up(&self, timeout: Duration) -> bool {
        let mut rx = self.caught_up.clone();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits for the service to drain after shutdown.
    pub async fn join(self) {
        let _ = self.service.await;
        self.consumer.abort();
    }
}

struct Served {
    store: Arc<TokenStore>,
    verifier: Arc<Verifier>,
    client: Client,
    operations: HashMap<String, Operation>,
}

async fn serve(state: Arc<Served>, req: Incoming) -> Result<Reply, WireError> {
    let operation = req
        .subject
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_owned();
    let op = state.operations.get(&operation).ok_or_else(|| {
        WireError::new(
            ErrorCode::NotFound,
            format!("unknown operation {operation:?}"),
        )
    })?;
    let bearer = req
        .header(headers::AUTHORIZATION)
        .and_then(|v| v.strip_prefix(headers::BEARER_PREFIX))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            WireError::new(
                ErrorCode::Unauthenticated,
                "missing Authorization: Bearer <plugin token>",
            )
        })?;
    if bearer.len() > codec::MAX_MESSAGE_BYTES {
        return Err(WireError::new(
            ErrorCode::Unauthenticated,
            "plugin token too large",
        ));
    }
    let now = now_unix();
    let token = match state.store.authenticate(bearer, &op.scope, now) {
        Ok(info) => info,
        Err(AuthError::Unknown) => introspect(&state, bearer, &op.scope, now).await?,
        Err(AuthError::Unverified) => verify_stored(&state, bearer, &op.scope, now).await?,
        Err(e) => return Err(e.into()),
    };
    let request = ServiceRequest {
        operation,
        token,
        headers: req.headers,
        body: req.payload,
    };
    (op.handler)(request).await
}

/// First use of a distributed token: check its signature (the only time), then serve from
/// the store like any other.
async fn verify_stored(
    state: &Served,
    bearer: &str,
    scope: &PluginScope,
    now: u64,
) -> Result<Arc<TokenInfo>, WireError> {
    match state.verifier.verify(bearer).await {
        Ok(_) => {
            state.store.mark_verified(bearer);
            state
                .store
                .authenticate(bearer, scope, now)
                .map_err(Into::into)
        }
        Err(VerifyError::Rejected(e)) => {
            tracing::warn!(error = %e, "dropping a distributed token that does not verify");
            state.store.remove(bearer);
            Err(e)
        }
        Err(e) => Err(e.into()),
    }
}

/// The fallback for a client faster than the distribution: verify locally, then ask the
/// broker whether the token is live, and keep it if so.
async fn introspect(
    state: &Served,
    bearer: &str,
    scope: &PluginScope,
    now: u64,
) -> Result<Arc<TokenInfo>, WireError> {
    let info = state
        .verifier
        .verify(bearer)
        .await
        .map_err(WireError::from)?;
    if state.store.is_revoked(&info.token_id) {
        return Err(AuthError::Revoked.into());
    }
    let live = state.client.introspect(bearer).await.map_err(|e| {
        WireError::new(
            ErrorCode::Unavailable,
            format!("token not yet distributed and introspection failed: {e}"),
        )
    })?;
    if !live.active {
        return Err(AuthError::Unknown.into());
    }
    state.store.insert(bearer, info);
    state
        .store
        .authenticate(bearer, scope, now)
        .map_err(Into::into)
}

/// Applies `dist.<server_id>` in stream order, forever (the ordered consumer recreates
/// itself after a reconnect or a gap).
async fn consume(
    nats: async_nats::Client,
    subjects: Subjects,
    server_id: String,
    store: Arc<TokenStore>,
    verifier: Arc<Verifier>,
    caught_up: watch::Sender<bool>,
    shutdown: Shutdown,
) {
    let js = jetstream::new(nats);
    let mut backoff = Duration::from_millis(100);
    // The stream sequence to resume from: a new consumer picks up after the last event
    // applied instead of replaying the whole stream.
    let mut next_seq = 0u64;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let cx = Consume {
            js: &js,
            subjects: &subjects,
            server_id: &server_id,
            store: &store,
            verifier: &verifier,
        };
        match consume_once(&cx, &mut next_seq, &caught_up, &shutdown).await {
            Ok(()) => return,
            Err(ConsumeError::Stalled) => {
                tracing::debug!(
                    server_id,
                    next_seq,
                    "no distribution for a while; renewing the consumer"
                );
                backoff = Duration::from_millis(100);
            }
            Err(ConsumeError::Failed(e)) => {
                tracing::warn!(server_id, error = %e, "distribution consumer failed; restarting");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// How long the consumer may be silent before it is renewed. async-nats 0.51's ordered
/// consumer can stop yielding for good after missed heartbeats (seen when one node of a
/// NATS cluster stops); renewing it from the last applied sequence is cheap and safe.
const STALL: Duration = Duration::from_secs(10);

struct Consume<'a> {
    js: &'a jetstream::Context,
    subjects: &'a Subjects,
    server_id: &'a str,
    store: &'a TokenStore,
    verifier: &'a Verifier,
}

enum ConsumeError {
    Stalled,
    Failed(async_nats::Error),
}

impl<E: Into<async_nats::Error>> From<E> for ConsumeError {
    fn from(e: E) -> Self {
        ConsumeError::Failed(e.into())
    }
}

impl std::fmt::Display for ConsumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsumeError::Stalled => f.write_str("stalled"),
            ConsumeError::Failed(e) => e.fmt(f),
        }
    }
}

async fn consume_once(
    cx: &Consume<'_>,
    next_seq: &mut u64,
    caught_up: &watch::Sender<bool>,
    shutdown: &Shutdown,
) -> Result<(), ConsumeError> {
    let stream = cx.js.get_stream(cx.subjects.dist_stream()).await?;
    let deliver_policy = match *next_seq {
        0 => consumer::DeliverPolicy::All,
        start_sequence => consumer::DeliverPolicy::ByStartSequence { start_sequence },
    };
    let mut consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: cx.subjects.dist(cx.server_id),
            deliver_policy,
            ..Default::default()
        })
        .await?;
    if consumer.info().await?.num_pending == 0 {
        caught_up.send_replace(true);
    }
    let mut messages = consumer.messages().await?;
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            next = tokio::time::timeout(STALL, messages.next()) => next,
        };
        let Ok(next) = next else {
            return Err(ConsumeError::Stalled);
        };
        let Some(msg) = next else {
            return Err(ConsumeError::Failed("distribution stream ended".into()));
        };
        let msg = msg?;
        let (pending, seq) = msg
            .info()
            .map(|i| (i.pending, i.stream_sequence))
            .unwrap_or((0, 0));
        apply(&msg, cx.store, cx.verifier).await;
        if seq > 0 {
            *next_seq = seq + 1;
        }
        if pending == 0 {
            caught_up.send_replace(true);
        }
    }
}

async fn apply(msg: &jetstream::Message, store: &TokenStore, verifier: &Verifier) {
    let schema = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::SCHEMA))
        .map(|v| v.as_str());
    if let Err(e) = DIST_EVENT.check(schema) {
        tracing::warn!(error = %e, "skipping distribution event of an unknown schema");
        return;
    }
    let event = match codec::decode::<DistEvent>(&msg.payload) {
        Ok(ev) => ev,
        Err(e) => {
            tracing::warn!(error = %e, "skipping undecodable distribution event");
            return;
        }
    };
    match event {
        DistEvent::Token { token } => match verifier.claims(&token) {
            // Stored now, its signature checked on first use: the distribution subject is
            // writable by the broker role alone, and most tokens are never presented at
            // every server they are distributed to, so verifying each on receipt would
            // spend an EdDSA verification per token per server for nothing.
            Ok(info) if info.expires_at > now_unix() => {
                store.insert_unverified(&token, info);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "dropping a distributed token with unreadable claims")
            }
        },
        DistEvent::Revoke { token_ids } => {
            store.revoke(&token_ids, now_unix() + 24 * 3600);
            tracing::info!(count = token_ids.len(), "tokens revoked");
        }
    }
}

async fn sweep(store: Arc<TokenStore>, shutdown: Shutdown) {
    // Often enough that memory follows the live tokens closely; a pass is one scan of a map.
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => store.purge_expired(now_unix()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, plugin: &str, exp: u64) -> TokenInfo {
        TokenInfo {
            token_id: id.into(),
            account_id: "acct".into(),
            plugin_id: plugin.into(),
            expires_at: exp,
        }
    }

    #[test]
    fn store_authenticates_only_live_tokens_for_the_right_plugin() {
        let s = TokenStore::default();
        assert!(s.insert("tok-a", info("a", "weather", 100)));
        assert_eq!(
            s.authenticate("tok-a", &PluginScope::Any, 50)
                .unwrap()
                .token_id,
            "a"
        );
        assert_eq!(
            s.authenticate("tok-b", &PluginScope::Any, 50),
            Err(AuthError::Unknown)
        );
        assert_eq!(
            s.authenticate("tok-a", &PluginScope::Any, 100),
            Err(AuthError::Expired)
        );
        assert_eq!(
            s.authenticate("tok-a", &PluginScope::only(["maps"]), 50),
            Err(AuthError::WrongPlugin("weather".into()))
        );
        s.revoke(&["a".into()], 200);
        assert_eq!(
            s.authenticate("tok-a", &PluginScope::Any, 50),
            Err(AuthError::Unknown)
        );
        assert!(
            !s.insert("tok-a", info("a", "weather", 100)),
            "a revoked token stays out"
        );
    }

    #[test]
    fn unverified_tokens_are_served_only_after_verification() {
        let s = TokenStore::default();
        assert!(s.insert_unverified("tok-u", info("u", "weather", 100)));
        assert!(s.contains("u"));
        assert_eq!(
            s.authenticate("tok-u", &PluginScope::Any, 50),
            Err(AuthError::Unverified)
        );
        s.mark_verified("tok-u");
        assert_eq!(
            s.authenticate("tok-u", &PluginScope::Any, 50)
                .unwrap()
                .token_id,
            "u"
        );
        s.insert_unverified("tok-f", info("f", "weather", 100));
        s.remove("tok-f");
        assert!(!s.contains("f"));
        assert_eq!(
            s.authenticate("tok-f", &PluginScope::Any, 50),
            Err(AuthError::Unknown)
        );
    }

    #[test]
    fn purge_forgets_expired() {
        let s = TokenStore::default();
        s.insert("t1", info("1", "p", 10));
        s.insert("t2", info("2", "p", 30));
        s.purge_expired(20);
        assert_eq!(s.len(), 1);
        assert!(s.contains("2"));
    }
}
