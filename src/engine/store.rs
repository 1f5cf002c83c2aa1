//! The engine's cache logic over its three memory caches (uploads, window
//! forecasts, rendered plots) and the disk store: finding an upload in
//! memory, rebuilding it from the other window kind, loading it with its
//! forecasts from disk, versions and invalidation, queueing an upload's
//! windows, accepting or dropping a new upload, writing uploads to disk (an
//! accepted upload at once, its CSV, so that a crash does not lose it, then
//! again as its forecasts complete), and the delivery of the model thread's
//! results: cached for their upload version, handed to every waiter,
//! written to disk and counted.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::cache::CacheError;
use crate::pipeline::WindowConfig;

use super::error::EngineError;
use super::forecast::{JobKey, Target, WindowForecast, WindowKey};
use super::persist::{self, WriteJob};
use super::scheduler::{PRIORITY_INTERACTIVE, PRIORITY_PREFETCH, PRIORITY_PROCESS};
use super::state::Inner;
use super::upload::{Upload, WindowKind};
use super::worker::Delivery;

impl Inner {
    pub(crate) fn window_config(&self, kind: WindowKind) -> WindowConfig {
        match kind {
            WindowKind::Full => self.cfg.full,
            WindowKind::Quick => self.cfg.quick,
        }
    }

    pub(crate) fn next_version(&self) -> u64 {
        self.versions.fetch_add(1, Ordering::Relaxed)
    }

    /// True when `upload` is the version held in memory.
    pub(crate) fn is_current(&self, upload: &Upload) -> bool {
        self.uploads
            .get(&(upload.handle.clone(), upload.kind))
            .is_some_and(|u| u.version == upload.version)
    }

    /// Keeps `upload` unless another thread just kept one for the same
    /// handle and kind (then that one is used).
    pub(crate) fn insert_upload(&self, upload: Upload) -> Arc<Upload> {
        let key = (upload.handle.clone(), upload.kind);
        if let Some(u) = self.uploads.get(&key) {
            return u;
        }
        let up = Arc::new(upload);
        self.uploads.insert(key, up.clone());
        up
    }

    /// The upload in memory or on disk (not built from the other kind).
    pub(crate) fn existing(
        &self,
        handle: &str,
        kind: WindowKind,
    ) -> Result<Option<Arc<Upload>>, EngineError> {
        if let Some(u) = self.uploads.get(&(handle.to_string(), kind)) {
            return Ok(Some(u));
        }
        if let Some(u) = self.load_from_disk(handle, kind) {
            return Ok(Some(u));
        }
        // Accepted by another replica: accepted here too.
        Ok(self.shared_upload(handle, kind).map(|up| {
            up.accept();
            self.insert_upload(up)
        }))
    }

    /// The upload for `handle` and `kind`: memory, disk, or rebuilt from
    /// the other kind's CSV (memory or disk); `NotFound` otherwise.
    pub(crate) fn resolve(
        &self,
        handle: &str,
        kind: WindowKind,
    ) -> Result<Arc<Upload>, EngineError> {
        if let Some(u) = self.existing(handle, kind)? {
            return Ok(u);
        }
        for other in WindowKind::ALL.into_iter().filter(|k| *k != kind) {
            if let Some(o) = self.existing(handle, other)? {
                let up = Upload::from_csv(
                    o.csv.clone(),
                    kind,
                    self.window_config(kind),
                    self.next_version(),
                )?
                .with_origin(o.origin);
                if o.is_accepted() {
                    // The other kind's record already holds the CSV.
                    up.accept();
                }
                return Ok(self.insert_upload(up));
            }
        }
        Err(EngineError::NotFound)
    }

    /// A new version of `upload`: its forecasts and plots are dropped and
    /// will be recomputed.
    pub(crate) fn new_version(&self, upload: &Upload) -> Arc<Upload> {
        let up = Arc::new(upload.with_version(self.next_version()));
        self.unshare_forecasts(upload);
        let (h, k) = (upload.handle.clone(), upload.kind);
        self.uploads.insert((h.clone(), k), up.clone());
        self.forecasts
            .remove_where(|w| w.handle == h && w.kind == k);
        self.plots
            .remove_where(|p| p.window.handle == h && p.window.kind == k);
        up
    }

    /// The cached forecast of `key` for this upload version.
    pub(crate) fn cached_forecast(
        &self,
        upload: &Upload,
        key: &WindowKey,
    ) -> Option<Arc<WindowForecast>> {
        self.forecasts
            .get(key)
            .filter(|f| f.version == upload.version)
    }

    /// Drops one window's forecast and plots.
    pub(crate) fn forget_window(&self, key: &WindowKey) {
        self.forecasts.remove(key);
        self.plots.remove_where(|p| p.window == *key);
    }

