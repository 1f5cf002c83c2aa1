//! The REST wire types: the reference's request and response bodies (field
//! names, defaults, validation), the error responses, the `X-API-Key`
//! security scheme, and the two bodies sent as prepared bytes (a plot, and
//! `/quick_plot`'s object around one). Request bodies are read as FastAPI
//! and pydantic read them ([`lax`]).

mod form;
pub mod lax;
pub mod lax_schema;
mod params;
mod security;

pub use form::UploadForm;
pub use params::{ActionParam, UnitsParam};
pub use security::{API_KEY_SCHEME, ApiKeyHeader};

use bytes::Bytes;
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchema, Registry};
use poem_openapi::types::{Example, Type};
use poem_openapi::{ApiResponse, Enum, Multipart, Object, payload::Json};
use serde::Serialize;

use crate::engine::{CacheReport, PlotBytes};
use crate::pipeline::FormattedWarnings;
use crate::plot::PlotFormat;

use super::error::ApiError;

/// `POST /convert_to_unified`: the upload.
#[derive(Debug, Multipart)]
pub struct ConvertForm {
    /// The CGM export (any supported format).
    pub file: poem_openapi::types::multipart::Upload,
}

/// `POST /convert_to_unified`: the unified CSV, or why there is none.
#[derive(Debug, Object, Serialize)]
#[oai(example)]
pub struct ConvertResponse {
    /// The unified CSV (cgm-format 0.13.0), null on error.
    #[oai(nullable)]
    pub csv_content: Option<String>,
    /// Why the file could not be converted, null on success.
    #[oai(nullable)]
    pub error: Option<String>,
}

/// A unified CSV of two readings (the example bodies' upload).
const EXAMPLE_CSV: &str = "sequence_id,original_datetime,original_glucose,quality,event_type,datetime,glucose,carbs,insulin_slow,insulin_fast,exercise\n\
0,2024-05-01T07:55:00.000,121.0,0,EGV_READ,2024-05-01T07:55:00.000,121.0,,,,\n\
0,2024-05-01T08:00:00.000,124.0,0,EGV_READ,2024-05-01T08:00:00.000,124.0,,,,\n";

/// A handle as `/process_unified` returns it (SHA-256 hex of a unified CSV).
const EXAMPLE_HANDLE: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

impl Example for ConvertResponse {
    fn example() -> Self {
        ConvertResponse {
            csv_content: Some(EXAMPLE_CSV.to_string()),
            error: None,
        }
    }
}

/// `POST /process_unified` and `POST /quick_plot`.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ProcessRequest {
    /// The upload, base64-encoded: any supported format.
    #[oai(validator(min_length = 1))]
    pub csv_base64: String,
    /// Recompute even when forecasts are cached.
    #[oai(default)]
    pub force_calculate: bool,
}

impl Example for ProcessRequest {
    fn example() -> Self {
        use base64::Engine as _;
        ProcessRequest {
            csv_base64: base64::engine::general_purpose::STANDARD.encode(EXAMPLE_CSV),
            force_calculate: false,
        }
    }
}

/// Data-quality warnings (`FormattedWarnings`).
#[derive(Debug, Default, Object, Serialize)]
pub struct Warnings {
    /// True when any warning is raised.
    pub has_warnings: bool,
    /// The minimum duration was not met.
    pub too_short: bool,
    /// Calibration events present.
    pub calibration: bool,
    /// Other quality issues.
    pub quality: bool,
    /// Gaps were imputed.
    pub imputation: bool,
    /// Values outside the sensor range.
    pub out_of_range: bool,
    /// Repeated timestamps.
    pub time_duplicates: bool,
    /// One line per raised warning.
    pub messages: Vec<String>,
}

impl From<&FormattedWarnings> for Warnings {
    fn from(w: &FormattedWarnings) -> Self {
        Warnings {
            has_warnings: w.has_warnings,
            too_short: w.too_short,
            calibration: w.calibration,
            quality: w.quality,
            imputation: w.imputation,
            out_of_range: w.out_of_range,
            time_duplicates: w.time_duplicates,
            messages: w.messages.clone(),
        }
    }
}

