//! `glurpc calibrate`: fits per-step band factors for a model on held-out
//! people and writes them as a `calibration.json`, which `serve`, `predict`
//! and `evaluate` then apply (beside the weights, or with `--calibration`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::train::calibrate;
use crate::train::eval::EvalOptions;

use super::predict::ModelArgs;
use super::train::load_people;

/// `glurpc calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Validation files (people the model was not trained on): CGM exports or
    /// long `id,time,gl` tables; a folder means every file in it.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The model and its sampling (any calibration it has is ignored while fitting).
    #[command(flatten)]
    pub model: ModelArgs,
    /// Where to write the calibration (`model/calibration.json` for the default model).
    #[arg(long, short)]
    pub out: PathBuf,
    /// The share of measured values the 5-95% band should hold at every step.
    #[arg(long, default_value_t = 0.9)]
    pub coverage: f64,
    /// Use every n-th position of each person.
    #[arg(long, default_value_t = 1)]
    pub stride: usize,
}

/// Runs `glurpc calibrate`.
pub fn run(args: CalibrateArgs) -> Result<()> {
    if args.model.deterministic {
        bail!("calibration needs MC samples: drop --deterministic");
    }
    let people = load_people(&args.files, false)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (net, cfg) = rt.block_on(args.model.load())?;
    let opts = EvalOptions {
        stride: args.stride.max(1),
        samples: cfg.samples,
        seed: cfg.seed,
    };
    let fit = calibrate::fit(&net, &people, &opts, args.coverage)?;
    let tmp = args.out.with_extension("json.tmp");
    std::fs::write(&tmp, fit.calibration.to_json())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "{} windows of {} people; step: uncalibrated 90% coverage, factor, mean width before -> after (mg/dL)",
        fit.windows,
        people.len()
    )?;
    for t in 0..fit.calibration.scales.len() {
        writeln!(
            err,
            "  +{:2} min: {:5.1}%  x{:.3}  {:6.1} -> {:6.1}",
            5 * (t + 1),
            100.0 * fit.coverage_before[t],
            fit.calibration.scales[t],
            fit.width_before[t],
            fit.width_after[t]
        )?;
    }
    writeln!(err, "wrote {}", args.out.display())?;
    Ok(())
}
