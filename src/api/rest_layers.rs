//! The REST middleware, in the order a request meets it: a request id and
//! a tracing span; a trailing slash redirected (307, as FastAPI does); the
//! body size limit (413 before anything is parsed); API-key checks for
//! `POST` on protected paths (401/403; other methods reach the router and
//! get 405); and, on the way out, a handler dropped when its client closes
//! the connection (499, work cancelled); request parse failures turned into
//! FastAPI's 422 body, unknown paths and methods into its JSON 404/405;
//! `X-Content-Type-Options: nosniff` on every response and
//! `Cache-Control: no-store` on every response that does not set its own
//! (answers carry patient data); and the request counted in the statistics
//! and logged in one INFO line (method, route label, status, duration,
//! request id: never a body, a query, a handle or a key). `/metrics`
//! answers 404 here when it has a port of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use poem::error::ResponseError;
use poem::http::{HeaderValue, StatusCode};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response, Result};
use poem_openapi::error::{
    ContentTypeError, ParseMultipartError, ParseParamError, ParseRequestPayloadError,
};
use tracing::Instrument;

use crate::engine::EngineError;
use crate::engine::scheduler::CURRENT_REQUEST;

use super::disconnect::Connections;
use super::error::ApiError;
use super::metrics::Protocol;
use super::ops::Service;
use super::rest_types::ErrorResponse;
use super::rest_types::lax::{Issue, Unprocessable};

/// Paths that need an API key (when keys are on).
const PROTECTED: [&str; 5] = [
    "/process_unified",
    "/draw_a_plot",
    "/quick_plot",
    "/cache_management",
    "/forecast",
];

/// Paths with their own metrics label; anything else is "other".
const KNOWN: [&str; 11] = [
    "/info",
    "/convert_to_unified",
    "/process_unified",
    "/draw_a_plot",
    "/quick_plot",
    "/cache_management",
    "/forecast",
    "/health",
    "/metrics",
    "/openapi.json",
    "/docs",
];

/// The request-id header (taken from the client when present).
pub const REQUEST_ID: &str = "x-request-id";

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A request id: the client's (if short and printable) or a new one.
pub fn request_id(given: Option<&str>) -> String {
    match given {
        Some(id)
            if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            id.to_string()
        }
        _ => format!(
            "{:x}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        ),
    }
}

/// The metrics label of a path: a known path, `/` for the web page and its
/// assets, else "other".
fn label(path: &str) -> &'static str {
    if super::web::is_page(path) {
        return "/";
    }
    KNOWN
        .iter()
        .find(|k| path == **k || (**k == "/docs" && path.starts_with("/docs")))
        .copied()
        .unwrap_or("other")
}

/// The front-line middleware.
pub struct Frontline {
    svc: Service,
    max_body: usize,
    conns: Arc<Connections>,
    body_timeout: std::time::Duration,
}

impl Frontline {
    /// Middleware over `svc` accepting bodies up to `max_body` bytes, each
    /// within `body_timeout`.
    pub fn new(
        svc: Service,
        max_body: usize,
        conns: Arc<Connections>,
        body_timeout: std::time::Duration,
    ) -> Frontline {
        Frontline {
            svc,
            max_body,
            conns,
            body_timeout,
        }
    }
}

impl<E: Endpoint> Middleware<E> for Frontline {
    type Output = FrontlineEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        FrontlineEndpoint {
            inner,
            svc: self.svc.clone(),
            max_body: self.max_body,
            conns: self.conns.clone(),
            body_timeout: self.body_timeout,
        }
    }
}

/// The endpoint [`Frontline`] wraps around the routes.
pub struct FrontlineEndpoint<E> {
    inner: E,
    svc: Service,
    max_body: usize,
    conns: Arc<Connections>,
    body_timeout: std::time::Duration,
}

/// The error response of `e`: the same mapping the handlers use.
fn failure(e: &ApiError) -> Response {
    ErrorResponse::from(e.clone()).into_response()
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |i: usize| {
        bytes
            .get(i..i + 2)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(i + 1)) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first value of query parameter `name`, decoded.
fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(k) == name).then(|| form_decode(v))
    })
}

/// pydantic's `enum` error for the `format` parameter of `path`.
fn format_issue(path: &str, given: &str) -> Issue {
    let expected = if path == "/quick_plot" {
        "'plotly' or 'json'"
    } else {
        "'plotly', 'json', 'png' or 'svg'"
    };
    Issue {
        ctx: Some(serde_json::json!({ "expected": expected })),
        ..Issue::new(
            "enum",
            &["query", "format"],
            format!("Input should be {expected}"),
            &serde_json::Value::from(given),
        )
    }
}

/// FastAPI's request-validation body for a poem-openapi parse failure of a
/// query parameter or of the multipart form (JSON bodies produce their own,
/// [`lax`](super::rest_types::lax)).
fn unprocessable(err: &poem::Error, path: &str, query: Option<&str>) -> Option<Response> {
    let null = serde_json::Value::Null;
    let issue = if let Some(e) = err.downcast_ref::<ParseParamError>() {
        match query_value(query, e.name) {
            None => Issue::missing(&["query", e.name], &null),
            Some(v) if e.name == "format" => format_issue(path, &v),
            Some(v) => Issue::new(
                "value_error",
                &["query", e.name],
                e.reason.clone(),
                &serde_json::Value::from(v),
            ),
        }
    } else if err.is::<ParseMultipartError>()
        || err.is::<poem::error::ParseMultipartError>()
        || err.is::<ContentTypeError>()
    {
        // Starlette reads a form it cannot parse as empty: the file is missing.
        Issue::missing(&["body", "file"], &null)
    } else if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        Issue::new("value_error", &["body"], e.reason.clone(), &null)
    } else {
        return None;
    };
    Some(Unprocessable(vec![issue]).as_response())
}

