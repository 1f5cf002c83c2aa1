//! `glurpc train` and `glurpc evaluate`: training a Gluformer on CGM files
//! with a progress bar, and scoring a model against the baselines.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::model::GluformerConfig;
use crate::train::eval::{self, EvalOptions, Evaluation, PersonEvaluation, Scores};
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
    #[arg(long, default_value_t = 12)]
    pub epochs: usize,
    /// Steps per epoch (0: one pass over the training examples).
    #[arg(long, default_value_t = 500)]
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
    /// Sampling weight of the training files whose name starts with PREFIX
    /// (e.g. `t1_=3` to draw type 1 data three times as often per pass,
    /// `big_=0.2` a fifth as often); repeatable, first match wins. The
    /// defaults are the default model's, for the files
    /// `tools/prepare_training_data.py` writes; `--weight x=1` alone turns them off.
    #[arg(
        long,
        value_name = "PREFIX=W",
        value_parser = parse_weight,
        default_values = ["t1_=6", "sim_t1_=1.5", "cgmpy_pregnancy=0.1"]
    )]
    pub weight: Vec<(String, f64)>,
    /// Cosine learning-rate decay down to this fraction of `--lr` by the last step (1: constant).
    #[arg(long, default_value_t = 0.1)]
    pub final_lr: f64,
}

fn parse_weight(s: &str) -> Result<(String, f64), String> {
    let (prefix, w) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?}: expected PREFIX=W"))?;
    match w.parse::<f64>() {
        Ok(w) if w.is_finite() && w > 0.0 => Ok((prefix.to_string(), w)),
        _ => Err(format!("{s:?}: W must be a positive number")),
    }
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
    /// Also score each person (file, or id of a long table) on their own
    /// windows: JSON `{"pooled": {..}, "per_person": [{"person": NAME, ..}]}`.
    #[arg(long)]
    pub per_person: bool,
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
        weights: args.weight,
        final_lr_fraction: args.final_lr,
    };
    let train_people = load_people(&args.train, false)?;
    let val_people = load_people(&args.val, false)?;
    // The outputs are owner-only (directory 0700 when we create it, files
    // 0600, Unix): the weights are fitted to the training people's glucose
    // series (a model can memorise them) and the report describes that
    // data. `glurpc model convert` keeps the default modes: it re-encodes
    // weights that already exist and adds no personal data.
    let existed = args.out.exists();
    crate::cache::private::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    if existed && crate::cache::private::loose_permissions(&args.out) {
        tracing::warn!(
            dir = %args.out.display(),
            "the output directory is open to other users; its files are made owner-only"
        );
    }
    let trained = train::train(
        &train_people,
        &val_people,
        &options,
        &args.out,
        &mut Bar { bar: None },
    );
    for name in ["model.safetensors", "config.json", "training.json"] {
        let path = args.out.join(name);
        if path.exists() {
            crate::cache::private::restrict_file(&path)
                .with_context(|| format!("making {} owner-only", path.display()))?;
        }
    }
    let report = trained?;
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
    // A progress bar on standard error (drawn only on a terminal).
    let bar = ProgressBar::new(eval::windows_to_score(&people, &opts) as u64);
    bar.set_style(
        ProgressStyle::with_template("scoring [{bar:30}] {pos}/{len} windows {elapsed}<{eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let result = eval::evaluate_reporting(&net, &people, &opts, args.per_person, &mut |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    if args.per_person {
        if args.json {
            serde_json::to_writer_pretty(&mut out, &result)?;
            writeln!(out)?;
        } else {
            out.write_all(table(&result.pooled).as_bytes())?;
            out.write_all(person_table(&result.per_person).as_bytes())?;
        }
        return Ok(());
    }
    if args.json {
        serde_json::to_writer_pretty(&mut out, &result.pooled)?;
        writeln!(out)?;
    } else {
        out.write_all(table(&result.pooled).as_bytes())?;
    }
    Ok(())
}

