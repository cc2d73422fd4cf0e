//! One token request is one trace: the client app, the broker, the auth worker and the
//! plugin server each export spans with the same trace id and the right parents, over
//! OTLP/HTTP to a receiver in this test (axum, protobuf bodies decoded with the OTLP types);
//! and no span, event or resource attribute carries the token, the account token or the
//! password (docs/security.md, "Traces").
//!
//! The workers run in this process, so they share one exporter here (in production each
//! process has its own, named by `OTEL_SERVICE_NAME`); spans are told apart by what they
//! are: the client's `token.request` request, the broker's and auth's server spans by their
//! endpoint, the plugin server's receipt of the distributed token. Every thread of the test's
//! runtime reports to the test's own subscriber (other tests keep the global one).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use tessera_runtime::config::{self, from_pairs};
use tessera_runtime::telemetry::TraceSettings;
use tessera_runtime::telemetry::otel::Exporter;
use tessera_tests::{Stack, eventually};
use tracing_subscriber::layer::SubscriberExt;

const PASSWORD: &str = "correct horse battery";

/// One exported span, flattened: what the assertions need.
#[derive(Debug, Clone)]
struct Exported {
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    name: String,
    kind: SpanKind,
    attributes: Vec<(String, String)>,
    /// Every string anywhere in it: attributes, event names and their attributes, and the
    /// resource's attributes.
    strings: Vec<String>,
}

impl Exported {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

type Collected = Arc<Mutex<Vec<Exported>>>;

fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn pairs(kvs: &[KeyValue]) -> Vec<(String, String)> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

/// The OTLP/HTTP traces endpoint: decodes each export and keeps its spans.
async fn receive(State(collected): State<Collected>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let mut out = collected.lock().unwrap();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| pairs(&r.attributes))
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                let attributes = pairs(&span.attributes);
                let mut strings: Vec<String> = attributes
                    .iter()
                    .chain(&resource)
                    .flat_map(|(k, v)| [k.clone(), v.clone()])
                    .collect();
                for event in &span.events {
                    strings.push(event.name.clone());
                    strings.extend(
                        pairs(&event.attributes)
                            .into_iter()
                            .flat_map(|(k, v)| [k, v]),
                    );
                }
                strings.push(span.name.clone());
                out.push(Exported {
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    name: span.name,
                    attributes,
                    strings,
                });
            }
        }
    }
    ""
}

fn start_receiver(listener: std::net::TcpListener, collected: Collected) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let app = axum::Router::new()
        .route("/v1/traces", post(receive))
        .with_state(collected);
    tokio::spawn(async move { axum::serve(listener, app).await });
}

/// The span of `spans` whose id is `id`.
fn by_id<'a>(spans: &'a [Exported], id: &[u8]) -> Option<&'a Exported> {
    spans.iter().find(|s| s.span_id == id)
}

/// Whether `span` descends from `ancestor` through parents found in `spans`.
fn descends_from(spans: &[Exported], span: &Exported, ancestor: &Exported) -> bool {
    let mut parent = span.parent_span_id.clone();
    while let Some(p) = by_id(spans, &parent) {
        if p.span_id == ancestor.span_id {
            return true;
        }
        parent = p.parent_span_id.clone();
    }
    false
}

