//! OpenTelemetry trace export (`glurpc serve --otlp-endpoint`, cargo feature
//! `otlp`): every `tracing` span of the service (`http`, `grpc`, `inference`,
//! with the `inference` span linked to the requests whose windows it
//! computes) goes to an OpenTelemetry collector over OTLP/HTTP with
//! protobuf bodies, batched on the SDK's own thread. A W3C `traceparent`
//! sent by a client makes its request span a child of the caller's trace
//! (the REST and gRPC layers read it through [`parent_from`]). Below `api`
//! and `cli`, which both use it; it imports neither.

use std::time::Duration;

use anyhow::{Context as _, Result};
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;

/// How long one export may take before it is dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the last export may take at exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The trace pipeline; dropping it sends what is still batched.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

/// `endpoint` as the URL spans are posted to: a collector's base URL
/// (`http://collector:4318`) gets OTLP's `/v1/traces`; a URL with a path is
/// used as given.
pub fn traces_url(endpoint: &str) -> Result<String> {
    let uri: http::Uri = endpoint
        .trim()
        .parse()
        .with_context(|| format!("--otlp-endpoint {endpoint:?} is not a URL"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => {}
        _ => anyhow::bail!(
            "--otlp-endpoint {endpoint:?} must be an http:// or https:// URL of an OTLP/HTTP collector"
        ),
    }
    let base = endpoint.trim().trim_end_matches('/');
    Ok(match uri.path() {
        "" | "/" => format!("{base}/v1/traces"),
        _ => endpoint.trim().to_string(),
    })
}

impl Telemetry {
    /// Starts exporting to `endpoint` ([`traces_url`]) as service `service`.
    /// No connection is made here: a collector that is down costs dropped
    /// batches (reported by the SDK), never a request.
    pub fn start(endpoint: &str, service: &str) -> Result<Telemetry> {
        let url = traces_url(endpoint)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .context("cannot build the OTLP exporter")?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(service.to_string())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        Ok(Telemetry { provider })
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let tracer = self.provider.tracer("glurpc");
        tracing_opentelemetry::layer().with_tracer(tracer)
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!("OTLP export at exit: {e}");
        }
    }
}

/// Reads a W3C trace context from request headers.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Makes `span` a child of the trace named in `headers` (`traceparent`,
/// `tracestate`), when there is one.
pub fn parent_from(span: &tracing::Span, headers: &http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if headers.contains_key("traceparent") {
        let cx = TraceContextPropagator::new().extract(&Headers(headers));
        // An unusable context (a malformed header) only leaves the span a root.
        let _ = span.set_parent(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gets_the_traces_path_and_a_full_one_is_kept() {
        let url = |e: &str| traces_url(e).unwrap();
        assert_eq!(
            url("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            url("https://otel.example.org/custom/traces"),
            "https://otel.example.org/custom/traces"
        );
        assert!(traces_url("collector:4318").is_err());
        assert!(traces_url("grpc://collector:4317").is_err());
    }
}
