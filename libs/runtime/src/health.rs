//! The health and metrics endpoint of a worker process: `TESSERA_HEALTH_ADDR` (e.g.
//! `0.0.0.0:8080`), off when unset.
//!
//! - `GET /healthz`: 200 while the process runs (liveness).
//! - `GET /readyz`: 200 only when every registered check passes (the NATS connection is up,
//!   Redis answers a PING, ...), 503 while a worker is starting (nothing registered yet) or
//!   draining, or when a check fails; the body says which.
//! - `GET /metrics`: Prometheus text format (see [`crate::metrics`]).
//!
//! A tiny HTTP/1.1 responder on tokio (one request per connection, `Connection: close`,
//! see [`http`]): three fixed routes do not need an HTTP stack in every worker. `GET` and
//! `HEAD` (the same head, no body) are served; any other method gets `405 Method Not
//! Allowed` with `Allow: GET, HEAD`.
//!
//! The port is for probes and scrapers, but it is a TCP port like any other, so it bounds
//! what a peer can hold ([`Limits`]): at most `TESSERA_HEALTH_MAX_CONNECTIONS` (64)
//! connections at once, and a connection beyond that is closed at once, unanswered; the
//! request head must arrive within `TESSERA_HEALTH_READ_TIMEOUT` (1 s) of the accept, and
//! the answer be taken within [`WRITE_TIMEOUT`], or the connection is closed. A peer that
//! fills every slot makes probes fail for as long as it holds them (each slot for at most
//! read timeout + write timeout): keep the port off public networks.
//!
//! Workers register their checks with [`Readiness::register`], bound to their
//! [`Shutdown`], so a draining worker reports not ready and a stopped one is forgotten.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::Shutdown;
use crate::config::registry::{HEALTH_ADDR, HEALTH_MAX_CONNECTIONS, HEALTH_READ_TIMEOUT};
use crate::config::{ConfigError, Reader, Source};

mod http;

/// Bound on one readiness check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on writing an answer (the readiness checks run before it starts): a peer that
/// does not take it in time loses its connection and its slot. A scraper reading
/// `/metrics` (tens of KiB) needs milliseconds.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Check = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

struct Entry {
    name: String,
    shutdown: Shutdown,
    check: Check,
}

/// The readiness checks of this process.
#[derive(Clone, Default)]
pub struct Readiness {
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Readiness {
    /// The process-wide registry the health server reports on.
    pub fn global() -> &'static Readiness {
        static GLOBAL: std::sync::OnceLock<Readiness> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(Readiness::default)
    }

    /// Adds a check named `name` (e.g. `broker/redis`). Once `shutdown` is cancelled the
    /// process reports "draining" (not ready) for good: a worker process ends after its drain.
    pub fn register<F, Fut>(&self, name: impl Into<String>, shutdown: &Shutdown, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: Check = Arc::new(move || Box::pin(check()));
        self.lock().push(Entry {
            name: name.into(),
            shutdown: shutdown.clone(),
            check,
        });
    }

    /// A check that holds while `client` is connected to a NATS server.
    pub fn register_nats(
        &self,
        name: impl Into<String>,
        shutdown: &Shutdown,
        client: async_nats::Client,
    ) {
        self.register(name, shutdown, move || {
            let state = client.connection_state();
            async move {
                match state {
                    async_nats::connection::State::Connected => Ok(()),
                    other => Err(format!("NATS {other}")),
                }
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs every check (concurrently, each bounded); `Ok` with a summary when all pass.
    pub async fn report(&self) -> Result<String, String> {
        let entries: Vec<(String, bool, Check)> = self
            .lock()
            .iter()
            .map(|e| (e.name.clone(), e.shutdown.is_cancelled(), e.check.clone()))
            .collect();
        if entries.is_empty() {
            return Err("starting: no worker has registered yet".into());
        }
        if let Some((name, ..)) = entries.iter().find(|(_, draining, _)| *draining) {
            return Err(format!("{name}: draining"));
        }
        let results = futures::future::join_all(entries.iter().map(|(name, _, check)| {
            let fut = check();
            async move {
                let r = match tokio::time::timeout(CHECK_TIMEOUT, fut).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
                };
                (name.clone(), r)
            }
        }))
        .await;
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for (name, r) in results {
            match r {
                Ok(()) => ok.push(format!("{name}: ok")),
                Err(e) => failed.push(format!("{name}: {e}")),
            }
        }
        if failed.is_empty() {
            Ok(ok.join("\n"))
        } else {
            Err(failed.join("\n"))
        }
    }
}

/// The health server's settings: where it listens (`None`: off) and its [`Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    pub addr: Option<SocketAddr>,
    pub limits: Limits,
}

impl HealthSettings {
    pub fn read(r: &mut Reader) -> HealthSettings {
        let addr = r.optional(&HEALTH_ADDR, |v| {
            v.parse::<SocketAddr>()
                .map_err(|e| format!("{v:?}: {e} (expected host:port, e.g. 0.0.0.0:8080)"))
        });
        HealthSettings {
            addr,
            limits: Limits::read(r),
        }
    }
}

/// What one peer, and all of them together, can hold of the health server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; one more is closed at once, unanswered. Probes and a
    /// scraper need a handful; the bound keeps a flood from piling up tasks and sockets.
    pub max_connections: usize,
    /// From accept to a complete request head. A probe sends its head at once, so a
    /// second is generous; an idle or trickling connection is closed when it runs out.
    pub read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        // The registry's defaults, so servers started in-process (tests) match.
        Limits {
            max_connections: HEALTH_MAX_CONNECTIONS.default_parsed(),
            read_timeout: HEALTH_READ_TIMEOUT.default_duration(),
        }
    }
}

