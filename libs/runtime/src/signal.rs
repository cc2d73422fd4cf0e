//! The shutdown signal of a worker process: SIGTERM (what an orchestrator sends) or Ctrl-C
//! cancels one [`Shutdown`]; the worker then drains (see [`crate::service`]).
//!
//! One implementation for every process that runs a worker: the `tessera` binary and the
//! test harness's child workers (so the fault tests signal exactly what ships).

use crate::Shutdown;

/// A [`Shutdown`] cancelled on SIGINT or SIGTERM. Needs a Tokio runtime.
pub fn shutdown_on_signal() -> Shutdown {
    let shutdown = Shutdown::new();
    let s = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received; shutting down");
        s.cancel();
    });
    shutdown
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
