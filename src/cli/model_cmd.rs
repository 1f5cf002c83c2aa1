//! `glurpc model convert`, `glurpc model info` and `glurpc model time`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::model::{self, GluformerConfig, weights};

/// `glurpc model ...`.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Convert PyTorch weights (.pth) to `model.safetensors` + `config.json`
    /// (the config inferred from the weights when none is given or beside them).
    Convert(ConvertModelArgs),
    /// Print a model's config, parameter count, weights file and SHA-256.
    Info(InfoArgs),
    /// Time the forward pass (eval mode, random inputs): one JSON object.
    Time(TimeArgs),
    /// Check the fixture model against its PyTorch goldens on a device
    /// (`tests/data/model`; what tools/gpu-check runs on a GPU).
    Parity(super::parity::ParityArgs),
}

/// `glurpc model time`.
#[derive(Debug, Args)]
pub struct TimeArgs {
    /// A local directory or file, or a Hub id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Timed runs (after the warm-up runs).
    #[arg(long, default_value_t = 6)]
    pub runs: usize,
    /// Untimed runs first (on a GPU the first loads the kernels).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Monte Carlo dropout samples per window, as the service runs them
    /// (running BatchNorm statistics, 64 rows per pass); 0 times eval mode.
    #[arg(long, default_value_t = 0)]
    pub samples: usize,
    /// `cpu` or `cuda:N` (a build from `tools/cuda-build`).
    #[arg(long, env = "GLURPC_DEVICE", default_value = "cpu")]
    pub device: String,
}

/// `glurpc model convert`.
#[derive(Debug, Args)]
pub struct ConvertModelArgs {
    /// The weights file (`.pth` state dict in zip format, or safetensors).
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Output directory.
    #[arg(value_name = "OUT_DIR")]
    pub out_dir: PathBuf,
    /// config.json to use (default: the one beside IN, else the sizes read
    /// from the weights' shapes; what they do not fix takes gluRPC's default).
    #[arg(long, env = "GLURPC_MODEL_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `glurpc model info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// `default` (the embedded model), a local directory or file, or a Hub
    /// id `owner/name[@revision][:file]`.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Print one JSON object.
    #[arg(long, env = "GLURPC_MODEL_INFO_JSON")]
    pub json: bool,
    /// Also load the weights onto this device (`cpu` or `cuda:N`) and report
    /// it: what the GPU is, or why it cannot be used.
    #[arg(long, env = "GLURPC_DEVICE", default_value = "cpu")]
    pub device: String,
}

/// What `glurpc model info` reports.
#[derive(Debug, Serialize)]
pub struct ModelInfo {
    /// The id as given.
    pub id: String,
    /// The weights file used.
    pub file: String,
    /// The config file, if any ("default" when the reference default applies).
    pub config_file: String,
    /// Hyperparameters.
    pub config: GluformerConfig,
    /// Trainable parameters.
    pub parameters: usize,
    /// SHA-256 of the weights file.
    pub sha256: String,
    /// The per-step band calibration beside the weights, if any.
    pub calibration: Option<model::Calibration>,
    /// The device the weights were loaded onto (`cpu`, or `cuda:N` with the
    /// GPU's name, compute capability and memory).
    pub device: String,
}

