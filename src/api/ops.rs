//! The operations both front ends call: one function per endpoint or RPC,
//! taking and returning plain Rust types. REST and gRPC only translate
//! their wire types to these calls and their results back; every rule
//! (priorities, window kinds, timeouts, base64, formats, the 23 health
//! fields) lives here, once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use futures_util::Stream;

use crate::engine::plots::PlotSpec;
use crate::engine::scheduler::PRIORITY_PROCESS;
use crate::engine::{
    CacheReport, Engine, EngineError, PlotBytes, ProcessOptions, Processed, StreamedWindow, Target,
    WindowKey, WindowKind,
};
use crate::formats::Parsed;
use crate::pipeline::FormattedWarnings;
use crate::plot::{PlotFormat, Units};

use super::auth::{ApiKeys, Caller};
use super::error::ApiError;
use super::metrics::Metrics;

/// What `calc_queue_capacity` reports: plots are rendered on the blocking
/// pool, which runs at most this many at once (tokio's default).
pub const RENDER_CAPACITY: usize = 512;

/// Python's `base64.b64decode`: standard alphabet, padding optional.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Handles whose creators are remembered at most (then the oldest half is
/// forgotten, and those uploads can only be deleted with an admin key).
const MAX_OWNED_HANDLES: usize = 100_000;

/// Which keys created which handle, as [`Caller`] digests (never keys),
/// kept only while an admin key list is configured. In memory: after a
/// restart only an admin key deletes an upload.
#[derive(Default)]
struct Owners {
    by_handle: HashMap<String, (u64, Vec<[u8; 32]>)>,
    next: u64,
}

impl Owners {
    fn record(&mut self, handle: &str, owner: &[u8; 32]) {
        if self.by_handle.len() >= MAX_OWNED_HANDLES && !self.by_handle.contains_key(handle) {
            let mut ages: Vec<u64> = self.by_handle.values().map(|(t, _)| *t).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            self.by_handle.retain(|_, (t, _)| *t > cut);
        }
        self.next += 1;
        let entry = self
            .by_handle
            .entry(handle.to_string())
            .or_insert_with(|| (0, Vec::new()));
        entry.0 = self.next;
        if !entry.1.contains(owner) {
            entry.1.push(*owner);
        }
    }

    fn created(&self, handle: &str, owner: &[u8; 32]) -> bool {
        self.by_handle
            .get(handle)
            .is_some_and(|(_, owners)| owners.contains(owner))
    }
}

/// The shared state of the front ends (cheap to clone).
#[derive(Clone)]
pub struct Service {
    /// The engine.
    pub engine: Engine,
    /// API keys.
    pub keys: ApiKeys,
    /// Request statistics.
    pub metrics: Arc<Metrics>,
    /// Longest wait for a forecast before a request gives up.
    pub timeout: Duration,
    owners: Arc<Mutex<Owners>>,
}

/// Where a forward forecast's data comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An upload, base64-encoded (any supported format).
    Upload(String),
    /// A handle from `process_unified`.
    Handle(String),
}

/// A forward forecast.
#[derive(Debug, Clone)]
pub struct Forward {
    /// The upload's handle.
    pub handle: String,
    /// Its warnings.
    pub warnings: FormattedWarnings,
    /// The forecast in the requested format.
    pub plot: Arc<PlotBytes>,
}

/// `GET /health` and `CheckHealth`: exactly the reference's 23 fields, in
/// its order (REST serialises this struct as it is).
#[derive(Debug, Clone, PartialEq, poem_openapi::Object, serde::Serialize)]
#[oai(rename = "HealthResponse")]
#[allow(missing_docs)]
pub struct Health {
    pub status: String,
    pub load_status: String,
    pub cache_size: i64,
    pub models_initialized: bool,
    pub available_priority_models: i64,
    pub available_general_models: i64,
    pub avg_fulfillment_time_ms: f64,
    pub vmem_usage_mb: f64,
    pub device: String,
    pub total_http_requests: i64,
    pub total_http_errors: i64,
    pub avg_request_time_ms: f64,
    pub median_request_time_ms: f64,
    pub min_request_time_ms: f64,
    pub max_request_time_ms: f64,
    pub inference_requests_by_priority: std::collections::BTreeMap<String, i64>,
    pub total_inference_errors: i64,
    pub total_calc_runs: i64,
    pub total_calc_errors: i64,
    pub inference_queue_size: i64,
    pub inference_queue_capacity: i64,
    pub calc_queue_size: i64,
    pub calc_queue_capacity: i64,
}

/// Parses a format name; empty means `default`.
pub fn parse_format(name: &str, default: PlotFormat) -> Result<PlotFormat, ApiError> {
    if name.trim().is_empty() {
        return Ok(default);
    }
    name.trim()
        .parse()
        .map_err(|e: crate::plot::PlotError| ApiError::Invalid(e.to_string()))
}

