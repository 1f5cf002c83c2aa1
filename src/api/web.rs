//! The web page for people: a single-page app (`web/` in the repository: HTML,
//! CSS and plain JavaScript, no build step) embedded in the binary and served
//! at `/` and under `/app` (deep links), with its assets under `/assets/`
//! (`app.js`: the flow, words and downloads; `chart.js`: the chart).
//!
//! The page only calls the public API (`/process_unified`, `/forecast`,
//! `/draw_a_plot`, `/cache_management`), so it needs no endpoint of its own.
//! Every asset is local and a Content-Security-Policy lets the browser reach
//! this server alone: no CDN, font or script from elsewhere, and the page
//! works with the network off.

use std::sync::LazyLock;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response, Route, handler};
use sha2::{Digest, Sha256};

/// One embedded file with its content type and validator.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: String,
}

impl Asset {
    fn new(body: &'static [u8], content_type: &'static str) -> Asset {
        let digest = Sha256::digest(body);
        Asset {
            body,
            content_type,
            etag: format!("\"{}\"", hex::encode(&digest[..12])),
        }
    }
}

static INDEX: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_bytes!("../../web/index.html"),
        "text/html; charset=utf-8",
    )
});
static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_bytes!("../../web/app.js"),
        "text/javascript; charset=utf-8",
    )
});
static CHART: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_bytes!("../../web/chart.js"),
        "text/javascript; charset=utf-8",
    )
});
static STYLE: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_bytes!("../../web/app.css"),
        "text/css; charset=utf-8",
    )
});
static ICON: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_bytes!("../../web/favicon.svg"), "image/svg+xml"));

/// The page's Content-Security-Policy: scripts, styles, images and requests
/// from this origin only (images also from `blob:` for downloads), no
/// plugins, frames or form posts anywhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `asset` as a response: `304` when the client's `If-None-Match` already
/// names it, otherwise the bytes. Browsers revalidate on every load
/// (`no-cache`), so a new binary's page is never hidden behind an old one.
fn serve(req: &Request, asset: &Asset) -> Response {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag));
    let mut resp = if fresh {
        Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .finish()
    } else {
        Response::builder()
            .header(header::CONTENT_TYPE, asset.content_type)
            .body(asset.body)
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&asset.etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

#[handler]
fn index(req: &Request) -> Response {
    serve(req, &INDEX)
}

#[handler]
fn script(req: &Request) -> Response {
    serve(req, &SCRIPT)
}

#[handler]
fn chart(req: &Request) -> Response {
    serve(req, &CHART)
}

#[handler]
fn style(req: &Request) -> Response {
    serve(req, &STYLE)
}

#[handler]
fn icon(req: &Request) -> Response {
    serve(req, &ICON)
}

/// True for the paths this module serves (for the request metrics' label).
pub fn is_page(path: &str) -> bool {
    path == "/" || path == "/app" || path.starts_with("/app/") || path.starts_with("/assets/")
}

/// `api` with the page in front of it: the page's paths ([`is_page`]) go to
/// the page, everything else to `api`. (A poem `Route` cannot hold `/` beside
/// an OpenAPI service nested at `/`, so the split is by path here.)
pub fn in_front_of<E: Endpoint>(api: E) -> impl Endpoint {
    let page = Route::new()
        .at("/", poem::get(index))
        .at("/app", poem::get(index))
        .at("/app/*rest", poem::get(index))
        .at("/assets/app.js", poem::get(script))
        .at("/assets/chart.js", poem::get(chart))
        .at("/assets/app.css", poem::get(style))
        .at("/assets/favicon.svg", poem::get(icon));
    PageOr { page, api }
}

/// The split of [`in_front_of`].
struct PageOr<E> {
    page: Route,
    api: E,
}

impl<E: Endpoint> Endpoint for PageOr<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if is_page(req.uri().path()) {
            self.page.call(req).await
        } else {
            self.api.call(req).await.map(IntoResponse::into_response)
        }
    }
}

/// The total size of the page's files, in bytes (what a first load transfers
/// before any API call, uncompressed).
pub fn page_bytes() -> usize {
    [&INDEX, &SCRIPT, &CHART, &STYLE, &ICON]
        .iter()
        .map(|a| a.body.len())
        .sum()
}
