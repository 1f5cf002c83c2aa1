//! The REST front end (poem + poem-openapi): the reference's six endpoints
//! with its field names, status codes and error bodies, plus `/forecast`,
//! `/metrics`, the OpenAPI document and Swagger UI. Handlers only translate
//! between wire types and [`Service`] calls; auth, limits, request ids,
//! metrics and validation errors are middleware (`rest_layers`).

use poem::{Endpoint, EndpointExt, Request, Route};
use poem_openapi::param::Query;
use poem_openapi::payload::PlainText;
use poem_openapi::{OpenApi, OpenApiService};

use crate::engine::EngineError;
use crate::engine::plots::PlotSpec;
use crate::plot::PlotFormat;

use super::error::ApiError;
use super::ops::{Health, Service, Source, parse_units};
use super::rest_layers::Frontline;
use super::rest_types::lax::LaxJson;
use super::rest_types::*;

/// The API's title in the OpenAPI document (the reference's).
pub const TITLE: &str = "GluRPC";

/// The endpoints.
pub struct RestApi {
    svc: Service,
}

fn accept(req: &Request) -> Option<&str> {
    req.headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
}

#[OpenApi]
impl RestApi {
    /// Convert a CGM export (Dexcom, Libre, Medtronic, Nightscout, unified)
    /// to the unified CSV. Public. Conversion failures are reported in
    /// `error` with status 200.
    #[oai(path = "/convert_to_unified", method = "post")]
    async fn convert_to_unified(
        &self,
        form: UploadForm,
    ) -> Result<OrderedJson<ConvertResponse>, ErrorResponse> {
        let bytes = form.0;
        match self.svc.convert(bytes).await {
            Ok(p) => Ok(OrderedJson(ConvertResponse {
                csv_content: Some(p.csv),
                error: None,
            })),
            // Refusals are HTTP errors, not conversion failures.
            Err(
                e @ ApiError::Engine(
                    EngineError::TooLarge { .. }
                    | EngineError::ResponseTooLarge { .. }
                    | EngineError::Busy { .. },
                ),
            ) => Err(e.into()),
            Err(e) => Ok(OrderedJson(ConvertResponse {
                csv_content: None,
                error: Some(e.in_body().unwrap_or_else(|| e.to_string())),
            })),
        }
    }

    /// Parse an upload, keep it under its handle and forecast its windows
    /// in the background. Answers at once; unusable uploads are reported in
    /// `error` with status 200.
    #[oai(path = "/process_unified", method = "post")]
    async fn process_unified(
        &self,
        key: ApiKeyHeader,
        body: LaxJson<ProcessRequest>,
    ) -> Result<OrderedJson<UnifiedResponse>, ErrorResponse> {
        let caller = self.svc.caller(key.key());
        let body = body.0;
        match self
            .svc
            .process(&caller, &body.csv_base64, body.force_calculate)
            .await
        {
            Ok(p) => Ok(OrderedJson(UnifiedResponse {
                handle: Some(p.handle),
                total_samples: Some(p.total_samples as i64),
                warnings: (&p.warnings).into(),
                error: None,
            })),
            Err(e) => match e.in_body() {
                Some(msg) => Ok(OrderedJson(UnifiedResponse {
                    handle: None,
                    total_samples: None,
                    warnings: Warnings::default(),
                    error: Some(msg),
                })),
                None => Err(e.into()),
            },
        }
    }

    /// The plot of one window of a processed upload: the Plotly figure by
    /// default; compact JSON, PNG or SVG with `format` or `Accept`. Waits
    /// only for this window's forecast.
    #[oai(path = "/draw_a_plot", method = "post")]
    async fn draw_a_plot(
        &self,
        req: &Request,
        _key: ApiKeyHeader,
        body: LaxJson<PlotRequest>,
        /// Output format (overrides `Accept`).
        format: Query<Option<FormatParam>>,
        /// Glucose unit of a PNG or SVG chart: `mg/dL` or `mmol/L` (also
        /// `mgdl`, `mmol`, any case). Default: the export's own unit. JSON
        /// formats are always in mg/dL.
        units: Query<Option<UnitsParam>>,
    ) -> Result<PlotBody, ErrorResponse> {
        let format = negotiate(format.0, accept(req), PlotFormat::Plotly);
        let spec = PlotSpec::new(format, parse_units(units.0.as_ref().map(|u| u.0.as_str()))?);
        let body = body.0;
        let plot = self
            .svc
            .plot(&body.handle, body.index, body.force_calculate, spec)
            .await?;
        Ok(PlotBody::from(&*plot))
    }

