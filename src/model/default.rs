//! The default model: the small Gluformer trained by `glurpc train` and
//! shipped in `model/` (see `model/MODEL_CARD.md`), embedded in the binary
//! so the service runs offline with no files beside it.

use candle_core::Device;
use sha2::{Digest, Sha256};

use super::calibration::Calibration;
use super::config::GluformerConfig;
use super::network::Gluformer;
use super::{ModelError, weights};

/// The id the default model reports (logs, health, disk-cache keys).
pub const ID: &str = "glurpc-default (model/)";

/// `model/model.safetensors`.
pub const WEIGHTS: &[u8] = include_bytes!("../../model/model.safetensors");
/// `model/config.json`.
pub const CONFIG: &str = include_str!("../../model/config.json");
/// `model/calibration.json`: the per-step spread factors fitted on the
/// validation people (see `model/MODEL_CARD.md`).
pub const CALIBRATION: &str = include_str!("../../model/calibration.json");

/// The default model's hyperparameters.
pub fn config() -> Result<GluformerConfig, ModelError> {
    GluformerConfig::from_json(CONFIG)
}

/// SHA-256 of the embedded weights, hex (keys the disk cache like a file's digest).
pub fn sha256() -> String {
    hex::encode(Sha256::digest(WEIGHTS))
}

/// Loads the embedded model onto `device`.
pub fn load(device: &Device) -> Result<Gluformer, ModelError> {
    let sd = candle_core::safetensors::load_buffer(WEIGHTS, &Device::Cpu).map_err(|e| {
        ModelError::Corrupt {
            path: "model/model.safetensors (embedded)".into(),
            reason: e.to_string(),
        }
    })?;
    let sd = sd.into_iter().collect::<weights::StateDict>();
    Gluformer::from_state_dict(sd, config()?, device)?.with_calibration(Some(calibration()?))
}

/// The default model's calibration.
pub fn calibration() -> Result<Calibration, ModelError> {
    Calibration::from_json(CALIBRATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_model_loads_and_is_small() {
        assert!(WEIGHTS.len() <= 10 * 1024 * 1024, "{} bytes", WEIGHTS.len());
        let m = load(&Device::Cpu).unwrap();
        assert!(m.config().mixture_samples);
        assert_eq!(m.config().len_seq, 96);
        assert_eq!(sha256().len(), 64);
        assert_eq!(m.calibration(), Some(&calibration().unwrap()));
    }

    fn median(v: &mut [f32]) -> f32 {
        v.sort_by(f32::total_cmp);
        0.5 * (v[v.len() / 2 - 1] + v[v.len() / 2])
    }

    #[test]
    fn calibration_rescales_each_step_about_an_unmoved_median() {
        use crate::model::{Mode, ModelWindow, PredictOptions};
        let cal = load(&Device::Cpu).unwrap();
        let raw = cal.clone().with_calibration(None).unwrap();
        let c = raw.config().clone();
        // A rising, wiggling scaled history with its calendar covariates.
        let window = ModelWindow {
            static_features: vec![0.0; c.num_static_features],
            past: (0..c.len_seq)
                .map(|i| 0.3 + 0.4 * i as f32 / 96.0 + 0.05 * (i as f32 / 5.0).sin())
                .collect(),
            past_covariates: (0..c.len_seq * c.num_dynamic_features)
                .map(|i| (i % 7) as f32 / 7.0)
                .collect(),
            future_covariates: (0..c.len_pred * c.num_dynamic_features)
                .map(|i| (i % 5) as f32 / 5.0)
                .collect(),
            seed: 11,
        };
        let opts = PredictOptions::default();
        assert!(matches!(opts.mode, Mode::MonteCarlo { samples: 10, .. }));
        let a = raw.predict(std::slice::from_ref(&window), &opts).unwrap();
        let b = cal.predict(std::slice::from_ref(&window), &opts).unwrap();
        let scales = &cal.calibration().unwrap().scales;
        for (t, scale) in scales.iter().enumerate() {
            let (mut x, mut y) = (a.at(0, t).to_vec(), b.at(0, t).to_vec());
            let (mx, my) = (median(&mut x), median(&mut y));
            assert!((mx - my).abs() < 1e-5, "step {t}: median {mx} -> {my}");
            let spread = |v: &[f32]| v[v.len() - 1] - v[0];
            let ratio = spread(&y) / spread(&x);
            assert!(
                (ratio as f64 - scale).abs() < 1e-3 * scale.max(1.0),
                "step {t}: {ratio} vs {scale}"
            );
        }
        // A deterministic pass has nothing to rescale.
        let det = PredictOptions {
            mode: Mode::Deterministic,
            ..opts
        };
        assert_eq!(
            raw.predict(std::slice::from_ref(&window), &det).unwrap(),
            cal.predict(std::slice::from_ref(&window), &det).unwrap()
        );
    }
}