#[test]
fn one_token_request_is_one_trace_across_client_broker_auth_and_plugin_server() {
    // The exporter (and so the subscriber every runtime thread gets) needs the receiver's
    // address before the runtime exists: the port is bound here and served on the runtime.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = config::read(
        &from_pairs(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://{addr}")),
            ("OTEL_SERVICE_NAME", "tessera-e2e"),
            // Short, so the spans arrive soon after the request; the wait below is bounded.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ]),
        |r| TraceSettings::read(r, "unused"),
    )
    .expect("valid settings")
    .expect("an endpoint turns traces on");
    assert_eq!(settings.endpoint, format!("http://{addr}/v1/traces"));
    let exporter = Exporter::start(&settings).expect("exporter");
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info,async_nats=warn"))
        .with(exporter.layer())
        .with(tracing_subscriber::fmt::layer().with_test_writer());
    let dispatch = tracing::Dispatch::new(subscriber);

    let on_threads = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        // Every worker and blocking thread of this runtime reports to this test's subscriber
        // for its whole life (the guard is never dropped; the thread's end drops it).
        .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&on_threads)))
        .build()
        .unwrap();
    let _main = tracing::dispatcher::set_default(&dispatch);
    let collected: Collected = Arc::default();
    let (token, account_token, subjects) = runtime.block_on(async {
        start_receiver(listener, collected.clone());
        let stack = Stack::start().await;
        stack.route("weather", &["ps1"]).await;
        let ps1 = stack.plugin_server("ps1").await;
        let login = stack.user("ann", PASSWORD).await;
        let client = stack.client().await;
        let issued = client
            .request_token(&login.account_token, "weather", None)
            .await
            .expect("token request");
        assert!(
            eventually(Duration::from_secs(10), || async {
                ps1.tokens().contains(&issued.token_id)
            })
            .await
        );
        (issued.token, login.account_token, stack.subjects().clone())
    });

    // The client's token.request span opens the trace.
    let token_request = subjects.token_request();
    let auth_verify = subjects.auth_verify();
    let wanted = |spans: &[Exported]| -> bool {
        let Some(client) = spans
            .iter()
            .find(|s| s.kind == SpanKind::Client && s.attr("subject") == Some(&token_request))
        else {
            return false;
        };
        let in_trace = |s: &&Exported| s.trace_id == client.trace_id;
        spans
            .iter()
            .filter(in_trace)
            .any(|s| s.kind == SpanKind::Consumer)
            && spans
                .iter()
                .filter(in_trace)
                .any(|s| s.attr("endpoint") == Some("auth-verify"))
            && spans
                .iter()
                .filter(in_trace)
                .any(|s| s.attr("endpoint") == Some("token-request"))
    };
    let arrived = runtime.block_on(eventually(Duration::from_secs(20), || {
        let spans = collected.lock().unwrap().clone();
        async move { wanted(&spans) }
    }));
    let spans = collected.lock().unwrap().clone();
    assert!(
        arrived,
        "spans of one trace from every part; got {spans:#?}"
    );

    let client = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client && s.attr("subject") == Some(&token_request))
        .unwrap();
    let trace: Vec<Exported> = spans
        .iter()
        .filter(|s| s.trace_id == client.trace_id)
        .cloned()
        .collect();
    assert!(
        client.parent_span_id.is_empty(),
        "the client's span is the root"
    );
    let one = |what: &str, f: &dyn Fn(&Exported) -> bool| -> Exported {
        let found: Vec<&Exported> = trace.iter().filter(|s| f(s)).collect();
        assert_eq!(found.len(), 1, "one {what} span in the trace: {trace:#?}");
        found[0].clone()
    };
    // Broker: a server span whose parent is the client's span.
    let broker = one("broker", &|s| {
        s.kind == SpanKind::Server && s.attr("endpoint") == Some("token-request")
    });
    assert_eq!(broker.parent_span_id, client.span_id);
    assert_eq!(broker.attr("outcome"), Some("ok"));
    // Its call to auth.verify, a client span under it...
    let verify_call = one("auth.verify call", &|s| {
        s.kind == SpanKind::Client && s.attr("subject") == Some(&auth_verify)
    });
    assert!(descends_from(&trace, &verify_call, &broker));
    // ...is the parent of the auth worker's server span.
    let auth = one("auth", &|s| {
        s.kind == SpanKind::Server && s.attr("endpoint") == Some("auth-verify")
    });
    assert_eq!(auth.parent_span_id, verify_call.span_id);
    // The plugin server's receipt of the token, through JetStream, under the broker's span.
    let receipt = one("plugin-server receipt", &|s| s.kind == SpanKind::Consumer);
    assert!(descends_from(&trace, &receipt, &broker));
    assert_eq!(receipt.attr("event"), Some("tokens"));

    // No secret in any span of any trace: not the plugin token, the account token or the
    // password (the login's trace included).
    for span in &spans {
        for s in &span.strings {
            for (secret, what) in [
                (token.as_str(), "the plugin token"),
                (account_token.as_str(), "the account token"),
                (PASSWORD, "the password"),
            ] {
                assert!(!s.contains(secret), "{what} in span {:?}: {s}", span.name);
            }
        }
    }
    // The exporter first: its last batch still finds the receiver on the runtime.
    drop(exporter);
    drop(runtime);
}
