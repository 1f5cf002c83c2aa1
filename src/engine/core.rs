//! The engine handle: a cheap clone over shared state that owns the uploads
//! (parsed and prepared once per handle and window kind), the per-window
//! forecast and plot caches, the scheduler, the model worker thread and the
//! disk store. A request for one window waits only for that window; the
//! rest of an upload is queued behind it as background work.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::cache::{DiskStore, MemoryCache};
use crate::formats::Parsed;
use crate::model::Gluformer;
use crate::pipeline::FormattedWarnings;
use crate::plot::{Origin, PlotFormat};

use super::admission::{Admission, ParseBudget, parse_within};
pub use super::config::EngineConfig;
use super::error::EngineError;
use super::forecast::{JobKey, Target, WindowForecast, WindowKey};
use super::persist::{Fingerprint, Writer};
use super::plots::{PlotBytes, PlotKey, PlotSpec};
use super::scheduler::{PRIORITY_INTERACTIVE, PRIORITY_PREFETCH};
use super::state::{Disk, Inner, Jobs};
use super::stats::{HealthSnapshot, Stats};
use super::upload::{Upload, WindowKind};
use super::worker::{Forecaster, WorkerSettings, model_worker};
use crate::bridge::predict_options;

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

/// How to process an upload.
#[derive(Debug, Clone, Copy)]
pub struct ProcessOptions {
    /// Which window to prepare.
    pub kind: WindowKind,
    /// Priority of the queued windows.
    pub priority: u8,
    /// Recompute even if forecasts are cached (a new version).
    pub force: bool,
    /// Queue every window as background work.
    pub queue_windows: bool,
}

/// Raw-upload digests remembered before the map is cleared.
const RAW_HANDLES: usize = 100_000;

/// The SHA-256 of one or more uploaded files (lengths included, so the
/// split between files counts).
fn raw_digest(files: &[&[u8]]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for f in files {
        h.update((f.len() as u64).to_le_bytes());
        h.update(f);
    }
    h.finalize().into()
}

