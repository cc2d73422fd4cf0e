//! The dev stack: local `nats-server` and `redis-server` child processes for `tessera-dev
//! up`, the benchmark and the integration-test harness; [`stack::DevStack`], those servers
//! with the workers in this process; a stub third-party identity provider ([`idp`]); the
//! protocol's conformance vectors ([`conformance`], `tessera-dev conformance`).
//! A dev tool: the production image never links it.
//!
//! Real servers, not fakes: permissions, JetStream and reconnects behave as in production.
//! Ports are picked free at start-up, so parallel test runs never collide, and kept across
//! [`LocalNats::restart`] / [`LocalRedis::restart`], so clients reconnect to the same URL.
//!
//! Architecture invariant: a child's stdout and stderr are always piped and drained by a
//! background task (never inherited), so a child never holds the parent's terminal or pipe
//! open after the parent exits and never blocks on a full pipe. The last lines are kept for
//! error messages. Children are killed when their handle is dropped.

#![forbid(unsafe_code)]

pub mod conformance;
pub mod idp;
mod redis;
mod redis_cluster;
pub mod stack;
pub mod up;
pub use idp::StubIdp;
pub use redis::{ClusterNodeOptions, LocalRedis, RedisOptions};
pub use redis_cluster::{LocalRedisCluster, RedisClusterOptions};

use std::collections::VecDeque;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tessera_bus_config::{Role, ServerConfig};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const NATS: &str = "nats-server";
const REDIS: &str = "redis-server";
/// Where `make setup` installs nats-server, relative to the repository root.
const NATS_LOCAL: &str = ".tools/nats/bin/nats-server";
const TAIL_LINES: usize = 50;
/// How long a graceful stop may take before the child is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum DevstackError {
    #[error("{what} not found (tried: {}); run `make setup` to install it", tried.join(", "))]
    NotFound {
        what: &'static str,
        tried: Vec<String>,
    },
    #[error("could not spawn {what} ({}): {source}", binary.display())]
    Spawn {
        what: &'static str,
        binary: PathBuf,
        source: io::Error,
    },
    #[error("{what} did not start: {reason}\n--- last {} log lines ---\n{}", log_tail.len(), log_tail.join("\n"))]
    Startup {
        what: &'static str,
        reason: String,
        log_tail: Vec<String>,
    },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

/// `$TESSERA_NATS_SERVER` if set, else `.tools/nats/bin/nats-server` in the current directory
/// or an ancestor (so tests run from a crate directory find the repository's copy), or in an
/// ancestor of the running executable, else `$PATH`.
pub fn find_nats_server() -> Result<PathBuf, DevstackError> {
    find_binary(NATS, "TESSERA_NATS_SERVER", Some(NATS_LOCAL))
}

/// `$TESSERA_REDIS_SERVER` if set, else `redis-server` on `$PATH`.
pub fn find_redis_server() -> Result<PathBuf, DevstackError> {
    find_binary(REDIS, "TESSERA_REDIS_SERVER", None)
}

