//! `glurpc model parity`: the fixture Gluformer (`tests/data/model`, written
//! by `tools/make_model_fixtures.py` from glucobench 0.4.1's own class)
//! against its PyTorch goldens, on any device. What `tests/model_parity.rs`
//! checks on the CPU, runnable where `cargo test` is not (a GPU machine
//! given only the binary and the fixtures; `tools/gpu-check`):
//!
//! - `eval`: eval mode (running BatchNorm statistics, no dropout), 8 windows;
//! - `train_batchnorm`: BatchNorm on batch statistics (gluRPC's MC mode);
//! - `intermediates`: the 13 block outputs of two windows;
//! - `injected_masks`: PyTorch's recorded dropout masks (23 calls), batch
//!   statistics, 2 windows x 3 rows;
//! - `mc_samples_vs_cpu`: `predict` with 10 seeded MC samples per window on
//!   the device against the same on the CPU (the host RNG's masks, the
//!   mixture draws and the batching give the same samples on every device).
//!
//! Tolerance (max absolute difference): 1e-5 on the CPU, as the tests; 1e-4
//! on CUDA (cuBLAS and the GPU's reductions sum in other orders); the block
//! outputs 5x that, as the tests. `--tolerance` overrides.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use clap::Args;
use serde::Serialize;

use crate::model::dropout::{Injected, NoDropout};
use crate::model::network::{Capture, Inputs};
use crate::model::{self, BatchNormMode, Gluformer, Mode, ModelWindow, PredictOptions};

