//! Replicas that share their work through Redis ([`crate::cache::shared`]).
//! With `--redis-url`, every accepted upload's unified CSV and every window
//! forecast (f32 samples) is also written to Redis, so any replica answers
//! any handle; the in-process caches stay the first tier. An upload's
//! background windows go to a Redis Stream per priority instead of the
//! local queue; each replica's puller thread takes items when its model
//! thread has room, leases the window (`SET NX PX`), computes it and
//! acknowledges the item when the forecast is stored, so every window is
//! computed once across replicas and an item a dead replica held is taken
//! over after the lease. A person waiting for a window is served at once:
//! from Redis, by waiting for the replica computing it, or locally.
//! Flush and delete reach every replica through a control channel.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::cache::shared::{Finished, Shared, SharedError, SharedFigures};
use crate::plot::Origin;

use super::error::EngineError;
use super::forecast::{Target, WindowForecast, WindowKey};
use super::scheduler::PRIORITY_PREFETCH;
use super::state::Inner;
use super::upload::{Upload, WindowKind};

mod codec;
mod puller;
use codec::{decode_forecast, encode_forecast, window_name};

/// How often a replica waiting for a window computed elsewhere looks.
const POLL: Duration = Duration::from_millis(100);
/// A held lease is renewed for at most this many leases' time.
const MAX_RENEWALS: u32 = 10;
/// Work-stream priorities, most urgent first.
const PRIORITIES: [u8; 3] = [0, 1, 3];
/// Key prefix of a window's lease (then its name).
const LEASE: &str = "lease:";
/// Key prefix of a window's forecast (then its name).
const FORECAST: &str = "fc:";

/// What taking a window's lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lease {
    /// This replica holds it now and computes the window.
    Taken,
    /// Another replica (or this one's puller) holds it.
    Held,
    /// The forecast is already stored: nothing to compute.
    Done,
}

/// The shared tier's state in one replica.
pub(crate) struct Cluster {
    /// The Redis client.
    pub(crate) shared: Shared,
    /// This replica's consumer name.
    pub(crate) replica: String,
    /// How long a window lease (and a work item) is held before another
    /// replica may take it over.
    pub(crate) lease: Duration,
    /// Work items to acknowledge when their window's forecast is stored.
    acks: Mutex<HashMap<String, Vec<(u8, String)>>>,
    claimed: AtomicU64,
    reclaimed: AtomicU64,
    /// Windows put back on the streams after Redis restarted.
    requeued: AtomicU64,
    /// Redis restarts already answered by [`Inner::reshare`].
    restarts_seen: AtomicU64,
    /// Set when work was queued (here, or elsewhere as said on the control
    /// channel): the puller looks at once instead of at its next poll.
    work: (Mutex<bool>, std::sync::Condvar),
    /// The window leases this replica holds (by window name, with when it
    /// took them): the puller renews them until the forecast is stored, so
    /// a window waiting in this replica's queue longer than the lease is
    /// not taken over while the replica lives.
    held: Mutex<HashMap<String, Instant>>,
    /// When the held leases were last renewed.
    renewed: Mutex<Instant>,
    /// Forecasts computed in the current forward pass, stored at its end.
    finished: Mutex<Vec<Finished>>,
}

/// The cluster figures of `/metrics` and `/health`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterFigures {
    /// Redis's operation figures.
    pub store: SharedFigures,
    /// Work items this replica took from the streams.
    pub claimed: u64,
    /// Work items claimed again from a replica that held them past the
    /// lease (dead or stalled), whether or not their window still needed
    /// computing.
    pub reclaimed: u64,
    /// Windows this replica put back on the streams after Redis restarted.
    pub requeued: u64,
}

/// Connects to the Redis of `s` (refusing when it does not answer), under
/// a prefix naming the model and its sampling settings, so that replicas
/// of another model never share forecasts with these.
pub(crate) fn connect(
    s: &super::config::SharedSettings,
    cfg: &super::config::EngineConfig,
) -> Result<Cluster, EngineError> {
    let fp = super::persist::Fingerprint {
        model_id: cfg.model_id.clone(),
        samples: cfg.samples,
        seed: cfg.seed,
    };
    let shared = Shared::connect(crate::cache::shared::SharedConfig {
        url: s.url.clone(),
        tls: s.tls.clone(),
        prefix: format!("glurpc:{}", fp.tag()),
        ttl: s.ttl,
        timeout: s.timeout,
    })
    .map_err(|e| EngineError::SharedStore(format!("cannot reach {}: {e}", redacted(&s.url))))?;
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "glurpc".into());
    let replica = format!("{host}-{}", std::process::id());
    Ok(Cluster::new(shared, replica, s.lease))
}

