//! Training and evaluating Gluformer on CGM data: the data (people, forward
//! examples), glucobench's loss and optimiser, early stopping on a
//! validation split, checkpoints, and the accuracy report with baselines.
//! Sits beside the engine: it uses the pipeline, the model and the engine's
//! window helpers, and nothing above it.

pub mod calibrate;
pub mod clarke;
pub mod data;
pub mod eval;
pub mod loss;
pub mod scores;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use serde::Serialize;

use crate::model::dropout::{Rng, RowRng, splitmix64};
use crate::model::layers::Ops;
use crate::model::weights::{self, StateDict};
use crate::model::{Gluformer, GluformerConfig, ModelError, ModelWindow, init};
use data::{Example, MAX_HISTORY, MIN_HISTORY, Person, example};

/// Errors of training and evaluation.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file could not be read or written.
    #[error("I/O: {0}")]
    Io(String),
    /// Data that cannot be used.
    #[error("data: {0}")]
    Data(String),
    /// Invalid settings.
    #[error("config: {0}")]
    Config(String),
    /// The model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl From<candle_core::Error> for TrainError {
    fn from(e: candle_core::Error) -> Self {
        TrainError::Model(ModelError::Candle(e))
    }
}

/// Training settings (defaults: glucobench's learning rate, batch size and
/// early stopping; fewer MC samples per window to fit a 2-core budget).
#[derive(Debug, Clone, Serialize)]
pub struct TrainOptions {
    /// The network to train.
    pub model: GluformerConfig,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Windows per step.
    pub batch_size: usize,
    /// MC-dropout passes per window in the loss (glucobench's `num_samples`).
    pub samples: usize,
    /// Most epochs.
    pub epochs: usize,
    /// Steps per epoch (a full pass over the training examples when `None`).
    pub steps_per_epoch: Option<usize>,
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// Increase of the validation loss over the best that counts against patience.
    pub min_delta: f64,
    /// Seed of the weights, the example order, history lengths and dropout.
    pub seed: u64,
    /// Every `val_stride`-th validation position is scored.
    pub val_stride: usize,
    /// Sampling weights: a training person whose name (file name) starts
    /// with the prefix has each position drawn `weight` times per pass on
    /// average: its whole part every pass, once more with the probability of
    /// its fraction (first matching prefix; 1 when none matches).
    pub weights: Vec<(String, f64)>,
    /// The learning rate falls along a half cosine from `learning_rate` to
    /// this fraction of it over all steps (1: constant).
    pub final_lr_fraction: f64,
}

impl TrainOptions {
    /// The sampling weight of a person named `name`.
    pub fn weight_of(&self, name: &str) -> f64 {
        self.weights
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix.as_str()))
            .map_or(1.0, |(_, w)| *w)
    }

    /// The learning rate at `step` of `total` (cosine from the full rate
    /// down to `final_lr_fraction` of it).
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        let f = self.final_lr_fraction;
        if f == 1.0 || total <= 1 {
            return self.learning_rate;
        }
        let x = step.min(total - 1) as f64 / (total - 1) as f64;
        self.learning_rate * (f + (1.0 - f) * 0.5 * (1.0 + (std::f64::consts::PI * x).cos()))
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Seconds since the start.
    pub elapsed_s: f64,
    /// Whether this epoch's weights were saved as the best.
    pub saved: bool,
}

/// What a training run did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// The settings.
    pub options: TrainOptions,
    /// Training people, examples.
    pub train: (usize, usize),
    /// Validation people, examples scored.
    pub validation: (usize, usize),
    /// Trainable parameters.
    pub parameters: usize,
    /// Per epoch.
    pub epochs: Vec<EpochLog>,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
    /// Its validation loss.
    pub best_val_loss: f64,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
}

