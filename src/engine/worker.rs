//! The model thread, narrow as text-embeddings-inference's backend thread:
//! it takes batches of window jobs from the queue (most urgent priority
//! first), turns each into the model's input, runs them through a
//! [`Forecaster`] in one forward pass, and hands every result to a
//! [`Delivery`]. It neither caches, persists nor counts: the engine's store
//! does ([`super::store`]). Each batch runs in an `inference` span that
//! follows from the spans of the requests whose windows it computes and
//! names their request ids (`requests`).

use std::sync::Arc;
use std::time::Duration;

use crate::bridge::{model_window, window_seed};
use crate::model::{Forecast, Gluformer, ModelError, ModelWindow, PredictOptions};

use super::error::EngineError;
use super::forecast::{JobKey, Target, WindowForecast};
use super::scheduler::Scheduler;

/// What the model thread computes with: the Gluformer, or a stand-in in
/// tests.
pub trait Forecaster: Send + Sync + 'static {
    /// Forecasts for `windows`, in order.
    fn predict(
        &self,
        windows: &[ModelWindow],
        opts: &PredictOptions,
    ) -> Result<Forecast, ModelError>;
}

impl Forecaster for Gluformer {
    fn predict(
        &self,
        windows: &[ModelWindow],
        opts: &PredictOptions,
    ) -> Result<Forecast, ModelError> {
        Gluformer::predict(self, windows, opts)
    }
}

/// Where the model thread's results go.
pub trait Delivery: Send + Sync {
    /// The result of one job.
    fn deliver(&self, job: &JobKey, result: Result<Arc<WindowForecast>, EngineError>);
    /// The model thread starts (`true`) or ends (`false`) a forward pass.
    fn busy(&self, busy: bool);
    /// A forward pass of `windows` windows at `priority` took `took`.
    fn batch(&self, priority: u8, windows: usize, took: Duration, ok: bool);
    /// Every result of the pass was delivered.
    fn settled(&self) {}
    /// The forecast of `job` when it is already at hand: delivered by an
    /// identical job that finished after this one's requester looked for
    /// it and before it was queued. The model thread delivers it instead
    /// of computing the window twice.
    fn at_hand(&self, job: &JobKey) -> Option<Arc<WindowForecast>> {
        let _ = job;
        None
    }
}

/// How the model thread runs.
pub struct WorkerSettings {
    /// Predict options (samples, batch size).
    pub opts: PredictOptions,
    /// Windows per forward pass at most.
    pub take: usize,
    /// The global dropout seed.
    pub seed: u64,
}

/// Runs until `jobs` closes.
pub fn model_worker(
    jobs: &Scheduler<JobKey, Arc<WindowForecast>, EngineError>,
    model: &dyn Forecaster,
    settings: &WorkerSettings,
    out: &dyn Delivery,
) {
    loop {
        let batch = jobs.next_batch(settings.take);
        if batch.is_empty() {
            return;
        }
        let priority = batch[0].priority;
        let mut requests: Vec<&str> = Vec::new();
        for t in &batch {
            for r in &t.links.requests {
                if !requests.contains(&&**r) {
                    requests.push(r);
                }
            }
        }
        let span = tracing::info_span!(
            "inference",
            windows = batch.len(),
            priority,
            requests = tracing::field::Empty
        );
        if !requests.is_empty() {
            span.record("requests", requests.join(","));
        }
        for t in &batch {
            for linked in &t.links.spans {
                span.follows_from(linked);
            }
        }
        let _enter = span.enter();
        let mut windows = Vec::with_capacity(batch.len());
        let mut keys = Vec::with_capacity(batch.len());
        for t in batch {
            if let Some(f) = out.at_hand(&t.key) {
                out.deliver(&t.key, Ok(f));
                continue;
            }
            let u = &t.key.upload;
            let built = match t.key.window.target {
                Target::Index(i) => u.prepared.dataset.window(i),
                Target::Forward => u.prepared.dataset.forward(),
            };
            match built {
                Ok(w) => {
                    let last = w.input_times.last().copied().unwrap_or_default();
                    let seed = window_seed(&u.handle, last, settings.seed);
                    windows.push(model_window(&w, seed));
                    keys.push(t.key);
                }
                Err(e) => out.deliver(&t.key, Err(e.into())),
            }
        }
        if windows.is_empty() {
            out.settled();
            continue;
        }
        out.busy(true);
        let started = std::time::Instant::now();
        let result = model.predict(&windows, &settings.opts);
        out.busy(false);
        let took = started.elapsed();
        out.batch(priority, windows.len(), took, result.is_ok());
        tracing::debug!(ms = took.as_secs_f64() * 1e3, ok = result.is_ok(), "batch");
        match result {
            Ok(fc) => {
                let per = fc.steps * fc.samples;
                for (i, key) in keys.iter().enumerate() {
                    let wf = WindowForecast {
                        version: key.upload.version,
                        steps: fc.steps,
                        samples: fc.samples,
                        values: fc.pred[i * per..(i + 1) * per].to_vec(),
                        logvar: fc.logvar[i * fc.samples..(i + 1) * fc.samples].to_vec(),
                    };
                    out.deliver(key, Ok(Arc::new(wf)));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "inference failed");
                let err = EngineError::Inference(e.to_string());
                for key in &keys {
                    out.deliver(key, Err(err.clone()));
                }
            }
        }
        out.settled();
    }
}
