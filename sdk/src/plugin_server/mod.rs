//! The plugin-server face (feature `plugin-server`).
//!
//! A plugin server with id `S`:
//!
//! 1. consumes `dist.S` from the start of the distribution stream with a consumer the broker
//!    opens for it (`distribution.open.S`), checked for gaps and renewed as needed,
//!    so every replica receives every token for `S` and a restarted replica replays all
//!    that can still be valid (the stream keeps events for the longest token lifetime);
//! 2. stores each token under the SHA-256 of the token string, with its claims (issuer,
//!    audience `S`, expiry checked), and verifies its signature against the broker's JWKS
//!    **once**, on first use;
//! 3. serves `svc.S.<operation>`: a request carries `Authorization: Bearer <token>`, and is
//!    served only if that token is stored (or, when it has not arrived yet, the broker's
//!    introspection says it is live), unexpired, unrevoked, and for a plugin the operation
//!    serves. Per request that is one hash and one map lookup, no signature check.
//!
//! # Layout
//!
//! - this file: the builder, the running server and the request path;
//! - `connect`: the plugin server's two connections, with its own credentials;
//! - `store`: [`TokenStore`], the tokens one server holds, and [`AuthError`];
//! - `verify`: the signature check against the broker's published keys;
//! - `consume`: the consumer of `dist.S` and how events are applied.

mod connect;
mod consume;
mod store;
mod verify;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tessera_protocol::now_unix;
use tessera_runtime::service::{self, Endpoint, Incoming, handler};
use tessera_schemas::{ErrorCode, Subjects, WireError, codec, headers, ids};
use tokio::sync::watch;

pub use connect::{
    connect, connect_distribution, connect_distribution_with_wait, connect_with_wait,
};
pub use store::{AuthError, TokenInfo, TokenStore};
pub use tessera_runtime::Shutdown;
pub use tessera_runtime::service::Reply;
use verify::{Verifier, VerifyError};

use crate::connection::Refusals;
use crate::{Client, Error};

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
/// # async fn demo(url: &str) -> Result<(), tessera_sdk::Error> {
/// use tessera_sdk::{PluginScope, PluginServerBuilder, Reply, Shutdown};
/// let shutdown = Shutdown::new();
/// // `url` holds the id's credentials, as `tessera plugin-servers add ps1` printed them.
/// let server = PluginServerBuilder::connect(url, Default::default(), "ps1")
///     .await?
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
    /// Where distributions are read (default: `nats`).
    distribution: Option<async_nats::Client>,
    /// The serving connection's refused publishes, when the SDK made it.
    refusals: Option<Arc<Refusals>>,
    subjects: Subjects,
    server_id: String,
    operations: HashMap<String, Operation>,
    max_in_flight: usize,
    grace: Duration,
    leeway: Duration,
}

impl PluginServerBuilder {
    /// A builder on connections made elsewhere: `nats` serves (and reads distributions
    /// unless [`PluginServerBuilder::distribution`] gives another connection). With a
    /// plugin server id's own credentials, [`PluginServerBuilder::connect`] makes both.
    pub fn new(nats: async_nats::Client, subjects: Subjects, server_id: impl Into<String>) -> Self {
        PluginServerBuilder {
            nats,
            distribution: None,
            refusals: None,
            subjects,
            server_id: server_id.into(),
            operations: HashMap::new(),
            max_in_flight: 256,
            grace: Duration::from_secs(10),
            leeway: tessera_protocol::jwt::DEFAULT_LEEWAY,
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

    /// Reads distributions on this connection instead of the serving one: with
    /// per-plugin-server credentials it must be the one [`connect_distribution`] made (the serving connection may not
    /// read distributions, and the distribution connection may not respond).
    pub fn distribution(mut self, nats: async_nats::Client) -> Self {
        self.distribution = Some(nats);
        self
    }

    /// The serving connection (e.g. to report its health).
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// How long a shutdown waits for requests in flight (default 10 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The clock leeway on token times (`exp`, `nbf`, `iat`): the platform's
    /// `TESSERA_CLOCK_LEEWAY` (`tessera_runtime::config::clock_leeway`), default 5 s.
    pub fn clock_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Starts consuming distributions and serving. Returns once both are running.
    pub async fn start(self, shutdown: Shutdown) -> Result<PluginServer, Error> {
        ids::check("server id", &self.server_id)?;
        for name in self.operations.keys() {
            ids::check("operation", name)?;
        }
        let mut client = Client::new(self.nats.clone(), self.subjects.clone());
        if let Some(refusals) = self.refusals.clone() {
            client = client.with_refusals(refusals);
        }
        let store = Arc::new(TokenStore::with_leeway(self.leeway));
        let verifier = Arc::new(Verifier::new(
            client.clone(),
            self.server_id.clone(),
            self.leeway,
        ));
        let (caught_up_tx, caught_up) = watch::channel(false);

        let consumer = tokio::spawn(consume::consume(
            self.distribution
                .clone()
                .unwrap_or_else(|| self.nats.clone()),
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
            .map_err(|e| Error::new(crate::ErrorKind::Unavailable, e.to_string()).with_source(e))?;
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
        return Err(tessera_protocol::jwt::Rejection::new(
            tessera_protocol::jwt::Reason::Malformed,
            "plugin token too large",
        )
        .into_wire(tessera_protocol::jwt::Verifier::PluginServer));
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
        Err(e @ VerifyError::Rejected(_)) => {
            let e = WireError::from(e);
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
    if !scope.allows(&info.plugin_id) {
        // Refused before the broker is asked: nothing to look up for a token this
        // operation would not serve anyway.
        return Err(AuthError::WrongPlugin(info.plugin_id).into());
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
