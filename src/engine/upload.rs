//! Uploads as the engine keeps them: the unified CSV (the handle is its
//! SHA-256, and any window kind can be rebuilt from it), the prepared window
//! of one kind, and a version that changes whenever the upload's forecasts
//! are recomputed, so that nothing cached for an older version is served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::cache::Weigh;
use crate::formats;
use crate::pipeline::{self, Prepared, WindowConfig};
use crate::plot::Origin;

use super::error::EngineError;

/// Which window of an upload a dataset was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowKind {
    /// 540-1080 minutes, as `/process_unified` builds it.
    Full,
    /// The last 540 minutes, as `/quick_plot` builds it.
    Quick,
}

impl WindowKind {
    /// The lower-case name, used in cache file names.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Full => "full",
            WindowKind::Quick => "quick",
        }
    }

    /// Both kinds.
    pub const ALL: [WindowKind; 2] = [WindowKind::Full, WindowKind::Quick];
}

/// A parsed upload with its prepared window.
#[derive(Debug)]
pub struct Upload {
    /// SHA-256 of the unified CSV.
    pub handle: String,
    /// Which window.
    pub kind: WindowKind,
    /// Changes on every recomputation (`force_calculate`); forecasts and
    /// plots carry the version they were made for.
    pub version: u64,
    /// The unified CSV text the handle was computed from.
    pub csv: Arc<str>,
    /// Window, series, scaled dataset and warnings.
    pub prepared: Prepared,
    /// The export's unit and clock, for the charts (from the detected format
    /// where the upload was an export; read from the values for a unified CSV).
    pub origin: Origin,
    /// One more than the windows in the last record written to disk for
    /// this version (0: none written yet).
    pub(crate) persisted: AtomicUsize,
    /// Set once a request that brought the upload was answered with it
    /// (its work queued): only accepted uploads are kept on disk, and one
    /// refused before that (503) is dropped.
    accepted: AtomicBool,
    /// Set when the upload is deleted or flushed: its queued disk writes
    /// are dropped instead of bringing the record back.
    retired: AtomicBool,
}

impl Upload {
    /// Prepares the `kind` window of a parsed table.
    pub fn build(
        handle: String,
        csv: Arc<str>,
        table: &formats::UnifiedTable,
        kind: WindowKind,
        window: WindowConfig,
        version: u64,
    ) -> Result<Upload, EngineError> {
        let processed = pipeline::process(table);
        let prepared = pipeline::prepare(&processed, window)?;
        if prepared.dataset.is_empty() {
            return Err(EngineError::Input(format!(
                "the window has {} grid points; a forecast needs at least 108",
                prepared.dataset.points()
            )));
        }
        Ok(Upload {
            handle,
            kind,
            version,
            csv,
            prepared,
            origin: Origin::of(formats::Format::Unified, table),
            persisted: AtomicUsize::new(0),
            accepted: AtomicBool::new(false),
            retired: AtomicBool::new(false),
        })
    }

    /// Re-parses the unified CSV and prepares the `kind` window (used when
    /// only the other kind, or a disk record, is at hand).
    pub fn from_csv(
        csv: Arc<str>,
        kind: WindowKind,
        window: WindowConfig,
        version: u64,
    ) -> Result<Upload, EngineError> {
        let parsed = formats::parse_text(&csv)?;
        Upload::build(parsed.handle, csv, &parsed.table, kind, window, version)
    }

    /// The same upload under a new version (nothing recomputed but the
    /// forecasts that will follow), accepted if this one was.
    pub fn with_version(&self, version: u64) -> Upload {
        Upload {
            handle: self.handle.clone(),
            kind: self.kind,
            version,
            csv: self.csv.clone(),
            prepared: self.prepared.clone(),
            origin: self.origin,
            persisted: AtomicUsize::new(0),
            accepted: AtomicBool::new(self.is_accepted()),
            retired: AtomicBool::new(false),
        }
    }

    /// The same upload with the unit and clock of its export (known when the
    /// export itself, not its unified CSV, was uploaded).
    pub fn with_origin(mut self, origin: Origin) -> Upload {
        self.origin = origin;
        self
    }

    /// Windows in the dataset (N).
    pub fn windows(&self) -> usize {
        self.prepared.dataset.len()
    }

    /// Checks a user index against the dataset: 0 is the last window,
    /// -(N-1) the first.
    pub fn check_index(&self, index: i64) -> Result<(), EngineError> {
        let n = self.windows();
        if index > 0 || index < -(n as i64 - 1) {
            return Err(EngineError::BadIndex {
                index,
                last: n.saturating_sub(1),
            });
        }
        Ok(())
    }

    /// Windows in the last record written for this version, if any was.
    pub(crate) fn persisted_windows(&self) -> Option<usize> {
        self.persisted.load(Ordering::Relaxed).checked_sub(1)
    }

    pub(crate) fn set_persisted(&self, windows: usize) {
        self.persisted.store(windows + 1, Ordering::Relaxed);
    }

    /// Marks the upload accepted; true the first time.
    pub(crate) fn accept(&self) -> bool {
        !self.accepted.swap(true, Ordering::SeqCst)
    }

    /// True once accepted (see [`Upload::accept`]).
    pub fn is_accepted(&self) -> bool {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Marks the upload deleted (see [`Upload::is_retired`]).
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }

    /// True once deleted or flushed: nothing more of it goes to disk.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }
}

impl Weigh for Upload {
    fn weight(&self) -> usize {
        let p = &self.prepared;
        self.csv.len()
            + p.window.rows.len() * std::mem::size_of::<formats::Row>()
            + p.series.len() * 16
            + p.dataset.points() * 40
            + 512
    }
}
