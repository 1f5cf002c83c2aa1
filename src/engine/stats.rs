//! Engine statistics for `/health` and `/metrics`, measured where the work
//! happens: model batches by priority, their durations (a rolling mean for
//! `/health`, a bucketed histogram for `/metrics`), failures, the model's
//! busy state and the process's peak memory.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Durations kept for the rolling mean.
const WINDOW: usize = 1000;

/// Upper bounds of the model-batch duration histogram, seconds (a pass
/// takes about a millisecond on a GPU, up to seconds on a small CPU).
pub const BATCH_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Model-batch durations, bucketed (lock-free; read by `/metrics`).
#[derive(Debug, Default)]
struct BatchTimes {
    /// One count per bucket of [`BATCH_BUCKETS`], then the overflow.
    counts: [AtomicU64; BATCH_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

/// A copy of the batch-duration histogram.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchDurations {
    /// `(upper bound in seconds, batches in this bucket)`, not cumulative;
    /// the last bound is infinite.
    pub buckets: Vec<(f64, u64)>,
    /// Seconds, all batches together.
    pub sum_s: f64,
    /// Batches.
    pub count: u64,
}

/// Counters shared by the engine and its model thread.
#[derive(Debug, Default)]
pub struct Stats {
    times: BatchTimes,
    by_priority: [AtomicU64; 4],
    inference_errors: AtomicU64,
    windows_inferred: AtomicU64,
    busy: AtomicUsize,
    workers: AtomicUsize,
    recent: Mutex<VecDeque<Duration>>,
    renders: AtomicU64,
    render_errors: AtomicU64,
    rendering: AtomicU64,
}

/// A snapshot of the engine's state.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSnapshot {
    /// "ok" once the model is loaded and its thread runs.
    pub status: String,
    /// From queue utilisation: idle .. full (the reference's bands).
    pub load_status: String,
    /// True when the model is loaded.
    pub models_initialized: bool,
    /// 1 when a model thread is idle (every thread serves priority 0 first), else 0.
    pub available_priority_models: u32,
    /// Idle model threads.
    pub available_general_models: u32,
    /// Mean wall time of the last 1000 model batches, ms.
    pub avg_fulfillment_time_ms: f64,
    /// Every model batch's wall time, bucketed.
    pub batch_durations: BatchDurations,
    /// Peak resident memory of the process, MiB.
    pub vmem_usage_mb: f64,
    /// "cpu" or "cuda".
    pub device: String,
    /// Model batches run, by priority ("0", "1", "3").
    pub inference_requests_by_priority: Vec<(String, u64)>,
    /// Failed batches and unbuildable windows.
    pub total_inference_errors: u64,
    /// Windows inferred.
    pub windows_inferred: u64,
    /// Jobs queued.
    pub inference_queue_size: usize,
    /// Queue capacity for background work.
    pub inference_queue_capacity: usize,
    /// Plots rendered.
    pub total_calc_runs: u64,
    /// Plots that could not be rendered.
    pub total_calc_errors: u64,
    /// Plots being rendered now.
    pub calc_queue_size: u64,
    /// Handles held in memory or on disk (set by the engine).
    pub cache_size: usize,
    /// Queued jobs cancelled because every waiter left (set by the engine).
    pub cancelled_jobs: u64,
}

impl Stats {
    /// Sets the number of model threads.
    pub fn set_workers(&self, workers: usize) {
        self.workers.store(workers, Ordering::Relaxed);
    }

