//! Request statistics, recorded once per HTTP request or RPC by the
//! middleware of both front ends: the request figures of `/health` (shared
//! by REST and gRPC) and `/metrics`, encoded by `prometheus-client` in the
//! Prometheus text format (0.0.4). Each [`Metrics`] owns its own registry
//! (no process-wide recorder), so servers started side by side in one
//! process (the tests do) never see each other's requests. The engine's
//! figures are read at scrape time by a collector over its snapshot.
//! Bounded memory: every label comes from a fixed set.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::engine::cluster::ClusterFigures;
use crate::engine::{CacheStats, HealthSnapshot};

/// The `Content-Type` of the text `/metrics` answers with.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

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
    /// The label value: `http` or `grpc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
        }
    }
}

/// The labels of `glurpc_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    protocol: &'static str,
    endpoint: &'static str,
    status: String,
}

/// The labels of `glurpc_request_duration_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    protocol: &'static str,
    endpoint: &'static str,
}

fn request_histogram() -> Histogram {
    Histogram::new(BUCKETS)
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

/// The statistics (shared by both front ends of one server).
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    public: AtomicBool,
    total: AtomicU64,
    errors: AtomicU64,
    sum_ns: AtomicU64,
    min_ns: AtomicU64,
    max_ns: AtomicU64,
    fine: Box<[AtomicU64]>,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: Family<EndpointLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(request_histogram);
        let mut registry = Registry::default();
        registry.register(
            "glurpc_requests",
            "Requests answered, by protocol, endpoint and status",
            requests.clone(),
        );
        registry.register(
            "glurpc_request_duration_seconds",
            "Time from request to the end of the response",
            durations.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            public: AtomicBool::new(true),
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
        let ns = took.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.total.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.min_ns.fetch_min(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
        self.fine[fine_bucket(ns)].fetch_add(1, Ordering::Relaxed);
        let protocol = protocol.as_str();
        self.requests
            .get_or_create(&RequestLabels {
                protocol,
                endpoint,
                status: status.to_string(),
            })
            .inc();
        self.durations
            .get_or_create(&EndpointLabels { protocol, endpoint })
            .observe(took.as_secs_f64());
    }

    /// False once `/metrics` moved to a port of its own: the public REST
    /// port then answers it 404.
    pub fn is_public(&self) -> bool {
        self.public.load(Ordering::Relaxed)
    }

    /// Serves `/metrics` on the public REST port (`true`, the default) or
    /// only on the metrics port (`false`).
    pub fn set_public(&self, public: bool) {
        self.public.store(public, Ordering::Relaxed);
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

    /// The Prometheus text exposition (format 0.0.4): request counters and
    /// durations, then the engine's figures from `h` and `c`.
    pub fn render(
        &self,
        h: &HealthSnapshot,
        c: &CacheStats,
        cluster: Option<&ClusterFigures>,
    ) -> String {
        let mut out = String::with_capacity(8192);
        let mut engine = Registry::default();
        engine.register_collector(Box::new(EngineFigures {
            h: h.clone(),
            c: *c,
            cluster: cluster.cloned(),
        }));
        // Writing to a String cannot fail; a collector's error would only
        // cut the text short.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        let _ = prometheus_text::encode(&mut out, &engine);
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

/// The engine's figures at one scrape.
#[derive(Debug)]
struct EngineFigures {
    h: HealthSnapshot,
    c: CacheStats,
    cluster: Option<ClusterFigures>,
}

/// Writes one labelled metric: `rows` of (label pairs, value). Counters
/// get `_total` appended to `name` by the encoder.
fn put<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: &[(&[(&str, &str)], M)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in rows {
        value.encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

/// Writes one metric without labels.
fn one<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: M,
) -> Result<(), std::fmt::Error> {
    value.encode(enc.encode_descriptor(name, help, None, value.metric_type())?)
}

fn counter(v: u64) -> ConstCounter<u64> {
    ConstCounter::new(v)
}

fn gauge(v: f64) -> ConstGauge<f64> {
    ConstGauge::new(v)
}

fn count(v: usize) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

impl Collector for EngineFigures {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (h, c) = (&self.h, &self.c);
        let by_priority: Vec<[(&str, &str); 1]> = h
            .inference_requests_by_priority
            .iter()
            .map(|(p, _)| [("priority", p.as_str())])
            .collect();
        let rows: Vec<(&[(&str, &str)], _)> = by_priority
            .iter()
            .zip(&h.inference_requests_by_priority)
            .map(|(l, (_, n))| (&l[..], counter(*n)))
            .collect();
        let counter_kind = MetricType::Counter;
        let gauge_kind = MetricType::Gauge;
        put(
            &mut enc,
            "glurpc_model_batches",
            "Forward passes run, by the priority of their most urgent window.",
            counter_kind,
            &rows,
        )?;
        one(
            &mut enc,
            "glurpc_windows_inferred",
            "Windows forecast by the model.",
            counter(h.windows_inferred),
        )?;
        one(
            &mut enc,
            "glurpc_inference_errors",
            "Failed forward passes and unbuildable windows.",
            counter(h.total_inference_errors),
        )?;
        one(
            &mut enc,
            "glurpc_jobs_cancelled",
            "Queued window jobs cancelled because every waiter left.",
            counter(h.cancelled_jobs),
        )?;
        let d = &h.batch_durations;
        let mut m = enc.encode_descriptor(
            "glurpc_model_batch_duration_seconds",
            "Wall time of each forward pass.",
            None,
            MetricType::Histogram,
        )?;
        m.encode_histogram::<NoLabelSet>(d.sum_s, d.count, &d.buckets, None)?;
        one(
            &mut enc,
            "glurpc_inference_queue_size",
            "Window jobs waiting for the model.",
            count(h.inference_queue_size),
        )?;
        one(
            &mut enc,
            "glurpc_inference_queue_capacity",
            "Window jobs the queue holds before refusing background work.",
            count(h.inference_queue_capacity),
        )?;
        one(
            &mut enc,
            "glurpc_idle_model_workers",
            "Model threads not running a batch.",
            count(h.available_general_models as usize),
        )?;
        one(
            &mut enc,
            "glurpc_plot_renders",
            "Plots rendered.",
            counter(h.total_calc_runs),
        )?;
        one(
            &mut enc,
            "glurpc_plot_render_errors",
            "Plots that could not be rendered.",
            counter(h.total_calc_errors),
        )?;
        let caches = |u: usize, f: usize, p: usize| {
            [
                (&[("cache", "uploads")][..], count(u)),
                (&[("cache", "forecasts")][..], count(f)),
                (&[("cache", "plots")][..], count(p)),
            ]
        };
        put(
            &mut enc,
            "glurpc_cache_entries",
            "Entries in the in-memory caches.",
            gauge_kind,
            &caches(c.uploads, c.forecasts, c.plots),
        )?;
        put(
            &mut enc,
            "glurpc_cache_bytes",
            "Bytes held by the in-memory caches.",
            gauge_kind,
            &caches(c.upload_bytes, c.forecast_bytes, c.plot_bytes),
        )?;
        one(
            &mut enc,
            "glurpc_cached_handles",
            "Handles with forecasts in memory or on disk.",
            count(h.cache_size),
        )?;
        one(
            &mut enc,
            "process_resident_memory_bytes",
            "Resident memory of the process.",
            gauge(crate::engine::stats::current_rss_bytes()),
        )?;
        one(
            &mut enc,
            "glurpc_peak_resident_memory_bytes",
            "Peak resident memory of the process.",
            gauge(h.vmem_usage_mb * 1024.0 * 1024.0),
        )?;
        match &self.cluster {
            Some(cl) => encode_cluster(&mut enc, cl),
            None => Ok(()),
        }
    }
}

/// The shared tier's metrics (only with `--redis-url`).
fn encode_cluster(enc: &mut DescriptorEncoder, cl: &ClusterFigures) -> Result<(), std::fmt::Error> {
    one(
        enc,
        "glurpc_windows_claimed",
        "Work items this replica took from the shared streams.",
        counter(cl.claimed),
    )?;
    one(
        enc,
        "glurpc_windows_reclaimed",
        "Work items claimed again from a replica that held them past the lease.",
        counter(cl.reclaimed),
    )?;
    one(
        enc,
        "glurpc_windows_requeued",
        "Windows this replica put back on the shared streams after Redis restarted.",
        counter(cl.requeued),
    )?;
    one(
        enc,
        "glurpc_shared_store_errors",
        "Redis operations that failed or timed out.",
        counter(cl.store.errors),
    )?;
    one(
        enc,
        "glurpc_shared_store_up",
        "1 while Redis answers, 0 while it does not.",
        count(usize::from(cl.store.reachable)),
    )?;
    one(
        enc,
        "glurpc_shared_store_deferred_writes",
        "Forecasts and uploads waiting for Redis to come back.",
        count(cl.store.deferred),
    )?;
    let mut m = enc.encode_descriptor(
        "glurpc_shared_store_duration_seconds",
        "Time of each Redis operation.",
        None,
        MetricType::Histogram,
    )?;
    m.encode_histogram::<NoLabelSet>(cl.store.sum_s, cl.store.count, &cl.store.buckets, None)
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
            None,
        );
        assert!(text.contains(
            "glurpc_requests_total{protocol=\"http\",endpoint=\"/health\",status=\"200\"} 5"
        ));
        assert!(text.contains(
            "glurpc_requests_total{protocol=\"grpc\",endpoint=\"DrawPlot\",status=\"NotFound\"} 1"
        ));
        assert!(text.contains(
            "glurpc_request_duration_seconds_bucket{protocol=\"http\",endpoint=\"/health\",le=\"0.0025\"} 2"
        ), "{text}");
        assert!(text.contains(
            "glurpc_request_duration_seconds_count{protocol=\"http\",endpoint=\"/health\"} 5"
        ));
        assert!(text.contains("# TYPE glurpc_requests_total counter"));
        assert!(text.contains("# TYPE glurpc_model_batch_duration_seconds histogram"));
        assert!(text.contains("glurpc_model_batch_duration_seconds_bucket{le=\"+Inf\"} 0"));
        assert!(text.contains("glurpc_model_batches_total{priority=\"0\"} 0"));
        assert!(text.contains("glurpc_cache_entries{cache=\"plots\"} 0"));
        assert!(text.contains("glurpc_plot_renders_total 0"));
        assert!(text.contains("glurpc_inference_queue_capacity 64"));
    }
}