fn find_binary(
    what: &'static str,
    env_var: &str,
    project_local: Option<&str>,
) -> Result<PathBuf, DevstackError> {
    if let Some(p) = std::env::var_os(env_var).filter(|v| !v.is_empty()) {
        // An explicit choice is never silently replaced by some other binary.
        let p = PathBuf::from(p);
        return match is_executable(&p) {
            true => Ok(p),
            false => Err(DevstackError::NotFound {
                what,
                tried: vec![format!("${env_var}={}", p.display())],
            }),
        };
    }
    let mut tried = vec![format!("${env_var} (unset)")];
    // The current directory's ancestors, then the executable's (a `tessera` built in the
    // repository finds the repository's copy from wherever it is run).
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    if let Some(rel) = project_local {
        for start in [std::env::current_dir().ok(), exe_dir]
            .into_iter()
            .flatten()
        {
            for dir in start.ancestors() {
                let p = dir.join(rel);
                if is_executable(&p) {
                    return Ok(p);
                }
                tried.push(p.display().to_string());
            }
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(p) = std::env::split_paths(&path)
        .map(|d| d.join(what))
        .find(|p| is_executable(p))
    {
        return Ok(p);
    }
    tried.push(format!("{what} on $PATH"));
    Err(DevstackError::NotFound { what, tried })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn resolve(
    what: &'static str,
    binary: Option<&Path>,
    find: fn() -> Result<PathBuf, DevstackError>,
) -> Result<PathBuf, DevstackError> {
    match binary {
        Some(p) if is_executable(p) => Ok(p.to_owned()),
        Some(p) => Err(DevstackError::NotFound {
            what,
            tried: vec![p.display().to_string()],
        }),
        None => find(),
    }
}

/// Writes a file readable only by us: the configs hold passwords.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), DevstackError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io_err = |source: io::Error| DevstackError::Io {
        context: format!("writing {}", path.display()),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err)?;
    // `mode` applies only on creation; a file left by an older run may be wider.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io_err)?;
    f.write_all(text.as_bytes()).map_err(io_err)
}

type Tail = Arc<Mutex<VecDeque<String>>>;

/// One child with its output drained into a shared tail of recent lines.
struct Proc {
    what: &'static str,
    child: Option<Child>,
    tail: Tail,
}

impl Proc {
    /// Spawns `cmd`; the receiver yields every output line until both pipes close.
    fn spawn(
        what: &'static str,
        binary: &Path,
        mut cmd: Command,
    ) -> Result<(Proc, mpsc::UnboundedReceiver<String>), DevstackError> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| DevstackError::Spawn {
            what,
            binary: binary.to_owned(),
            source,
        })?;
        let tail = Tail::default();
        let (tx, rx) = mpsc::unbounded_channel();
        if let Some(out) = child.stdout.take() {
            tokio::spawn(drain(what, out, tail.clone(), tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(drain(what, err, tail.clone(), tx));
        }
        let proc = Proc {
            what,
            child: Some(child),
            tail,
        };
        Ok((proc, rx))
    }

    /// Feeds output lines to `ready` until it returns true. Fails at once if the child exits
    /// (both pipes closed), or after `limit`; on failure the child is killed.
    async fn wait_ready(
        &mut self,
        mut rx: mpsc::UnboundedReceiver<String>,
        limit: Duration,
        mut ready: impl FnMut(&str) -> bool,
    ) -> Result<(), DevstackError> {
        let child = &mut self.child;
        let outcome = tokio::time::timeout(limit, async {
            while let Some(line) = rx.recv().await {
                if ready(&line) {
                    return Ok(());
                }
            }
            let status = match child.as_mut() {
                Some(c) => c
                    .wait()
                    .await
                    .map_or_else(|e| e.to_string(), |s| s.to_string()),
                None => "not running".to_owned(),
            };
            Err(format!("exited before it was ready ({status})"))
        })
        .await
        .unwrap_or_else(|_| Err(format!("not ready within {limit:?}")));
        match outcome {
            Ok(()) => Ok(()),
            Err(reason) => {
                self.kill().await;
                Err(self.startup_error(reason))
            }
        }
    }

    fn startup_error(&self, reason: String) -> DevstackError {
        DevstackError::Startup {
            what: self.what,
            reason,
            log_tail: self.log_tail(),
        }
    }

    fn log_tail(&self) -> Vec<String> {
        let tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        tail.iter().cloned().collect()
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// SIGTERM (both servers then shut down cleanly: JetStream flushes, locks are released),
    /// SIGKILL if that takes longer than [`STOP_GRACE`].
    async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            let term = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
            if term.is_ok_and(|s| s.success())
                && tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok()
            {
                return;
            }
            tracing::warn!(
                server = self.what,
                pid,
                "no clean exit after SIGTERM; killing"
            );
        }
        let _ = child.kill().await;
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Belt and braces with `kill_on_drop`: a leaked server would hold its port and store.
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
    }
}

/// Reads lines (lossily: a server's log is not ours to reject) until the pipe closes.
async fn drain(
    what: &'static str,
    stream: impl AsyncRead + Unpin,
    tail: Tail,
    tx: mpsc::UnboundedSender<String>,
) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    while matches!(reader.read_until(b'\n', &mut buf).await, Ok(n) if n > 0) {
        let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
        buf.clear();
        tracing::debug!(server = what, "{line}");
        {
            let mut t = tail.lock().unwrap_or_else(PoisonError::into_inner);
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line.clone());
        }
        // After start-up nobody listens; the tail alone keeps the lines.
        let _ = tx.send(line);
    }
}