impl Limits {
    /// From `TESSERA_HEALTH_MAX_CONNECTIONS` (1-4096) and `TESSERA_HEALTH_READ_TIMEOUT`
    /// (10 ms-60 s), defaults when unset.
    pub fn read(r: &mut Reader) -> Limits {
        let max_connections: usize = r.parsed(&HEALTH_MAX_CONNECTIONS);
        r.check(
            &HEALTH_MAX_CONNECTIONS,
            (1..=4096).contains(&max_connections),
            "must be between 1 and 4096",
        );
        let read_timeout = r.duration(&HEALTH_READ_TIMEOUT);
        r.check(
            &HEALTH_READ_TIMEOUT,
            read_timeout >= Duration::from_millis(10) && read_timeout <= Duration::from_secs(60),
            "must be between 10ms and 60s",
        );
        Limits {
            max_connections,
            read_timeout,
        }
    }
}

/// A running health server.
pub struct HealthServer {
    pub local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl HealthServer {
    /// Waits until it has stopped (after `shutdown`).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Serves `/healthz`, `/readyz` (from `readiness`) and `/metrics` on `addr` until `shutdown`,
/// within `limits`. Installs the metrics recorder if it is not installed yet.
pub async fn serve(
    addr: SocketAddr,
    limits: Limits,
    readiness: Readiness,
    shutdown: Shutdown,
) -> std::io::Result<HealthServer> {
    let metrics = crate::metrics::install();
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    tracing::info!(addr = %local_addr, max_connections = limits.max_connections, read_timeout = ?limits.read_timeout, "health server: /healthz /readyz /metrics");
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "health server: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            // Every slot taken: close it now (dropping it) rather than queue it; an answer
            // would be one more write to a peer that may never read it.
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::debug!(
                    "health server: connection limit reached; closing a new connection"
                );
                continue;
            };
            let readiness = readiness.clone();
            let metrics = metrics.clone();
            tokio::spawn(async move {
                http::serve_connection(stream, limits, |path| {
                    let readiness = readiness.clone();
                    let metrics = metrics.clone();
                    async move { route(&path, &readiness, &metrics).await }
                })
                .await;
                drop(slot);
            });
        }
    });
    Ok(HealthServer { local_addr, task })
}

/// The answer to a `GET` of `path` (a `HEAD` sends its head only).
async fn route(
    path: &str,
    readiness: &Readiness,
    metrics: &metrics_exporter_prometheus::PrometheusHandle,
) -> http::Response {
    match path {
        "/healthz" | "/livez" => http::Response::text(200, "ok\n".to_owned()),
        "/readyz" => match readiness.report().await {
            Ok(s) => http::Response::text(200, format!("{s}\n")),
            Err(s) => http::Response::text(503, format!("{s}\n")),
        },
        "/metrics" => http::Response {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            body: metrics.render(),
            allow: false,
        },
        _ => http::Response::text(404, "not found\n".to_owned()),
    }
}

/// Starts the health server when `TESSERA_HEALTH_ADDR` is set, reporting on
/// [`Readiness::global`], with the [`Limits`] of the environment. For the `tessera` worker
/// commands.
pub async fn serve_from_env(
    src: &dyn Source,
    shutdown: Shutdown,
) -> Result<Option<HealthServer>, HealthError> {
    let HealthSettings { addr, limits } = crate::config::read(src, HealthSettings::read)?;
    match addr {
        None => Ok(None),
        Some(addr) => Ok(Some(
            serve(addr, limits, Readiness::global().clone(), shutdown)
                .await
                .map_err(|e| HealthError::Bind(addr, e))?,
        )),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("health server on {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
}

#[cfg(test)]
mod tests;
