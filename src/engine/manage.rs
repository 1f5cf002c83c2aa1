//! Cache management (`/cache_management`, `ManageCache`): flush, info,
//! delete, save and load with gluRPC's results and messages. An entry is a
//! handle: its uploads, forecasts and plots in memory and its records on
//! disk. `cache_size` counts the handles held (memory or disk).

use std::collections::HashSet;

use super::core::{Engine, blocking};
use super::error::EngineError;
use super::persist;
use super::upload::WindowKind;

/// The result of a cache action, as the reference reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheReport {
    /// Whether the action found what it acted on.
    pub success: bool,
    /// What happened.
    pub message: String,
    /// Handles held after the action.
    pub cache_size: usize,
    /// Handles plus rendered plots (`info`), otherwise handles.
    pub persisted_count: usize,
    /// Entries affected (`delete`, `save`, `load`); `None` for `flush` and `info`.
    pub items_affected: Option<usize>,
}

/// Entries and bytes of the memory caches (for metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Uploads (one per handle and window kind).
    pub uploads: usize,
    /// Their bytes.
    pub upload_bytes: usize,
    /// Window forecasts.
    pub forecasts: usize,
    /// Their bytes.
    pub forecast_bytes: usize,
    /// Rendered plots.
    pub plots: usize,
    /// Their bytes.
    pub plot_bytes: usize,
}

impl Engine {
    /// Sizes of the memory caches.
    pub fn cache_stats(&self) -> CacheStats {
        let i = &self.inner;
        CacheStats {
            uploads: i.uploads.len(),
            upload_bytes: i.uploads.bytes(),
            forecasts: i.forecasts.len(),
            forecast_bytes: i.forecasts.bytes(),
            plots: i.plots.len(),
            plot_bytes: i.plots.bytes(),
        }
    }

    /// Runs a cache action (`flush`, `info`, `delete`, `save`, `load`).
    pub async fn cache_management(
        &self,
        action: &str,
        handle: Option<&str>,
    ) -> Result<CacheReport, EngineError> {
        let engine = self.clone();
        let action = action.to_string();
        let handle = handle.map(str::to_string);
        blocking(move || engine.cache_management_blocking(&action, handle.as_deref())).await
    }

    /// [`Engine::cache_management`] on the calling thread (it touches the disk).
    pub fn cache_management_blocking(
        &self,
        action: &str,
        handle: Option<&str>,
    ) -> Result<CacheReport, EngineError> {
        let need = |a: &str| {
            handle.ok_or_else(|| {
                EngineError::BadRequest(format!("Handle parameter required for {a} action"))
            })
        };
        let report = |success: bool, message: String, items: Option<usize>| {
            let n = self.handles().len();
            CacheReport {
                success,
                message,
                cache_size: n,
                persisted_count: n,
                items_affected: items,
            }
        };
        match action {
            "flush" => {
                self.flush();
                Ok(CacheReport {
                    success: true,
                    message: "Cache flushed successfully".into(),
                    cache_size: 0,
                    persisted_count: 0,
                    items_affected: None,
                })
            }
            "info" => {
                let n = self.handles().len();
                let m = self.inner.plots.len();
                Ok(CacheReport {
                    success: true,
                    message: format!("Cache info retrieved (Inference: {n}, Plots: {m})"),
                    cache_size: n,
                    persisted_count: n + m,
                    items_affected: None,
                })
            }
            "delete" => {
                let h = need("delete")?;
                Ok(if self.delete(h) {
                    report(true, format!("Handle {h} deleted successfully"), Some(1))
                } else {
                    report(false, format!("Handle {h} not found in cache"), Some(0))
                })
            }
            "save" => {
                self.inner.persist_all();
                Ok(report(
                    true,
                    "Cache is automatically persisted (No-op)".into(),
                    Some(0),
                ))
            }
            "load" => {
                let h = need("load")?;
                let found = WindowKind::ALL
                    .into_iter()
                    .filter(|k| matches!(self.inner.existing(h, *k), Ok(Some(_))))
                    .count()
                    > 0;
                Ok(if found {
                    report(
                        true,
                        format!("Handle {h} loaded/verified in memory"),
                        Some(1),
                    )
                } else {
                    report(false, format!("Handle {h} not found on disk"), Some(0))
                })
            }
            other => Err(EngineError::BadRequest(format!(
                "Unknown action: {other}. Valid actions are: flush, info, delete, save, load"
            ))),
        }
    }

    /// Handles held, recounted at most once a second.
    pub fn cache_size(&self) -> usize {
        let mut g = self
            .inner
            .handle_count
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match *g {
            Some((at, n)) if at.elapsed() < std::time::Duration::from_secs(1) => n,
            _ => {
                let n = self.handles().len();
                *g = Some((std::time::Instant::now(), n));
                n
            }
        }
    }

    /// Handles held in memory or on disk.
    pub fn handles(&self) -> HashSet<String> {
        let mut set: HashSet<String> = self
            .inner
            .uploads
            .keys_where(|_| true)
            .into_iter()
            .map(|(h, _)| h)
            .collect();
        if let Some(d) = &self.inner.disk {
            for name in d.store.names() {
                if let Some(h) = persist::handle_of_name(&name, &d.tag) {
                    set.insert(h.to_string());
                }
            }
        }
        set.extend(self.inner.shared_handles());
        set
    }

    /// Clears uploads, forecasts and plots in memory and every record on
    /// disk. Queued jobs still run and answer their waiters.
    fn flush(&self) {
        for key in self.inner.uploads.keys_where(|_| true) {
            if let Some(u) = self.inner.uploads.remove(&key) {
                u.retire();
            }
        }
        self.inner.uploads.clear();
        self.inner.forecasts.clear();
        self.inner.plots.clear();
        if let Some(d) = &self.inner.disk {
            d.writer.clear();
        }
        self.inner.forget_shared(None);
    }

    /// Removes one handle everywhere; true when anything was held.
    fn delete(&self, handle: &str) -> bool {
        let i = &self.inner;
        let mut found = false;
        for key in i.uploads.keys_where(|(h, _)| h == handle) {
            if let Some(u) = i.uploads.remove(&key) {
                u.retire();
                found = true;
            }
        }
        i.forecasts.remove_where(|k| k.handle == handle);
        i.plots.remove_where(|k| k.window.handle == handle);
        if let Some(d) = &i.disk {
            let names = WindowKind::ALL
                .into_iter()
                .map(|kind| persist::record_name(handle, kind, &d.tag))
                .collect();
            found |= d.writer.remove(names);
        }
        found |= i.forget_shared(Some(handle));
        found
    }
}