    /// Marks a model thread busy or idle again.
    pub fn set_busy(&self, busy: bool) {
        if busy {
            self.busy.fetch_add(1, Ordering::Relaxed);
        } else {
            self.busy.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Records one finished batch.
    pub fn batch(&self, priority: u8, windows: usize, took: Duration, ok: bool) {
        let slot = usize::from(priority.min(3));
        self.by_priority[slot].fetch_add(1, Ordering::Relaxed);
        if ok {
            self.windows_inferred
                .fetch_add(windows as u64, Ordering::Relaxed);
        } else {
            self.inference_errors.fetch_add(1, Ordering::Relaxed);
        }
        let slot = BATCH_BUCKETS
            .iter()
            .position(|&le| took.as_secs_f64() <= le)
            .unwrap_or(BATCH_BUCKETS.len());
        self.times.counts[slot].fetch_add(1, Ordering::Relaxed);
        let ns = took.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.times.sum_ns.fetch_add(ns, Ordering::Relaxed);
        if let Ok(mut r) = self.recent.lock() {
            if r.len() == WINDOW {
                r.pop_front();
            }
            r.push_back(took);
        }
    }

    /// Marks a plot render started; [`Stats::render_done`] ends it.
    pub fn render_started(&self) {
        self.rendering.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a finished plot render.
    pub fn render_done(&self, ok: bool) {
        self.rendering.fetch_sub(1, Ordering::Relaxed);
        let c = if ok {
            &self.renders
        } else {
            &self.render_errors
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a window that could not be built or ran into an error.
    pub fn error(&self) {
        self.inference_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The batch-duration histogram as it stands.
    pub fn batch_durations(&self) -> BatchDurations {
        let buckets: Vec<(f64, u64)> = BATCH_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(&self.times.counts)
            .map(|(le, c)| (le, c.load(Ordering::Relaxed)))
            .collect();
        BatchDurations {
            count: buckets.iter().map(|b| b.1).sum(),
            buckets,
            sum_s: self.times.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }

    /// The snapshot, given the queue's state and the device.
    pub fn snapshot(&self, queued: usize, capacity: usize, device: &str) -> HealthSnapshot {
        let avg = self
            .recent
            .lock()
            .map(|r| {
                if r.is_empty() {
                    0.0
                } else {
                    r.iter().map(|d| d.as_secs_f64()).sum::<f64>() * 1000.0 / r.len() as f64
                }
            })
            .unwrap_or(0.0);
        let idle = self
            .workers
            .load(Ordering::Relaxed)
            .saturating_sub(self.busy.load(Ordering::Relaxed)) as u32;
        HealthSnapshot {
            status: "ok".into(),
            load_status: load_status(queued, capacity).into(),
            models_initialized: true,
            available_priority_models: idle.min(1),
            available_general_models: idle,
            avg_fulfillment_time_ms: avg,
            batch_durations: self.batch_durations(),
            vmem_usage_mb: peak_rss_mb(),
            device: device.into(),
            inference_requests_by_priority: [0usize, 1, 3]
                .iter()
                .map(|p| (p.to_string(), self.by_priority[*p].load(Ordering::Relaxed)))
                .collect(),
            total_inference_errors: self.inference_errors.load(Ordering::Relaxed),
            windows_inferred: self.windows_inferred.load(Ordering::Relaxed),
            inference_queue_size: queued,
            inference_queue_capacity: capacity,
            total_calc_runs: self.renders.load(Ordering::Relaxed),
            total_calc_errors: self.render_errors.load(Ordering::Relaxed),
            calc_queue_size: self.rendering.load(Ordering::Relaxed),
            cache_size: 0,
            cancelled_jobs: 0,
        }
    }
}

/// The reference's load bands over queue utilisation.
pub fn load_status(queued: usize, capacity: usize) -> &'static str {
    let u = queued as f64 / capacity.max(1) as f64;
    match u {
        u if u >= 0.99 => "full",
        u if u >= 0.75 => "overloaded",
        u if u >= 0.50 => "heavily loaded",
        u if u >= 0.25 => "loaded",
        u if u >= 0.01 => "lightly loaded",
        _ => "idle",
    }
}

/// Peak resident set size (`VmHWM`), MiB; 0 where /proc is not available.
pub fn peak_rss_mb() -> f64 {
    proc_status_kb("VmHWM:")
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Current resident set size (`VmRSS`), bytes; 0 where /proc is not available.
pub fn current_rss_bytes() -> f64 {
    proc_status_kb("VmRSS:")
        .map(|kb| kb * 1024.0)
        .unwrap_or(0.0)
}

/// A `kB` field of `/proc/self/status`.
fn proc_status_kb(field: &str) -> Option<f64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_follow_the_reference() {
        assert_eq!(load_status(0, 64), "idle");
        assert_eq!(load_status(1, 64), "lightly loaded");
        assert_eq!(load_status(16, 64), "loaded");
        assert_eq!(load_status(32, 64), "heavily loaded");
        assert_eq!(load_status(48, 64), "overloaded");
        assert_eq!(load_status(64, 64), "full");
    }

    #[test]
    fn batches_are_counted_by_priority_and_averaged() {
        let s = Stats::default();
        s.batch(0, 1, Duration::from_millis(10), true);
        s.batch(3, 32, Duration::from_millis(30), true);
        s.batch(1, 4, Duration::from_millis(20), false);
        let h = s.snapshot(0, 64, "cpu");
        assert_eq!(
            h.inference_requests_by_priority,
            vec![("0".into(), 1), ("1".into(), 1), ("3".into(), 1)]
        );
        assert_eq!((h.windows_inferred, h.total_inference_errors), (33, 1));
        assert!((h.avg_fulfillment_time_ms - 20.0).abs() < 1e-9);
        let d = &h.batch_durations;
        assert_eq!(d.count, 3);
        assert!((d.sum_s - 0.06).abs() < 1e-9);
        let in_bucket = |le: f64| d.buckets.iter().find(|b| b.0 == le).map(|b| b.1);
        assert_eq!(in_bucket(0.01), Some(1));
        assert_eq!(in_bucket(0.025), Some(1));
        assert_eq!(in_bucket(0.05), Some(1));
        assert_eq!(d.buckets.last(), Some(&(f64::INFINITY, 0)));
        assert!(h.vmem_usage_mb > 0.0);
        s.render_started();
        s.render_done(true);
        s.render_started();
        let h = s.snapshot(0, 64, "cpu");
        assert_eq!((h.total_calc_runs, h.calc_queue_size), (1, 1));
    }
}
