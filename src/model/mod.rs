//! The model layer: Gluformer in candle. Owns the configuration, the state
//! dict (safetensors or `.pth`, strictly checked), model sources (local or
//! Hugging Face Hub, or the default model embedded from `model/`), the
//! network, dropout masks and batched inference.

pub mod calibration;
pub mod config;
pub mod default;
pub mod dropout;
pub mod infer;
pub mod init;
pub mod kernels;
pub mod layers;
pub mod network;
pub mod shapes;
pub mod source;
pub mod weights;

use std::io::Read;
use std::path::Path;

use candle_core::Device;
use sha2::{Digest, Sha256};

pub use calibration::Calibration;
pub use config::GluformerConfig;
pub use infer::{Forecast, Mode, ModelWindow, PredictOptions};
pub use layers::BatchNormMode;
pub use network::Gluformer;
pub use source::ModelFiles;

/// Errors of the model layer.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file or directory could not be read.
    #[error("model I/O error: {0}")]
    Io(String),
    /// No model where it was looked for.
    #[error("{what} not found; looked in: {}", looked.join(", "))]
    NotFound {
        /// What was missing.
        what: String,
        /// Every place searched.
        looked: Vec<String>,
    },
    /// Invalid hyperparameters or an ambiguous model directory.
    #[error("model config: {0}")]
    Config(String),
    /// The weights do not fit the config.
    #[error("state dict does not match the config: {} missing [{}], {} unexpected [{}], {} mis-shaped [{}]",
        missing.len(), missing.join(", "), unexpected.len(), unexpected.join(", "),
        mis_shaped.len(), mis_shaped.join("; "))]
    StateDict {
        /// Keys the config needs that the file lacks.
        missing: Vec<String>,
        /// Keys in the file the config does not use.
        unexpected: Vec<String>,
        /// Keys with the wrong shape or dtype.
        mis_shaped: Vec<String>,
    },
    /// Weights that do not fit the given config, or whose sizes cannot be
    /// read back: one line naming what differs and `--config`.
    #[error("{0}")]
    Mismatch(String),
    /// A weights file that cannot be parsed.
    #[error("corrupt weights file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A Hub download failed.
    #[error("Hugging Face Hub: {0}")]
    Hub(String),
    /// Inputs that do not fit the model.
    #[error("model input: {0}")]
    Input(String),
    /// A device that is not available.
    #[error("device: {0}")]
    Device(String),
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Parses `cpu` or `cuda[:N]`.
pub fn parse_device(spec: &str) -> Result<Device, ModelError> {
    let spec = spec.trim().to_ascii_lowercase();
    if spec == "cpu" {
        return Ok(Device::Cpu);
    }
    let Some(rest) = spec.strip_prefix("cuda") else {
        return Err(ModelError::Device(format!(
            "unknown device {spec:?}: use cpu or cuda:N"
        )));
    };
    let ordinal = match rest.strip_prefix(':') {
        Some(n) => n
            .parse::<usize>()
            .map_err(|_| ModelError::Device(format!("bad CUDA ordinal in {spec:?}")))?,
        None if rest.is_empty() => 0,
        None => return Err(ModelError::Device(format!("unknown device {spec:?}"))),
    };
    if !candle_core::utils::cuda_is_available() {
        return Err(ModelError::Device(
            "this build has no CUDA support; rebuild with `cargo build --release --features cuda`"
                .into(),
        ));
    }
    Device::new_cuda(ordinal).map_err(|e| ModelError::Device(format!("cuda:{ordinal}: {e}")))
}

/// Reads the config beside the weights, or the reference default without one.
pub fn load_config(files: &ModelFiles) -> Result<GluformerConfig, ModelError> {
    match &files.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| ModelError::Io(format!("{}: {e}", p.display())))?;
            GluformerConfig::from_json(&text)
        }
        None => Ok(GluformerConfig::default()),
    }
}

