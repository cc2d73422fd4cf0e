//! Workers in processes of their own, for the fault tests that signal them (SIGKILL as for a
//! crash, SIGTERM as an orchestrator stops a pod). In-process workers ([`crate::Stack`])
//! cannot be killed without killing the test.
//!
//! [`ChildBroker`] runs the `tessera-test-broker` binary of this package (the same settings,
//! signal handling and drain as `tessera worker broker`) with the stack's servers, key,
//! prefix and token lifetime, so it is one more replica of the stack's brokers.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tessera_bus_config::Role;
use tessera_runtime::config::registry;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::Stack;

/// Bound on a child becoming ready.
const READY: Duration = Duration::from_secs(20);

/// A broker replica in a child process. Killed on drop.
pub struct ChildBroker {
    child: Child,
    _dir: tempfile::TempDir,
}

impl ChildBroker {
    /// Starts `binary` (pass `env!("CARGO_BIN_EXE_tessera-test-broker")`) as one more broker
    /// of `stack`, with drain grace `grace`; returns once it serves.
    pub async fn start(binary: &str, stack: &Stack, grace: Duration) -> ChildBroker {
        let dir = tempfile::tempdir().expect("a temp dir for the key");
        let key_file = dir.path().join("broker.pem");
        write_private(&key_file, stack.broker_key().to_pem().as_bytes());
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .env(Role::Broker.url_env(), stack.url(Role::Broker))
            .env(
                registry::REDIS_URL.name,
                stack
                    .servers()
                    .redis_url_as(tessera_bus_config::redis_acl::RedisUser::Broker),
            )
            .env(registry::BROKER_KEY_FILE.name, &key_file)
            .env(registry::GRACE.name, format!("{}ms", grace.as_millis()))
            .env(
                registry::TOKEN_TTL.name,
                format!("{}s", stack.token_ttl().as_secs()),
            )
            .env(
                registry::PENDING_DEADLINE.name,
                format!("{}ms", stack.pending_deadline().as_millis()),
            )
            .env(registry::PREFIX.name, stack.subjects().prefix())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Ok(filter) = std::env::var("RUST_LOG") {
            cmd.env("RUST_LOG", filter);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        // Its log goes to the test's (captured) log.
        let stderr = child.stderr.take().expect("piped stderr");
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(target: "child-broker", "{line}");
            }
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let ready = tokio::time::timeout(READY, async {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "ready" {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            matches!(ready, Ok(true)),
            "the child broker did not get ready within {READY:?}"
        );
        ChildBroker { child, _dir: dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// SIGKILL, as for a crash (no drain).
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("killing the child broker");
    }

    /// SIGTERM: the broker drains and exits.
    pub async fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .await
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits (bounded) for the child to exit; `None` if it is still running.
    pub async fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()
            .map(|r| r.expect("waiting for the child broker"))
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("writing the key file");
    f.write_all(bytes).expect("writing the key file");
}