pub struct NatsOptions {
    /// With `port: None` the server picks a free port; it is then fixed for restarts.
    pub config: ServerConfig,
    /// Where `nats.conf` is written (the JetStream store dir is in `config`).
    pub dir: PathBuf,
    /// `None`: [`find_nats_server`].
    pub binary: Option<PathBuf>,
    pub ready_timeout: Duration,
    /// The HTTP monitoring endpoint (`/varz`, ...) on a free port of the listen host, for
    /// the benchmark's message counts; off by default (nothing listens that is not needed).
    pub monitor: bool,
}

impl NatsOptions {
    pub fn new(config: ServerConfig, dir: impl Into<PathBuf>) -> NatsOptions {
        NatsOptions {
            config,
            dir: dir.into(),
            binary: None,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            monitor: false,
        }
    }
}

/// A running `nats-server`.
pub struct LocalNats {
    proc: Proc,
    opts: NatsOptions,
    port: u16,
    monitor_port: Option<u16>,
}

impl LocalNats {
    /// Writes `<dir>/nats.conf` (mode 0600), spawns the server and waits until it is ready.
    pub async fn start(mut opts: NatsOptions) -> Result<LocalNats, DevstackError> {
        let (proc, port, monitor_port) = spawn_nats(&opts).await?;
        opts.config.port = Some(port);
        tracing::info!(port, "nats-server ready");
        Ok(LocalNats {
            proc,
            opts,
            port,
            monitor_port,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://host:port` of the monitoring endpoint, when [`NatsOptions::monitor`] is on.
    pub fn monitor_url(&self) -> Option<String> {
        self.monitor_port
            .map(|p| format!("http://{}:{p}", self.host()))
    }

    pub fn host(&self) -> &str {
        &self.opts.config.host
    }

    /// `nats://user:password@host:port` for `role`.
    pub fn url_for(&self, role: Role) -> String {
        self.opts
            .config
            .credentials
            .url(role, self.host(), self.port)
    }

    /// The role passwords and the callout issuer this server was configured with.
    pub fn credentials(&self) -> &tessera_bus_config::Credentials {
        &self.opts.config.credentials
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// The last lines the server logged.
    pub fn log_tail(&self) -> Vec<String> {
        self.proc.log_tail()
    }

    /// Graceful stop (SIGTERM), bounded, then SIGKILL.
    pub async fn stop(&mut self) {
        self.proc.stop().await;
    }

    /// SIGKILL, as for a crash.
    pub async fn kill(&mut self) {
        self.proc.kill().await;
    }

    /// Stops (if running) and starts again on the same port, config and store dir, so clients
    /// reconnect and JetStream data survives.
    pub async fn restart(&mut self) -> Result<(), DevstackError> {
        self.proc.stop().await;
        let (proc, _, monitor_port) = spawn_nats(&self.opts).await?;
        self.proc = proc;
        // A free port again: the one before may have been taken meanwhile.
        self.monitor_port = monitor_port;
        Ok(())
    }
}

/// The port after `marker` in a nats-server log line (`... on 127.0.0.1:4222`).
fn port_after(line: &str, marker: &str) -> Option<u16> {
    let (_, addr) = line.split_once(marker)?;
    addr.rsplit(':').next()?.trim().parse().ok()
}

async fn spawn_nats(opts: &NatsOptions) -> Result<(Proc, u16, Option<u16>), DevstackError> {
    let binary = resolve(NATS, opts.binary.as_deref(), find_nats_server)?;
    let conf = opts.dir.join("nats.conf");
    write_private(&conf, &opts.config.render())?;
    let mut cmd = Command::new(&binary);
    cmd.arg("-c").arg(&conf);
    if opts.monitor {
        // -1: a free port, as for clients; it binds the listen host (loopback here).
        cmd.args(["-m", "-1"]);
    }
    let (mut proc, rx) = Proc::spawn(NATS, &binary, cmd)?;
    let (mut port, mut monitor_port) = (None, None);
    proc.wait_ready(rx, opts.ready_timeout, |line| {
        port = port.or_else(|| port_after(line, "Listening for client connections on "));
        monitor_port = monitor_port.or_else(|| port_after(line, "Starting http monitor on "));
        port.is_some() && line.contains("Server is ready")
    })
    .await?;
    match port {
        Some(_) if opts.monitor && monitor_port.is_none() => {
            Err(proc.startup_error("no monitor port in the log".into()))
        }
        Some(port) => Ok((proc, port, monitor_port)),
        None => Err(proc.startup_error("no client port in the log".into())),
    }
}

#[cfg(test)]
mod tests;