/// Parses a `units` option (`mg/dL`, `mmol/L` and their spellings without
/// slash or case); absent or empty means the upload's own unit.
pub fn parse_units(name: Option<&str>) -> Result<Option<Units>, ApiError> {
    match name.map(str::trim) {
        None | Some("") => Ok(None),
        Some(n) => n
            .parse()
            .map(Some)
            .map_err(|e: crate::plot::PlotError| ApiError::Invalid(e.to_string())),
    }
}

impl Service {
    /// The front ends' state over `engine`.
    pub fn new(engine: Engine, keys: ApiKeys, timeout: Duration) -> Service {
        Service {
            engine,
            keys,
            metrics: Arc::new(Metrics::default()),
            timeout,
            owners: Arc::default(),
        }
    }

    /// The caller behind a presented API key (REST `X-API-Key`, gRPC
    /// `x-api-key`).
    pub fn caller(&self, presented: Option<&[u8]>) -> Caller {
        self.keys.caller(presented)
    }

    /// Remembers that `caller` created (uploaded) `handle`, when an admin
    /// key list makes it matter.
    fn record_owner(&self, caller: &Caller, handle: &str) {
        if let (true, Some(owner)) = (self.keys.admin_required(), caller.owner()) {
            self.owners
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(handle, owner);
        }
    }

    /// The admin rule of `/cache_management` and `ManageCache`: with an
    /// admin key list, `flush`, `save` and `load` need an admin key, and
    /// `delete` one too unless the caller created the handle. Requests the
    /// engine refuses anyway (no handle, unknown action) pass to it.
    fn may_manage(
        &self,
        caller: &Caller,
        action: &str,
        handle: Option<&str>,
    ) -> Result<(), ApiError> {
        if caller.is_admin() {
            return Ok(());
        }
        let allowed = match (action, handle) {
            ("flush" | "save", _) | ("load", Some(_)) => false,
            ("delete", Some(h)) => caller.owner().is_some_and(|o| {
                self.owners
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .created(h, o)
            }),
            _ => true,
        };
        if allowed {
            Ok(())
        } else if action == "delete" {
            Err(ApiError::AdminRequired(
                "An admin API key is required to delete an upload this key did not create".into(),
            ))
        } else {
            Err(ApiError::AdminRequired(format!(
                "An admin API key is required for the {action} action"
            )))
        }
    }

    /// Decodes a `csv_base64` field; an upload over the limit is refused
    /// before decoding.
    pub fn decode_base64(&self, text: &str) -> Result<Vec<u8>, ApiError> {
        let limit = self.engine.config().max_upload_bytes;
        if text.len() / 4 * 3 > limit.saturating_add(3) {
            return Err(EngineError::TooLarge { limit }.into());
        }
        let cleaned: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        B64.decode(cleaned)
            .map_err(|e| EngineError::Input(format!("Failed to decode base64 data: {e}")).into())
    }

