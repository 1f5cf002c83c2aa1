//! The glue between the pipeline and the model, in one place for the
//! engine, training and the command line: a pipeline window as the model's
//! input ([`model_window`]) with its dropout seed ([`window_seed`]), the
//! engine's sampling settings as predict options ([`predict_options`]), and
//! the scaler's inverse that turns forecasts back into mg/dL ([`to_mgdl`]).
//! Below `engine`, `train` and `cli`; above `pipeline` and `model`.

use sha2::{Digest, Sha256};

use crate::model::dropout::splitmix64;
use crate::model::{BatchNormMode, Mode, ModelWindow, PredictOptions};
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

/// The predict options of the engine's settings: `samples` Monte Carlo
/// passes (0: one deterministic pass), at most `batch_size` windows a batch.
pub fn predict_options(samples: usize, batch_size: usize) -> PredictOptions {
    PredictOptions {
        mode: if samples == 0 {
            Mode::Deterministic
        } else {
            Mode::MonteCarlo {
                samples,
                batch_norm: BatchNormMode::Running,
            }
        },
        batch_windows: batch_size.max(1),
        max_rows: 64,
    }
}

/// Scaled target values to mg/dL: `(x - min) / scale` in f64, as gluRPC's
/// `calculate_plot_data` does.
pub fn to_mgdl(scaler: &MinMax, scaled: &[f32]) -> Vec<f64> {
    let (min, scale) = (scaler.min[0] as f64, scaler.scale[0] as f64);
    scaled.iter().map(|x| (*x as f64 - min) / scale).collect()
}
