//! The request metrics' labels are a closed set: requests on made-up subjects under
//! `data.*` (the gateway) and `svc.<id>.*` (a plugin server) are counted under their
//! endpoint's name, so nobody who may publish there can grow `/metrics` (docs/security.md,
//! "A client app"). Read from the Prometheus recorder installed in this process (the
//! workers and plugin servers run in-process, `tests/src/metrics.rs`).

use std::collections::BTreeSet;
use std::time::Duration;

use tessera_protocol::rpc::{self, RpcError};
use tessera_schemas::ErrorCode;
use tessera_tests::metrics::{rendered_lines, request_series, requests_answered_total};
use tessera_tests::{Backend, Role, Stack, assert_eventually};

/// Made-up subjects per endpoint: far more than the closed set of label values.
const MADE_UP: usize = 150;

/// Every endpoint name a service of ours registers (`ServiceSpec`s in the broker, auth,
/// gateway and plugin-server SDK). A new endpoint belongs here: its name is a label value.
const ENDPOINTS: [&str; 13] = [
    "token-request",
    "token-revoke",
    "token-introspect",
    "keys",
    "distribution-open",
    "assets-publish",
    "plugins-key",
    "auth-login",
    "auth-verify",
    "users-add",
    "packages-upload",
    "data",
    "operations",
];

/// The value of `name` in a label set such as `endpoint="data",outcome="ok"`.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.trim_matches('"'))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_subjects_add_no_request_series() {
    tessera_runtime::metrics::install();
    let stack = Stack::builder()
        .backend(Backend::Local)
        .gateways(1)
        .start()
        .await;
    stack.route("weather", &["ps1"]).await;
    let _ps1 = stack.plugin_server("ps1").await;
    let s = stack.subjects().clone();
    let client = stack.nats(Role::Client).await;

    let series_before: BTreeSet<String> = request_series().into_iter().collect();
    let lines_before = rendered_lines();
    let answered_before = requests_answered_total();

    let tag = uuid::Uuid::new_v4().simple().to_string();
    let made_up: Vec<String> = (0..MADE_UP).map(|i| format!("zz{tag}{i}")).collect();
    for token in &made_up {
        for subject in [s.data(token), s.svc("ps1", token)] {
            // Any typed answer will do (no body: `bad_request` at the gateway,
            // `unauthenticated` at the plugin server); a timeout would mean no endpoint.
            match rpc::request_raw(
                &client,
                subject.clone(),
                Default::default(),
                Default::default(),
                Duration::from_secs(5),
            )
            .await
            {
                Err(RpcError::Wire(w)) => assert_ne!(w.code, ErrorCode::Internal, "{subject}"),
                Ok(_) => {}
                Err(other) => panic!("{subject}: no typed answer: {other}"),
            }
        }
    }
    // Counted once each reply is on the connection, which can be just after we read it.
    // (Summed over every series: the wait must not depend on the labels under test.)
    let n = 2 * MADE_UP as u64;
    assert_eventually!(
        requests_answered_total() >= answered_before + n,
        "every made-up request was counted"
    );

    let series_after: BTreeSet<String> = request_series().into_iter().collect();
    let new: Vec<&String> = series_after.difference(&series_before).collect();
    println!(
        "tessera_requests_total series: {} before, {} after ({} new); /metrics lines: {} before, {} after",
        series_before.len(),
        series_after.len(),
        new.len(),
        lines_before,
        rendered_lines()
    );
    assert!(
        !series_after.iter().any(|l| l.contains(&tag)),
        "a made-up subject became a label: {new:?}"
    );
    // Every series is (endpoint, outcome) from the closed sets, whatever other tests in
    // this process have recorded meanwhile; so is the number of series.
    let outcomes: Vec<&str> = std::iter::once("ok")
        .chain(ErrorCode::ALL.iter().map(|c| c.as_str()))
        .collect();
    for labels in &series_after {
        let endpoint = label(labels, "endpoint");
        let outcome = label(labels, "outcome");
        assert!(
            endpoint.is_some_and(|e| ENDPOINTS.contains(&e))
                && outcome.is_some_and(|o| outcomes.contains(&o))
                && labels.split(',').count() == 2,
            "series outside the closed label sets: {labels}"
        );
    }
    assert!(series_after.len() <= ENDPOINTS.len() * outcomes.len());
}