/// `url` without its password.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl Cluster {
    /// The shared tier over `shared`, as consumer `replica`.
    pub(crate) fn new(shared: Shared, replica: String, lease: Duration) -> Cluster {
        Cluster {
            shared,
            replica,
            lease,
            acks: Mutex::default(),
            claimed: AtomicU64::new(0),
            reclaimed: AtomicU64::new(0),
            requeued: AtomicU64::new(0),
            restarts_seen: AtomicU64::new(0),
            work: (Mutex::new(false), std::sync::Condvar::new()),
            held: Mutex::default(),
            renewed: Mutex::new(Instant::now()),
            finished: Mutex::default(),
        }
    }

    /// Forgets a lease this replica released (or gives up): true when it
    /// held it.
    fn release(&self, name: &str) -> bool {
        self.held
            .lock()
            .map(|mut h| h.remove(name).is_some())
            .unwrap_or(false)
    }

    /// Forgets the lease of window `name` if this replica holds it, and
    /// puts its key on `back`, to be deleted (another's lease stays).
    fn give_back(&self, name: &str, back: &mut Vec<String>) {
        if self.release(name) {
            back.push(format!("{LEASE}{name}"));
        }
    }

    /// Renews the held leases every third of the lease. A lease is renewed
    /// for at most [`MAX_RENEWALS`] leases' time: a window that long in
    /// this replica's hands is left to the others.
    fn renew_held(&self) {
        let now = Instant::now();
        match self.renewed.lock() {
            Ok(mut at) if now.duration_since(*at) >= self.lease / 3 => *at = now,
            _ => return,
        }
        let names: Vec<String> = match self.held.lock() {
            Ok(mut h) => {
                h.retain(|_, taken| now.duration_since(*taken) < self.lease * MAX_RENEWALS);
                h.keys().map(|n| format!("{LEASE}{n}")).collect()
            }
            Err(_) => return,
        };
        if let Err(e) = self.shared.renew(&names, &self.replica, self.lease) {
            tracing::debug!(error = %e, "leases not renewed");
        }
    }

    /// The figures now.
    pub(crate) fn figures(&self) -> ClusterFigures {
        ClusterFigures {
            store: self.shared.figures(),
            claimed: self.claimed.load(Ordering::Relaxed),
            reclaimed: self.reclaimed.load(Ordering::Relaxed),
            requeued: self.requeued.load(Ordering::Relaxed),
        }
    }

    /// Takes the leases of windows `names` for this replica, unless their
    /// forecasts are stored: one round trip, each lease set and then its
    /// forecast looked for. A replica that finished a window just before
    /// stored it before releasing its lease (`Shared::store_done` writes,
    /// then unlinks), so a lease taken in that gap finds the forecast, is
    /// given back, and the window is not computed twice.
    fn take_leases(&self, names: &[&str]) -> Result<Vec<Lease>, SharedError> {
        let pairs: Vec<(String, String)> = names
            .iter()
            .map(|n| (format!("{LEASE}{n}"), format!("{FORECAST}{n}")))
            .collect();
        let found = self.shared.lease_many(&pairs, &self.replica, self.lease)?;
        let mut back = Vec::new();
        let leases = names
            .iter()
            .zip(found)
            .map(|(name, found)| self.settle_lease(name, found, &mut back))
            .collect();
        let _ = self.shared.delete(&back);
        Ok(leases)
    }

    /// What taking the lease of window `name` found: `(taken, its forecast
    /// exists)`. A lease taken is remembered as held, unless the forecast
    /// was stored meanwhile: then it goes on `back`, to be deleted.
    fn settle_lease(
        &self,
        name: &str,
        (taken, done): (bool, bool),
        back: &mut Vec<String>,
    ) -> Lease {
        match (taken, done) {
            (false, false) => Lease::Held,
            (false, true) => Lease::Done,
            (true, true) => {
                back.push(format!("{LEASE}{name}"));
                Lease::Done
            }
            (true, false) => {
                if let Ok(mut h) = self.held.lock() {
                    h.insert(name.to_string(), Instant::now());
                }
                Lease::Taken
            }
        }
    }

    /// [`Cluster::take_leases`] for one window.
    fn take_lease(&self, name: &str) -> Result<Lease, SharedError> {
        Ok(self.take_leases(&[name])?.pop().unwrap_or(Lease::Held))
    }

    /// True when this replica holds the lease `name`.
    fn holds(&self, name: &str) -> bool {
        matches!(self.shared.get(name), Ok(Some(h)) if h == self.replica.as_bytes())
    }

    /// Wakes the puller: work was queued.
    fn wake(&self) {
        if let Ok(mut w) = self.work.0.lock() {
            *w = true;
            self.work.1.notify_all();
        }
    }

    /// Waits at most `d` for [`Cluster::wake`].
    fn nap(&self, d: Duration) {
        if let Ok(w) = self.work.0.lock() {
            let waited = self.work.1.wait_timeout_while(w, d, |woken| !*woken);
            if let Ok((mut w, _)) = waited {
                *w = false;
            }
        }
    }

    /// The forecast of `key` in Redis.
    fn forecast(&self, key: &WindowKey, version: u64) -> Option<WindowForecast> {
        let name = format!("{FORECAST}{}", window_name(key));
        let bytes = self.shared.get(&name).ok()??;
        decode_forecast(&bytes, version)
    }
}