/// Progress callbacks (a progress bar in the CLI, nothing in tests).
pub trait Progress {
    /// An epoch of `steps` steps begins.
    fn epoch(&mut self, epoch: usize, steps: usize);
    /// A step finished with this running mean loss.
    fn step(&mut self, mean_loss: f64);
    /// The epoch ended.
    fn done(&mut self, log: &EpochLog);
}

/// No output.
pub struct Quiet;

impl Progress for Quiet {
    fn epoch(&mut self, _: usize, _: usize) {}
    fn step(&mut self, _: f64) {}
    fn done(&mut self, _: &EpochLog) {}
}

fn is_buffer(key: &str) -> bool {
    key.ends_with("pos_emb")
        || key.ends_with("running_mean")
        || key.ends_with("running_var")
        || key.ends_with("num_batches_tracked")
}

/// The weights being trained: variables for the parameters, plain tensors
/// for the buffers (positional tables, BatchNorm running statistics).
struct Params {
    cfg: GluformerConfig,
    vars: Vec<(String, Var)>,
    buffers: StateDict,
}

impl Params {
    fn new(cfg: &GluformerConfig, seed: u64) -> Result<Self, TrainError> {
        let sd = init::random_state_dict(cfg, seed)?;
        let mut vars = Vec::new();
        let mut buffers = StateDict::new();
        for (k, t) in sd {
            if is_buffer(&k) {
                buffers.insert(k, t);
            } else {
                vars.push((k, Var::from_tensor(&t)?));
            }
        }
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Params {
            cfg: cfg.clone(),
            vars,
            buffers,
        })
    }

    fn state_dict(&self) -> StateDict {
        let mut sd = self.buffers.clone();
        for (k, v) in &self.vars {
            sd.insert(k.clone(), v.as_tensor().clone());
        }
        sd
    }

    fn network(&self, ops: Ops) -> Result<Gluformer, TrainError> {
        Ok(Gluformer::build(
            self.state_dict(),
            self.cfg.clone(),
            &Device::Cpu,
            ops,
        )?)
    }

    /// torch's BatchNorm update: momentum 0.1, unbiased batch variance.
    fn update_running(
        &mut self,
        stats: &[(Tensor, Tensor)],
        rows: usize,
    ) -> Result<(), TrainError> {
        let mut tokens = self.cfg.len_seq + 1;
        for (l, (mean, var)) in stats.iter().enumerate() {
            let n = (rows * tokens) as f64;
            let pre = format!("encoder.conv_layers.{l}.norm");
            let rm = &self.buffers[&format!("{pre}.running_mean")];
            let rv = &self.buffers[&format!("{pre}.running_var")];
            let new_mean = (rm.affine(0.9, 0.0)? + mean.detach().affine(0.1, 0.0)?)?;
            let unbiased = var.detach().affine(n / (n - 1.0).max(1.0), 0.0)?;
            let new_var = (rv.affine(0.9, 0.0)? + unbiased.affine(0.1, 0.0)?)?;
            let count_key = format!("{pre}.num_batches_tracked");
            let count = self.buffers[&count_key].to_scalar::<i64>()? + 1;
            self.buffers.insert(format!("{pre}.running_mean"), new_mean);
            self.buffers.insert(format!("{pre}.running_var"), new_var);
            self.buffers
                .insert(count_key, Tensor::new(count, &Device::Cpu)?);
            tokens = (tokens - 1) / 2 + 1;
        }
        Ok(())
    }
}

