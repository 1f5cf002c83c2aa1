//! The engine's settings: one struct, filled from the service's flags and
//! environment variables (or by tests), with the defaults of `glurpc serve`.

use std::path::PathBuf;

use crate::formats;
use crate::pipeline::WindowConfig;

/// Engine settings (the service's flags and environment variables).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// MC-dropout samples per window (`NUM_SAMPLES`); 0 means deterministic.
    pub samples: usize,
    /// Windows per forward pass (`BATCH_SIZE`).
    pub batch_size: usize,
    /// Queued window jobs before background work is refused.
    pub queue_capacity: usize,
    /// Extra room kept for interactive work.
    pub interactive_reserve: usize,
    /// Global seed mixed into every window's dropout seed.
    pub seed: u64,
    /// Largest upload after decompression.
    pub max_upload_bytes: usize,
    /// The full window.
    pub full: WindowConfig,
    /// The quick window.
    pub quick: WindowConfig,
    /// Memory for cached window forecasts, in bytes.
    pub forecast_cache_bytes: usize,
    /// Memory for rendered plots, in bytes.
    pub plot_cache_bytes: usize,
    /// Memory for parsed uploads, in bytes.
    pub upload_cache_bytes: usize,
    /// Directory of persisted forecasts; `None` disables persistence.
    pub cache_dir: Option<PathBuf>,
    /// Bound of the cache directory, in bytes.
    pub disk_cache_bytes: u64,
    /// A stable id of the model's weights (their SHA-256): persisted
    /// forecasts of another model are never used.
    pub model_id: String,
    /// Where the weights came from (`default`, a folder, a Hub id), for
    /// `GET /info`.
    pub model_source: String,
    /// SHA-256 of the weights, for `GET /info`.
    pub weights_sha256: String,
    /// Model worker threads sharing the weights (`NUM_COPIES_PER_DEVICE`).
    pub workers: usize,
    /// Memory the uploads being parsed at once may cost (see
    /// [`super::admission`]); beyond it uploads are refused with 503.
    pub parse_memory_bytes: usize,
    /// Largest unified CSV a conversion answers with (413 beyond).
    pub max_response_bytes: usize,
    /// The Redis tier replicas share (`--redis-url`); `None`: this process alone.
    pub shared: Option<SharedSettings>,
}

/// How replicas share uploads, forecasts and work through Redis.
#[derive(Debug, Clone)]
pub struct SharedSettings {
    /// `redis://host:port/db`, or `rediss://` for TLS.
    pub url: String,
    /// Certificates for `rediss://`.
    pub tls: crate::cache::shared::RedisTls,
    /// Time to live of shared uploads and forecasts.
    pub ttl: std::time::Duration,
    /// Longest wait for one Redis operation.
    pub timeout: std::time::Duration,
    /// How long a replica holds a window before another may take it over.
    pub lease: std::time::Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            samples: 10,
            batch_size: 32,
            queue_capacity: 4096,
            interactive_reserve: 256,
            seed: 0,
            max_upload_bytes: formats::decode::DEFAULT_MAX_BYTES,
            full: WindowConfig::FULL,
            quick: WindowConfig::QUICK,
            forecast_cache_bytes: 64 << 20,
            plot_cache_bytes: 128 << 20,
            upload_cache_bytes: 64 << 20,
            cache_dir: None,
            disk_cache_bytes: 1 << 30,
            model_id: String::new(),
            model_source: String::new(),
            weights_sha256: String::new(),
            workers: 1,
            parse_memory_bytes: 1 << 30,
            max_response_bytes: 96 << 20,
            shared: None,
        }
    }
}

impl EngineConfig {
    /// Windows in one forward pass of a model thread: as many as fit in the
    /// model's row budget (all samples of a window in the same pass), at
    /// most `batch_size`, so that interactive work waits at most one pass
    /// behind background work.
    pub fn windows_per_pass(&self) -> usize {
        let rows = crate::bridge::predict_options(self.samples, self.batch_size).max_rows;
        (rows / self.samples.max(1)).clamp(1, self.batch_size.max(1))
    }
}
