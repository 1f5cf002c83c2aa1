//! The model layer: Gluformer in candle. Owns the configuration, the state
//! dict (safetensors or `.pth`, strictly checked), model sources (local or
//! Hugging Face Hub, or the default model embedded from `model/`), the
//! network, dropout masks and batched inference.

pub mod attention;
pub mod calibration;
pub mod config;
pub mod default;
pub mod dropout;
pub mod fused;
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

/// Parses `cpu` or `cuda[:N]` and opens the device. One device per
/// process: a list (`cuda:0,cuda:1`) is refused with what to do instead.
pub fn parse_device(spec: &str) -> Result<Device, ModelError> {
    let spec = spec.trim().to_ascii_lowercase();
    if spec == "cpu" {
        return Ok(Device::Cpu);
    }
    if spec.contains(',') {
        return Err(ModelError::Device(format!(
            "{spec:?}: one device per process; run one glurpc per GPU, each with \
             --device cuda:N (NUM_COPIES_PER_DEVICE sets the model threads on it)"
        )));
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
            "this build has no CUDA support; build it with tools/cuda-build (docs/gpu.md)".into(),
        ));
    }
    open_cuda(ordinal)
}

/// Opens CUDA device `ordinal`. A build from tools/cuda-build loads the
/// driver and CUDA's libraries at first use, and cudarc panics when one is
/// missing: that panic becomes an error naming the library. The panic hook is
/// silenced meanwhile (a panic elsewhere in those microseconds would go
/// unprinted; devices are opened at start-up).
fn open_cuda(ordinal: usize) -> Result<Device, ModelError> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(|| Device::new_cuda(ordinal));
    std::panic::set_hook(hook);
    let why = match opened {
        Ok(Ok(d)) => return Ok(d),
        Ok(Err(e)) => e.to_string(),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the CUDA libraries could not be loaded".into());
            missing_library(&msg).unwrap_or(msg)
        }
    };
    Err(ModelError::Device(format!("cuda:{ordinal}: {why}")))
}

/// cudarc's "Unable to dynamically load the \"NAME\" shared library" as one
/// line saying what to install or put on the library path.
fn missing_library(panic: &str) -> Option<String> {
    let name = panic
        .strip_prefix("Unable to dynamically load the \"")?
        .split('"')
        .next()?;
    Some(if name == "cuda" {
        "no NVIDIA driver here: libcuda.so could not be loaded (no GPU on this machine, or the \
         driver's folder is not on LD_LIBRARY_PATH)"
            .into()
    } else {
        format!(
            "lib{name}.so (CUDA 13) could not be loaded: add its folder to LD_LIBRARY_PATH \
             (PyTorch's wheels carry it in site-packages/nvidia/cu13/lib; docs/gpu.md)"
        )
    })
}

/// The device as `--device` names it: `cpu` or `cuda:N`.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// What the device is, for `model info` and logs: `cpu`, or `cuda:N` with
/// the GPU's name, compute capability and memory when the driver says.
pub fn describe_device(device: &Device) -> String {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = device {
        let ctx = d.cuda_stream().context().clone();
        let name = ctx.name().unwrap_or_else(|_| "?".into());
        let cc = ctx
            .compute_capability()
            .map(|(a, b)| format!("{a}.{b}"))
            .unwrap_or_else(|_| "?".into());
        let mem = ctx
            .total_mem()
            .map(|b| format!("{:.0} GiB", b as f64 / (1u64 << 30) as f64))
            .unwrap_or_else(|_| "?".into());
        return format!("{} ({name}, compute {cc}, {mem})", device_name(device));
    }
    device_name(device)
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
        for bad in ["gpu", "cuda:x", "cudaa", "metal", "cuda:0,cuda:1"] {
            assert!(
                matches!(parse_device(bad), Err(ModelError::Device(_))),
                "{bad}"
            );
        }
        if !candle_core::utils::cuda_is_available() {
            let err = parse_device("cuda:0").unwrap_err().to_string();
            assert!(err.contains("tools/cuda-build"), "{err}");
        }
        let err = parse_device("cuda:0,cuda:1").unwrap_err().to_string();
        assert!(err.contains("one device per process"), "{err}");
        assert_eq!(device_name(&Device::Cpu), "cpu");
        let msg = "Unable to dynamically load the \"cublas\" shared library - searched for library names: [..]";
        assert!(missing_library(msg).unwrap().contains("libcublas.so"));
    }
}