impl Inner {
    /// Writes an accepted upload's CSV (and its origin) to Redis.
    pub(crate) fn share_upload(&self, upload: &Upload) {
        let Some(c) = &self.cluster else { return };
        let mut value = upload.origin.to_json().to_string().into_bytes();
        value.push(b'\n');
        value.extend_from_slice(upload.csv.as_bytes());
        c.shared
            .set_or_defer(&format!("up:{}", upload.handle), &value);
    }

    /// The upload `handle` as another replica shared it, prepared for `kind`.
    pub(crate) fn shared_upload(&self, handle: &str, kind: WindowKind) -> Option<Upload> {
        let c = self.cluster.as_ref()?;
        let value = c.shared.get(&format!("up:{handle}")).ok()??;
        let split = value.iter().position(|b| *b == b'\n')?;
        let origin = serde_json::from_slice(&value[..split])
            .ok()
            .and_then(|v| Origin::from_json(&v));
        let csv = std::str::from_utf8(&value[split + 1..]).ok()?;
        let up = Upload::from_csv(
            Arc::from(csv),
            kind,
            self.window_config(kind),
            self.next_version(),
        )
        .ok()?;
        let up = match origin {
            Some(o) => up.with_origin(o),
            None => up,
        };
        (up.handle == handle).then_some(up)
    }

    /// The forecasts of `keys` that Redis holds, kept in memory for this
    /// upload version; how many were found.
    pub(crate) fn adopt_shared(&self, upload: &Arc<Upload>, keys: &[WindowKey]) -> usize {
        let Some(c) = &self.cluster else { return 0 };
        let names: Vec<String> = keys
            .iter()
            .map(|k| format!("{FORECAST}{}", window_name(k)))
            .collect();
        let Ok(values) = c.shared.get_many(&names) else {
            return 0;
        };
        let mut found = 0;
        for (key, value) in keys.iter().zip(values) {
            if let Some(f) = value.and_then(|b| decode_forecast(&b, upload.version)) {
                self.forecasts.insert(key.clone(), Arc::new(f));
                found += 1;
            }
        }
        if found > 0 {
            self.persist(upload);
        }
        found
    }

    /// Puts the windows of `keys` on the shared work stream of `priority`,
    /// once per upload (another replica may have queued them already);
    /// false when Redis could not take them (then queue them locally).
    pub(crate) fn share_work(&self, upload: &Upload, keys: &[WindowKey], priority: u8) -> bool {
        self.enqueue_once(upload, keys, priority).is_some()
    }

