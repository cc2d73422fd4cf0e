//! The health and metrics endpoint of a worker process: `TESSERA_HEALTH_ADDR` (e.g.
//! `0.0.0.0:8080`), off when unset.
//!
//! - `GET /healthz`: 200 while the process runs (liveness).
//! - `GET /readyz`: 200 only when every registered check passes (the NATS connection is up,
//!   Redis answers a PING, ...), 503 while a worker is starting (nothing registered yet) or
//!   draining, or when a check fails; the body says which.
//! - `GET /metrics`: Prometheus text format (see [`crate::metrics`]).
//!
//! A tiny HTTP/1.1 responder on tokio (one request per connection, `Connection: close`):
//! three fixed GET routes do not need an HTTP stack in every worker.
//!
//! Workers register their checks with [`Readiness::register`], bound to their
//! [`Shutdown`], so a draining worker reports not ready and a stopped one is forgotten.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::Shutdown;
use crate::config::{ConfigError, Source};

/// `host:port` of the health server; unset: no health server.
pub const ENV_HEALTH_ADDR: &str = "TESSERA_HEALTH_ADDR";
/// Bound on one readiness check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on reading a request (a client that sends nothing is dropped).
const READ_TIMEOUT: Duration = Duration::from_secs(5);

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

/// The address from `TESSERA_HEALTH_ADDR`, if set.
pub fn addr_from_env(src: &dyn Source) -> Result<Option<SocketAddr>, ConfigError> {
    match src.get(ENV_HEALTH_ADDR) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|e| {
            ConfigError::new(
                ENV_HEALTH_ADDR,
                format!("{v:?}: {e} (expected host:port, e.g. 0.0.0.0:8080)"),
            )
        }),
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

/// Serves `/healthz`, `/readyz` (from `readiness`) and `/metrics` on `addr` until `shutdown`.
/// Installs the metrics recorder if it is not installed yet.
pub async fn serve(
    addr: SocketAddr,
    readiness: Readiness,
    shutdown: Shutdown,
) -> std::io::Result<HealthServer> {
    let metrics = crate::metrics::install();
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    tracing::info!(addr = %local_addr, "health server: /healthz /readyz /metrics");
    let task = tokio::spawn(async move {
        loop {
            let (mut stream, _) = tokio::select! {
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
            let readiness = readiness.clone();
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let Some(path) = read_request_path(&mut stream).await else {
                    return;
                };
                let (status, content_type, body) = match path.as_str() {
                    "/healthz" | "/livez" => (200, "text/plain", "ok\n".to_owned()),
                    "/readyz" => match readiness.report().await {
                        Ok(s) => (200, "text/plain", format!("{s}\n")),
                        Err(s) => (503, "text/plain", format!("{s}\n")),
                    },
                    "/metrics" => (200, "text/plain; version=0.0.4", metrics.render()),
                    _ => (404, "text/plain", "not found\n".to_owned()),
                };
                let reason = match status {
                    200 => "OK",
                    404 => "Not Found",
                    _ => "Service Unavailable",
                };
                let head = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(HealthServer { local_addr, task })
}

/// Reads the request head (bounded in size and time); the path of a `GET`/`HEAD`, else `None`.
async fn read_request_path(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(512);
    let read = async {
        let mut chunk = [0u8; 512];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Some(())
    };
    tokio::time::timeout(READ_TIMEOUT, read).await.ok()??;
    let line = std::str::from_utf8(&buf).ok()?.lines().next()?.to_owned();
    let mut parts = line.split_whitespace();
    let method = parts.next()?;
    let target = parts.next()?;
    if method != "GET" && method != "HEAD" {
        return None;
    }
    Some(target.split('?').next().unwrap_or(target).to_owned())
}

/// Starts the health server when `TESSERA_HEALTH_ADDR` is set, reporting on
/// [`Readiness::global`]. For the `tessera` worker commands.
pub async fn serve_from_env(
    src: &dyn Source,
    shutdown: Shutdown,
) -> Result<Option<HealthServer>, HealthError> {
    match addr_from_env(src)? {
        None => Ok(None),
        Some(addr) => Ok(Some(
            serve(addr, Readiness::global().clone(), shutdown)
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
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = out.split_once("\r\n\r\n").unwrap().1.to_owned();
        (status, body)
    }

    #[tokio::test]
    async fn live_ready_and_metrics() {
        let readiness = Readiness::default();
        let shutdown = Shutdown::new();
        let server = serve(
            "127.0.0.1:0".parse().unwrap(),
            readiness.clone(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let addr = server.local_addr;
        assert_eq!(get(addr, "/healthz").await.0, 200);
        // Nothing registered yet: starting.
        assert_eq!(get(addr, "/readyz").await.0, 503);

        let worker = Shutdown::new();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = up.clone();
        readiness.register("test/dep", &worker, move || {
            let ok = flag.load(std::sync::atomic::Ordering::SeqCst);
            async move { if ok { Ok(()) } else { Err("down".into()) } }
        });
        assert_eq!(get(addr, "/readyz").await, (200, "test/dep: ok\n".into()));
        up.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(get(addr, "/readyz").await, (503, "test/dep: down\n".into()));
        up.store(true, std::sync::atomic::Ordering::SeqCst);
        worker.cancel();
        assert_eq!(
            get(addr, "/readyz").await,
            (503, "test/dep: draining\n".into())
        );

        crate::metrics::record_request(&"keys".into(), "ok", Duration::from_millis(3));
        let (status, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            body.contains(r#"tessera_requests_total{endpoint="keys",outcome="ok"} 1"#),
            "{body}"
        );
        assert!(
            body.contains("tessera_request_duration_seconds_bucket"),
            "{body}"
        );
        assert_eq!(get(addr, "/nope").await.0, 404);

        shutdown.cancel();
        server.join().await;
    }
}