    /// Process the last 540 minutes of an upload and plot its last window in
    /// one call; the full dataset is then forecast in the background.
    /// Failures after parsing, and unusable uploads, are reported in
    /// `error` with status 200.
    #[oai(path = "/quick_plot", method = "post")]
    async fn quick_plot(
        &self,
        key: ApiKeyHeader,
        body: LaxJson<ProcessRequest>,
        /// `plotly` (default) or `json` (compact); images come from
        /// `/draw_a_plot` and `/forecast`.
        format: Query<Option<QuickFormatParam>>,
    ) -> Result<QuickPlotBody, ErrorResponse> {
        let format = negotiate(format.0.map(FormatParam::from), None, PlotFormat::Plotly);
        let caller = self.svc.caller(key.key());
        let body = body.0;
        let (processed, plot) = match self
            .svc
            .quick_plot(&caller, &body.csv_base64, body.force_calculate, format)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return match e.in_body() {
                    Some(msg) => Ok(QuickPlotBody::new(None, &Warnings::default(), Some(&msg))),
                    None => Err(e.into()),
                };
            }
        };
        let warnings = Warnings::from(&processed.warnings);
        match plot {
            Ok(p) => Ok(QuickPlotBody::new(Some(&p.bytes), &warnings, None)),
            Err(e) if e.http().status == 503 => Err(e.into()),
            Err(e) => {
                e.log();
                Ok(QuickPlotBody::new(None, &warnings, Some(&e.to_string())))
            }
        }
    }

    /// New: the forecast of the next 60 minutes after the last reading,
    /// from an upload or a handle. Compact JSON by default; the Plotly
    /// figure, PNG or SVG with `format` or `Accept`.
    #[oai(path = "/forecast", method = "post")]
    async fn forecast(
        &self,
        req: &Request,
        key: ApiKeyHeader,
        body: LaxJson<ForecastRequest>,
        /// Output format (overrides `Accept`).
        format: Query<Option<FormatParam>>,
        /// Glucose unit of a PNG or SVG chart: `mg/dL` or `mmol/L` (also
        /// `mgdl`, `mmol`, any case). Default: the export's own unit. JSON
        /// formats are always in mg/dL.
        units: Query<Option<UnitsParam>>,
    ) -> Result<PlotBody, ErrorResponse> {
        let format = negotiate(format.0, accept(req), PlotFormat::Json);
        let spec = PlotSpec::new(format, parse_units(units.0.as_ref().map(|u| u.0.as_str()))?);
        let body = body.0;
        let source = match (body.csv_base64, body.handle) {
            (Some(b64), None) => Source::Upload(b64),
            (None, Some(h)) => Source::Handle(h),
            _ => {
                return Err(
                    ApiError::Invalid("give exactly one of csv_base64 and handle".into()).into(),
                );
            }
        };
        let caller = self.svc.caller(key.key());
        let f = self
            .svc
            .forecast(&caller, source, body.force_calculate, spec)
            .await?;
        Ok(PlotBody::from(&*f.plot))
    }

    /// Cache actions: `flush`, `info`, `delete`, `save`, `load` (query
    /// parameters, as in the reference). With an admin key list
    /// (`GLURPC_ADMIN_KEYS_FILE`), `flush`, `save`, `load` and deleting an
    /// upload the key did not create need an admin key (403 otherwise).
    #[oai(path = "/cache_management", method = "post")]
    async fn cache_management(
        &self,
        key: ApiKeyHeader,
        /// The action.
        action: Query<ActionParam>,
        /// The handle, for `delete` and `load`.
        handle: Query<Option<String>>,
    ) -> Result<OrderedJson<CacheManagementResponse>, ErrorResponse> {
        let caller = self.svc.caller(key.key());
        let report = self
            .svc
            .cache(&caller, &action.0.0, handle.0.as_deref())
            .await?;
        Ok(OrderedJson(report.into()))
    }

    /// Service health: the reference's 23 fields. Public, always 200.
    #[oai(path = "/health", method = "get")]
    async fn health(&self) -> OrderedJson<Health> {
        OrderedJson(self.svc.health())
    }

    /// New: which model answers: glurpc's version, the model's source and
    /// SHA-256, its hyperparameters and parameter count, the device, the
    /// samples, seed and batch size, and the band calibration. Public.
    #[oai(path = "/info", method = "get")]
    async fn info(&self) -> poem_openapi::payload::Json<serde_json::Value> {
        // Through the text, so that f32 settings read as written (0.2, not
        // 0.20000000298023224). Plain structs of strings and numbers cannot
        // fail to serialise.
        let text = serde_json::to_string(&self.svc.info()).unwrap_or_default();
        poem_openapi::payload::Json(serde_json::from_str(&text).unwrap_or_default())
    }

    /// Prometheus metrics (text exposition format). Public.
    #[oai(path = "/metrics", method = "get")]
    async fn metrics(&self) -> MetricsText {
        MetricsText::Ok(PlainText(self.svc.metrics_text()))
    }
}

