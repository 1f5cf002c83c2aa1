//! The model thread: takes batches of window jobs (most urgent priority
//! first), runs them in one forward pass, caches each result for its upload
//! version, delivers it to every waiter, and hands each upload's forecasts
//! to the disk writer as they complete. Each batch runs in an `inference`
//! span that follows from the spans of the requests whose windows it
//! computes and names their request ids (`requests`).

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{BatchNormMode, Mode, PredictOptions};

use super::core::Inner;
use super::error::EngineError;
use super::forecast::{Target, WindowForecast, model_window, window_seed};
use super::upload::Upload;

/// The predict options of the engine's settings.
pub fn predict_options(samples: usize, batch_size: usize) -> PredictOptions {
    PredictOptions {
        mode: if samples == 0 {
            Mode::Deterministic
        } else {
            Mode::MonteCarlo {
                samples,
                batch_norm: BatchNormMode::Running,
            }
        },
        batch_windows: batch_size.max(1),
        max_rows: 64,
    }
}

/// Runs until the scheduler closes.
pub(crate) fn model_worker(inner: &Inner) {
    let cfg = &inner.cfg;
    let opts = predict_options(cfg.samples, cfg.batch_size);
    // One forward pass per batch, so that interactive work waits at most one
    // pass behind background work: as many windows as fit in `max_rows`
    // rows (all samples of a window in the same pass), at most BATCH_SIZE.
    let take = (opts.max_rows / cfg.samples.max(1)).clamp(1, cfg.batch_size.max(1));
    loop {
        let batch = inner.jobs.next_batch(take);
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
        let mut jobs = Vec::with_capacity(batch.len());
        for t in batch {
            let u = &t.key.upload;
            let built = match t.key.window.target {
                Target::Index(i) => u.prepared.dataset.window(i),
                Target::Forward => u.prepared.dataset.forward(),
            };
            match built {
                Ok(w) => {
                    let last = w.input_times.last().copied().unwrap_or_default();
                    windows.push(model_window(&w, window_seed(&u.handle, last, cfg.seed)));
                    jobs.push(t.key);
                }
                Err(e) => {
                    inner.stats.error();
                    inner.jobs.complete(&t.key, Err(e.into()));
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
        let took = started.elapsed();
        inner
            .stats
            .batch(priority, windows.len(), took, result.is_ok());
        tracing::debug!(ms = took.as_secs_f64() * 1e3, ok = result.is_ok(), "batch");
        match result {
            Ok(fc) => {
                let mut touched: HashMap<(String, u64), Arc<Upload>> = HashMap::new();
                for (i, job) in jobs.into_iter().enumerate() {
                    let per = fc.steps * fc.samples;
                    let wf = Arc::new(WindowForecast {
                        version: job.upload.version,
                        steps: fc.steps,
                        samples: fc.samples,
                        values: fc.pred[i * per..(i + 1) * per].to_vec(),
                        logvar: fc.logvar[i * fc.samples..(i + 1) * fc.samples].to_vec(),
                    });
                    // Only the version in memory is cached: a result for a
                    // replaced, flushed or deleted upload goes to its waiters only.
                    if inner.is_current(&job.upload) {
                        inner.forecasts.insert(job.window.clone(), wf.clone());
                        touched
                            .entry((job.upload.handle.clone(), job.upload.version))
                            .or_insert_with(|| job.upload.clone());
                    }
                    inner.jobs.complete(&job, Ok(wf));
                }
                for upload in touched.values() {
                    inner.persist(upload);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "inference failed");
                let err = EngineError::Inference(e.to_string());
                for job in jobs {
                    inner.jobs.complete(&job, Err(err.clone()));
                }
            }
        }
    }
}
