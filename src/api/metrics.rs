//! Request statistics, recorded once per HTTP request or RPC by the
//! middleware of both front ends: the request figures of `/health` (shared
//! by REST and gRPC) and the Prometheus text of `/metrics`, which adds the
//! engine's counters. Lock-free on the request path; bounded memory.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;

use crate::engine::{CacheStats, HealthSnapshot};

/// Upper bounds of the Prometheus duration histogram, seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];
/// Growth factor of the fine buckets behind the median (2 % wide).
const FINE_GROWTH: f64 = 1.02;
/// Fine buckets: 1 µs to about 6 hours.
const FINE: usize = 1200;

/// Which front end served a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// REST.
    Http,
    /// gRPC.
    Grpc,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
        }
    }
}

struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

/// The `/health` request figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RequestFigures {
    /// Requests seen (REST and gRPC).
    pub total: u64,
    /// Requests answered with an error status.
    pub errors: u64,
    /// Mean duration, ms (0 when none).
    pub avg_ms: f64,
    /// Median duration, ms, within 2 %.
    pub median_ms: f64,
    /// Shortest, ms.
    pub min_ms: f64,
    /// Longest, ms.
    pub max_ms: f64,
}

/// The statistics (shared by both front ends).
pub struct Metrics {
    requests: DashMap<(Protocol, &'static str, String), AtomicU64>,
    durations: DashMap<(Protocol, &'static str), Histogram>,
    total: AtomicU64,
    errors: AtomicU64,
    sum_ns: AtomicU64,
    min_ns: AtomicU64,
    max_ns: AtomicU64,
    fine: Box<[AtomicU64]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: DashMap::new(),
            durations: DashMap::new(),
            total: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            min_ns: AtomicU64::new(u64::MAX),
            max_ns: AtomicU64::new(0),
            fine: (0..FINE).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Metrics {
    /// Records one finished request. `endpoint` must come from a fixed set
    /// (a known path or method name, else "other"); `status` is the HTTP
    /// status or the gRPC code name.
    pub fn record(
        &self,
        protocol: Protocol,
        endpoint: &'static str,
        status: &str,
        error: bool,
        took: Duration,
    ) {
        let ns = took.as_nanos().min(u64::MAX as u128) as u64;
        self.total.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.min_ns.fetch_min(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
        self.fine[fine_bucket(ns)].fetch_add(1, Ordering::Relaxed);
        let key = (protocol, endpoint, status.to_string());
        if let Some(c) = self.requests.get(&key) {
            c.fetch_add(1, Ordering::Relaxed);
        } else {
            self.requests
                .entry(key)
                .or_default()
                .fetch_add(1, Ordering::Relaxed);
        }
        let h = self.durations.entry((protocol, endpoint)).or_default();
        let secs = took.as_secs_f64();
        let b = BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(BUCKETS.len());
        h.counts[b].fetch_add(1, Ordering::Relaxed);
        h.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The figures of `/health`.
    pub fn figures(&self) -> RequestFigures {
        let total = self.total.load(Ordering::Relaxed);
        if total == 0 {
            return RequestFigures::default();
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        let counts: Vec<u64> = self
            .fine
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let seen: u64 = counts.iter().sum();
        let mut acc = 0;
        let mut median_ms = 0.0;
        for (i, c) in counts.iter().enumerate() {
            acc += c;
            if acc * 2 >= seen {
                // The bucket's geometric middle, in µs.
                median_ms = FINE_GROWTH.powf(i as f64 + 0.5) / 1000.0;
                break;
            }
        }
        RequestFigures {
            total,
            errors: self.errors.load(Ordering::Relaxed),
            avg_ms: ms(self.sum_ns.load(Ordering::Relaxed)) / total as f64,
            median_ms,
            min_ms: ms(self.min_ns.load(Ordering::Relaxed)),
            max_ms: ms(self.max_ns.load(Ordering::Relaxed)),
        }
    }

    /// The Prometheus text exposition: request counters and durations,
    /// then the engine's figures.
    pub fn render(&self, h: &HealthSnapshot, c: &CacheStats) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP glurpc_requests_total Requests answered, by protocol, endpoint and status.\n# TYPE glurpc_requests_total counter\n");
        let mut rows: Vec<_> = self
            .requests
            .iter()
            .map(|e| (e.key().clone(), e.value().load(Ordering::Relaxed)))
            .collect();
        rows.sort_by(|a, b| (a.0.0.as_str(), a.0.1, &a.0.2).cmp(&(b.0.0.as_str(), b.0.1, &b.0.2)));
        for ((p, ep, st), n) in rows {
            let _ = writeln!(
                out,
                "glurpc_requests_total{{protocol=\"{}\",endpoint=\"{ep}\",status=\"{st}\"}} {n}",
                p.as_str()
            );
        }
        out.push_str("# HELP glurpc_request_duration_seconds Time from request to the end of the response.\n# TYPE glurpc_request_duration_seconds histogram\n");
        let mut hists: Vec<_> = self.durations.iter().map(|e| *e.key()).collect();
        hists.sort_by_key(|(p, ep)| (p.as_str(), *ep));
        for key in hists {
            let Some(hist) = self.durations.get(&key) else {
                continue;
            };
            let labels = format!("protocol=\"{}\",endpoint=\"{}\"", key.0.as_str(), key.1);
            let mut acc = 0;
            for (i, le) in BUCKETS.iter().enumerate() {
                acc += hist.counts[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "glurpc_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {acc}"
                );
            }
            acc += hist.counts[BUCKETS.len()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "glurpc_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {acc}"
            );
            let sum = hist.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "glurpc_request_duration_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(
                out,
                "glurpc_request_duration_seconds_count{{{labels}}} {acc}"
            );
        }
        engine_metrics(&mut out, h, c);
        out
    }
}

fn fine_bucket(ns: u64) -> usize {
    let us = ns as f64 / 1000.0;
    if us <= 1.0 {
        return 0;
    }
    ((us.ln() / FINE_GROWTH.ln()) as usize).min(FINE - 1)
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, rows: &[(&str, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, v) in rows {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

fn engine_metrics(out: &mut String, h: &HealthSnapshot, c: &CacheStats) {
    let by_priority: Vec<(String, f64)> = h
        .inference_requests_by_priority
        .iter()
        .map(|(p, n)| (format!("priority=\"{p}\""), *n as f64))
        .collect();
    let by_priority: Vec<(&str, f64)> = by_priority.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    metric(
        out,
        "glurpc_model_batches_total",
        "counter",
        "Forward passes run, by the priority of their most urgent window.",
        &by_priority,
    );
    metric(
        out,
        "glurpc_windows_inferred_total",
        "counter",
        "Windows forecast by the model.",
        &[("", h.windows_inferred as f64)],
    );
    metric(
        out,
        "glurpc_inference_errors_total",
        "counter",
        "Failed forward passes and unbuildable windows.",
        &[("", h.total_inference_errors as f64)],
    );
    metric(
        out,
        "glurpc_jobs_cancelled_total",
        "counter",
        "Queued window jobs cancelled because every waiter left.",
        &[("", h.cancelled_jobs as f64)],
    );
    metric(
        out,
        "glurpc_model_batch_duration_seconds",
        "gauge",
        "Mean duration of the last 1000 forward passes.",
        &[("", h.avg_fulfillment_time_ms / 1000.0)],
    );
    metric(
        out,
        "glurpc_inference_queue_size",
        "gauge",
        "Window jobs waiting for the model.",
        &[("", h.inference_queue_size as f64)],
    );
    metric(
        out,
        "glurpc_inference_queue_capacity",
        "gauge",
        "Window jobs the queue holds before refusing background work.",
        &[("", h.inference_queue_capacity as f64)],
    );
    metric(
        out,
        "glurpc_idle_model_workers",
        "gauge",
        "Model threads not running a batch.",
        &[("", h.available_general_models as f64)],
    );
    metric(
        out,
        "glurpc_plot_renders_total",
        "counter",
        "Plots rendered.",
        &[("", h.total_calc_runs as f64)],
    );
    metric(
        out,
        "glurpc_plot_render_errors_total",
        "counter",
        "Plots that could not be rendered.",
        &[("", h.total_calc_errors as f64)],
    );
    metric(
        out,
        "glurpc_cache_entries",
        "gauge",
        "Entries in the in-memory caches.",
        &[
            ("cache=\"uploads\"", c.uploads as f64),
            ("cache=\"forecasts\"", c.forecasts as f64),
            ("cache=\"plots\"", c.plots as f64),
        ],
    );
    metric(
        out,
        "glurpc_cache_bytes",
        "gauge",
        "Bytes held by the in-memory caches.",
        &[
            ("cache=\"uploads\"", c.upload_bytes as f64),
            ("cache=\"forecasts\"", c.forecast_bytes as f64),
            ("cache=\"plots\"", c.plot_bytes as f64),
        ],
    );
    metric(
        out,
        "glurpc_cached_handles",
        "gauge",
        "Handles with forecasts in memory or on disk.",
        &[("", h.cache_size as f64)],
    );
    metric(
        out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory of the process.",
        &[("", crate::engine::stats::current_rss_bytes())],
    );
    metric(
        out,
        "glurpc_peak_resident_memory_bytes",
        "gauge",
        "Peak resident memory of the process.",
        &[("", h.vmem_usage_mb * 1024.0 * 1024.0)],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_and_text() {
        let m = Metrics::default();
        assert_eq!(m.figures(), RequestFigures::default());
        for ms in [1u64, 2, 3, 4, 100] {
            m.record(
                Protocol::Http,
                "/health",
                "200",
                false,
                Duration::from_millis(ms),
            );
        }
        m.record(
            Protocol::Grpc,
            "DrawPlot",
            "NotFound",
            true,
            Duration::from_millis(3),
        );
        let f = m.figures();
        assert_eq!((f.total, f.errors), (6, 1));
        assert!((f.median_ms - 3.0).abs() < 0.1, "{}", f.median_ms);
        assert!((f.min_ms - 1.0).abs() < 1e-9 && (f.max_ms - 100.0).abs() < 1e-9);
        assert!((f.avg_ms - 113.0 / 6.0).abs() < 1e-9);
        let text = m.render(
            &crate::engine::stats::Stats::default().snapshot(0, 64, "cpu"),
            &CacheStats::default(),
        );
        assert!(text.contains(
            "glurpc_requests_total{protocol=\"http\",endpoint=\"/health\",status=\"200\"} 5"
        ));
        assert!(text.contains(
            "glurpc_requests_total{protocol=\"grpc\",endpoint=\"DrawPlot\",status=\"NotFound\"} 1"
        ));
        assert!(text.contains("glurpc_request_duration_seconds_bucket{protocol=\"http\",endpoint=\"/health\",le=\"0.0025\"} 2"));
        assert!(text.contains(
            "glurpc_request_duration_seconds_count{protocol=\"http\",endpoint=\"/health\"} 5"
        ));
        assert!(text.contains("glurpc_inference_queue_capacity 64"));
    }
}