/// The OpenAPI service (the document and the endpoints).
pub fn openapi(svc: Service) -> OpenApiService<RestApi, ()> {
    OpenApiService::new(RestApi { svc }, TITLE, env!("CARGO_PKG_VERSION"))
        .description("Glucose Prediction Service")
}

/// The OpenAPI document as written to `openapi/openapi.json`.
pub fn openapi_json(svc: Service) -> String {
    openapi(svc).spec()
}

/// The CORS policy for `origins` (`*`: any origin): `GET`, `POST` and
/// `OPTIONS` with the API's request headers, and the headers a browser
/// client needs to read back. No credentials: keys travel in `X-API-Key`.
/// Origins must be valid header values ([`valid_origin`]).
pub fn cors(origins: &[String]) -> poem::middleware::Cors {
    let cors = poem::middleware::Cors::new()
        .allow_methods([http::Method::GET, http::Method::POST, http::Method::OPTIONS])
        .allow_headers(["content-type", "x-api-key", "x-request-id", "accept"])
        .expose_headers(["x-request-id", "retry-after", "content-type"])
        .max_age(600);
    if origins.iter().any(|o| o == "*") {
        return cors;
    }
    origins
        .iter()
        .filter(|o| valid_origin(o))
        .fold(cors, |c, o| c.allow_origin(o.as_str()))
}

/// True when `origin` can be listed in [`cors`]: `*`, or `scheme://host[:port]`
/// as a browser sends it in `Origin`.
pub fn valid_origin(origin: &str) -> bool {
    origin == "*"
        || ((origin.starts_with("http://") || origin.starts_with("https://"))
            && !origin.ends_with('/')
            && http::HeaderValue::from_str(origin).is_ok()
            && origin.bytes().all(|b| b.is_ascii_graphic()))
}

/// The REST application: endpoints, `/openapi.json`, Swagger UI at `/docs`,
/// the web page at `/` ([`super::web`]), all behind the front-line
/// middleware.
pub fn app(
    svc: Service,
    max_body_bytes: usize,
    conns: std::sync::Arc<super::disconnect::Connections>,
    cors_origins: Vec<String>,
    body_timeout: std::time::Duration,
) -> impl Endpoint {
    let api = openapi(svc.clone());
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    let routes = Route::new()
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .nest("/", api);
    super::web::in_front_of(routes)
        .with(Frontline::new(svc, max_body_bytes, conns, body_timeout))
        .with_if(!cors_origins.is_empty(), cors(&cors_origins))
}
