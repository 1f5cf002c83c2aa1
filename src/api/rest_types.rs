//! The REST wire types: the reference's request and response bodies (field
//! names, defaults, validation), the error responses, and the two bodies
//! sent as prepared bytes (a plot, and `/quick_plot`'s object around one).

use bytes::Bytes;
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchema, Registry};
use poem_openapi::types::Type;
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
pub struct ConvertResponse {
    /// The unified CSV (cgm-format 0.13.0), null on error.
    pub csv_content: Option<String>,
    /// Why the file could not be converted, null on success.
    pub error: Option<String>,
}

/// `POST /process_unified` and `POST /quick_plot`.
#[derive(Debug, Object)]
pub struct ProcessRequest {
    /// The upload, base64-encoded: any supported format.
    #[oai(validator(min_length = 1))]
    pub csv_base64: String,
    /// Recompute even when forecasts are cached.
    #[oai(default)]
    pub force_calculate: bool,
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
pub struct UnifiedResponse {
    /// The dataset handle (SHA-256 of the unified CSV), null on error.
    pub handle: Option<String>,
    /// Windows in the dataset, null on error.
    pub total_samples: Option<i64>,
    /// Data-quality warnings.
    pub warnings: Warnings,
    /// Why the upload could not be used, null on success.
    pub error: Option<String>,
}

/// `POST /draw_a_plot`.
#[derive(Debug, Object)]
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

/// `POST /forecast` (new): the next 60 minutes after the last reading.
#[derive(Debug, Object)]
pub struct ForecastRequest {
    /// The upload, base64-encoded (any supported format); or give `handle`.
    pub csv_base64: Option<String>,
    /// A handle from `/process_unified`.
    pub handle: Option<String>,
    /// Recompute even when cached.
    #[oai(default)]
    pub force_calculate: bool,
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
    pub message: Option<String>,
    /// Handles held in memory or on disk.
    pub cache_size: i64,
    /// Handles persisted on disk.
    pub persisted_count: i64,
    /// Entries the action touched (null for flush and info).
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
