//! Workers as processes of their own, the shape users deploy: `tessera worker auth`,
//! `tessera worker broker` and one `tessera plugin-server --id ID` per plugin server (the
//! `tessera` binary beside this one), on a stack whose servers only they use. Each one's
//! CPU and memory are then its own, and the bench process is the load generator alone.
//! They get the dev stack's settings through the environment, as an operator's would, and
//! their logs go to `<data dir>/logs/<name>.log`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tessera_bus_config::Role;
use tessera_bus_config::roles::PLUGIN_SERVER_URL_ENV;
use tessera_sdk::Client;
use tokio::process::{Child, Command};

use super::cpu::{Part, Role as CpuRole};
use super::report::rss_kib;
use super::{PASSWORD, PLUGIN, connect};
use tessera_devstack::stack::DevStack;

/// How long a stopped worker may take to drain before it is killed.
const STOP_BOUND: Duration = Duration::from_secs(15);

/// How long worker processes may take to serve.
const READY: Duration = Duration::from_secs(30);

/// The `tessera` binary beside this one, if it was built.
pub fn tessera_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()
        .context("finding this binary")?
        .with_file_name("tessera");
    anyhow::ensure!(
        exe.exists(),
        "{} is missing: build it beside tessera-bench (cargo build --release --bin tessera)",
        exe.display()
    );
    Ok(exe)
}

pub(super) struct WorkerProcess {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl WorkerProcess {
    /// Starts `tessera <args>` on `stack`, with `extra` settings; `name` names its log.
    pub async fn spawn(
        stack: &DevStack,
        name: &str,
        args: &[&str],
        extra: &[(&str, String)],
    ) -> anyhow::Result<WorkerProcess> {
        let exe = tessera_binary()?;
        let logs = stack.data.join("logs");
        std::fs::create_dir_all(&logs)?;
        let log_path = logs.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(exe)
            .args(args)
            .envs(stack.env_pairs())
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting tessera {}", args.join(" ")))?;
        Ok(WorkerProcess {
            name: name.to_owned(),
            child,
            log: log_path,
        })
    }

    /// The last lines the worker logged (for an error report).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn rss_kib(&self) -> u64 {
        self.child.id().map_or(0, |pid| rss_kib(Some(pid)))
    }

    /// SIGTERM, then a bounded wait for the drain; SIGKILL past the bound.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(STOP_BOUND, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(worker = self.name, "did not drain in time; killing it");
            let _ = self.child.kill().await;
        }
    }
}

/// Retries `f` while the answer is `unavailable` (a worker still starting), for at most
/// [`READY`]; anything else is returned.
pub async fn when_served<T, F, Fut>(mut f: F) -> Result<T, tessera_sdk::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tessera_sdk::Error>>,
{
    let until = std::time::Instant::now() + READY;
    loop {
        match f().await {
            Err(e)
                if e.kind() == tessera_sdk::ErrorKind::Unavailable
                    && std::time::Instant::now() < until =>
            {
                // A bounded retry while a process starts: no event to wait on from here.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

fn logs<'a>(processes: impl Iterator<Item = &'a WorkerProcess>) -> String {
    processes
        .map(|p| format!("{} log:\n{}", p.name, p.log_tail()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Registers and starts the plugin servers, adds the user and the route, logs in and
/// requests one token; the client and its account token.
async fn serve(
    stack: &DevStack,
    servers: &[String],
    plugin_servers: &mut Vec<WorkerProcess>,
) -> anyhow::Result<(Client, String)> {
    // A client connects once the auth worker's callout answers; the broker serves `keys`
    // once it has provisioned its streams, which the plugin servers read.
    let client = Client::new(connect(stack, Role::Client).await?, stack.subjects.clone());
    when_served(|| client.keys()).await?;
    let admin = Client::new(connect(stack, Role::Admin).await?, stack.subjects.clone());
    for id in servers {
        let secret = admin.add_plugin_server(id, true).await?;
        let url = secret.url(&[format!("{}:{}", stack.nats.host(), stack.nats.port())]);
        let p = WorkerProcess::spawn(
            stack,
            &format!("plugin-server-{id}"),
            &["plugin-server", "--id", id],
            &[(PLUGIN_SERVER_URL_ENV, url)],
        )
        .await?;
        plugin_servers.push(p);
    }
    when_served(|| admin.add_user("bench", PASSWORD)).await?;
    admin.set_route(PLUGIN, servers).await?;
    let account_token = when_served(|| client.login("bench", PASSWORD))
        .await?
        .account_token;
    // Issued only once every plugin server on the route has acked its copy: they serve.
    when_served(|| client.request_token(&account_token, PLUGIN, None)).await?;
    Ok((client, account_token))
}

/// The auth worker, one broker and the plugin servers, each a process; a user and a route
/// over every plugin server, and a client logged in that has been issued one token.
pub(super) struct Deployment {
    pub broker: WorkerProcess,
    pub auth: WorkerProcess,
    pub plugin_servers: Vec<WorkerProcess>,
    pub client: Client,
    pub account_token: String,
}

impl Deployment {
    /// `broker_settings`: extra settings of the broker (the soak's short token lifetime).
    pub async fn start(
        stack: &DevStack,
        servers: &[String],
        broker_settings: &[(&str, String)],
    ) -> anyhow::Result<Deployment> {
        let auth = WorkerProcess::spawn(stack, "auth", &["worker", "auth"], &[]).await?;
        let broker =
            WorkerProcess::spawn(stack, "broker", &["worker", "broker"], broker_settings).await?;
        let mut plugin_servers = Vec::new();
        match serve(stack, servers, &mut plugin_servers).await {
            Ok((client, account_token)) => Ok(Deployment {
                broker,
                auth,
                plugin_servers,
                client,
                account_token,
            }),
            Err(e) => {
                let mut all = vec![broker, auth];
                all.extend(plugin_servers);
                let logs = logs(all.iter());
                for p in all {
                    p.stop().await;
                }
                Err(e.context(logs))
            }
        }
    }

    /// The processes to account, by part, beside the stack's servers.
    pub fn parts(&self, stack: &DevStack) -> Vec<Part> {
        vec![
            Part {
                name: CpuRole::Bench,
                pids: vec![None],
            },
            Part {
                name: CpuRole::Broker,
                pids: vec![self.broker.pid()],
            },
            Part {
                name: CpuRole::Auth,
                pids: vec![self.auth.pid()],
            },
            Part {
                name: CpuRole::PluginServers,
                pids: self.plugin_servers.iter().map(|p| p.pid()).collect(),
            },
            Part {
                name: CpuRole::NatsServer,
                pids: vec![stack.nats.pid()],
            },
            Part {
                name: CpuRole::RedisServer,
                pids: vec![stack.redis.pid()],
            },
        ]
    }

    /// Every process, for memory figures: broker, auth, then the plugin servers.
    pub fn processes(&self) -> Vec<&WorkerProcess> {
        let mut all = vec![&self.broker, &self.auth];
        all.extend(&self.plugin_servers);
        all
    }

    /// The last lines of every process's log.
    pub fn logs(&self) -> String {
        logs(self.processes().into_iter())
    }

    /// Plugin servers first (they drain their consumers), then the broker, then auth.
    pub async fn stop(self) {
        for p in self.plugin_servers {
            p.stop().await;
        }
        self.broker.stop().await;
        self.auth.stop().await;
    }
}
