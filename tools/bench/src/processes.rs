//! Workers as processes of their own (`tessera worker broker|auth`, the `tessera` binary
//! beside this one), for the soak: each one's memory is then its own RSS, at the start and
//! at the end. They get the dev stack's settings through the environment, as an
//! operator's would, and their logs go to `<data dir>/logs/<worker>.log`.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

use super::report::rss_kib;
use tessera_devstack::stack::DevStack;

/// How long a stopped worker may take to drain before it is killed.
const STOP_BOUND: Duration = Duration::from_secs(15);

pub(super) struct WorkerProcess {
    pub name: &'static str,
    child: Child,
    log: std::path::PathBuf,
}

impl WorkerProcess {
    /// Starts `tessera worker <name>` on `stack`, with `extra` settings.
    pub async fn spawn(
        stack: &DevStack,
        name: &'static str,
        extra: &[(&str, String)],
    ) -> anyhow::Result<WorkerProcess> {
        let exe = std::env::current_exe()
            .context("finding this binary")?
            .with_file_name("tessera");
        anyhow::ensure!(
            exe.exists(),
            "{} is missing: build it beside tessera-bench (cargo build --release --bin tessera)",
            exe.display()
        );
        let logs = stack.data.join("logs");
        std::fs::create_dir_all(&logs)?;
        let log_path = logs.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(exe)
            .args(["worker", name])
            .envs(stack.env_pairs())
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting tessera worker {name}"))?;
        Ok(WorkerProcess {
            name,
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