/// `POST /process_unified`: the handle, or why there is none.
#[derive(Debug, Object, Serialize)]
#[oai(example)]
pub struct UnifiedResponse {
    /// The dataset handle (SHA-256 of the unified CSV), null on error.
    #[oai(nullable)]
    pub handle: Option<String>,
    /// Windows in the dataset, null on error.
    #[oai(nullable)]
    pub total_samples: Option<i64>,
    /// Data-quality warnings.
    pub warnings: Warnings,
    /// Why the upload could not be used, null on success.
    #[oai(nullable)]
    pub error: Option<String>,
}

impl Example for UnifiedResponse {
    fn example() -> Self {
        UnifiedResponse {
            handle: Some(EXAMPLE_HANDLE.to_string()),
            total_samples: Some(110),
            warnings: Warnings {
                has_warnings: true,
                imputation: true,
                messages: vec!["IMPUTATION: gaps in the data were interpolated".into()],
                ..Warnings::default()
            },
            error: None,
        }
    }
}

/// `POST /draw_a_plot`.
#[derive(Debug, Object)]
#[oai(example)]
pub struct PlotRequest {
    /// A handle from `/process_unified`.
    #[oai(validator(min_length = 8, max_length = 64))]
    pub handle: String,
    /// The window: 0 is the last, -(N-1) the first.
    #[oai(validator(maximum(value = "0")))]
    pub index: i64,
    /// Recompute the window even when cached.
    #[oai(default)]
    pub force_calculate: bool,
}

impl Example for PlotRequest {
    fn example() -> Self {
        PlotRequest {
            handle: EXAMPLE_HANDLE.to_string(),
            index: 0,
            force_calculate: false,
        }
    }
}

/// `POST /forecast` (new): the next 60 minutes after the last reading.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ForecastRequest {
    /// The upload, base64-encoded (any supported format); or give `handle`.
    #[oai(nullable)]
    pub csv_base64: Option<String>,
    /// A handle from `/process_unified`.
    #[oai(nullable)]
    pub handle: Option<String>,
    /// Recompute even when cached.
    #[oai(default)]
    pub force_calculate: bool,
}

impl Example for ForecastRequest {
    fn example() -> Self {
        ForecastRequest {
            csv_base64: None,
            handle: Some(EXAMPLE_HANDLE.to_string()),
            force_calculate: false,
        }
    }
}

/// A plot format (query parameter `format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum FormatParam {
    /// The reference's Plotly figure JSON.
    Plotly,
    /// Compact JSON: times, median, quantiles, samples, history.
    Json,
    /// A 1000x600 PNG.
    Png,
    /// A 1000x600 SVG.
    Svg,
}

/// The formats `/quick_plot` answers with (JSON only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum QuickFormatParam {
    /// The reference's Plotly figure JSON.
    Plotly,
    /// Compact JSON: times, median, quantiles, samples, history.
    Json,
}

impl From<QuickFormatParam> for FormatParam {
    fn from(f: QuickFormatParam) -> Self {
        match f {
            QuickFormatParam::Plotly => FormatParam::Plotly,
            QuickFormatParam::Json => FormatParam::Json,
        }
    }
}

impl From<FormatParam> for PlotFormat {
    fn from(f: FormatParam) -> Self {
        match f {
            FormatParam::Plotly => PlotFormat::Plotly,
            FormatParam::Json => PlotFormat::Json,
            FormatParam::Png => PlotFormat::Png,
            FormatParam::Svg => PlotFormat::Svg,
        }
    }
}

/// The media type that asks for the compact JSON in `Accept`.
pub const COMPACT_MEDIA_TYPE: &str = "application/vnd.glurpc.forecast+json";

/// The format asked for: the `format` parameter, else the first media type
/// in `Accept` that names one, else `default`.
pub fn negotiate(
    param: Option<FormatParam>,
    accept: Option<&str>,
    default: PlotFormat,
) -> PlotFormat {
    if let Some(p) = param {
        return p.into();
    }
    for part in accept.unwrap_or("").split(',') {
        let media = part
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "image/png" => return PlotFormat::Png,
            "image/svg+xml" => return PlotFormat::Svg,
            COMPACT_MEDIA_TYPE => return PlotFormat::Json,
            "application/json" => return default,
            _ => {}
        }
    }
    default
}

