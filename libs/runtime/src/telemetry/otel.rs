//! The OpenTelemetry trace exporter (`otel` feature): the process's `tracing` spans, sent in
//! batches to an OTLP/HTTP (protobuf) collector.
//!
//! Which spans: every request a service of ours handles (`service.rs`: kind server, named
//! by its endpoint, its parent the caller's context from the message's `traceparent`), every
//! request it or an SDK client sends (`tessera_protocol::rpc`: kind client), and a plugin
//! server's receipt of a distributed token (kind consumer, its parent the broker's request).
//! Their attributes are the span fields (subject, endpoint, request id, outcome) and the
//! events logged inside them: never a token, password or signature (docs/security.md).
//!
//! The export never holds up a request: spans queue (2048 at most, then the newest are
//! dropped) for a thread of the SDK's own, which posts them every `OTEL_BSP_SCHEDULE_DELAY`,
//! each post bounded by [`EXPORT_TIMEOUT`].

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing_subscriber::registry::LookupSpan;

use super::TraceSettings;

/// Bound on one post to the collector (the OTLP exporters' default).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// A running exporter. Dropping it flushes what is batched and stops it.
#[derive(Debug)]
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Starts the batch exporter to `settings.endpoint`. Nothing is sent until a span ends.
    pub fn start(settings: &TraceSettings) -> Result<Exporter, String> {
        let client = OwnRuntimeClient::new().map_err(|e| format!("its HTTP client: {e}"))?;
        let exporter = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(settings.endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .with_http_client(client)
            .build()
            .map_err(|e| e.to_string())?;
        let batch = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(settings.export_interval)
                    .build(),
            )
            .build();
        let resource = Resource::builder()
            .with_service_name(settings.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batch)
            .with_resource(resource)
            .build();
        Ok(Exporter { provider })
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans for this exporter.
    pub fn layer<S>(
        &self,
    ) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("tessera"))
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        // Sends what is batched; an error here (the collector is down) is already logged
        // by the SDK and changes nothing at exit.
        let _ = self.provider.shutdown();
    }
}

/// The exporter's HTTP client: hyper (already in the tree) driven by a single-threaded tokio
/// runtime of its own. The batch processor exports from its own thread, outside any async
/// runtime, and hyper needs a tokio reactor; this one is never shared with the process's
/// requests, and it outlives the process's runtime, so the last spans are still sent after
/// that has shut down.
#[derive(Debug)]
struct OwnRuntimeClient {
    runtime: tokio::runtime::Runtime,
    hyper: opentelemetry_http::hyper::HyperClient,
}

impl OwnRuntimeClient {
    fn new() -> std::io::Result<OwnRuntimeClient> {
        Ok(OwnRuntimeClient {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            hyper: opentelemetry_http::hyper::HyperClient::with_default_connector(
                EXPORT_TIMEOUT,
                None,
            ),
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for OwnRuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        // Called only on the batch processor's thread (see the type's doc): blocking it is
        // what that thread is for.
        self.runtime.block_on(self.hyper.send_bytes(request))
    }
}