/// The cloneable engine handle.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl Engine {
    /// Starts the engine: opens the disk cache (when configured) and starts
    /// the model worker threads.
    pub fn start(model: Gluformer, cfg: EngineConfig) -> Result<Engine, EngineError> {
        let model = Arc::new(model);
        Engine::start_with(model.clone(), model, cfg)
    }

    /// [`Engine::start`] with the model threads computing through
    /// `forecaster` (a stand-in in tests); `model` still describes the
    /// model (`/info`, warm-up, record sizes).
    pub fn start_with(
        model: Arc<Gluformer>,
        forecaster: Arc<dyn Forecaster>,
        cfg: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let disk = match &cfg.cache_dir {
            None => None,
            Some(dir) => {
                let store = DiskStore::open(dir, cfg.disk_cache_bytes)
                    .map_err(|e| EngineError::Internal(e.to_string()))?;
                let writer = Writer::start(store.clone())
                    .map_err(|e| EngineError::Internal(e.to_string()))?;
                let fp = Fingerprint {
                    model_id: cfg.model_id.clone(),
                    samples: cfg.samples,
                    seed: cfg.seed,
                };
                let tag = fp.tag();
                Some(Disk {
                    store,
                    writer,
                    fp,
                    tag,
                })
            }
        };
        let cluster = match &cfg.shared {
            None => None,
            Some(s) => Some(super::cluster::connect(s, &cfg)?),
        };
        let inner = Arc::new(Inner {
            jobs: Jobs::new(cfg.queue_capacity, cfg.interactive_reserve),
            forecasts: MemoryCache::new(cfg.forecast_cache_bytes),
            plots: MemoryCache::new(cfg.plot_cache_bytes),
            uploads: MemoryCache::new(cfg.upload_cache_bytes),
            stats: Stats::default(),
            versions: AtomicU64::new(1),
            model,
            forecaster,
            workers: std::sync::Mutex::new(Vec::new()),
            disk,
            handle_count: std::sync::Mutex::new(None),
            raw_handles: dashmap::DashMap::new(),
            parse_budget: ParseBudget::new(cfg.parse_memory_bytes),
            cluster,
            cfg,
        });
        let count = inner.cfg.workers.max(1);
        inner.stats.set_workers(count);
        for i in 0..count {
            let worker_inner = inner.clone();
            let handle = std::thread::Builder::new()
                .name(format!("glurpc-model-{i}"))
                .spawn(move || {
                    let cfg = &worker_inner.cfg;
                    let opts = predict_options(cfg.samples, cfg.batch_size);
                    let take = cfg.windows_per_pass();
                    let settings = WorkerSettings {
                        opts,
                        take,
                        seed: cfg.seed,
                    };
                    let inner = &*worker_inner;
                    model_worker(&inner.jobs, &*inner.forecaster, &settings, inner);
                })
                .map_err(|e| {
                    inner.jobs.close(EngineError::ShuttingDown);
                    EngineError::Internal(format!("could not start a model thread: {e}"))
                })?;
            if let Ok(mut w) = inner.workers.lock() {
                w.push(handle);
            }
        }
        if let Some(c) = &inner.cluster {
            let weak = Arc::downgrade(&inner);
            c.shared.subscribe(move |m| {
                if let Some(inner) = weak.upgrade() {
                    inner.on_control(&m);
                }
            });
            let puller = inner.clone();
            // One pass per model thread queued ahead, no more: a replica
            // holds only what it starts soon, and the rest of an upload is
            // left on the streams for the other replicas.
            let take = inner.cfg.windows_per_pass() * count;
            let started = std::thread::Builder::new()
                .name("glurpc-puller".into())
                .spawn(move || puller.pull_shared_work(take));
            if let Err(e) = started {
                inner.jobs.close(EngineError::ShuttingDown);
                return Err(EngineError::Internal(format!(
                    "could not start the shared-work thread: {e}"
                )));
            }
        }
        if inner.disk.is_some() {
            // Uploads a crash left unfinished are computed in the background.
            let resume_inner = inner.clone();
            let started = std::thread::Builder::new()
                .name("glurpc-resume".into())
                .spawn(move || resume_inner.resume());
            if let Err(e) = started {
                tracing::warn!(error = %e, "could not resume unfinished uploads");
            }
        }
        Ok(Engine { inner })
    }

    /// Runs one forward pass of a synthetic window on the calling thread
    /// (call it from a blocking context before serving), so that the first
    /// request does not pay for first-touch allocations; returns its time.
    pub fn warm_up(&self) -> Result<std::time::Duration, EngineError> {
        let c = self.inner.model.config();
        let window = crate::model::ModelWindow {
            static_features: vec![0.0; c.num_static_features],
            past: vec![0.5; c.len_seq],
            past_covariates: vec![0.5; c.len_seq * c.num_dynamic_features],
            future_covariates: vec![0.5; c.len_pred * c.num_dynamic_features],
            seed: 0,
        };
        let opts = predict_options(self.inner.cfg.samples, self.inner.cfg.batch_size);
        let t = std::time::Instant::now();
        self.inner
            .model
            .predict(&[window], &opts)
            .map_err(|e| EngineError::Inference(format!("warm-up failed: {e}")))?;
        Ok(t.elapsed())
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.cfg
    }

    /// Parses uploads (one file, or several of one person) into the unified
    /// table, its CSV and handle. CPU work: call from a worker pool.
    /// Refused with [`EngineError::Busy`] when the parse budget is spent, and
    /// with [`EngineError::ResponseTooLarge`] when the CSV would be larger
    /// than `max_response_bytes`.
    pub fn convert_blocking(&self, files: &[&[u8]]) -> Result<Parsed, EngineError> {
        let (parsed, _admission) = self.parse_admitted(files)?;
        let limit = self.inner.cfg.max_response_bytes;
        if parsed.csv.len() > limit {
            return Err(EngineError::ResponseTooLarge {
                size: parsed.csv.len(),
                limit,
            });
        }
        Ok(parsed)
    }

    /// [`parse_within`] this engine's budget and upload limit.
    fn parse_admitted(&self, files: &[&[u8]]) -> Result<(Parsed, Admission), EngineError> {
        parse_within(
            &self.inner.parse_budget,
            self.inner.cfg.max_upload_bytes,
            files,
        )
    }

    /// [`Engine::convert_blocking`] on the blocking pool.
    pub async fn convert(&self, files: Vec<Vec<u8>>) -> Result<Parsed, EngineError> {
        let engine = self.clone();
        blocking(move || {
            let refs: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
            engine.convert_blocking(&refs)
        })
        .await
    }

    /// Parses and prepares an upload (CPU work: call from a worker pool),
    /// keeps it under its handle, and (with `queue_windows`) queues every
    /// window not yet cached at `priority` as background work, the last
    /// window first. A full queue refuses the whole upload at once.
    pub fn process_blocking(
        &self,
        files: &[&[u8]],
        opts: ProcessOptions,
    ) -> Result<Processed, EngineError> {
        if self.inner.jobs.is_closed() {
            return Err(EngineError::ShuttingDown);
        }
        // Bytes seen before: skip parsing when their upload is still kept.
        let digest = raw_digest(files);
        let seen = self
            .inner
            .raw_handles
            .get(&digest)
            .map(|h| h.value().clone());
        let kept = match seen {
            Some(h) => self.inner.existing(&h, opts.kind)?,
            None => None,
        };
        let mut upload = match kept {
            Some(u) => u,
            None => {
                // The charge is held while the upload is prepared too.
                let (parsed, _admission) = self.parse_admitted(files)?;
                let handle = parsed.handle.clone();
                if self.inner.raw_handles.len() >= RAW_HANDLES {
                    self.inner.raw_handles.clear();
                }
                self.inner.raw_handles.insert(digest, handle.clone());
                match self.inner.existing(&handle, opts.kind)? {
                    Some(u) => u,
                    None => self.inner.insert_upload(
                        Upload::build(
                            handle,
                            Arc::from(parsed.csv.as_str()),
                            &parsed.table,
                            opts.kind,
                            self.inner.window_config(opts.kind),
                            self.inner.next_version(),
                        )?
                        .with_origin(Origin::of(parsed.format, &parsed.table)),
                    ),
                }
            }
        };
        let handle = upload.handle.clone();
        if opts.force {
            // Refused before the cached forecasts are dropped.
            if opts.queue_windows && self.inner.jobs.room(opts.priority) < upload.windows() {
                self.inner.drop_refused(&upload);
                return Err(EngineError::Overloaded { retry_after_s: 30 });
            }
            upload = self.inner.new_version(&upload);
        }
        if opts.queue_windows {
            // A refused upload is not kept (unless an earlier request
            // brought it); an accepted one is written to disk at once.
            if let Err(e) = self.inner.queue_windows(&upload, opts.priority) {
                self.inner.drop_refused(&upload);
                return Err(e);
            }
            self.inner.accept(&upload);
        }
        Ok(Processed {
            handle,
            total_samples: upload.windows(),
            warnings: upload.prepared.warnings.clone(),
        })
    }

    /// [`Engine::process_blocking`] on the blocking worker pool, off the
    /// async runtime.
    pub async fn process(
        &self,
        files: Vec<Vec<u8>>,
        opts: ProcessOptions,
    ) -> Result<Processed, EngineError> {
        let engine = self.clone();
        blocking(move || {
            let refs: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
            engine.process_blocking(&refs, opts)
        })
        .await
    }

    /// The upload kept under `handle` for `kind`: from memory, built from
    /// the other kind's CSV, or loaded from disk.
    pub async fn upload(&self, handle: &str, kind: WindowKind) -> Result<Arc<Upload>, EngineError> {
        if let Some(u) = self.inner.uploads.get(&(handle.to_string(), kind)) {
            return Ok(u);
        }
        let inner = self.inner.clone();
        let handle = handle.to_string();
        blocking(move || inner.resolve(&handle, kind)).await
    }

    /// One window's forecast: from the cache, or computed at interactive
    /// priority (joining a queued or running job for the same window).
    /// `force` recomputes it and drops its plots.
    pub async fn forecast(
        &self,
        key: WindowKey,
        force: bool,
    ) -> Result<Arc<WindowForecast>, EngineError> {
        let upload = self.upload(&key.handle, key.kind).await?;
        if let Target::Index(index) = key.target {
            upload.check_index(index)?;
        }
        if force {
            self.inner.forget_window(&key);
        }
        self.window_of(&upload, key).await
    }

    /// [`Engine::forecast`] without forcing.
    pub async fn window_forecast(
        &self,
        key: WindowKey,
    ) -> Result<Arc<WindowForecast>, EngineError> {
        self.forecast(key, false).await
    }

    /// The forecast of `key` in `upload`: cached, shared, or computed at
    /// interactive priority.
    pub(crate) async fn window_of(
        &self,
        upload: &Arc<Upload>,
        key: WindowKey,
    ) -> Result<Arc<WindowForecast>, EngineError> {
        if let Some(f) = self.inner.cached_forecast(upload, &key) {
            return Ok(f);
        }
        if self.inner.cluster.is_some() {
            // From Redis, or from the replica computing it; else here.
            let (inner, up, k) = (self.inner.clone(), upload.clone(), key.clone());
            if let Some(f) = blocking(move || Ok(inner.shared_window(&up, &k))).await? {
                return Ok(f);
            }
        }
        let job = JobKey::new(key.clone(), upload.clone());
        let rx = match self.inner.jobs.submit(job, PRIORITY_INTERACTIVE, false) {
            Ok(rx) => rx,
            Err(refused) => {
                // Not computed here: its lease (if taken) goes back.
                self.inner.give_up_shared(&key);
                // A new upload refused here (503) is not kept.
                self.inner.drop_refused(upload);
                return Err(refused.into());
            }
        };
        self.inner.accept(upload);
        rx.await
            .map_err(|_| EngineError::Internal("the model worker dropped a job".into()))?
    }

    /// A window's plot in `format`: memoised bytes, or the forecast (cached
    /// or computed at interactive priority) rendered on the blocking pool.
    /// `force` recomputes the forecast and re-renders.
    pub async fn plot(
        &self,
        key: WindowKey,
        format: impl Into<PlotSpec>,
        force: bool,
    ) -> Result<Arc<PlotBytes>, EngineError> {
        let format = format.into();
        let upload = self.upload(&key.handle, key.kind).await?;
        if let Target::Index(index) = key.target {
            upload.check_index(index)?;
        }
        if force {
            self.inner.forget_window(&key);
        } else if let Some(p) = self.inner.plots.get(&PlotKey {
            window: key.clone(),
            format,
            version: upload.version,
        }) {
            return Ok(p);
        }
        let f = self.window_of(&upload, key.clone()).await?;
        self.rendered(&upload, key, f, format).await
    }

    /// The plot of `key` from its forecast `f`: memoised bytes, or rendered
    /// on the blocking pool and memoised while the upload is current.
    pub(crate) async fn rendered(
        &self,
        upload: &Arc<Upload>,
        key: WindowKey,
        f: Arc<WindowForecast>,
        format: impl Into<PlotSpec>,
    ) -> Result<Arc<PlotBytes>, EngineError> {
        let format = format.into();
        let pk = PlotKey {
            window: key,
            format,
            version: f.version,
        };
        if let Some(p) = self.inner.plots.get(&pk) {
            return Ok(p);
        }
        let target = pk.window.target;
        let up = upload.clone();
        let inner = self.inner.clone();
        let bytes = Arc::new(
            blocking(move || super::plots::render_counted(&inner.stats, &up, target, &f, format))
                .await?,
        );
        if self.inner.is_current(upload) {
            self.inner.plots.insert(pk, bytes.clone());
        }
        Ok(bytes)
    }

    /// `/quick_plot`: prepares the last 540 minutes, answers with the plot
    /// of its last window, then prefetches the full window's forecasts at
    /// priority 3. The outer error is a bad upload; the inner one a failure
    /// after the upload was accepted (its warnings are still reported).
    pub async fn quick_plot(
        &self,
        files: Vec<Vec<u8>>,
        format: PlotFormat,
        force: bool,
    ) -> Result<(Processed, Result<Arc<PlotBytes>, EngineError>), EngineError> {
        let opts = ProcessOptions {
            kind: WindowKind::Quick,
            priority: PRIORITY_INTERACTIVE,
            force,
            queue_windows: false,
        };
        let processed = self.process(files, opts).await?;
        let handle = processed.handle.clone();
        let key = WindowKey {
            handle: handle.clone(),
            kind: WindowKind::Quick,
            target: Target::Index(0),
        };
        let plot = self.plot(key, format, false).await;
        // After the answer, so that the first prefetch pass never delays it.
        self.prefetch(&handle);
        Ok((processed, plot))
    }

    /// Queues the full window's forecasts of `handle` as prefetch work on
    /// the blocking pool; failures (a full queue, too little data for the
    /// full window) are logged, never reported.
    pub fn prefetch(&self, handle: &str) {
        let inner = self.inner.clone();
        let handle = handle.to_string();
        tokio::task::spawn_blocking(move || {
            let queued = inner
                .resolve(&handle, WindowKind::Full)
                .and_then(|u| inner.queue_windows(&u, PRIORITY_PREFETCH));
            if let Err(e) = queued {
                tracing::debug!(handle = %handle, error = %e, "prefetch not queued");
            }
        });
    }

    /// The health snapshot (engine side of `/health`).
    pub fn health(&self) -> HealthSnapshot {
        let device = if self.inner.model.device().is_cuda() {
            "cuda"
        } else {
            "cpu"
        };
        let mut snap =
            self.inner
                .stats
                .snapshot(self.inner.jobs.queued(), self.inner.jobs.capacity(), device);
        snap.cache_size = self.cache_size();
        snap.cancelled_jobs = self.inner.jobs.cancelled();
        if self.shared_reachable() == Some(false) {
            snap.status = "degraded".into();
        }
        snap
    }

    /// Whether Redis answers (`None`: no shared tier).
    pub fn shared_reachable(&self) -> Option<bool> {
        self.inner.cluster.as_ref().map(|c| c.shared.reachable())
    }

    /// The shared tier's figures (`None`: no shared tier).
    pub fn cluster_figures(&self) -> Option<super::cluster::ClusterFigures> {
        self.inner.cluster.as_ref().map(|c| c.figures())
    }

    /// Jobs waiting in the queue.
    pub fn queued(&self) -> usize {
        self.inner.jobs.queued()
    }

    /// Stops the model thread after its current batch (queued jobs fail with
    /// `ShuttingDown`), writes every upload's forecasts to disk, and waits
    /// for the writes.
    pub fn shutdown(&self) {
        self.inner.jobs.close(EngineError::ShuttingDown);
        let handles = self
            .inner
            .workers
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default();
        for h in handles {
            let _ = h.join();
        }
        self.inner.persist_all();
        if let Some(d) = &self.inner.disk {
            d.writer.close();
        }
    }
}

/// Runs CPU work on the blocking pool, inside the caller's span and request
/// id, so that jobs it queues (`/process_unified`'s windows) name the request.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    let span = tracing::Span::current();
    let request = super::scheduler::CURRENT_REQUEST.try_with(Arc::clone).ok();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        match request {
            Some(id) => super::scheduler::CURRENT_REQUEST.sync_scope(id, f),
            None => f(),
        }
    })
    .await
    .map_err(|e| EngineError::Internal(format!("worker task failed: {e}")))?
}
