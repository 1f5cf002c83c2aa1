//! From pipeline windows to model windows and back to mg/dL: the seed of a
//! window's dropout streams, the flattening of its inputs, and the scaler's
//! inverse applied to forecasts.

use sha2::{Digest, Sha256};

use crate::model::ModelWindow;
use crate::model::dropout::splitmix64;
use crate::pipeline::dataset::{MinMax, WindowInputs};

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
