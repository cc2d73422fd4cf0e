//! A broker replica in a process of its own, for the fault tests that SIGKILL or SIGTERM
//! one (`tests/src/child.rs` spawns it). It runs what `tessera worker broker` runs: settings
//! from the environment (`BrokerConfig::from_env`), SIGTERM/Ctrl-C through the same
//! `tessera_runtime::signal::shutdown_on_signal`, then `tessera_broker::start` and the drain.
//! The only addition: one line `ready` on stdout once it serves, so the test knows when.
//!
//! (Why not the `tessera` binary itself: `cargo test -p tessera-tests` does not build other
//! packages' binaries, so its path is not reliably there; a binary of this package is,
//! under `CARGO_BIN_EXE_tessera-test-broker`.)

use std::io::Write;
use std::process::ExitCode;

use tessera_runtime::config::ProcessEnv;

fn main() -> ExitCode {
    let _telemetry = tessera_runtime::telemetry::init("info,async_nats=warn", "tessera-broker");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    runtime.block_on(async {
        let shutdown = tessera_runtime::signal::shutdown_on_signal();
        let config = match tessera_broker::BrokerConfig::from_env(&ProcessEnv) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(64);
            }
        };
        let broker = match tessera_broker::start(config, shutdown).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        let mut out = std::io::stdout();
        let _ = writeln!(out, "ready");
        let _ = out.flush();
        broker.join().await;
        ExitCode::SUCCESS
    })
}