/// The evaluation as Markdown tables (mg/dL, coverage in percent): the
/// service's figures, GlucoBench's and the clinical ones, then per step.
pub fn table(e: &Evaluation) -> String {
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
    let forecasters = [
        ("model (median)", &e.model),
        ("persistence", &e.persistence),
        ("linear (last 30 min)", &e.linear),
    ];
    for (name, s) in forecasters {
        t += &row(name, s);
    }
    t += "\nGlucoBench (median over windows of the 12-step error), calibration, clinical accuracy\n\n\
          | forecaster | GlucoBench RMSE | GlucoBench MAE | calibration error | MARD 60 min | Clarke A 30 min | Clarke A+B 30 min | Clarke A 60 min | Clarke A+B 60 min |\n\
          |---|---|---|---|---|---|---|---|---|\n";
    for (name, s) in forecasters {
        t += &format!(
            "| {name} | {:.1} | {:.1} | {} | {:.1}% | {} | {} | {} | {} |\n",
            s.glucobench_rmse,
            s.glucobench_mae,
            s.calibration_error
                .map_or("-".to_string(), |c| format!("{c:.3}")),
            s.mard_60,
            pct(Some(s.clarke_30.a)),
            pct(Some(s.clarke_30.a + s.clarke_30.b)),
            pct(Some(s.clarke_60.a)),
            pct(Some(s.clarke_60.a + s.clarke_60.b)),
        );
    }
    t += "\nPer step\n\n\
          | minutes | model RMSE | model MAE | 50% band coverage | 90% band coverage | 90% band width | persistence RMSE | linear RMSE |\n\
          |---|---|---|---|---|---|---|---|\n";
    let steps = e
        .model
        .per_step
        .iter()
        .zip(&e.persistence.per_step)
        .zip(&e.linear.per_step);
    for ((m, p), l) in steps {
        t += &format!(
            "| {} | {:.1} | {:.1} | {} | {} | {} | {:.1} | {:.1} |\n",
            m.minutes,
            m.rmse,
            m.mae,
            pct(m.coverage_50),
            pct(m.coverage_90),
            m.width_90.map_or("-".to_string(), |w| format!("{w:.1}")),
            p.rmse,
            l.rmse
        );
    }
    t
}

/// Each person's figures as a Markdown table (mg/dL, shares in percent).
pub fn person_table(people: &[PersonEvaluation]) -> String {
    let mut t = "\nPer person\n\n\
                 | person | windows | model RMSE 30 min | model RMSE 60 min | persistence RMSE 60 min | linear RMSE 60 min | 90% band coverage | calibration error | MARD 60 min | Clarke A+B 60 min |\n\
                 |---|---|---|---|---|---|---|---|---|---|\n"
        .to_string();
    for p in people {
        let (m, s) = (&p.scores.model, &p.scores);
        t += &format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {:.1}% | {} |\n",
            p.person,
            m.windows,
            m.rmse_30,
            m.rmse_60,
            s.persistence.rmse_60,
            s.linear.rmse_60,
            pct(m.coverage_90),
            m.calibration_error
                .map_or("-".to_string(), |c| format!("{c:.3}")),
            m.mard_60,
            pct(Some(m.clarke_60.a + m.clarke_60.b)),
        );
    }
    t
}

/// A share in percent, `-` when absent.
fn pct(c: Option<f64>) -> String {
    c.map_or("-".to_string(), |c| format!("{:.1}%", c * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::scores::Accumulator;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: TrainArgs,
    }

    #[test]
    fn the_defaults_are_the_default_models_settings_and_weights_parse() {
        let a = Cmd::try_parse_from(["t", "--train", "x", "--val", "y"])
            .unwrap()
            .args;
        assert_eq!(
            (a.epochs, a.steps_per_epoch, a.samples, a.seed),
            (12, 500, 1, 0)
        );
        assert_eq!(a.final_lr, 0.1);
        assert_eq!(
            a.weight,
            vec![
                ("t1_".to_string(), 6.0),
                ("sim_t1_".to_string(), 1.5),
                ("cgmpy_pregnancy".to_string(), 0.1)
            ]
        );
        let b = Cmd::try_parse_from(["t", "--train", "x", "--val", "y", "--weight", "a=b=2.5"])
            .unwrap()
            .args;
        assert_eq!(b.weight, vec![("a=b".to_string(), 2.5)]);
        for bad in ["t1_", "t1_=0", "t1_=-1", "t1_=x", "t1_=inf"] {
            assert!(
                Cmd::try_parse_from(["t", "--train", "x", "--val", "y", "--weight", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn tables_have_a_row_per_forecaster_step_and_person() {
        let (mut m, mut p) = (Accumulator::new(), Accumulator::new());
        let samples = vec![vec![90.0, 100.0, 110.0]; 12];
        m.add(Some(&samples), &[100.0; 12], &[105.0; 12]);
        p.add(None, &[100.0; 12], &[105.0; 12]);
        let e = Evaluation {
            model: m.scores(),
            persistence: p.scores(),
            linear: p.scores(),
        };
        let t = table(&e);
        assert!(t.starts_with("1 windows, mg/dL"), "{t}");
        assert_eq!(t.matches("| model (median) |").count(), 2, "{t}");
        assert!(
            t.contains("| 60 | 5.0 | 5.0 | 100.0% | 100.0% | 18.0 | 5.0 | 5.0 |"),
            "{t}"
        );
        assert!(t.contains("| - | 4.8% | 100.0% |"), "{t}");
        let people = [PersonEvaluation {
            person: "a.csv".into(),
            scores: e,
        }];
        assert!(person_table(&people).contains("| a.csv | 1 | 5.0 |"));
    }
}