    /// Queues every window of `upload` not cached, last first, as background
    /// work (window 0 at interactive priority when `priority` is that of
    /// `/process_unified` or more urgent); refuses all of them when the queue
    /// has no room for them.
    pub(crate) fn queue_windows(
        &self,
        upload: &Arc<Upload>,
        priority: u8,
    ) -> Result<usize, EngineError> {
        let n = upload.windows() as i64;
        let missing = |inner: &Inner| -> Vec<WindowKey> {
            (-(n - 1)..=0)
                .rev()
                .map(|index| WindowKey {
                    handle: upload.handle.clone(),
                    kind: upload.kind,
                    target: Target::Index(index),
                })
                .filter(|k| inner.cached_forecast(upload, k).is_none())
                .collect()
        };
        let mut missing = missing(self);
        if self.cluster.is_some() && !missing.is_empty() && self.adopt_shared(upload, &missing) > 0
        {
            missing.retain(|k| self.cached_forecast(upload, k).is_none());
        }
        // Shared: window 0 here at once, the rest on the replicas' stream.
        let first = Target::Index(0);
        if self.cluster.is_some() && priority <= PRIORITY_PROCESS {
            let rest: Vec<WindowKey> = missing
                .iter()
                .filter(|k| k.target != first)
                .cloned()
                .collect();
            if self.share_work(upload, &rest, priority) {
                missing.retain(|k| k.target == first);
            }
            // Window 0 too is computed once across replicas.
            missing.retain(|k| self.lease_window(k));
        } else if self.cluster.is_some() && self.share_work(upload, &missing, priority) {
            missing.clear();
        }
        if self.jobs.room(priority) < missing.len() {
            // Not computed here: the leases taken above go back.
            for k in &missing {
                self.give_up_shared(k);
            }
            return Err(EngineError::Overloaded { retry_after_s: 30 });
        }
        let count = missing.len();
        for key in missing {
            // Window 0 is what a client asks for first (the reference also
            // renders it at priority 0): it gets a pass of its own.
            let p = if key.target == Target::Index(0) && priority <= PRIORITY_PROCESS {
                PRIORITY_INTERACTIVE
            } else {
                priority
            };
            self.jobs
                .submit(JobKey::new(key, upload.clone()), p, true)?;
        }
        Ok(count)
    }