/// Writes `model.safetensors` and `config.json` into `dir` atomically.
pub fn save_checkpoint(
    sd: &StateDict,
    cfg: &GluformerConfig,
    dir: &Path,
) -> Result<(), TrainError> {
    let io = |e: std::io::Error| TrainError::Io(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join("model.safetensors.tmp");
    weights::save(sd, &tmp)?;
    std::fs::rename(&tmp, dir.join("model.safetensors")).map_err(io)?;
    let tmp = dir.join("config.json.tmp");
    std::fs::write(&tmp, cfg.to_json()).map_err(io)?;
    std::fs::rename(&tmp, dir.join("config.json")).map_err(io)?;
    Ok(())
}

/// Examples of `people` at every `stride`-th position with the full history.
pub fn fixed_examples(
    people: &[Person],
    stride: usize,
    seed: u64,
) -> Result<Vec<Example>, TrainError> {
    let mut out = Vec::new();
    for (p, person) in people.iter().enumerate() {
        for (k, (r, end)) in person.positions().into_iter().enumerate() {
            if k % stride.max(1) == 0 {
                let s = splitmix64(
                    seed ^ splitmix64(((p as u64) << 40) ^ ((r as u64) << 20) ^ end as u64),
                );
                out.push(example(&person.runs[r], end, MAX_HISTORY, s)?);
            }
        }
    }
    Ok(out)
}

/// Rows (window, sample) laid out window-major for the reference's loss.
fn batch_rows(windows: usize, samples: usize) -> Vec<usize> {
    (0..windows)
        .flat_map(|w| std::iter::repeat_n(w, samples))
        .collect()
}

fn targets(examples: &[&Example], samples: usize, len_pred: usize) -> Result<Tensor, TrainError> {
    let mut y = Vec::with_capacity(examples.len() * samples * len_pred);
    for ex in examples {
        for _ in 0..samples {
            y.extend_from_slice(&ex.target);
        }
    }
    Ok(Tensor::from_vec(
        y,
        (examples.len() * samples, len_pred, 1),
        &Device::Cpu,
    )?)
}

fn row_seeds(seed: u64, stream: u64, rows: usize) -> impl Iterator<Item = u64> {
    (0..rows as u64).map(move |r| splitmix64(seed ^ splitmix64(stream.wrapping_mul(1 << 20) ^ r)))
}

/// The mean loss over `examples` with dropout on and BatchNorm on running
/// statistics (the service's mode), with fixed masks.
fn validation_loss(
    net: &Gluformer,
    examples: &[Example],
    opts: &TrainOptions,
) -> Result<f64, TrainError> {
    let mut total = 0.0;
    let s = opts.samples;
    for (i, chunk) in examples.chunks(opts.batch_size.max(1)).enumerate() {
        let windows: Vec<ModelWindow> = chunk.iter().map(|e| e.window.clone()).collect();
        let rows = batch_rows(chunk.len(), s);
        let inp = net.inputs(&windows, &rows)?;
        let mut masks = RowRng::new(row_seeds(opts.seed ^ 0x7A11, i as u64, rows.len()));
        let (pred, logvar) =
            net.forward(&inp, crate::model::BatchNormMode::Running, &mut masks, None)?;
        let refs: Vec<&Example> = chunk.iter().collect();
        let y = targets(&refs, s, net.config().len_pred)?;
        let l = loss::exp_likeli_loss(&pred, &y, &logvar, s)?.to_scalar::<f32>()?;
        total += l as f64 * chunk.len() as f64;
    }
    Ok(total / examples.len().max(1) as f64)
}

/// Trains a Gluformer on `train` people with early stopping on `val`
/// people, writing the best weights to `out` (`model.safetensors`,
/// `config.json`, `training.json`).
pub fn train(
    train: &[Person],
    val: &[Person],
    opts: &TrainOptions,
    out: &Path,
    progress: &mut dyn Progress,
) -> Result<TrainReport, TrainError> {
    opts.model.validate()?;
    if opts.batch_size == 0 || opts.samples == 0 || opts.epochs == 0 {
        return Err(TrainError::Config(
            "batch size, samples and epochs must be positive".into(),
        ));
    }
    if opts.model.len_seq != crate::pipeline::dataset::INPUT_LEN
        || opts.model.len_pred != crate::pipeline::dataset::OUTPUT_LEN
    {
        return Err(TrainError::Config(format!(
            "the service feeds {} inputs and forecasts {} steps: len_seq and len_pred must match",
            crate::pipeline::dataset::INPUT_LEN,
            crate::pipeline::dataset::OUTPUT_LEN
        )));
    }
    if opts
        .weights
        .iter()
        .any(|(_, w)| !(w.is_finite() && *w > 0.0))
        || !(0.0..=1.0).contains(&opts.final_lr_fraction)
    {
        return Err(TrainError::Config(
            "weights must be positive and the final learning-rate fraction in [0, 1]".into(),
        ));
    }
    let mut positions: Vec<(usize, usize, usize)> = Vec::new();
    let mut weight: Vec<f64> = Vec::new();
    for (p, person) in train.iter().enumerate() {
        let w = opts.weight_of(&person.name);
        for (r, e) in person.positions() {
            positions.push((p, r, e));
            weight.push(w);
        }
    }
    if positions.len() < opts.batch_size {
        return Err(TrainError::Data(format!(
            "{} training examples, fewer than one batch of {}",
            positions.len(),
            opts.batch_size
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| TrainError::Io(format!("{}: {e}", out.display())))?;
    let val_examples = fixed_examples(val, opts.val_stride, opts.seed)?;
    if val_examples.is_empty() {
        return Err(TrainError::Data(
            "no validation example: each needs 545 minutes of history and 60 after".into(),
        ));
    }
    let mut params = Params::new(&opts.model, opts.seed)?;
    let mut optimiser = AdamW::new(
        params.vars.iter().map(|(_, v)| v.clone()).collect(),
        ParamsAdamW {
            lr: opts.learning_rate,
            beta1: 0.1,
            beta2: 0.9,
            eps: 1e-8,
            weight_decay: 0.0,
        },
    )?;
    let parameters = params.vars.iter().map(|(_, v)| v.elem_count()).sum();
    let steps = opts
        .steps_per_epoch
        .unwrap_or(positions.len() / opts.batch_size)
        .max(1);
    let mut rng = Rng::new(opts.seed ^ 0xDA7A);
    let mut order: Vec<usize> = Vec::new();
    let mut cursor = 0usize;
    let start = Instant::now();
    let mut report = TrainReport {
        options: opts.clone(),
        train: (train.len(), positions.len()),
        validation: (val.len(), val_examples.len()),
        parameters,
        epochs: Vec::new(),
        best_epoch: 0,
        best_val_loss: f64::INFINITY,
        stopped_early: false,
    };
    let (s, lp) = (opts.samples, opts.model.len_pred);
    let mut bad_epochs = 0;
    for epoch in 1..=opts.epochs {
        progress.epoch(epoch, steps);
        let mut sum = 0.0;
        for step in 0..steps {
            let mut batch = Vec::with_capacity(opts.batch_size);
            while batch.len() < opts.batch_size {
                if cursor == order.len() {
                    // One pass: each position its weight's whole part, and once
                    // more with the probability of its fraction (no draw when
                    // every weight is whole, so unweighted runs are unchanged).
                    order.clear();
                    for (i, w) in weight.iter().enumerate() {
                        let mut n = w.trunc() as usize;
                        let frac = w.fract();
                        if frac > 0.0
                            && ((rng.next_u64() >> 11) as f64) < frac * (1u64 << 53) as f64
                        {
                            n += 1;
                        }
                        order.extend(std::iter::repeat_n(i, n));
                    }
                    for i in (1..order.len()).rev() {
                        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
                    }
                    cursor = 0;
                }
                let (p, r, end) = positions[order[cursor]];
                cursor += 1;
                let history = MIN_HISTORY
                    + (rng.next_u64() % (MAX_HISTORY - MIN_HISTORY + 1) as u64) as usize;
                batch.push(example(&train[p].runs[r], end, history, 0)?);
            }
            optimiser
                .set_learning_rate(opts.lr_at((epoch - 1) * steps + step, opts.epochs * steps));
            let net = params.network(Ops::Autograd)?;
            let windows: Vec<ModelWindow> = batch.iter().map(|e| e.window.clone()).collect();
            let rows = batch_rows(batch.len(), s);
            let inp = net.inputs(&windows, &rows)?;
            let stream = ((epoch as u64) << 32) | step as u64;
            let mut masks = RowRng::new(row_seeds(opts.seed, stream, rows.len()));
            let (pred, logvar, stats) = net.forward_train(&inp, &mut masks)?;
            let refs: Vec<&Example> = batch.iter().collect();
            let y = targets(&refs, s, lp)?;
            let l = loss::exp_likeli_loss(&pred, &y, &logvar, s)?;
            let value = l.to_scalar::<f32>()? as f64;
            if !value.is_finite() {
                return Err(TrainError::Data(format!(
                    "the loss became {value} at epoch {epoch}, step {step}: lower the learning rate"
                )));
            }
            optimiser.backward_step(&l)?;
            params.update_running(&stats, rows.len())?;
            sum += value;
            progress.step(sum / (step + 1) as f64);
        }
        let net = params.network(Ops::Fast)?;
        let val_loss = validation_loss(&net, &val_examples, opts)?;
        let saved = val_loss < report.best_val_loss;
        if saved {
            report.best_val_loss = val_loss;
            report.best_epoch = epoch;
            bad_epochs = 0;
            save_checkpoint(&params.state_dict(), &opts.model, out)?;
        } else if val_loss > report.best_val_loss + opts.min_delta {
            bad_epochs += 1;
        }
        let log = EpochLog {
            epoch,
            train_loss: sum / steps as f64,
            val_loss,
            elapsed_s: start.elapsed().as_secs_f64(),
            saved,
        };
        progress.done(&log);
        report.epochs.push(log);
        write_report(&report, out)?;
        if bad_epochs >= opts.patience {
            report.stopped_early = true;
            break;
        }
    }
    write_report(&report, out)?;
    Ok(report)
}

fn write_report(report: &TrainReport, out: &Path) -> Result<(), TrainError> {
    let path: PathBuf = out.join("training.json");
    let text = serde_json::to_string_pretty(report)
        .map_err(|e| TrainError::Io(format!("{}: {e}", path.display())))?;
    std::fs::write(&path, text + "\n")
        .map_err(|e| TrainError::Io(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(weights: Vec<(String, f64)>, final_lr_fraction: f64) -> TrainOptions {
        TrainOptions {
            model: GluformerConfig::default(),
            learning_rate: 1e-3,
            batch_size: 32,
            samples: 1,
            epochs: 1,
            steps_per_epoch: None,
            patience: 10,
            min_delta: 0.001,
            seed: 0,
            val_stride: 6,
            weights,
            final_lr_fraction,
        }
    }

    #[test]
    fn weights_match_the_first_prefix_and_default_to_one() {
        let o = options(
            vec![
                ("t1_".into(), 3.0),
                ("t1_x".into(), 9.0),
                ("big".into(), 0.1),
            ],
            1.0,
        );
        assert_eq!(o.weight_of("t1_x.csv"), 3.0);
        assert_eq!(o.weight_of("big.csv#7"), 0.1);
        assert_eq!(o.weight_of("sim_t1_a.csv"), 1.0);
    }

    #[test]
    fn the_learning_rate_falls_along_a_half_cosine() {
        let o = options(Vec::new(), 0.1);
        assert!((o.lr_at(0, 101) - 1e-3).abs() < 1e-15);
        assert!((o.lr_at(50, 101) - 0.55e-3).abs() < 1e-12);
        assert!((o.lr_at(100, 101) - 1e-4).abs() < 1e-15);
        assert!(o.lr_at(30, 101) > o.lr_at(31, 101));
        let flat = options(Vec::new(), 1.0);
        assert_eq!(flat.lr_at(77, 101), 1e-3);
    }
}
