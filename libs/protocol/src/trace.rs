//! Trace context on the bus: the W3C `traceparent` (and `tracestate`) headers that make one
//! token request one trace across the client app, the broker, the auth worker and the plugin
//! servers it reaches.
//!
//! Without the `otel` feature this only carries a parent request's `traceparent` on
//! unchanged, so the logs of both sides can be joined by it. With it, the current span's
//! OpenTelemetry context is what an outgoing message carries, and an incoming message's
//! context becomes the parent of the span that handles it; whoever installs an
//! OpenTelemetry layer in the process (tessera-runtime's telemetry for the workers and
//! plugin servers, the app's own set-up for a client app) exports the spans. Without such a
//! layer the feature changes nothing on the wire.
//!
//! Only trace and span ids and the sampling flag travel this way: never a token, a password
//! or a signature (docs/security.md).

use async_nats::HeaderMap;
use tessera_schemas::headers;

/// Writes the trace context of the current span into `out`; when there is none (no
/// OpenTelemetry layer, or built without the `otel` feature), the `fallback` `traceparent`
/// (the request being handled's) travels on as it came.
pub fn inject(out: &mut HeaderMap, fallback: Option<&str>) {
    #[cfg(feature = "otel")]
    if otel::inject_current(out) {
        return;
    }
    if let Some(tp) = fallback {
        out.insert(headers::TRACEPARENT, tp);
    }
}

/// Makes the trace context that `incoming` carries the parent of `span`, which must be new
/// (not yet entered). Without the `otel` feature, or without a context, nothing happens.
pub fn adopt(span: &tracing::Span, incoming: Option<&HeaderMap>) {
    #[cfg(feature = "otel")]
    if let Some(incoming) = incoming {
        otel::set_parent(span, incoming);
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, incoming);
}

#[cfg(feature = "otel")]
mod otel {
    use async_nats::HeaderMap;
    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    /// Writes the current span's context; false when it has none worth sending.
    pub(super) fn inject_current(out: &mut HeaderMap) -> bool {
        let cx = tracing::Span::current().context();
        if !cx.span().span_context().is_valid() {
            return false;
        }
        TraceContextPropagator::new().inject_context(&cx, &mut Writer(out));
        true
    }

    pub(super) fn set_parent(span: &tracing::Span, incoming: &HeaderMap) {
        let cx = TraceContextPropagator::new().extract(&Reader(incoming));
        if cx.span().span_context().is_valid() {
            // Err only without an OpenTelemetry layer (nothing to join) or on a span
            // already started (a bug here, not the sender's): either way the span is kept.
            let _ = span.set_parent(cx);
        }
    }

    struct Writer<'a>(&'a mut HeaderMap);

    impl Injector for Writer<'_> {
        fn set(&mut self, key: &str, value: String) {
            self.0.insert(key, value);
        }
    }

    struct Reader<'a>(&'a HeaderMap);

    impl Extractor for Reader<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).map(|v| v.as_str())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(k, _)| k.as_ref()).collect()
        }
    }
}