    /// Loads `handle`'s record for `kind` with its forecasts into memory.
    /// A damaged or foreign record is removed with a warning.
    pub(crate) fn load_from_disk(&self, handle: &str, kind: WindowKind) -> Option<Arc<Upload>> {
        let disk = self.disk.as_ref()?;
        let name = persist::record_name(handle, kind, &disk.tag);
        let record = match disk.store.read(&name) {
            Ok(Some(r)) => r,
            Ok(None) | Err(CacheError::BadKey(_)) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "skipping a cache record");
                let _ = disk.store.remove(&name);
                return None;
            }
        };
        let version = self.next_version();
        let loaded = persist::decode(&record, &disk.fp, handle, kind, version).and_then(|s| {
            let up = Upload::from_csv(s.csv.clone(), kind, self.window_config(kind), version)
                .map_err(|e| format!("its CSV no longer prepares: {e}"))?;
            let up = match s.origin {
                Some(origin) => up.with_origin(origin),
                None => up,
            };
            if up.handle != handle || up.windows() != s.windows.len() {
                return Err("its data does not match its handle or window count".to_string());
            }
            Ok((up, s))
        });
        let (up, stored) = match loaded {
            Ok(x) => x,
            Err(reason) => {
                tracing::warn!(record = %name, %reason, "skipping a cache record");
                let _ = disk.store.remove(&name);
                return None;
            }
        };
        let n = stored.windows.len() as i64;
        let present = stored.windows.iter().flatten().count();
        up.accept();
        let up = self.insert_upload(up);
        if up.version != version {
            return Some(up);
        }
        up.set_persisted(present);
        let targets = (-(n - 1)..=0)
            .map(Target::Index)
            .chain(std::iter::once(Target::Forward));
        let all = stored
            .windows
            .into_iter()
            .chain(std::iter::once(stored.forward));
        for (target, f) in targets.zip(all) {
            if let Some(f) = f {
                let key = WindowKey {
                    handle: handle.to_string(),
                    kind,
                    target,
                };
                self.forecasts.insert(key, Arc::new(f));
            }
        }
        tracing::debug!(record = %name, windows = present, "loaded from disk");
        Some(up)
    }

    /// Queues, as prefetch work, the windows missing from the records a
    /// crash (or a shutdown) left incomplete, newest record first; stops at
    /// the first refusal (a full queue, shutdown).
    pub(crate) fn resume(&self) {
        let Some(disk) = &self.disk else {
            return;
        };
        let mut queued = 0;
        for name in disk.store.names().iter().rev() {
            let Some((handle, kind)) = persist::parse_name(name, &disk.tag) else {
                continue;
            };
            let partial = disk.store.read_header(name);
            if !partial.is_some_and(|h| persist::incomplete(&h)) {
                continue;
            }
            let Some(upload) = self.load_from_disk(handle, kind) else {
                continue;
            };
            match self.queue_windows(&upload, PRIORITY_PREFETCH) {
                Ok(n) => queued += n,
                Err(e) => {
                    tracing::info!(error = %e, "stopped resuming unfinished uploads");
                    break;
                }
            }
        }
        if queued > 0 {
            tracing::info!(
                windows = queued,
                "queued the windows unfinished before the restart"
            );
        }
    }

    /// The cached forecasts of `upload` (first to last window) and its
    /// forward forecast.
    fn gather(
        &self,
        upload: &Upload,
    ) -> (
        Vec<Option<Arc<WindowForecast>>>,
        Option<Arc<WindowForecast>>,
    ) {
        let key = |target| WindowKey {
            handle: upload.handle.clone(),
            kind: upload.kind,
            target,
        };
        let n = upload.windows() as i64;
        let windows = (-(n - 1)..=0)
            .map(|i| self.cached_forecast(upload, &key(Target::Index(i))))
            .collect();
        (windows, self.cached_forecast(upload, &key(Target::Forward)))
    }

    /// Marks `upload` accepted (its request is answered with it) and, the
    /// first time, writes its record (the CSV, and any forecast) at once.
    pub(crate) fn accept(&self, upload: &Arc<Upload>) {
        if upload.accept() {
            self.persist(upload);
            self.share_upload(upload);
        }
    }

    /// Drops a new upload whose request was refused (503) before it was
    /// accepted: nothing of it stays in memory, and nothing was written.
    pub(crate) fn drop_refused(&self, upload: &Arc<Upload>) {
        if upload.is_accepted() || !self.is_current(upload) {
            return;
        }
        let (h, k, v) = (upload.handle.clone(), upload.kind, upload.version);
        if let Some(u) = self.uploads.remove(&(h.clone(), k)) {
            u.retire();
        }
        self.forecasts
            .remove_where(|w| w.handle == h && w.kind == k);
        self.plots
            .remove_where(|p| p.window.handle == h && p.window.kind == k && p.version == v);
        tracing::debug!(handle = %h, kind = k.as_str(), "refused upload dropped");
    }

    /// Writes `upload`'s record when it is accepted and holds more windows
    /// than the last record did (or none was written yet). The writer keeps
    /// only the newest of the snapshots of a record still queued.
    pub(crate) fn persist(&self, upload: &Arc<Upload>) {
        let Some(disk) = &self.disk else {
            return;
        };
        if !upload.is_accepted() || upload.is_retired() {
            return;
        }
        let (windows, forward) = self.gather(upload);
        let present = windows.iter().flatten().count();
        if upload.persisted_windows().is_some_and(|p| present <= p) {
            return;
        }
        let steps = self.model.config().len_pred;
        let (fp, up) = (disk.fp.clone(), upload.clone());
        let encode = move || persist::encode(&fp, &up, &windows, forward.as_deref(), steps);
        let name = persist::record_name(&upload.handle, upload.kind, &disk.tag);
        if disk.writer.send(WriteJob {
            name,
            encode: Box::new(encode),
            upload: upload.clone(),
        }) {
            upload.set_persisted(present);
        }
    }

    /// Writes every upload in memory that has unsaved windows.
    pub(crate) fn persist_all(&self) {
        for key in self.uploads.keys_where(|_| true) {
            if let Some(u) = self.uploads.get(&key) {
                self.persist(&u);
            }
        }
    }
}

impl Delivery for Inner {
    fn deliver(&self, job: &JobKey, result: Result<Arc<WindowForecast>, EngineError>) {
        match &result {
            // Only the version in memory is cached: a result for a replaced,
            // flushed or deleted upload goes to its waiters only.
            Ok(wf) if self.is_current(&job.upload) => {
                self.forecasts.insert(job.window.clone(), wf.clone());
                self.jobs.complete(job, result.clone());
                self.persist(&job.upload);
            }
            Ok(_) => self.jobs.complete(job, result.clone()),
            Err(e) => {
                if !matches!(e, EngineError::Inference(_)) {
                    self.stats.error();
                }
                self.jobs.complete(job, result.clone());
            }
        }
        // Forecasts are the same on every replica: shared whatever the version.
        match &result {
            Ok(wf) => self.share_forecast(&job.window, wf),
            Err(_) => self.give_up_shared(&job.window),
        }
    }

    fn busy(&self, busy: bool) {
        self.stats.set_busy(busy);
    }

    fn batch(&self, priority: u8, windows: usize, took: std::time::Duration, ok: bool) {
        self.stats.batch(priority, windows, took, ok);
    }

    fn settled(&self) {
        self.flush_shared();
    }

    fn at_hand(&self, job: &JobKey) -> Option<Arc<WindowForecast>> {
        self.cached_forecast(&job.upload, &job.window)
    }
}