/// `408` for a body that did not arrive within `limit`.
fn body_timed_out(limit: std::time::Duration) -> Response {
    let detail = format!(
        "Request body not received within {} s.",
        limit.as_secs_f64()
    );
    poem::web::Json(serde_json::json!({ "detail": detail }))
        .with_status(StatusCode::REQUEST_TIMEOUT)
        .with_header(http::header::CONNECTION, "close")
        .into_response()
}

/// FastAPI's JSON body for a routing failure (`{"detail": "Not Found"}`,
/// `{"detail": "Method Not Allowed"}`), or `None` for other errors.
fn routing_failure(err: &poem::Error, path: &str) -> Option<Response> {
    let detail = if err.is::<poem::error::NotFoundError>() {
        "Not Found"
    } else if err.is::<poem::error::MethodNotAllowedError>() {
        "Method Not Allowed"
    } else {
        return None;
    };
    let mut resp = poem::web::Json(serde_json::json!({ "detail": detail }))
        .with_status(err.status())
        .into_response();
    if err.status() == StatusCode::METHOD_NOT_ALLOWED {
        // RFC 9110: a 405 names the methods the resource has.
        resp.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static(allowed(path)));
    }
    Some(resp)
}

/// The methods a known path answers: `POST` for the operations, `GET` for
/// the rest (health, metrics, the document, the page).
fn allowed(path: &str) -> &'static str {
    if path == "/convert_to_unified" || PROTECTED.contains(&path) {
        "POST"
    } else {
        "GET"
    }
}

/// FastAPI's `redirect_slashes`: `/draw_a_plot/` answers 307 to
/// `/draw_a_plot` (query kept) when that path exists.
fn slash_redirect(req: &Request) -> Option<Response> {
    let path = req.uri().path();
    let trimmed = path.strip_suffix('/')?;
    if !KNOWN.contains(&trimmed) || trimmed == "/docs" {
        return None;
    }
    let target = match req.uri().query() {
        Some(q) => format!("{trimmed}?{q}"),
        None => trimmed.to_string(),
    };
    Some(
        Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(http::header::LOCATION, target)
            .finish(),
    )
}

impl<E: Endpoint> FrontlineEndpoint<E> {
    async fn guarded(&self, mut req: Request) -> Response {
        if let Some(redirect) = slash_redirect(&req) {
            return redirect;
        }
        let path = req.uri().path().to_string();
        if path == "/metrics" && !self.svc.metrics.is_public() {
            let e = poem::Error::from(poem::error::NotFoundError);
            if let Some(r) = routing_failure(&e, &path) {
                return r;
            }
        }
        if req.method() == http::Method::POST && PROTECTED.contains(&path.as_str()) {
            let key = req.headers().get("x-api-key").map(|v| v.as_bytes());
            if let Err(e) = self.svc.keys.check(key) {
                return failure(&e);
            }
        }
        let too_large = ApiError::from(EngineError::TooLarge {
            limit: self.max_body,
        });
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let peer = req.remote_addr().as_socket_addr().copied();
        // The connection's idle and header timers stop while this request runs.
        let _in_flight = self.conns.dispatched(peer);
        match declared {
            Some(n) if n > self.max_body as u64 => return failure(&too_large),
            Some(0) => {}
            _ => {
                // The whole body, up to the limit, within the body timeout (a
                // client sending it a byte at a time cannot hold the connection).
                let read = req.take_body().into_bytes_limit(self.max_body);
                match tokio::time::timeout(self.body_timeout, read).await {
                    Ok(Ok(b)) => req.set_body(Body::from_bytes(b)),
                    Ok(Err(poem::error::ReadBodyError::PayloadTooLarge)) => {
                        return failure(&too_large);
                    }
                    Ok(Err(e)) => {
                        return failure(&ApiError::Invalid(format!("cannot read the body: {e}")));
                    }
                    Err(_) => return body_timed_out(self.body_timeout),
                }
            }
        }
        let query = req.uri().query().map(str::to_string);
        tokio::select! {
            r = self.inner.call(req) => match r {
                Ok(r) => r.into_response(),
                Err(e) => unprocessable(&e, &path, query.as_deref())
                    .or_else(|| routing_failure(&e, &path))
                    .unwrap_or_else(|| e.into_response()),
            },
            _ = self.conns.closed(peer) => {
                tracing::debug!("client closed the connection: request dropped");
                StatusCode::from_u16(499)
                    .map(|s| s.into_response())
                    .unwrap_or_else(|_| StatusCode::BAD_REQUEST.into_response())
            }
        }
    }
}

impl<E: Endpoint> Endpoint for FrontlineEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let started = Instant::now();
        let id = request_id(req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()));
        let endpoint = label(req.uri().path());
        let method = req.method().clone();
        let span = tracing::info_span!("http", id = %id, method = %method, path = endpoint);
        #[cfg(feature = "otlp")]
        crate::telemetry::parent_from(&span, req.headers());
        let mut resp = CURRENT_REQUEST
            .scope(Arc::from(id.as_str()), self.guarded(req).instrument(span))
            .await;
        let status = resp.status();
        let headers = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&id) {
            headers.insert(REQUEST_ID, v);
        }
        headers.insert(
            http::header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if !headers.contains_key(http::header::CACHE_CONTROL) {
            headers.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            );
        }
        let took = started.elapsed();
        self.svc.metrics.record(
            Protocol::Http,
            endpoint,
            status.as_str(),
            status.as_u16() >= 400,
            took,
        );
        tracing::info!(
            protocol = "http",
            method = %method,
            route = endpoint,
            status = status.as_u16(),
            ms = took.as_secs_f64() * 1e3,
            id = %id,
            "request"
        );
        Ok(resp)
    }
}
