//! The engine handle: a cheap clone over shared state that owns the uploads
//! (parsed and prepared once per handle and window kind), the per-window
//! forecast cache, the scheduler and the model worker thread. A request for
//! one window waits only for that window; the rest of an upload is queued
//! behind it as background work.

use std::sync::Arc;
use std::thread::JoinHandle;

use dashmap::DashMap;

use crate::cache::{MemoryCache, Weigh};
use crate::formats::{self, ParseOptions};
use crate::model::{Gluformer, Mode, PredictOptions};
use crate::pipeline::{self, FormattedWarnings, Prepared, WindowConfig};

use super::error::EngineError;
use super::forecast::{model_window, window_seed};
use super::scheduler::{PRIORITY_INTERACTIVE, Scheduler};
use super::stats::{HealthSnapshot, Stats};

/// Which window of an upload a dataset was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowKind {
    /// 540-1080 minutes, as `/process_unified` builds it.
    Full,
    /// The last 540 minutes, as `/quick_plot` builds it.
    Quick,
}

/// Which window of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// A measured window by user index (0 = last, -(N-1) = first): the
    /// back-test the reference serves.
    Index(i64),
    /// The next 60 minutes after the last reading.
    Forward,
}

/// One window's forecast job.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WindowKey {
    /// The upload.
    pub handle: String,
    /// Its dataset.
    pub kind: WindowKind,
    /// The window.
    pub target: Target,
}

/// A window's forecast in scaled units: `samples[t * S + s]`.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowForecast {
    /// Forecast steps.
    pub steps: usize,
    /// Samples per step.
    pub samples: usize,
    /// (steps, samples), row-major.
    pub values: Vec<f32>,
    /// One log-variance per sample.
    pub logvar: Vec<f32>,
}

impl Weigh for WindowForecast {
    fn weight(&self) -> usize {
        (self.values.len() + self.logvar.len()) * 4 + 64
    }
}

/// A parsed upload with its prepared window.
#[derive(Debug)]
pub struct Upload {
    /// SHA-256 of the unified CSV.
    pub handle: String,
    /// Which window.
    pub kind: WindowKind,
    /// Window, series, scaled dataset and warnings.
    pub prepared: Prepared,
}

/// What `process` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    /// The upload's handle.
    pub handle: String,
    /// Windows in the dataset (N).
    pub total_samples: usize,
    /// Data-quality warnings.
    pub warnings: FormattedWarnings,
}

/// Engine settings (the service's flags and environment variables).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// MC-dropout samples per window (`NUM_SAMPLES`); 0 means deterministic.
    pub samples: usize,
    /// Windows per forward pass (`BATCH_SIZE`).
    pub batch_size: usize,
    /// Queued jobs before background work is refused (`MAX_INFERENCE_QUEUE_SIZE`).
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
            forecast_cache_bytes: 256 << 20,
        }
    }
}

type Jobs = Scheduler<WindowKey, Arc<WindowForecast>, EngineError>;

struct Inner {
    cfg: EngineConfig,
    model: Arc<Gluformer>,
    uploads: DashMap<(String, WindowKind), Arc<Upload>>,
    forecasts: MemoryCache<WindowKey, WindowForecast>,
    jobs: Jobs,
    stats: Stats,
    worker: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// The cloneable engine handle.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// Starts the engine with its model worker thread.
    pub fn start(model: Gluformer, cfg: EngineConfig) -> Engine {
        let inner = Arc::new(Inner {
            jobs: Jobs::new(cfg.queue_capacity, cfg.interactive_reserve),
            forecasts: MemoryCache::new(cfg.forecast_cache_bytes),
            uploads: DashMap::new(),
            stats: Stats::default(),
            model: Arc::new(model),
            worker: std::sync::Mutex::new(None),
            cfg,
        });
        let worker_inner = inner.clone();
        let handle = std::thread::Builder::new()
            .name("glurpc-model".into())
            .spawn(move || model_worker(&worker_inner));
        match handle {
            Ok(h) => {
                if let Ok(mut w) = inner.worker.lock() {
                    *w = Some(h);
                }
            }
            Err(e) => tracing::error!(error = %e, "could not start the model thread"),
        }
        Engine { inner }
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.cfg
    }

    /// Parses and prepares an upload (CPU work: call from a worker pool),
    /// keeps it under its handle, and queues every window at `priority` as
    /// background work, the last window first.
    pub fn process_blocking(
        &self,
        files: &[&[u8]],
        kind: WindowKind,
        priority: u8,
    ) -> Result<Processed, EngineError> {
        let opts = ParseOptions {
            max_bytes: self.inner.cfg.max_upload_bytes,
        };
        let parsed = formats::parse_uploads(files, &opts)?;
        let handle = parsed.handle.clone();
        let upload = match self.inner.uploads.get(&(handle.clone(), kind)) {
            Some(u) => u.clone(),
            None => {
                let processed = pipeline::process(&parsed.table);
                let window = match kind {
                    WindowKind::Full => self.inner.cfg.full,
                    WindowKind::Quick => self.inner.cfg.quick,
                };
                let prepared = pipeline::prepare(&processed, window)?;
                let up = Arc::new(Upload {
                    handle: handle.clone(),
                    kind,
                    prepared,
                });
                self.inner
                    .uploads
                    .insert((handle.clone(), kind), up.clone());
                up
            }
        };
        let n = upload.prepared.dataset.len();
        if n == 0 {
            return Err(EngineError::Input(format!(
                "the window has {} grid points; a forecast needs at least 108",
                upload.prepared.dataset.points()
            )));
        }
        for index in (-(n as i64 - 1)..=0).rev() {
            let key = WindowKey {
                handle: handle.clone(),
                kind,
                target: Target::Index(index),
            };
            if self.inner.forecasts.contains(&key) {
                continue;
            }
            // Background work: queued even if nobody waits. A full queue
            // refuses the rest; interactive requests still get through.
            if let Err(e) = self.inner.jobs.submit(key, priority, true) {
                return Err(e.into());
            }
        }
        Ok(Processed {
            handle,
            total_samples: n,
            warnings: upload.prepared.warnings.clone(),
        })
    }

