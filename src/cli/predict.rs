//! `glurpc predict`: one upload, one window, one plot, in one process with
//! no server: the engine started on the chosen model, the window computed
//! at interactive priority, the plot (a chart in the export's unit unless
//! `--units` says otherwise) written to a file or standard output.
//! Also the model and engine options shared with `glurpc serve`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use crate::engine::plots::PlotSpec;
use crate::engine::{Engine, EngineConfig, ProcessOptions, Target, WindowKey, WindowKind};
use crate::model::{self, source};
use crate::plot::{PlotFormat, Units};

use super::InputArgs;

/// Where the model comes from and how it runs.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// A local directory or weights file, or a Hub id `owner/name[@revision][:file]`
    /// (e.g. `Livia-Zaharia/gluformer_models` for the published large model).
    /// Default: the small model shipped in `model/`, embedded in the binary.
    #[arg(long, env = "GLURPC_MODEL")]
    pub model: Option<String>,
    /// `cpu` or `cuda:N` (needs a build from `tools/cuda-build`, docs/gpu.md).
    /// One device per process.
    #[arg(long, env = "GLURPC_DEVICE", default_value = "cpu")]
    pub device: String,
    /// MC-dropout samples per window (at least 1; `--deterministic` for one
    /// pass without dropout).
    #[arg(long, env = "NUM_SAMPLES", default_value_t = 10,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub samples: usize,
    /// Dropout off: one deterministic pass per window (overrides --samples).
    #[arg(long, env = "GLURPC_DETERMINISTIC")]
    pub deterministic: bool,
    /// Global seed mixed into every window's dropout streams.
    #[arg(long, env = "GLURPC_SEED", default_value_t = 0)]
    pub seed: u64,
    /// Windows per forward pass.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 32)]
    pub batch_size: usize,
    /// A `calibration.json` (per-step band factors from `glurpc calibrate`)
    /// to apply, for any weights; default: the one beside the weights, if any
    /// (the embedded default model has one). `none` applies none.
    #[arg(long, env = "GLURPC_CALIBRATION", value_name = "FILE|none")]
    pub calibration: Option<String>,
}

impl ModelArgs {
    /// Resolves and loads the model, and the engine settings it implies
    /// (samples, seed, batch size, model id for the disk cache).
    pub async fn load(&self) -> Result<(model::Gluformer, EngineConfig)> {
        let device = model::parse_device(&self.device)?;
        let (m, weights_sha) = match self.model.as_deref() {
            None => {
                let m = tokio::task::spawn_blocking(move || model::default::load(&device))
                    .await
                    .context("loading the default model")??;
                (m, model::default::sha256())
            }
            Some(id) => {
                let files = source::resolve(id).await?;
                let weights = files.weights.clone();
                tokio::task::spawn_blocking(move || -> Result<_> {
                    Ok((model::load(&files, &device)?, model::sha256_file(&weights)?))
                })
                .await
                .context("loading the model")??
            }
        };
        let m = match self.calibration.as_deref() {
            None => m,
            Some("none") => m.with_calibration(None)?,
            Some(path) => {
                let cal = model::Calibration::read(std::path::Path::new(path))?;
                m.with_calibration(Some(cal))?
            }
        };
        let cfg = EngineConfig {
            samples: if self.deterministic { 0 } else { self.samples },
            seed: self.seed,
            batch_size: self.batch_size,
            model_id: model::cache_key(&weights_sha, m.calibration()),
            model_source: self.model.clone().unwrap_or_else(|| "default".into()),
            weights_sha256: weights_sha,
            ..EngineConfig::default()
        };
        Ok((m, cfg))
    }
}

/// Which window dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WindowArg {
    /// 540-1080 minutes, as `/process_unified` builds it.
    Full,
    /// The last 540 minutes, as `/quick_plot` builds it.
    Quick,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Compact JSON: times, median, quantiles, samples, history.
    Json,
    /// The reference's Plotly figure JSON.
    Plotly,
    /// A 1000x600 PNG.
    Png,
    /// A 1000x600 SVG.
    Svg,
}

/// Glucose units of a PNG or SVG chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnitsArg {
    /// mg/dL.
    #[value(alias = "mg/dl", alias = "mg")]
    Mgdl,
    /// mmol/L (mg/dL divided by 18.0182).
    #[value(alias = "mmol/l", alias = "mmoll")]
    Mmol,
}

/// `glurpc predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Input selection.
    #[command(flatten)]
    pub input: InputArgs,
    /// Model and sampling.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The window: 0 is the last measured hour, -(N-1) the first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub index: i64,
    /// Forecast the next 60 minutes after the last reading instead of a
    /// measured window.
    #[arg(long, conflicts_with = "index")]
    pub forecast: bool,
    /// Which dataset the window comes from.
    #[arg(long, value_enum, default_value_t = WindowArg::Full)]
    pub window: WindowArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Json)]
    pub format: FormatArg,
    /// Glucose unit of a PNG or SVG chart (default: the export's own unit;
    /// JSON is always mg/dL).
    #[arg(long, value_enum, ignore_case = true)]
    pub units: Option<UnitsArg>,
    /// Output file (default: standard output).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Runs `glurpc predict`.
pub fn run(args: PredictArgs) -> Result<()> {
    let blobs = args.input.read()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let bytes = rt.block_on(async {
        let (m, mut cfg) = args.model.load().await?;
        cfg.max_upload_bytes = args.input.max_upload_bytes;
        let engine = Engine::start(m, cfg)?;
        let result = predict(&engine, blobs, &args).await;
        let e = engine.clone();
        tokio::task::spawn_blocking(move || e.shutdown()).await?;
        result
    })?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?
        }
        None => std::io::stdout().lock().write_all(&bytes)?,
    }
    Ok(())
}

async fn predict(engine: &Engine, blobs: Vec<Vec<u8>>, args: &PredictArgs) -> Result<Vec<u8>> {
    let kind = match args.window {
        WindowArg::Full => WindowKind::Full,
        WindowArg::Quick => WindowKind::Quick,
    };
    let processed = engine
        .process(
            blobs,
            ProcessOptions {
                kind,
                priority: crate::engine::scheduler::PRIORITY_INTERACTIVE,
                force: false,
                queue_windows: false,
            },
        )
        .await?;
    let target = if args.forecast {
        Target::Forward
    } else {
        Target::Index(args.index)
    };
    let format = match args.format {
        FormatArg::Json => PlotFormat::Json,
        FormatArg::Plotly => PlotFormat::Plotly,
        FormatArg::Png => PlotFormat::Png,
        FormatArg::Svg => PlotFormat::Svg,
    };
    let key = WindowKey {
        handle: processed.handle,
        kind,
        target,
    };
    let units = args.units.map(|u| match u {
        UnitsArg::Mgdl => Units::MgDl,
        UnitsArg::Mmol => Units::MmolL,
    });
    let plot = engine
        .plot(key, PlotSpec::new(format, units), false)
        .await?;
    let mut bytes = plot.bytes.to_vec();
    if matches!(format, PlotFormat::Json | PlotFormat::Plotly) && args.output.is_none() {
        bytes.push(b'\n');
    }
    Ok(bytes)
}
