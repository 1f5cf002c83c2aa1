//! The default model: the small Gluformer trained by `glurpc train` and
//! shipped in `model/` (see `model/MODEL_CARD.md`), embedded in the binary
//! so the service runs offline with no files beside it.

use candle_core::Device;
use sha2::{Digest, Sha256};

use super::config::GluformerConfig;
use super::network::Gluformer;
use super::{ModelError, weights};

/// The id the default model reports (logs, health, disk-cache keys).
pub const ID: &str = "glurpc-default (model/)";

/// `model/model.safetensors`.
pub const WEIGHTS: &[u8] = include_bytes!("../../model/model.safetensors");
/// `model/config.json`.
pub const CONFIG: &str = include_str!("../../model/config.json");

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
    Gluformer::from_state_dict(sd, config()?, device)
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
    }
}
