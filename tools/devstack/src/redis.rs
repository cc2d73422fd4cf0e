//! A local `redis-server` child: [`LocalRedis`], started from [`RedisOptions`].

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;

use super::{
    DEFAULT_READY_TIMEOUT, DevstackError, Proc, REDIS, find_redis_server, resolve, write_private,
};

/// Attempts at a free Redis port; only a lost race for the port is retried.
const REDIS_PORT_ATTEMPTS: usize = 5;

pub struct RedisOptions {
    /// Working directory (nothing is persisted) and where `redis.conf` is written.
    pub dir: PathBuf,
    /// `None`: [`find_redis_server`].
    pub binary: Option<PathBuf>,
    /// Sets `requirepass`.
    pub password: Option<String>,
    /// ACL user lines for redis.conf (`user <name> ... >password ...`, see
    /// `tessera_bus_config::redis_acl`); with them the default user is off.
    pub acl: Vec<String>,
    pub ready_timeout: Duration,
    /// A fixed port instead of a free one.
    pub port: Option<u16>,
    /// Keep data across restarts (append-only file in `dir`): the dev stack wants issued
    /// tokens to survive a restart; tests want a clean, fast server.
    pub persist: bool,
    /// Start as a Redis Cluster node (see `LocalRedisCluster`, which forms the cluster).
    pub cluster: Option<ClusterNodeOptions>,
}

/// A cluster node's own settings.
#[derive(Debug, Clone)]
pub struct ClusterNodeOptions {
    /// The cluster bus port (Redis's default, port + 10000, can fall past 65535 for a free
    /// port from the ephemeral range).
    pub bus_port: u16,
    /// `cluster-node-timeout`: how long a master may be unreachable before its replica takes
    /// over.
    pub node_timeout: Duration,
    /// The user and password a replica logs in to its master with (the default user is off).
    pub master_auth: (String, String),
}

impl RedisOptions {
    pub fn new(dir: impl Into<PathBuf>) -> RedisOptions {
        RedisOptions {
            dir: dir.into(),
            binary: None,
            password: None,
            acl: Vec::new(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
            port: None,
            persist: false,
            cluster: None,
        }
    }
}

/// A running `redis-server` on 127.0.0.1 (persistent only if asked).
pub struct LocalRedis {
    proc: Proc,
    opts: RedisOptions,
    port: u16,
}

impl LocalRedis {
    /// Picks a free port and starts the server on it, retrying if another process takes the
    /// port first (redis has no "pick a port" mode).
    pub async fn start(opts: RedisOptions) -> Result<LocalRedis, DevstackError> {
        if let Some(port) = opts.port {
            let proc = spawn_redis(&opts, port).await?;
            return Ok(LocalRedis { proc, opts, port });
        }
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            match spawn_redis(&opts, port).await {
                Ok(proc) => {
                    tracing::info!(port, "redis-server ready");
                    return Ok(LocalRedis { proc, opts, port });
                }
                Err(DevstackError::Startup { ref log_tail, .. })
                    if attempt < REDIS_PORT_ATTEMPTS
                        && log_tail
                            .iter()
                            .any(|l| l.contains("Address already in use")) =>
                {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:P`.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:P/`, or `redis://:password@127.0.0.1:P/`.
    pub fn url(&self) -> String {
        match &self.opts.password {
            None => format!("redis://127.0.0.1:{}/", self.port),
            Some(p) => format!("redis://:{}@127.0.0.1:{}/", percent_encode(p), self.port),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    pub fn log_tail(&self) -> Vec<String> {
        self.proc.log_tail()
    }

    pub async fn stop(&mut self) {
        self.proc.stop().await;
    }

    pub async fn kill(&mut self) {
        self.proc.kill().await;
    }

    /// Stops (if running) and starts again on the same port.
    pub async fn restart(&mut self) -> Result<(), DevstackError> {
        self.proc.stop().await;
        self.proc = spawn_redis(&self.opts, self.port).await?;
        Ok(())
    }
}

pub(crate) fn free_port() -> Result<u16, DevstackError> {
    // Free when asked; the short race until redis binds it is covered by retrying.
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| DevstackError::Io {
            context: "finding a free port".into(),
            source,
        })
}

async fn spawn_redis(opts: &RedisOptions, port: u16) -> Result<Proc, DevstackError> {
    let binary = resolve(REDIS, opts.binary.as_deref(), find_redis_server)?;
    // The password goes in a 0600 file, not on the command line where `ps` shows it.
    let conf = opts.dir.join("redis.conf");
    let mut text = opts.password.as_deref().map_or(String::new(), |p| {
        format!("requirepass {}\n", redis_quote(p))
    });
    if !opts.acl.is_empty() {
        text.push_str("user default off resetkeys -@all\n");
        for line in &opts.acl {
            text.push_str(line);
            text.push('\n');
        }
    }
    if let Some(c) = &opts.cluster {
        // Each node keeps its cluster state in its own directory. Without full coverage a
        // lost master stops only its own slots, not the whole cluster, until its replica
        // takes over.
        text.push_str(&format!(
            "cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout {}\n\
             cluster-port {}\ncluster-require-full-coverage no\nmasteruser {}\nmasterauth {}\n",
            c.node_timeout.as_millis(),
            c.bus_port,
            redis_quote(&c.master_auth.0),
            redis_quote(&c.master_auth.1),
        ));
    }
    write_private(&conf, &text)?;
    let mut cmd = Command::new(&binary);
    cmd.arg(&conf)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            if opts.persist { "yes" } else { "no" },
            "--daemonize",
            "no",
            "--dir",
        ])
        .arg(&opts.dir);
    let (mut proc, rx) = Proc::spawn(REDIS, &binary, cmd)?;
    proc.wait_ready(rx, opts.ready_timeout, |line| {
        line.contains("Ready to accept connections")
    })
    .await?;
    Ok(proc)
}

/// A double-quoted redis.conf string; escapes keep a stray quote or newline from ending it.
fn redis_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => out.extend(['\\', char::from(b)]),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
