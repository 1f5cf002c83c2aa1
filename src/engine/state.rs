//! The engine's shared state: the model, the three memory caches, the
//! inference queue, the counters, the disk side and the upload bookkeeping.
//! [`super::core::Engine`] is a cheap handle over it; [`super::store`] holds
//! its cache logic and the delivery of the model worker's results.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::thread::JoinHandle;

use crate::cache::{DiskStore, MemoryCache};
use crate::model::Gluformer;

use super::admission::ParseBudget;
use super::config::EngineConfig;
use super::error::EngineError;
use super::forecast::{JobKey, WindowForecast, WindowKey};
use super::persist::{Fingerprint, Writer};
use super::plots::{PlotBytes, PlotKey};
use super::scheduler::Scheduler;
use super::stats::Stats;
use super::upload::{Upload, WindowKind};
use super::worker::Forecaster;

pub(crate) type Jobs = Scheduler<JobKey, Arc<WindowForecast>, EngineError>;

/// The disk side of the cache.
pub(crate) struct Disk {
    pub(crate) store: DiskStore,
    pub(crate) writer: Writer,
    pub(crate) fp: Fingerprint,
    pub(crate) tag: String,
}

pub(crate) struct Inner {
    pub(crate) cfg: EngineConfig,
    /// The model as loaded (its settings, for `/info` and warm-up).
    pub(crate) model: Arc<Gluformer>,
    /// What the model threads compute with: the model, or a stand-in.
    pub(crate) forecaster: Arc<dyn Forecaster>,
    pub(crate) uploads: MemoryCache<(String, WindowKind), Upload>,
    pub(crate) forecasts: MemoryCache<WindowKey, WindowForecast>,
    pub(crate) plots: MemoryCache<PlotKey, PlotBytes>,
    pub(crate) jobs: Jobs,
    pub(crate) stats: Stats,
    pub(crate) versions: AtomicU64,
    pub(crate) disk: Option<Disk>,
    /// The handle count and when it was taken (the disk is listed at most
    /// once a second for `/health`).
    pub(crate) handle_count: std::sync::Mutex<Option<(std::time::Instant, usize)>>,
    /// SHA-256 of raw upload bytes to their handle: a repeated upload is
    /// not parsed again while its prepared windows are kept.
    pub(crate) raw_handles: dashmap::DashMap<[u8; 32], String>,
    /// What the uploads being parsed at once may cost.
    pub(crate) parse_budget: ParseBudget,
    pub(crate) workers: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// The Redis tier shared with other replicas, when configured.
    pub(crate) cluster: Option<super::cluster::Cluster>,
}