/// Loads a resolved model onto `device`, with the `calibration.json`
/// beside its weights when there is one.
pub fn load(files: &ModelFiles, device: &Device) -> Result<Gluformer, ModelError> {
    let cfg = load_config(files)?;
    let sd = weights::read(&files.weights)?;
    let cal = match calibration_beside(files) {
        Some(p) => Some(Calibration::read(&p)?),
        None => None,
    };
    Gluformer::from_state_dict(sd, cfg, device)?.with_calibration(cal)
}

/// The `calibration.json` in the weights' folder, when there is one (a
/// local model folder; a Hub snapshot holds one only if its repo does).
pub fn calibration_beside(files: &ModelFiles) -> Option<std::path::PathBuf> {
    let p = files.weights.parent()?.join(calibration::FILE_NAME);
    p.is_file().then_some(p)
}

/// The key of a model's forecasts in caches: the weights' SHA-256, plus the
/// calibration's digest when one is applied.
pub fn cache_key(weights_sha256: &str, cal: Option<&Calibration>) -> String {
    match cal {
        Some(c) => format!("{weights_sha256}+cal-{}", &c.digest()[..16]),
        None => weights_sha256.to_string(),
    }
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| ModelError::Io(format!("{}: {e}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| ModelError::Io(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// What [`convert`] wrote.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The config written to `config.json`.
    pub config: GluformerConfig,
    /// Set when no config was given or found beside the weights and the
    /// sizes were read from the weights' shapes.
    pub inferred: Option<shapes::Inferred>,
}

/// Converts a `.pth` (or any weights file) to `model.safetensors` +
/// `config.json` in `out_dir`, after a strict check against the config: the
/// one given, else the `config.json` beside the weights, else the sizes read
/// from the weights' shapes ([`shapes::infer`]). Weights that do not fit are
/// refused in one line ([`ModelError::Mismatch`]) and nothing is written.
pub fn convert(
    weights_in: &Path,
    config: Option<&Path>,
    out_dir: &Path,
) -> Result<Converted, ModelError> {
    let config = config.map(Path::to_path_buf).or_else(|| {
        weights_in
            .parent()
            .map(|d| d.join("config.json"))
            .filter(|p| p.is_file())
    });
    let sd = weights::read(weights_in)?;
    let (cfg, inferred) = match &config {
        Some(p) => {
            let files = ModelFiles {
                id: weights_in.display().to_string(),
                weights: weights_in.to_path_buf(),
                config: Some(p.clone()),
            };
            let cfg = load_config(&files)?;
            if weights::check(&sd, &cfg).is_err() {
                return Err(ModelError::Mismatch(shapes::mismatch(
                    &sd,
                    &cfg,
                    &p.display().to_string(),
                )));
            }
            (cfg, None)
        }
        None => {
            let inferred = shapes::infer(&sd)?;
            (inferred.config.clone(), Some(inferred))
        }
    };
    let io = |e: std::io::Error| ModelError::Io(format!("{}: {e}", out_dir.display()));
    std::fs::create_dir_all(out_dir).map_err(io)?;
    let tmp = out_dir.join("model.safetensors.tmp");
    weights::save(&sd, &tmp)?;
    std::fs::rename(&tmp, out_dir.join("model.safetensors")).map_err(io)?;
    std::fs::write(out_dir.join("config.json"), cfg.to_json()).map_err(io)?;
    Ok(Converted {
        config: cfg,
        inferred,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_or_say_why_not() {
        assert!(matches!(parse_device("cpu"), Ok(Device::Cpu)));
        assert!(matches!(parse_device(" CPU "), Ok(Device::Cpu)));
        for bad in ["gpu", "cuda:x", "cudaa", "metal"] {
            assert!(
                matches!(parse_device(bad), Err(ModelError::Device(_))),
                "{bad}"
            );
        }
        if !candle_core::utils::cuda_is_available() {
            let err = parse_device("cuda:0").unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
}