    /// [`Inner::share_work`]: how many windows this call queued (0 when
    /// another replica had), `None` when Redis could not take them.
    fn enqueue_once(&self, upload: &Upload, keys: &[WindowKey], priority: u8) -> Option<usize> {
        let c = self.cluster.as_ref()?;
        let marker = format!("queued:{}:{}", upload.handle, upload.kind.as_str());
        match c.shared.lease(&marker, &c.replica, c.shared.ttl()) {
            Ok(false) => Some(0),
            Ok(true) => {
                // The upload first: a replica woken by the items must find it.
                self.share_upload(upload);
                let items: Vec<String> = keys.iter().map(window_name).collect();
                if c.shared.enqueue(priority, &items).is_ok() {
                    c.wake();
                    let _ = c.shared.publish("work");
                    Some(items.len())
                } else {
                    let _ = c.shared.delete(&[marker]);
                    None
                }
            }
            Err(_) => None,
        }
    }

    /// After Redis restarted (an empty Redis may have lost everything):
    /// writes back every upload this replica holds with the forecasts it
    /// has, and puts their missing windows on the streams again, once
    /// across replicas (the first replica to take an upload's queued
    /// marker does), so that every replica helps with them again.
    fn reshare(&self, c: &Cluster) {
        let mut requeued = 0;
        for key in self.uploads.keys_where(|_| true) {
            let Some(upload) = self.uploads.get(&key) else {
                continue;
            };
            if upload.is_retired() {
                continue;
            }
            let (mut missing, mut computed) = (Vec::new(), Vec::new());
            for index in -(upload.windows() as i64 - 1)..=0 {
                let key = WindowKey {
                    handle: upload.handle.clone(),
                    kind: upload.kind,
                    target: Target::Index(index),
                };
                match self.cached_forecast(&upload, &key) {
                    Some(f) => computed.push((
                        format!("{FORECAST}{}", window_name(&key)),
                        encode_forecast(&f),
                    )),
                    None => missing.push(key),
                }
            }
            self.share_upload(&upload);
            c.shared.set_many_or_defer(computed);
            if !missing.is_empty() {
                missing.reverse();
                requeued += self
                    .enqueue_once(&upload, &missing, PRIORITY_PREFETCH)
                    .unwrap_or(0);
            }
        }
        c.requeued.fetch_add(requeued as u64, Ordering::Relaxed);
        tracing::info!(windows = requeued, "Redis restarted: uploads shared again");
    }

    /// Forgets every shared forecast of `upload`'s handle and kind (a
    /// forced recompute), so that they are queued and computed again.
    pub(crate) fn unshare_forecasts(&self, upload: &Upload) {
        let Some(c) = &self.cluster else { return };
        let kind = upload.kind.as_str();
        let _ = c
            .shared
            .delete_matching(&format!("{FORECAST}{}:{kind}:*", upload.handle));
        let _ = c
            .shared
            .delete(&[format!("queued:{}:{kind}", upload.handle)]);
    }

    /// Queues a computed forecast for Redis with its lease's release and
    /// the work items it answers; [`Inner::flush_shared`] stores a pass's
    /// forecasts together.
    pub(crate) fn share_forecast(&self, key: &WindowKey, f: &WindowForecast) {
        let Some(c) = &self.cluster else { return };
        let name = window_name(key);
        c.release(&name);
        let acks = c.acks.lock().ok().and_then(|mut a| a.remove(&name));
        let done = Finished {
            name: format!("{FORECAST}{name}"),
            value: encode_forecast(f),
            release: format!("{LEASE}{name}"),
            acks: acks.unwrap_or_default(),
        };
        if let Ok(mut p) = c.finished.lock() {
            p.push(done);
        }
    }

    /// Stores the queued forecasts: one round trip on the model thread per
    /// forward pass.
    pub(crate) fn flush_shared(&self) {
        let Some(c) = &self.cluster else { return };
        let done = c
            .finished
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default();
        c.shared.store_done(done);
    }

    /// Takes the lease of `key` for this replica: false when another
    /// replica holds it (it computes the window). Without Redis, or when
    /// Redis does not answer, true: the window is computed here.
    pub(crate) fn lease_window(&self, key: &WindowKey) -> bool {
        let Some(c) = &self.cluster else { return true };
        !matches!(
            c.take_lease(&window_name(key)),
            Ok(Lease::Held | Lease::Done)
        )
    }