/// `POST /cache_management`.
#[derive(Debug, Object, Serialize)]
pub struct CacheManagementResponse {
    /// Whether the action succeeded.
    pub success: bool,
    /// What happened.
    #[oai(nullable)]
    pub message: Option<String>,
    /// Handles held in memory or on disk.
    pub cache_size: i64,
    /// Handles persisted on disk.
    pub persisted_count: i64,
    /// Entries the action touched (null for flush and info).
    #[oai(nullable)]
    pub items_affected: Option<i64>,
}

impl From<CacheReport> for CacheManagementResponse {
    fn from(r: CacheReport) -> Self {
        CacheManagementResponse {
            success: r.success,
            message: Some(r.message),
            cache_size: r.cache_size as i64,
            persisted_count: r.persisted_count as i64,
            items_affected: r.items_affected.map(|n| n as i64),
        }
    }
}

/// `{"detail": "..."}`, the reference's error body.
#[derive(Debug, Object, Serialize)]
pub struct Detail {
    /// What went wrong.
    pub detail: String,
}

/// One request-validation error (pydantic's error, as FastAPI sends it).
#[derive(Debug, Object)]
#[oai(rename = "ValidationError")]
pub struct ValidationErrorDoc {
    /// pydantic's error type: `missing`, `int_parsing`, `bool_parsing`,
    /// `string_type`, `less_than_equal`, `json_invalid`, ...
    #[oai(rename = "type")]
    pub kind: String,
    /// Where: `["body", "index"]`, `["query", "action"]`.
    pub loc: Vec<serde_json::Value>,
    /// pydantic's message.
    pub msg: String,
    /// The value refused (long strings truncated).
    pub input: Option<serde_json::Value>,
    /// The constraint's parameters, e.g. `{"le": 0}`.
    pub ctx: Option<serde_json::Value>,
}

/// FastAPI's 422 body.
#[derive(Debug, Object)]
#[oai(rename = "HTTPValidationError")]
pub struct HttpValidationError {
    /// Every validation error found.
    pub detail: Vec<ValidationErrorDoc>,
}

/// The error responses.
#[derive(Debug, ApiResponse)]
pub enum ErrorResponse {
    /// Invalid argument (an index out of range, a missing parameter).
    #[oai(status = 400)]
    BadRequest(Json<Detail>),
    /// No API key (when keys are enabled).
    #[oai(status = 401)]
    Unauthorized(Json<Detail>),
    /// An unknown API key.
    #[oai(status = 403)]
    Forbidden(Json<Detail>),
    /// Unknown handle.
    #[oai(status = 404)]
    NotFound(Json<Detail>),
    /// The upload is larger than the limit.
    #[oai(status = 413)]
    TooLarge(Json<Detail>),
    /// Request validation failed (FastAPI's body: pydantic's errors).
    #[oai(status = 422)]
    Unprocessable(Json<HttpValidationError>),
    /// An unexpected failure (details in the server log).
    #[oai(status = 500)]
    Internal(Json<Detail>),
    /// The queue is full or the service is stopping: retry later.
    #[oai(status = 503)]
    Unavailable(
        Json<Detail>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u32,
    ),
    /// No forecast within the inference timeout.
    #[oai(status = 504)]
    Timeout(Json<Detail>),
}

impl From<ApiError> for ErrorResponse {
    fn from(e: ApiError) -> Self {
        e.log();
        let f = e.http();
        let d = Json(Detail { detail: f.detail });
        match f.status {
            401 => ErrorResponse::Unauthorized(d),
            403 => ErrorResponse::Forbidden(d),
            404 => ErrorResponse::NotFound(d),
            413 => ErrorResponse::TooLarge(d),
            503 => ErrorResponse::Unavailable(d, f.retry_after_s.unwrap_or(30)),
            504 => ErrorResponse::Timeout(d),
            400 => ErrorResponse::BadRequest(d),
            _ => ErrorResponse::Internal(d),
        }
    }
}

/// A rendered plot sent as its prepared bytes (no copy): Plotly or compact
/// JSON, PNG or SVG.
pub struct PlotBody(pub Bytes, pub PlotFormat);

