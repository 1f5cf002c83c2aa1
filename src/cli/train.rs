//! `glurpc train` and `glurpc evaluate`: training a Gluformer on CGM files
//! with a progress bar, and scoring a model against the baselines.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::model::GluformerConfig;
use crate::train::eval::{self, EvalOptions, Evaluation, Scores};
use crate::train::{self, EpochLog, Progress, TrainOptions, data};

use super::ModelArgs;

/// `glurpc train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training files: CGM exports or long `id,time,gl` tables (a folder means every file in it).
    #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
    pub train: Vec<PathBuf>,
    /// Validation files (other people), for early stopping.
    #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
    pub val: Vec<PathBuf>,
    /// Where the best checkpoint goes (`model.safetensors`, `config.json`, `training.json`).
    #[arg(long, env = "GLURPC_TRAIN_OUT", default_value = "model")]
    pub out: PathBuf,
    /// Model width.
    #[arg(long, default_value_t = 64)]
    pub d_model: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    pub n_heads: usize,
    /// Feed-forward width.
    #[arg(long, default_value_t = 128)]
    pub d_fcn: usize,
    /// Encoder layers.
    #[arg(long, default_value_t = 2)]
    pub enc_layers: usize,
    /// Decoder layers.
    #[arg(long, default_value_t = 1)]
    pub dec_layers: usize,
    /// Dropout probability.
    #[arg(long, default_value_t = 0.2)]
    pub dropout: f32,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Windows per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// MC-dropout passes per window in the loss (1, as the published gluRPC model was trained).
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    /// Most epochs.
    #[arg(long, default_value_t = 9)]
    pub epochs: usize,
    /// Steps per epoch (0: one pass over the training examples).
    #[arg(long, default_value_t = 400)]
    pub steps_per_epoch: usize,
    /// Early stopping: epochs without improvement.
    #[arg(long, default_value_t = 10)]
    pub patience: usize,
    /// Early stopping: tolerated increase of the validation loss.
    #[arg(long, default_value_t = 0.001)]
    pub min_delta: f64,
    /// Validation: score every n-th position.
    #[arg(long, default_value_t = 6)]
    pub val_stride: usize,
    /// Seed of weights, example order and dropout.
    #[arg(long, env = "GLURPC_SEED", default_value_t = 0)]
    pub seed: u64,
}

/// `glurpc evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Held-out files: CGM exports or long `id,time,gl` tables (a folder means every file in it).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The model and its sampling.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Score every n-th position of each person.
    #[arg(long, default_value_t = 1)]
    pub stride: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Every file named, folders expanded (sorted).
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            inner.sort();
            out.extend(inner);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Loads the people in `paths`, saying how many points each file gave.
pub fn load_people(paths: &[PathBuf], quiet: bool) -> Result<Vec<data::Person>> {
    let mut people = Vec::new();
    for path in expand(paths)? {
        let found = data::load_people(&path)?;
        if !quiet {
            let points: usize = found.iter().map(data::Person::points).sum();
            eprintln!(
                "{}: {} people, {points} grid points",
                path.display(),
                found.len()
            );
        }
        people.extend(found);
    }
    if people.is_empty() {
        bail!("no usable data in {} path(s)", paths.len());
    }
    Ok(people)
}

struct Bar {
    bar: Option<ProgressBar>,
}

impl Progress for Bar {
    fn epoch(&mut self, epoch: usize, steps: usize) {
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix:>3} [{bar:30}] {pos}/{len} loss {msg} {elapsed}<{eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(epoch.to_string());
        self.bar = Some(bar);
    }

    fn step(&mut self, mean_loss: f64) {
        if let Some(b) = &self.bar {
            b.set_message(format!("{mean_loss:.4}"));
            b.inc(1);
        }
    }

    fn done(&mut self, log: &EpochLog) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        eprintln!(
            "epoch {:>3}: train {:.4}  val {:.4}  {:.0} s{}",
            log.epoch,
            log.train_loss,
            log.val_loss,
            log.elapsed_s,
            if log.saved { "  saved" } else { "" }
        );
    }
}

/// Runs `glurpc train`.
pub fn run_train(args: TrainArgs) -> Result<()> {
    let options = TrainOptions {
        model: GluformerConfig {
            d_model: args.d_model,
            n_heads: args.n_heads,
            d_fcn: args.d_fcn,
            num_enc_layers: args.enc_layers,
            num_dec_layers: args.dec_layers,
            r_drop: args.dropout,
            // Trained on the mixture likelihood: sample from the mixture.
            mixture_samples: true,
            ..GluformerConfig::default()
        },
        learning_rate: args.lr,
        batch_size: args.batch_size,
        samples: args.samples,
        epochs: args.epochs,
        steps_per_epoch: (args.steps_per_epoch > 0).then_some(args.steps_per_epoch),
        patience: args.patience,
        min_delta: args.min_delta,
        seed: args.seed,
        val_stride: args.val_stride,
    };
    let train_people = load_people(&args.train, false)?;
    let val_people = load_people(&args.val, false)?;
    let report = train::train(
        &train_people,
        &val_people,
        &options,
        &args.out,
        &mut Bar { bar: None },
    )?;
    eprintln!(
        "best epoch {} (validation loss {:.4}) of {}{}; {} parameters; written to {}",
        report.best_epoch,
        report.best_val_loss,
        report.epochs.len(),
        if report.stopped_early {
            ", stopped early"
        } else {
            ""
        },
        report.parameters,
        args.out.display()
    );
    Ok(())
}

/// Runs `glurpc evaluate`.
pub fn run_evaluate(args: EvaluateArgs) -> Result<()> {
    let people = load_people(&args.files, args.json)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (net, cfg) = rt.block_on(args.model.load())?;
    let opts = EvalOptions {
        stride: args.stride,
        samples: cfg.samples.max(1),
        seed: cfg.seed,
    };
    let result = eval::evaluate(&net, &people, &opts)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &result)?;
        writeln!(out)?;
    } else {
        out.write_all(table(&result).as_bytes())?;
    }
    Ok(())
}

/// The evaluation as a Markdown table (mg/dL, coverage in percent).
pub fn table(e: &Evaluation) -> String {
    let pct = |c: Option<f64>| c.map_or("-".to_string(), |c| format!("{:.1}%", c * 100.0));
    let row = |name: &str, s: &Scores| {
        format!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |\n",
            s.rmse_30,
            s.rmse_60,
            s.mae_30,
            s.mae_60,
            pct(s.coverage_50),
            pct(s.coverage_90)
        )
    };
    let mut t = format!(
        "{} windows, mg/dL\n\n| forecaster | RMSE 30 min | RMSE 60 min | MAE 30 min | MAE 60 min | 50% band coverage | 90% band coverage |\n|---|---|---|---|---|---|---|\n",
        e.model.windows
    );
    t += &row("model (median)", &e.model);
    t += &row("persistence", &e.persistence);
    t += &row("linear (last 30 min)", &e.linear);
    t
}
