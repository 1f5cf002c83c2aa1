//! The gRPC front end (tonic): package `glurpc`, service
//! `GlucosePrediction`, the reference's six methods with its messages and
//! error semantics, plus `Forecast` (the next 60 minutes) and
//! `StreamForecasts` (every window as it is computed). Handlers only
//! translate between messages and [`Service`] calls; auth, request ids and
//! metrics are tower middleware (`grpc_layers`).

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::engine::plots::PlotSpec;
use crate::pipeline::FormattedWarnings;
use crate::plot::PlotFormat;
use crate::proto;
use crate::proto::glucose_prediction_server::GlucosePrediction;

use super::error::ApiError;
use super::ops::{Health, Service, Source, parse_format, parse_units};

/// The gRPC service implementation.
pub struct GrpcApi {
    svc: Service,
}

impl GrpcApi {
    /// The service over `svc`.
    pub fn new(svc: Service) -> GrpcApi {
        GrpcApi { svc }
    }
}

fn warnings(w: &FormattedWarnings) -> proto::Warnings {
    proto::Warnings {
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

fn status(e: ApiError) -> Status {
    e.log();
    e.grpc()
}

/// The caller behind a request's `x-api-key` metadata (checked already by
/// the auth layer).
fn caller<T>(svc: &Service, request: &Request<T>) -> super::auth::Caller {
    svc.caller(request.metadata().get("x-api-key").map(|v| v.as_bytes()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Only JSON formats fit a string field.
fn json_format(name: &str, default: PlotFormat) -> Result<PlotFormat, Status> {
    match parse_format(name, default).map_err(status)? {
        f @ (PlotFormat::Plotly | PlotFormat::Json) => Ok(f),
        other => Err(Status::invalid_argument(format!(
            "format {other} is not text: use plotly or json here (images come from Forecast)"
        ))),
    }
}

impl From<Health> for proto::HealthResponse {
    fn from(h: Health) -> Self {
        let i = |v: i64| v.clamp(0, i32::MAX as i64) as i32;
        proto::HealthResponse {
            status: h.status,
            load_status: h.load_status,
            cache_size: i(h.cache_size),
            models_initialized: h.models_initialized,
            available_priority_models: i(h.available_priority_models),
            available_general_models: i(h.available_general_models),
            avg_fulfillment_time_ms: h.avg_fulfillment_time_ms,
            vmem_usage_mb: h.vmem_usage_mb,
            device: h.device,
            total_http_requests: i(h.total_http_requests),
            total_http_errors: i(h.total_http_errors),
            avg_request_time_ms: h.avg_request_time_ms,
            median_request_time_ms: h.median_request_time_ms,
            min_request_time_ms: h.min_request_time_ms,
            max_request_time_ms: h.max_request_time_ms,
            inference_requests_by_priority: h
                .inference_requests_by_priority
                .into_iter()
                .filter_map(|(p, n)| Some((p.parse().ok()?, i(n))))
                .collect(),
            total_inference_errors: i(h.total_inference_errors),
            total_calc_runs: i(h.total_calc_runs),
            total_calc_errors: i(h.total_calc_errors),
            inference_queue_size: i(h.inference_queue_size),
            inference_queue_capacity: i(h.inference_queue_capacity),
            calc_queue_size: i(h.calc_queue_size),
            calc_queue_capacity: i(h.calc_queue_capacity),
        }
    }
}

/// The stream type of `StreamForecasts`.
pub type WindowStream = Pin<Box<dyn Stream<Item = Result<proto::WindowForecast, Status>> + Send>>;

#[tonic::async_trait]
impl GlucosePrediction for GrpcApi {
    async fn convert_to_unified(
        &self,
        request: Request<proto::ConvertToUnifiedRequest>,
    ) -> Result<Response<proto::ConvertToUnifiedResponse>, Status> {
        let file = request.into_inner().file_content;
        let reply = match self.svc.convert(file).await {
            Ok(p) => proto::ConvertToUnifiedResponse {
                csv_content: p.csv,
                error: String::new(),
            },
            Err(e) if e.grpc().code() == tonic::Code::ResourceExhausted => return Err(status(e)),
            Err(e) => proto::ConvertToUnifiedResponse {
                csv_content: String::new(),
                error: e.in_body().unwrap_or_else(|| e.to_string()),
            },
        };
        Ok(Response::new(reply))
    }

    async fn process_unified(
        &self,
        request: Request<proto::ProcessUnifiedRequest>,
    ) -> Result<Response<proto::ProcessUnifiedResponse>, Status> {
        let who = caller(&self.svc, &request);
        let r = request.into_inner();
        let reply = match self
            .svc
            .process(&who, &r.csv_base64, r.force_calculate)
            .await
        {
            Ok(p) => proto::ProcessUnifiedResponse {
                handle: p.handle,
                total_samples: p.total_samples.min(i32::MAX as usize) as i32,
                warnings: Some(warnings(&p.warnings)),
                error: String::new(),
            },
            Err(e) => match e.in_body() {
                Some(msg) => proto::ProcessUnifiedResponse {
                    error: msg,
                    ..Default::default()
                },
                None => return Err(status(e)),
            },
        };
        Ok(Response::new(reply))
    }

    async fn draw_plot(
        &self,
        request: Request<proto::PlotRequest>,
    ) -> Result<Response<proto::PlotResponse>, Status> {
        let r = request.into_inner();
        let plot = self
            .svc
            .plot(
                &r.handle,
                r.index.into(),
                r.force_calculate,
                PlotFormat::Plotly,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::PlotResponse {
            plot_json: text(&plot.bytes),
            error: String::new(),
        }))
    }

    async fn quick_plot(
        &self,
        request: Request<proto::QuickPlotRequest>,
    ) -> Result<Response<proto::QuickPlotResponse>, Status> {
        let who = caller(&self.svc, &request);
        let r = request.into_inner();
        let reply = match self
            .svc
            .quick_plot(&who, &r.csv_base64, r.force_calculate, PlotFormat::Plotly)
            .await
        {
            Ok((p, Ok(plot))) => proto::QuickPlotResponse {
                plot_json: text(&plot.bytes),
                warnings: Some(warnings(&p.warnings)),
                error: String::new(),
            },
            Ok((_, Err(e))) if e.grpc().code() == tonic::Code::ResourceExhausted => {
                return Err(status(e));
            }
            Ok((p, Err(e))) => {
                e.log();
                proto::QuickPlotResponse {
                    plot_json: String::new(),
                    warnings: Some(warnings(&p.warnings)),
                    error: e.to_string(),
                }
            }
            Err(e) => match e.in_body() {
                Some(msg) => proto::QuickPlotResponse {
                    error: msg,
                    ..Default::default()
                },
                None => return Err(status(e)),
            },
        };
        Ok(Response::new(reply))
    }

    async fn manage_cache(
        &self,
        request: Request<proto::CacheManagementRequest>,
    ) -> Result<Response<proto::CacheManagementResponse>, Status> {
        let who = caller(&self.svc, &request);
        let r = request.into_inner();
        let handle = (!r.handle.is_empty()).then_some(r.handle.as_str());
        let i = |v: usize| v.min(i32::MAX as usize) as i32;
        let reply = match self.svc.cache(&who, &r.action, handle).await {
            Ok(rep) => proto::CacheManagementResponse {
                success: rep.success,
                message: rep.message,
                cache_size: i(rep.cache_size),
                persisted_count: i(rep.persisted_count),
                items_affected: i(rep.items_affected.unwrap_or(0)),
            },
            Err(e) if e.grpc().code() == tonic::Code::InvalidArgument => return Err(status(e)),
            Err(e @ ApiError::AdminRequired(_)) => return Err(status(e)),
            Err(e) => {
                e.log();
                proto::CacheManagementResponse {
                    success: false,
                    message: format!("Internal error: {e}"),
                    ..Default::default()
                }
            }
        };
        Ok(Response::new(reply))
    }

    async fn check_health(
        &self,
        _request: Request<proto::HealthRequest>,
    ) -> Result<Response<proto::HealthResponse>, Status> {
        Ok(Response::new(self.svc.health().into()))
    }

    async fn forecast(
        &self,
        request: Request<proto::ForecastRequest>,
    ) -> Result<Response<proto::ForecastResponse>, Status> {
        let who = caller(&self.svc, &request);
        let r = request.into_inner();
        let format = parse_format(&r.format, PlotFormat::Json).map_err(status)?;
        let spec = PlotSpec::new(format, parse_units(r.units.as_deref()).map_err(status)?);
        let source = match (r.csv_base64.is_empty(), r.handle.is_empty()) {
            (false, true) => Source::Upload(r.csv_base64),
            (true, false) => Source::Handle(r.handle),
            _ => {
                return Err(Status::invalid_argument(
                    "give exactly one of csv_base64 and handle",
                ));
            }
        };
        let reply = match self
            .svc
            .forecast(&who, source, r.force_calculate, spec)
            .await
        {
            Ok(f) => proto::ForecastResponse {
                handle: f.handle,
                body: f.plot.bytes.to_vec(),
                content_type: format.content_type().to_string(),
                warnings: Some(warnings(&f.warnings)),
                error: String::new(),
            },
            Err(e) => match e.in_body() {
                Some(msg) => proto::ForecastResponse {
                    error: msg,
                    ..Default::default()
                },
                None => return Err(status(e)),
            },
        };
        Ok(Response::new(reply))
    }

    type StreamForecastsStream = WindowStream;

    async fn stream_forecasts(
        &self,
        request: Request<proto::StreamForecastsRequest>,
    ) -> Result<Response<Self::StreamForecastsStream>, Status> {
        let r = request.into_inner();
        let format = json_format(&r.format, PlotFormat::Json)?;
        let (total, windows) = self.svc.stream(&r.handle, format).await.map_err(status)?;
        let handle = r.handle;
        let out = windows.enumerate().map(move |(i, w)| {
            let (forecast_json, error) = match w.plot {
                Ok(p) => (text(&p.bytes), String::new()),
                Err(e) => (
                    String::new(),
                    ApiError::from(e).grpc().message().to_string(),
                ),
            };
            Ok(proto::WindowForecast {
                handle: handle.clone(),
                index: w.index as i32,
                total: total as i32,
                forecast_json,
                error,
                r#final: i + 1 == total,
            })
        });
        Ok(Response::new(Box::pin(out)))
    }
}