/// Runs a `model` subcommand.
pub fn run(cmd: ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::Time(a) => time_forward(&a)?,
        ModelCommand::Parity(a) => super::parity::run(&a)?,
        ModelCommand::Convert(a) => {
            let done = model::convert(&a.input, a.config.as_deref(), &a.out_dir)
                .with_context(|| format!("converting {}", a.input.display()))?;
            if let Some(inferred) = &done.inferred {
                eprintln!(
                    "no config.json given or beside {}: sizes read from the weights; {}",
                    a.input.display(),
                    inferred.note()
                );
            }
            println!(
                "wrote {} and config.json ({} parameters)",
                a.out_dir.join("model.safetensors").display(),
                weights::parameter_count(&done.config)
            );
        }
        ModelCommand::Info(a) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let device = model::parse_device(&a.device)?;
            let info = if a.id == "default" {
                // The embedded model (what `serve` and `predict` use without --model).
                if !matches!(device, candle_core::Device::Cpu) {
                    model::default::load(&device)?;
                }
                let cfg = model::default::config()?;
                ModelInfo {
                    id: a.id,
                    file: "embedded (model/model.safetensors)".into(),
                    config_file: "embedded (model/config.json)".into(),
                    parameters: weights::parameter_count(&cfg),
                    sha256: model::default::sha256(),
                    config: cfg,
                    calibration: Some(model::default::calibration()?),
                    device: model::describe_device(&device),
                }
            } else {
                let files = rt.block_on(model::source::resolve(&a.id))?;
                let cfg = model::load_config(&files)?;
                // Strict check, so `info` also validates the file.
                let sd = weights::read(&files.weights)?;
                weights::check(&sd, &cfg)?;
                let calibration = match model::calibration_beside(&files) {
                    Some(p) => Some(model::Calibration::read(&p)?),
                    None => None,
                };
                if !matches!(device, candle_core::Device::Cpu) {
                    model::load(&files, &device)?;
                }
                ModelInfo {
                    id: a.id,
                    file: files.weights.display().to_string(),
                    config_file: files
                        .config
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "default".into()),
                    parameters: weights::parameter_count(&cfg),
                    sha256: model::sha256_file(&files.weights)?,
                    config: cfg,
                    calibration,
                    device: model::describe_device(&device),
                }
            };
            let mut out = std::io::stdout().lock();
            if a.json {
                serde_json::to_writer_pretty(&mut out, &info)?;
                writeln!(out)?;
            } else {
                writeln!(out, "model:      {}", info.id)?;
                writeln!(out, "weights:    {}", info.file)?;
                writeln!(out, "config:     {}", info.config_file)?;
                writeln!(out, "sha256:     {}", info.sha256)?;
                writeln!(out, "parameters: {}", info.parameters)?;
                writeln!(out, "device:     {}", info.device)?;
                match &info.calibration {
                    Some(c) => writeln!(
                        out,
                        "calibration: {:.0}% band, per-step factors {}",
                        c.target_coverage * 100.0,
                        c.scales
                            .iter()
                            .map(|x| format!("{x:.3}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    )?,
                    None => writeln!(out, "calibration: none")?,
                }
                let c = &info.config;
                writeln!(
                    out,
                    "d_model {} n_heads {} (head {} inner {}) d_fcn {} enc {} dec {} len_seq {} label_len {} len_pred {} dynamic {} static {} r_drop {} {} distil {}",
                    c.d_model,
                    c.n_heads,
                    c.head_dim(),
                    c.inner(),
                    c.d_fcn,
                    c.num_enc_layers,
                    c.num_dec_layers,
                    c.len_seq,
                    c.label_len,
                    c.len_pred,
                    c.num_dynamic_features,
                    c.num_static_features,
                    c.r_drop,
                    c.activ,
                    c.distil
                )?;
            }
        }
    }
    Ok(())
}

/// Median and minimum seconds of an eval-mode forward pass over `batch`
/// windows of seeded random inputs (what `tools/bench-vs-reference` compares
/// with PyTorch on the same work).
fn time_forward(a: &TimeArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let files = rt.block_on(model::source::resolve(&a.id))?;
    let device = model::parse_device(&a.device)?;
    let net = model::load(&files, &device)?;
    let c = net.config().clone();
    let mut rng = model::dropout::Rng::new(42);
    let mut uniform = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
            .collect()
    };
    let windows: Vec<model::ModelWindow> = (0..a.batch.max(1))
        .map(|i| model::ModelWindow {
            static_features: vec![0.0; c.num_static_features],
            past: uniform(c.len_seq),
            past_covariates: uniform(c.len_seq * c.num_dynamic_features),
            future_covariates: uniform(c.len_pred * c.num_dynamic_features),
            seed: i as u64,
        })
        .collect();
    let opts = if a.samples == 0 {
        model::PredictOptions {
            mode: model::Mode::Deterministic,
            batch_windows: windows.len(),
            max_rows: windows.len(),
        }
    } else {
        crate::bridge::predict_options(a.samples, windows.len())
    };
    let mut times = Vec::new();
    for run in 0..a.runs.max(1) + a.warmup {
        let t = std::time::Instant::now();
        net.predict(&windows, &opts)?;
        if run >= a.warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let out = serde_json::json!({
        "batch": windows.len(),
        "samples": a.samples,
        "runs": times.len(),
        "warmup": a.warmup,
        "median_s": times[times.len() / 2],
        "min_s": times[0],
        "device": model::describe_device(&device),
    });
    println!("{out}");
    Ok(())
}
