//! Reading the counters the workers record, in the test process itself: workers, gateways
//! and plugin servers run in-process, so installing the Prometheus recorder here makes their
//! metrics readable without a health server. Tests in one binary share the recorder, so a
//! test compares a counter before and after what it does (counters only go up).

use tessera_runtime::metrics::{TOKENS_REJECTED, install};

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

/// The label sets of every `tessera_requests_total` series recorded so far, e.g.
/// `endpoint="data",outcome="bad_request"`. Installs the recorder on first use.
pub fn request_series() -> Vec<String> {
    let prefix = format!("{}{{", tessera_runtime::metrics::REQUESTS);
    install()
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .filter_map(|l| l.split_once('}').map(|(labels, _)| labels.to_owned()))
        .collect()
}

/// Requests answered on the endpoint named `endpoint` so far, all outcomes, in this process.
pub fn requests_answered(endpoint: &str) -> u64 {
    let label = format!("endpoint=\"{endpoint}\"");
    requests_where(|labels| labels.contains(label.as_str()))
}

/// Requests answered so far on every endpoint, all outcomes, in this process, whatever the
/// labels say.
pub fn requests_answered_total() -> u64 {
    requests_where(|_| true)
}

fn requests_where(keep: impl Fn(&str) -> bool) -> u64 {
    let prefix = format!("{}{{", tessera_runtime::metrics::REQUESTS);
    install()
        .render()
        .lines()
        .filter(|l| l.starts_with(prefix.as_str()) && keep(l))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Lines of the whole `/metrics` text as it stands (what a scrape would carry).
pub fn rendered_lines() -> usize {
    install().render().lines().count()
}