/// `glurpc model parity`.
#[derive(Debug, Args)]
pub struct ParityArgs {
    /// The fixture folder (`small/` with the weights, and the goldens).
    #[arg(long, default_value = "tests/data/model")]
    pub fixtures: PathBuf,
    /// `cpu` or `cuda:N`.
    #[arg(long, env = "GLURPC_DEVICE", default_value = "cpu")]
    pub device: String,
    /// Largest accepted absolute difference (default 1e-5 on the CPU, 1e-4 on CUDA).
    #[arg(long)]
    pub tolerance: Option<f32>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// One check's outcome.
#[derive(Debug, Serialize)]
pub struct Check {
    /// What was compared.
    pub name: &'static str,
    /// Largest absolute difference per output.
    pub max_abs_diff: HashMap<String, f32>,
    /// The bound it was held to.
    pub tolerance: f32,
    /// Every difference within the bound.
    pub pass: bool,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The device, described.
    pub device: String,
    /// The base tolerance.
    pub tolerance: f32,
    /// Every check.
    pub checks: Vec<Check>,
    /// All passed.
    pub pass: bool,
}

fn fixture(dir: &Path, name: &str) -> Result<HashMap<String, Tensor>> {
    let path = dir.join(name);
    candle_core::safetensors::load(&path, &Device::Cpu)
        .with_context(|| format!("reading {}", path.display()))
}

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    let a = a.to_device(&Device::Cpu)?;
    if a.dims() != b.dims() {
        bail!("shapes differ: {:?} and {:?}", a.dims(), b.dims());
    }
    Ok(a.sub(b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

/// The fixture inputs on `dev`: rows by index (all 8 when `rows` is None).
fn inputs(f: &HashMap<String, Tensor>, rows: Option<&[u32]>, dev: &Device) -> Result<Inputs> {
    let take = |k: &str| -> Result<Tensor> {
        let t = f
            .get(k)
            .with_context(|| format!("inputs.safetensors has no {k}"))?;
        let t = match rows {
            Some(r) => t.index_select(&Tensor::from_vec(r.to_vec(), r.len(), &Device::Cpu)?, 0)?,
            None => t.clone(),
        };
        Ok(t.to_device(dev)?)
    };
    Ok(Inputs {
        x_id: take("x_id")?,
        x_enc: take("x_enc")?,
        x_mark_enc: take("x_mark_enc")?,
        x_dec: take("x_dec")?,
        x_mark_dec: take("x_mark_dec")?,
    })
}

/// The fixture windows as `predict` takes them (seeded 1000 + i).
fn windows(f: &HashMap<String, Tensor>, m: &Gluformer) -> Result<Vec<ModelWindow>> {
    let c = m.config();
    let rows = |k: &str| -> Result<Vec<Vec<f32>>> { Ok(f[k].flatten_from(1)?.to_vec2::<f32>()?) };
    let (id, past, hist, dec_cov) = (
        rows("x_id")?,
        rows("x_enc")?,
        rows("x_mark_enc")?,
        rows("x_mark_dec")?,
    );
    let skip = c.label_len * c.num_dynamic_features;
    Ok((0..id.len())
        .map(|i| ModelWindow {
            static_features: id[i].clone(),
            past: past[i].clone(),
            past_covariates: hist[i].clone(),
            future_covariates: dec_cov[i][skip..].to_vec(),
            seed: 1000 + i as u64,
        })
        .collect())
}

fn check(name: &'static str, diffs: Vec<(&str, f32)>, tolerance: f32) -> Check {
    let pass = diffs.iter().all(|(_, d)| d.is_finite() && *d < tolerance);
    Check {
        name,
        max_abs_diff: diffs.into_iter().map(|(k, d)| (k.to_string(), d)).collect(),
        tolerance,
        pass,
    }
}

/// Runs every check on the device of `args`.
pub fn report(args: &ParityArgs) -> Result<Report> {
    let dev = model::parse_device(&args.device)?;
    let tol = args
        .tolerance
        .unwrap_or(if dev.is_cpu() { 1e-5 } else { 1e-4 });
    let dir = &args.fixtures;
    let files = model::source::resolve_local(&dir.join("small"))?;
    let m = model::load(&files, &dev)?;
    let inp = fixture(dir, "inputs.safetensors")?;
    let mut checks = Vec::new();

    let (pred, logvar) = m.forward(
        &inputs(&inp, None, &dev)?,
        BatchNormMode::Running,
        &mut NoDropout,
        None,
    )?;
    let want = fixture(dir, "eval.safetensors")?;
    checks.push(check(
        "eval",
        vec![
            ("pred", max_diff(&pred, &want["pred"])?),
            ("logvar", max_diff(&logvar, &want["logvar"])?),
        ],
        tol,
    ));

    let (pred, logvar) = m.forward(
        &inputs(&inp, None, &dev)?,
        BatchNormMode::Batch,
        &mut NoDropout,
        None,
    )?;
    let want = fixture(dir, "trainbn.safetensors")?;
    checks.push(check(
        "train_batchnorm",
        vec![
            ("pred", max_diff(&pred, &want["pred"])?),
            ("logvar", max_diff(&logvar, &want["logvar"])?),
        ],
        tol,
    ));

    let mut cap = Capture::new();
    m.forward(
        &inputs(&inp, Some(&[0, 1]), &dev)?,
        BatchNormMode::Running,
        &mut NoDropout,
        Some(&mut cap),
    )?;
    let want = fixture(dir, "intermediates.safetensors")?;
    let mut names: Vec<&String> = want.keys().collect();
    names.sort();
    let mut diffs = Vec::new();
    for name in names {
        let got = cap
            .get(name)
            .with_context(|| format!("block output {name} not captured"))?;
        diffs.push((name.as_str(), max_diff(got, &want[name])?));
    }
    checks.push(check("intermediates", diffs, 5.0 * tol));

    let f = fixture(dir, "mc_masks.safetensors")?;
    let mut keys: Vec<&String> = f.keys().filter(|k| k.starts_with("mask_")).collect();
    keys.sort();
    let mut masks = Injected::new(keys.iter().map(|k| f[*k].clone()));
    let (pred, logvar) = m.forward(
        &inputs(&inp, Some(&[0, 0, 0, 1, 1, 1]), &dev)?,
        BatchNormMode::Batch,
        &mut masks,
        None,
    )?;
    if masks.remaining() != 0 {
        bail!(
            "{} recorded dropout masks were not consumed",
            masks.remaining()
        );
    }
    checks.push(check(
        "injected_masks",
        vec![
            ("pred", max_diff(&pred, &f["pred"])?),
            ("logvar", max_diff(&logvar, &f["logvar"])?),
        ],
        tol,
    ));

    let w = windows(&inp, &m)?;
    let opts = PredictOptions {
        mode: Mode::MonteCarlo {
            samples: 10,
            batch_norm: BatchNormMode::Running,
        },
        ..PredictOptions::default()
    };
    let here = m.predict(&w, &opts)?;
    let cpu = if dev.is_cpu() {
        here.clone()
    } else {
        model::load(&files, &Device::Cpu)?.predict(&w, &opts)?
    };
    let worst = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    checks.push(check(
        "mc_samples_vs_cpu",
        vec![
            ("pred", worst(&here.pred, &cpu.pred)),
            ("logvar", worst(&here.logvar, &cpu.logvar)),
        ],
        tol,
    ));

    let pass = checks.iter().all(|c| c.pass);
    Ok(Report {
        device: model::describe_device(&dev),
        tolerance: tol,
        checks,
        pass,
    })
}

/// `glurpc model parity`: prints the report; fails when a check does.
pub fn run(args: &ParityArgs) -> Result<()> {
    let r = report(args)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &r)?;
        writeln!(out)?;
    } else {
        writeln!(out, "device: {} (tolerance {:e})", r.device, r.tolerance)?;
        for c in &r.checks {
            let worst = c.max_abs_diff.values().copied().fold(0.0f32, f32::max);
            writeln!(
                out,
                "{:<18} {}  max |diff| {worst:.3e} (bound {:.0e})",
                c.name,
                if c.pass { "ok  " } else { "FAIL" },
                c.tolerance
            )?;
        }
    }
    out.flush()?;
    if !r.pass {
        let failed: Vec<&str> = r
            .checks
            .iter()
            .filter(|c| !c.pass)
            .map(|c| c.name)
            .collect();
        bail!("parity failed on {}: {}", r.device, failed.join(", "));
    }
    Ok(())
}