    /// [`Engine::process_blocking`] on the blocking worker pool, off the
    /// async runtime.
    pub async fn process(
        &self,
        files: Vec<Vec<u8>>,
        kind: WindowKind,
        priority: u8,
    ) -> Result<Processed, EngineError> {
        let engine = self.clone();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
            engine.process_blocking(&refs, kind, priority)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("parsing task failed: {e}")))?
    }

    /// The upload kept under `handle` for `kind`.
    pub fn upload(&self, handle: &str, kind: WindowKind) -> Result<Arc<Upload>, EngineError> {
        self.inner
            .uploads
            .get(&(handle.to_string(), kind))
            .map(|u| u.clone())
            .ok_or(EngineError::NotFound)
    }

    /// One window's forecast: from the cache, or computed at interactive
    /// priority (joining a queued or running job for the same window).
    pub async fn window_forecast(
        &self,
        key: WindowKey,
    ) -> Result<Arc<WindowForecast>, EngineError> {
        let upload = self.upload(&key.handle, key.kind)?;
        let n = upload.prepared.dataset.len();
        if let Target::Index(index) = key.target
            && (index > 0 || index < -(n as i64 - 1))
        {
            return Err(EngineError::BadIndex {
                index,
                last: n.saturating_sub(1),
            });
        }
        if let Some(f) = self.inner.forecasts.get(&key) {
            return Ok(f);
        }
        let rx = self.inner.jobs.submit(key, PRIORITY_INTERACTIVE, false)?;
        rx.await
            .map_err(|_| EngineError::Internal("the model worker dropped a job".into()))?
    }

    /// The health snapshot (engine side of `/health`).
    pub fn health(&self) -> HealthSnapshot {
        let device = if self.inner.model.device().is_cuda() {
            "cuda"
        } else {
            "cpu"
        };
        self.inner
            .stats
            .snapshot(self.inner.jobs.queued(), self.inner.jobs.capacity(), device)
    }

    /// Jobs waiting in the queue.
    pub fn queued(&self) -> usize {
        self.inner.jobs.queued()
    }

    /// Stops the model thread after its current batch; queued jobs fail.
    pub fn shutdown(&self) {
        self.inner.jobs.close(EngineError::ShuttingDown);
        let handle = self.inner.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// The model thread: takes batches of window jobs, runs them in one
/// forward pass, caches and delivers each result.
fn model_worker(inner: &Inner) {
    let cfg = &inner.cfg;
    let opts = PredictOptions {
        mode: if cfg.samples == 0 {
            Mode::Deterministic
        } else {
            Mode::MonteCarlo {
                samples: cfg.samples,
                batch_norm: crate::model::BatchNormMode::Running,
            }
        },
        batch_windows: cfg.batch_size.max(1),
        max_rows: 64,
    };
    loop {
        let batch = inner.jobs.next_batch(cfg.batch_size.max(1));
        if batch.is_empty() {
            return;
        }
        let priority = batch[0].priority;
        let span = tracing::info_span!("inference", windows = batch.len(), priority);
        let _enter = span.enter();
        let mut windows = Vec::with_capacity(batch.len());
        let mut keys = Vec::with_capacity(batch.len());
        for t in batch {
            let built = inner
                .uploads
                .get(&(t.key.handle.clone(), t.key.kind))
                .ok_or(EngineError::NotFound)
                .and_then(|u| {
                    let w = match t.key.target {
                        Target::Index(i) => u.prepared.dataset.window(i)?,
                        Target::Forward => u.prepared.dataset.forward()?,
                    };
                    let last = w.input_times.last().copied().unwrap_or_default();
                    Ok(model_window(&w, window_seed(&u.handle, last, cfg.seed)))
                });
            match built {
                Ok(w) => {
                    windows.push(w);
                    keys.push(t.key);
                }
                Err(e) => {
                    inner.stats.error();
                    inner.jobs.complete(&t.key, Err(e));
                }
            }
        }
        if windows.is_empty() {
            continue;
        }
        inner.stats.set_busy(true);
        let started = std::time::Instant::now();
        let result = inner.model.predict(&windows, &opts);
        inner.stats.set_busy(false);
        inner
            .stats
            .batch(priority, windows.len(), started.elapsed(), result.is_ok());
        match result {
            Ok(fc) => {
                for (i, key) in keys.into_iter().enumerate() {
                    let start = i * fc.steps * fc.samples;
                    let wf = Arc::new(WindowForecast {
                        steps: fc.steps,
                        samples: fc.samples,
                        values: fc.pred[start..start + fc.steps * fc.samples].to_vec(),
                        logvar: fc.logvar[i * fc.samples..(i + 1) * fc.samples].to_vec(),
                    });
                    inner.forecasts.insert(key.clone(), wf.clone());
                    inner.jobs.complete(&key, Ok(wf));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "inference failed");
                let err = EngineError::Inference(e.to_string());
                for key in keys {
                    inner.jobs.complete(&key, Err(err.clone()));
                }
            }
        }
    }
}