impl From<&PlotBytes> for PlotBody {
    fn from(p: &PlotBytes) -> Self {
        PlotBody(p.bytes.clone(), p.format)
    }
}

impl IntoResponse for PlotBody {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(self.1.content_type())
            .body(self.0)
    }
}

fn binary_schema() -> poem_openapi::registry::MetaSchemaRef {
    poem_openapi::registry::MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format(
        "string", "binary",
    )))
}

impl ApiResponse for PlotBody {
    fn meta() -> MetaResponses {
        let json = <serde_json::Value as Type>::schema_ref();
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The plot: the Plotly figure (default), compact JSON, PNG or SVG",
                status: Some(200),
                status_range: None,
                content: vec![
                    MetaMediaType {
                        content_type: "application/json",
                        schema: json.clone(),
                    },
                    MetaMediaType {
                        content_type: COMPACT_MEDIA_TYPE,
                        schema: json,
                    },
                    MetaMediaType {
                        content_type: "image/png",
                        schema: binary_schema(),
                    },
                    MetaMediaType {
                        content_type: "image/svg+xml",
                        schema: binary_schema(),
                    },
                ],
                headers: vec![],
            }],
        }
    }

    fn register(_registry: &mut Registry) {}
}

/// `POST /quick_plot`'s body, as documented; sent as [`QuickPlotBody`].
#[derive(Debug, Object)]
pub struct QuickPlotResponse {
    /// The Plotly figure (or compact JSON with `format=json`); `{}` on error.
    pub plot_data: serde_json::Value,
    /// Data-quality warnings.
    pub warnings: Warnings,
    /// Why there is no plot, null on success.
    #[oai(nullable)]
    pub error: Option<String>,
}

/// `/quick_plot`'s answer, written around the plot's prepared bytes
/// instead of re-serialising the figure.
pub struct QuickPlotBody(pub Bytes);

impl QuickPlotBody {
    /// `{"plot_data":<plot or {}>,"warnings":{...},"error":<text or null>}`.
    pub fn new(plot: Option<&Bytes>, warnings: &Warnings, error: Option<&str>) -> QuickPlotBody {
        let plot: &[u8] = plot.map(|b| b.as_ref()).unwrap_or(b"{}");
        let warnings = serde_json::to_string(warnings).unwrap_or_default();
        let error = serde_json::to_string(&error).unwrap_or_else(|_| "null".into());
        let mut out = Vec::with_capacity(plot.len() + warnings.len() + error.len() + 40);
        out.extend_from_slice(b"{\"plot_data\":");
        out.extend_from_slice(plot);
        out.extend_from_slice(b",\"warnings\":");
        out.extend_from_slice(warnings.as_bytes());
        out.extend_from_slice(b",\"error\":");
        out.extend_from_slice(error.as_bytes());
        out.push(b'}');
        QuickPlotBody(out.into())
    }
}

impl IntoResponse for QuickPlotBody {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type("application/json")
            .body(self.0)
    }
}

impl ApiResponse for QuickPlotBody {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The plot of the last window, its warnings, or why there is none",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "application/json",
                    schema: <QuickPlotResponse as Type>::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        <QuickPlotResponse as Type>::register(registry);
    }
}

/// A JSON body written by serde, keeping the fields in declaration order
/// (as the reference's FastAPI does); documented with `T`'s schema.
pub struct OrderedJson<T>(pub T);

impl<T: Serialize + Send> IntoResponse for OrderedJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => Response::builder()
                .content_type("application/json")
                .body(body),
            Err(e) => {
                tracing::error!(error = %e, "response serialisation failed");
                Response::builder()
                    .status(poem::http::StatusCode::INTERNAL_SERVER_ERROR)
                    .finish()
            }
        }
    }
}

impl<T: Serialize + Type + Send> ApiResponse for OrderedJson<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "application/json",
                    schema: T::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// `GET /metrics`: Prometheus's text exposition, with the content type
/// Prometheus asks for (the metrics port sends the same, [`super::metrics::CONTENT_TYPE`]).
#[derive(ApiResponse)]
pub enum MetricsText {
    /// The metrics.
    #[oai(
        status = 200,
        content_type = "text/plain; version=0.0.4; charset=utf-8"
    )]
    Ok(poem_openapi::payload::PlainText<String>),
}
