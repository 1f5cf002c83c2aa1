//! Window forecasts: which window of an upload ([`WindowKey`]), its forecast
//! in scaled units ([`WindowForecast`]), the seed of its dropout streams, the
//! flattening of its inputs for the model, and the scaler's inverse that
//! turns forecasts back into mg/dL.

use sha2::{Digest, Sha256};

use crate::cache::Weigh;
use crate::model::ModelWindow;
use crate::model::dropout::splitmix64;
use crate::pipeline::dataset::{MinMax, WindowInputs};

use super::upload::WindowKind;

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

/// The dropout seed of a window: the same upload (handle), window time and
/// global seed always give the same samples.
pub fn window_seed(handle: &str, last_input_time: i64, seed: u64) -> u64 {
    let digest = Sha256::digest(handle.as_bytes());
    let mut h = [0u8; 8];
    h.copy_from_slice(&digest[..8]);
    splitmix64(u64::from_le_bytes(h) ^ splitmix64(last_input_time as u64) ^ seed)
}

/// The model's view of a pipeline window.
pub fn model_window(w: &WindowInputs, seed: u64) -> ModelWindow {
    ModelWindow {
        static_features: w.static_covariates.to_vec(),
        past: w.past_target.clone(),
        past_covariates: w.past_covariates.iter().flatten().copied().collect(),
        future_covariates: w.future_covariates.iter().flatten().copied().collect(),
        seed,
    }
}

/// Scaled target values to mg/dL: `(x - min) / scale` in f64, as gluRPC's
/// `calculate_plot_data` does.
pub fn to_mgdl(scaler: &MinMax, scaled: &[f32]) -> Vec<f64> {
    let (min, scale) = (scaler.min[0] as f64, scaler.scale[0] as f64);
    scaled.iter().map(|x| (*x as f64 - min) / scale).collect()
}
