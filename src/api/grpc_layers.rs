//! The gRPC middleware, a tower layer around every service (ours, health,
//! reflection): a request id and tracing span, the API-key check for
//! protected methods (UNAUTHENTICATED / PERMISSION_DENIED), and the
//! request counted in the statistics and logged in one INFO line (method
//! label, final code, duration, request id; never a message or a key) with
//! its final `grpc-status`. The
//! status is read where it really is, in the headers of a trailers-only
//! answer or in the trailers at the end of the body, so unary and
//! streaming calls are measured alike; a call dropped before it ends
//! (cancelled, deadline passed) counts as `Cancelled`. Two of tonic's codec
//! statuses are corrected on the way out, where the status is read: a
//! message that is not valid protobuf is INVALID_ARGUMENT (tonic says
//! INTERNAL: the client's bytes are at fault, not the server), and a message
//! over the size limit is RESOURCE_EXHAUSTED (tonic says OUT_OF_RANGE; gRPC's
//! own implementations and our README say RESOURCE_EXHAUSTED).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::HeaderValue;
use http_body::{Body, Frame};
use tower::{Layer, Service as TowerService};
use tracing::Instrument;

use crate::engine::scheduler::CURRENT_REQUEST;

use super::metrics::Protocol;
use super::ops::Service;
use super::rest_layers::{REQUEST_ID, request_id};

/// The service's path prefix.
const PREFIX: &str = "/glurpc.GlucosePrediction/";
/// Methods that need an API key (when keys are on).
const PROTECTED: [&str; 6] = [
    "ProcessUnified",
    "DrawPlot",
    "QuickPlot",
    "ManageCache",
    "Forecast",
    "StreamForecasts",
];
/// Methods with their own metrics label.
const METHODS: [&str; 8] = [
    "ConvertToUnified",
    "ProcessUnified",
    "DrawPlot",
    "QuickPlot",
    "ManageCache",
    "CheckHealth",
    "Forecast",
    "StreamForecasts",
];

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The metrics label of a request path.
fn label(path: &str) -> &'static str {
    if let Some(m) = path.strip_prefix(PREFIX) {
        return METHODS
            .iter()
            .find(|k| **k == m)
            .copied()
            .unwrap_or("other");
    }
    if path.starts_with("/grpc.health.v1.Health/") {
        "grpc.health.v1"
    } else if path.starts_with("/grpc.reflection.") {
        "reflection"
    } else {
        "other"
    }
}

/// Records and logs the call when dropped, with the status seen (else
/// Cancelled).
struct Recorder {
    svc: Service,
    method: &'static str,
    id: std::sync::Arc<str>,
    started: Instant,
    code: Option<tonic::Code>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let code = self.code.unwrap_or(tonic::Code::Cancelled);
        let name = format!("{code:?}");
        let took = self.started.elapsed();
        self.svc.metrics.record(
            Protocol::Grpc,
            self.method,
            &name,
            code != tonic::Code::Ok,
            took,
        );
        tracing::info!(
            protocol = "grpc",
            rpc = self.method,
            status = %name,
            ms = took.as_secs_f64() * 1e3,
            id = %self.id,
            "request"
        );
    }
}

/// Corrects the codec statuses described in the module comment, in place;
/// returns the status `headers` carry afterwards.
fn corrected(headers: &mut http::HeaderMap) -> Option<tonic::Code> {
    let code = code_of(headers)?;
    let status = tonic::Status::from_header_map(headers)?;
    let message = status.message();
    let fixed = match code {
        // prost's DecodeError
        tonic::Code::Internal if message.starts_with("failed to decode Protobuf message") => {
            tonic::Code::InvalidArgument
        }
        // tonic's codec, decoding or encoding
        tonic::Code::OutOfRange if message.contains("message length too large") => {
            tonic::Code::ResourceExhausted
        }
        other => return Some(other),
    };
    headers.insert("grpc-status", HeaderValue::from(fixed as i32));
    Some(fixed)
}

fn code_of(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let v = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(tonic::Code::from_i32(v))
}

/// A response body that notes the trailers' status for the recorder.
struct Metered<B> {
    inner: Pin<Box<B>>,
    rec: Recorder,
}

impl<B> Body for Metered<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut polled = self.inner.as_mut().poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &mut polled
            && let Some(t) = frame.trailers_mut()
            && let Some(code) = corrected(t)
        {
            self.rec.code = Some(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The layer.
#[derive(Clone)]
pub struct GrpcFrontlineLayer {
    svc: Service,
}

impl GrpcFrontlineLayer {
    /// The layer over `svc`'s keys and statistics.
    pub fn new(svc: Service) -> GrpcFrontlineLayer {
        GrpcFrontlineLayer { svc }
    }
}

impl<S> Layer<S> for GrpcFrontlineLayer {
    type Service = GrpcFrontline<S>;

    fn layer(&self, inner: S) -> GrpcFrontline<S> {
        GrpcFrontline {
            inner,
            svc: self.svc.clone(),
        }
    }
}

/// The middleware service.
#[derive(Clone)]
pub struct GrpcFrontline<S> {
    inner: S,
    svc: Service,
}

impl<S, ReqBody, ResBody> TowerService<http::Request<ReqBody>> for GrpcFrontline<S>
where
    S: TowerService<http::Request<ReqBody>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let method = label(req.uri().path());
        let id = request_id(req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()));
        let id_header = HeaderValue::from_str(&id).ok();
        let span = tracing::info_span!("grpc", id = %id, method);
        #[cfg(feature = "otlp")]
        crate::telemetry::parent_from(&span, req.headers());
        let id: std::sync::Arc<str> = id.into();
        let mut rec = Recorder {
            svc: self.svc.clone(),
            method,
            id: id.clone(),
            started: Instant::now(),
            code: None,
        };
        if PROTECTED.contains(&method)
            && let Err(e) = self
                .svc
                .keys
                .check(req.headers().get("x-api-key").map(|v| v.as_bytes()))
        {
            let status = e.grpc();
            rec.code = Some(status.code());
            let resp = status.into_http::<tonic::body::Body>();
            return Box::pin(std::future::ready(Ok(wrap(resp, rec, id_header))));
        }
        Box::pin(
            CURRENT_REQUEST.scope(
                id,
                async move {
                    let mut resp = inner.call(req).await?;
                    if let Some(code) = corrected(resp.headers_mut()) {
                        rec.code = Some(code);
                    }
                    tracing::debug!(
                        ms = rec.started.elapsed().as_secs_f64() * 1e3,
                        "headers sent"
                    );
                    Ok(wrap(resp, rec, id_header))
                }
                .instrument(span),
            ),
        )
    }
}

fn wrap<B>(
    resp: http::Response<B>,
    rec: Recorder,
    id: Option<HeaderValue>,
) -> http::Response<tonic::body::Body>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = resp.into_parts();
    if let Some(id) = id {
        parts.headers.insert(REQUEST_ID, id);
    }
    let body = Metered {
        inner: Box::pin(body),
        rec,
    };
    http::Response::from_parts(parts, tonic::body::Body::new(body))
}