    async fn within<T>(
        &self,
        fut: impl Future<Output = Result<T, EngineError>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(ApiError::from),
            Err(_) => Err(ApiError::Timeout),
        }
    }

    /// `/convert_to_unified`: the upload as the unified table.
    pub async fn convert(&self, file: Vec<u8>) -> Result<Parsed, ApiError> {
        Ok(self.engine.convert(vec![file]).await?)
    }

    /// `/process_unified`: parses, keeps and queues every window of the
    /// full dataset at priority 1 (window 0 first).
    pub async fn process(
        &self,
        caller: &Caller,
        csv_base64: &str,
        force: bool,
    ) -> Result<Processed, ApiError> {
        let file = self.decode_base64(csv_base64)?;
        let opts = ProcessOptions {
            kind: WindowKind::Full,
            priority: PRIORITY_PROCESS,
            force,
            queue_windows: true,
        };
        let processed = self.engine.process(vec![file], opts).await?;
        self.record_owner(caller, &processed.handle);
        Ok(processed)
    }

    /// `/draw_a_plot`: one window of a processed upload. A positive index
    /// is refused with the valid range.
    pub async fn plot(
        &self,
        handle: &str,
        index: i64,
        force: bool,
        format: impl Into<PlotSpec>,
    ) -> Result<Arc<PlotBytes>, ApiError> {
        if index > 0 {
            let n = self
                .engine
                .upload(handle, WindowKind::Full)
                .await?
                .windows();
            return Err(ApiError::Invalid(format!(
                "Positive indices not supported. Use negative indexing: 0 (last) to -{} (first)",
                n.saturating_sub(1)
            )));
        }
        let key = WindowKey {
            handle: handle.to_string(),
            kind: WindowKind::Full,
            target: Target::Index(index),
        };
        self.within(self.engine.plot(key, format, force)).await
    }

    /// `/quick_plot`: the outer error is an upload that cannot be used (or
    /// a refusal); the inner one a failure after it was accepted.
    pub async fn quick_plot(
        &self,
        caller: &Caller,
        csv_base64: &str,
        force: bool,
        format: PlotFormat,
    ) -> Result<(Processed, Result<Arc<PlotBytes>, ApiError>), ApiError> {
        let file = self.decode_base64(csv_base64)?;
        match tokio::time::timeout(
            self.timeout,
            self.engine.quick_plot(vec![file], format, force),
        )
        .await
        {
            Ok(r) => {
                let (processed, plot) = r?;
                self.record_owner(caller, &processed.handle);
                Ok((processed, plot.map_err(ApiError::from)))
            }
            Err(_) => Err(ApiError::Timeout),
        }
    }

    /// `/forecast`: the next 60 minutes after the last reading.
    pub async fn forecast(
        &self,
        caller: &Caller,
        source: Source,
        force: bool,
        format: impl Into<PlotSpec>,
    ) -> Result<Forward, ApiError> {
        let format = format.into();
        let (handle, warnings) = match source {
            Source::Upload(b64) => {
                let file = self.decode_base64(&b64)?;
                let opts = ProcessOptions {
                    kind: WindowKind::Full,
                    priority: PRIORITY_PROCESS,
                    force: false,
                    queue_windows: false,
                };
                let p = self.engine.process(vec![file], opts).await?;
                self.record_owner(caller, &p.handle);
                (p.handle, p.warnings)
            }
            Source::Handle(h) => {
                let up = self.engine.upload(&h, WindowKind::Full).await?;
                (h, up.prepared.warnings.clone())
            }
        };
        let key = WindowKey {
            handle: handle.clone(),
            kind: WindowKind::Full,
            target: Target::Forward,
        };
        let plot = self.within(self.engine.plot(key, format, force)).await?;
        Ok(Forward {
            handle,
            warnings,
            plot,
        })
    }

    /// The streaming RPC: every window of a processed upload as it is ready.
    pub async fn stream(
        &self,
        handle: &str,
        format: PlotFormat,
    ) -> Result<(usize, impl Stream<Item = StreamedWindow> + Send + 'static), ApiError> {
        Ok(self
            .engine
            .stream_windows(handle, WindowKind::Full, format)
            .await?)
    }

    /// `/cache_management` and `ManageCache`, with the admin rule
    /// (`GLURPC_ADMIN_KEYS_FILE`) applied first.
    pub async fn cache(
        &self,
        caller: &Caller,
        action: &str,
        handle: Option<&str>,
    ) -> Result<CacheReport, ApiError> {
        self.may_manage(caller, action, handle)?;
        let report = self.engine.cache_management(action, handle).await?;
        if self.keys.admin_required() && report.success {
            let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
            match (action, handle) {
                ("flush", _) => owners.by_handle.clear(),
                ("delete", Some(h)) => {
                    owners.by_handle.remove(h);
                }
                _ => {}
            }
        }
        Ok(report)
    }

    /// `/health`: the engine's snapshot plus the request figures of both
    /// front ends. CPU-light (the disk is listed at most once a second).
    pub fn health(&self) -> Health {
        let h = self.engine.health();
        let r = self.metrics.figures();
        let i = |v: u64| v.min(i32::MAX as u64) as i64;
        Health {
            status: h.status,
            load_status: h.load_status,
            cache_size: i(h.cache_size as u64),
            models_initialized: h.models_initialized,
            available_priority_models: h.available_priority_models.into(),
            available_general_models: h.available_general_models.into(),
            avg_fulfillment_time_ms: h.avg_fulfillment_time_ms,
            vmem_usage_mb: h.vmem_usage_mb,
            device: h.device,
            total_http_requests: i(r.total),
            total_http_errors: i(r.errors),
            avg_request_time_ms: r.avg_ms,
            median_request_time_ms: r.median_ms,
            min_request_time_ms: r.min_ms,
            max_request_time_ms: r.max_ms,
            inference_requests_by_priority: h
                .inference_requests_by_priority
                .iter()
                .map(|(p, n)| (p.clone(), i(*n)))
                .collect(),
            total_inference_errors: i(h.total_inference_errors),
            total_calc_runs: i(h.total_calc_runs),
            total_calc_errors: i(h.total_calc_errors),
            inference_queue_size: i(h.inference_queue_size as u64),
            inference_queue_capacity: i(h.inference_queue_capacity as u64),
            calc_queue_size: i(h.calc_queue_size),
            calc_queue_capacity: RENDER_CAPACITY as i64,
        }
    }

    /// `GET /info`: the model and sampling settings that answer.
    pub fn info(&self) -> crate::engine::info::ModelInfo {
        self.engine.model_info()
    }

    /// The engine behind the front ends.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// `/metrics`: the Prometheus text.
    pub fn metrics_text(&self) -> String {
        self.metrics.render(
            &self.engine.health(),
            &self.engine.cache_stats(),
            self.engine.cluster_figures().as_ref(),
        )
    }
}
