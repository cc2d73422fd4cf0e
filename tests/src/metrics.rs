//! Reading the counters the workers record, in the test process itself: workers, gateways
//! and plugin servers run in-process, so installing the Prometheus recorder here makes their
//! metrics readable without a health server. Tests in one binary share the recorder, so a
//! test compares a counter before and after what it does (counters only go up).

use tessera_core::metrics::{TOKENS_REJECTED, install};

/// The current `tessera_tokens_rejected_total{verifier, reason}` (0 if never counted).
/// Installs the recorder on first use; counts recorded before that are lost.
pub fn tokens_rejected(verifier: &str, reason: &str) -> u64 {
    let text = install().render();
    let want = [
        format!("verifier=\"{verifier}\""),
        format!("reason=\"{reason}\""),
    ];
    text.lines()
        .filter(|l| l.starts_with(&format!("{TOKENS_REJECTED}{{")))
        .filter(|l| want.iter().all(|w| l.contains(w.as_str())))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}