    /// Acknowledges the work items of a window that could not be computed
    /// (it is computed again when someone asks for it), and frees its lease.
    pub(crate) fn give_up_shared(&self, key: &WindowKey) {
        let Some(c) = &self.cluster else { return };
        let name = window_name(key);
        let mut back = Vec::new();
        c.give_back(&name, &mut back);
        let _ = c.shared.delete(&back);
        let acks = c.acks.lock().ok().and_then(|mut a| a.remove(&name));
        for (priority, id) in acks.into_iter().flatten() {
            let _ = c.shared.ack(priority, &id);
        }
    }

    /// Before computing a window a person waits for: its forecast from
    /// Redis, or from the replica that holds its lease (waited for until
    /// the lease runs out); `None` when this replica should compute it.
    pub(crate) fn shared_window(
        &self,
        upload: &Arc<Upload>,
        key: &WindowKey,
    ) -> Option<Arc<WindowForecast>> {
        let c = self.cluster.as_ref()?;
        let name = window_name(key);
        let deadline = Instant::now() + c.lease;
        loop {
            if let Some(f) = self.cached_forecast(upload, key) {
                return Some(f);
            }
            if let Some(f) = c.forecast(key, upload.version) {
                let f = Arc::new(f);
                self.forecasts.insert(key.clone(), f.clone());
                return Some(f);
            }
            let lease = format!("{LEASE}{name}");
            match c.take_lease(&name) {
                Ok(Lease::Taken) | Err(_) => return None,
                // Stored meanwhile: read on the next turn.
                Ok(Lease::Done) => {}
                // This replica's puller holds it: the request's job merges
                // with the queued one and raises its priority.
                Ok(Lease::Held) if c.holds(&lease) => return None,
                Ok(Lease::Held) if Instant::now() >= deadline || self.jobs.is_closed() => {
                    return None;
                }
                Ok(Lease::Held) => std::thread::sleep(POLL),
            }
        }
    }

    /// The handles other replicas shared.
    pub(crate) fn shared_handles(&self) -> Vec<String> {
        let Some(c) = &self.cluster else {
            return Vec::new();
        };
        let prefix = c.shared.key("up:");
        c.shared
            .scan("up:*")
            .unwrap_or_default()
            .into_iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
            .collect()
    }

    /// Removes `handle` (`None`: everything) from Redis, its queued work
    /// included, and tells every replica to drop it from memory; true when
    /// Redis held any of it.
    pub(crate) fn forget_shared(&self, handle: Option<&str>) -> bool {
        let Some(c) = &self.cluster else { return false };
        let (patterns, message) = match handle {
            None => (vec!["*".to_string()], "flush".to_string()),
            Some(h) => (
                ["up", "fc", "lease", "queued"]
                    .iter()
                    .map(|p| format!("{p}:{h}*"))
                    .collect(),
                format!("delete {h}"),
            ),
        };
        let mut removed = 0;
        for p in &patterns {
            removed += c.shared.delete_matching(p).unwrap_or(0);
        }
        if let Err(e) = c.shared.publish(&message) {
            tracing::warn!(error = %e, "other replicas were not told");
        }
        removed > 0
    }

    /// Applies a control message from another replica (`flush`,
    /// `delete HANDLE`) to this one's memory.
    pub(crate) fn on_control(&self, message: &str) {
        let (action, handle) = message.split_once(' ').unwrap_or((message, ""));
        let drop_upload = |u: Arc<Upload>| u.retire();
        match action {
            "work" => {
                if let Some(c) = &self.cluster {
                    c.wake();
                }
            }
            "flush" => {
                for key in self.uploads.keys_where(|_| true) {
                    if let Some(u) = self.uploads.remove(&key) {
                        drop_upload(u);
                    }
                }
                self.forecasts.clear();
                self.plots.clear();
                self.raw_handles.clear();
            }
            "delete" if !handle.is_empty() => {
                for key in self.uploads.keys_where(|(h, _)| h == handle) {
                    if let Some(u) = self.uploads.remove(&key) {
                        drop_upload(u);
                    }
                }
                self.forecasts.remove_where(|k| k.handle == handle);
                self.plots.remove_where(|k| k.window.handle == handle);
                self.raw_handles.retain(|_, h| h != handle);
            }
            _ => {}
        }
    }
}
