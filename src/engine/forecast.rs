//! Window forecasts: which window of an upload ([`WindowKey`]), its forecast
//! in scaled units ([`WindowForecast`]), and the job that computes it for one
//! upload version ([`JobKey`]).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::cache::Weigh;

use super::upload::{Upload, WindowKind};

/// Which window of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// A measured window by user index (0 = last, -(N-1) = first): the
    /// back-test the reference serves.
    Index(i64),
    /// The next 60 minutes after the last reading.
    Forward,
}

/// One window of one upload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WindowKey {
    /// The upload.
    pub handle: String,
    /// Its dataset.
    pub kind: WindowKind,
    /// The window.
    pub target: Target,
}

/// A window's forecast in scaled units: `values[t * samples + s]`.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowForecast {
    /// The upload version it was computed for.
    pub version: u64,
    /// Forecast steps.
    pub steps: usize,
    /// Samples per step.
    pub samples: usize,
    /// (steps, samples), row-major.
    pub values: Vec<f32>,
    /// One log-variance per sample.
    pub logvar: Vec<f32>,
}

impl Weigh for WindowForecast {
    fn weight(&self) -> usize {
        (self.values.len() + self.logvar.len()) * 4 + 96
    }
}

/// A queued forecast job: the window, and the upload version it is for
/// (the job holds the upload, so it runs even if the cache drops it).
#[derive(Debug, Clone)]
pub struct JobKey {
    /// The window.
    pub window: WindowKey,
    /// The upload it is computed from.
    pub upload: Arc<Upload>,
}

impl JobKey {
    /// The job of `window` in `upload`.
    pub fn new(window: WindowKey, upload: Arc<Upload>) -> JobKey {
        JobKey { window, upload }
    }
}

impl PartialEq for JobKey {
    fn eq(&self, other: &Self) -> bool {
        self.window == other.window && self.upload.version == other.upload.version
    }
}

impl Eq for JobKey {}

impl Hash for JobKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.window.hash(state);
        self.upload.version.hash(state);
    }
}
