//! Which model answers: what `GET /info` and the service's startup report
//! (version, the model's source and digests, its hyperparameters and size,
//! the device, how forecasts are sampled, the band calibration).

use serde::Serialize;

use crate::model::{Calibration, GluformerConfig, weights};

use super::core::Engine;

/// The model and sampling settings of a running engine.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// glurpc's version.
    pub version: &'static str,
    /// Where the weights came from: `default` (embedded), a folder or a Hub id.
    pub model: String,
    /// SHA-256 of the weights.
    pub sha256: String,
    /// The id persisted forecasts are keyed by (weights and calibration).
    pub model_id: String,
    /// Hyperparameters.
    pub config: GluformerConfig,
    /// Trainable parameters.
    pub parameters: usize,
    /// The device as `--device` names it: `cpu` or `cuda:N`.
    pub device: String,
    /// Model threads sharing the weights.
    pub workers: usize,
    /// MC-dropout samples per window (0: one deterministic pass).
    pub samples: usize,
    /// The global seed of the dropout streams.
    pub seed: u64,
    /// Windows per forward pass.
    pub batch_size: usize,
    /// The per-step band calibration applied, if any.
    pub calibration: Option<Calibration>,
}

impl Engine {
    /// The model and sampling settings this engine answers with.
    pub fn model_info(&self) -> ModelInfo {
        let cfg = self.config();
        let model = &self.inner.model;
        ModelInfo {
            version: env!("CARGO_PKG_VERSION"),
            model: cfg.model_source.clone(),
            sha256: cfg.weights_sha256.clone(),
            model_id: cfg.model_id.clone(),
            config: model.config().clone(),
            parameters: weights::parameter_count(model.config()),
            device: crate::model::device_name(model.device()),
            workers: cfg.workers.max(1),
            samples: cfg.samples,
            seed: cfg.seed,
            batch_size: cfg.batch_size,
            calibration: model.calibration().cloned(),
        }
    }
}
