//! Forecast accuracy on held-out people: forward forecasts at every
//! position (history up to 1080 minutes, scaler fitted on it alone, as the
//! service prepares an upload), scored in mg/dL against the measured values
//! with the statistics the service shows (the median and the 5-95 / 25-75%
//! bands of the MC samples), beside two baselines, pooled over all people
//! and, on request, per person. [`each_window`] hands every scored window
//! to a visitor; the figures are computed in [`super::scores`].

use serde::Serialize;

use crate::bridge::to_mgdl;
use crate::model::{BatchNormMode, Gluformer, Mode, ModelWindow, PredictOptions};
use crate::pipeline::dataset::OUTPUT_LEN;

use super::TrainError;
use super::data::{Example, MAX_HISTORY, Person, example};
use super::scores::{Accumulator, median_forecast};
pub use super::scores::{STEP_30, STEP_60, Scores, StepScores};

/// Evaluation settings.
#[derive(Debug, Clone, Copy)]
pub struct EvalOptions {
    /// Every `stride`-th position of each person is scored.
    pub stride: usize,
    /// MC-dropout samples per window (the service's 10).
    pub samples: usize,
    /// Global dropout seed.
    pub seed: u64,
}

/// The model and the two baselines on the same windows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evaluation {
    /// The model's median and bands.
    pub model: Scores,
    /// The last value carried forward.
    pub persistence: Scores,
    /// The least-squares line through the last 30 minutes, extrapolated.
    pub linear: Scores,
}

/// One person's figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PersonEvaluation {
    /// The person's name (file name, or file name and id).
    pub person: String,
    /// The model and the baselines on this person's windows.
    #[serde(flatten)]
    pub scores: Evaluation,
}

/// The figures pooled over all windows and per person.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PerPersonEvaluation {
    /// All windows of all people.
    pub pooled: Evaluation,
    /// Each person with at least one window, in input order.
    pub per_person: Vec<PersonEvaluation>,
}

/// The three forecasters' accumulators.
#[derive(Default)]
struct Forecasters {
    model: Accumulator,
    persistence: Accumulator,
    linear: Accumulator,
}

impl Forecasters {
    fn add(&mut self, w: &WindowResult) {
        let med = median_forecast(w.samples_mgdl);
        self.model.add(Some(w.samples_mgdl), &med, w.truth);
        self.persistence.add(None, &persistence(w.recent), w.truth);
        self.linear.add(None, &linear(w.recent), w.truth);
    }

    fn evaluation(&self) -> Evaluation {
        Evaluation {
            model: self.model.scores(),
            persistence: self.persistence.scores(),
            linear: self.linear.scores(),
        }
    }
}

/// Persistence: the last measured value at every step.
pub fn persistence(recent: &[f32]) -> Vec<f64> {
    vec![recent[recent.len() - 1] as f64; OUTPUT_LEN]
}

/// The least-squares line through `recent` (5-minute spacing), extrapolated
/// 1..=12 steps past the last point.
pub fn linear(recent: &[f32]) -> Vec<f64> {
    let n = recent.len() as f64;
    let xs = (0..recent.len()).map(|i| i as f64);
    let mx = xs.clone().sum::<f64>() / n;
    let my = recent.iter().map(|v| *v as f64).sum::<f64>() / n;
    let sxy: f64 = xs
        .clone()
        .zip(recent)
        .map(|(x, y)| (x - mx) * (*y as f64 - my))
        .sum();
    let sxx: f64 = xs.map(|x| (x - mx) * (x - mx)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let last = n - 1.0;
    (1..=OUTPUT_LEN)
        .map(|k| my + slope * (last + k as f64 - mx))
        .collect()
}

/// One scored window, as [`each_window`] hands it to its visitor.
#[derive(Debug, Clone, Copy)]
pub struct WindowResult<'a> {
    /// Index of the person in the `people` slice.
    pub person: usize,
    /// The MC samples in mg/dL: one vector of `S` samples per forecast
    /// step (12 steps).
    pub samples_mgdl: &'a [Vec<f64>],
    /// The 12 measured values after the history, mg/dL.
    pub truth: &'a [f32],
    /// The last 7 history values (30 minutes), mg/dL, oldest first.
    pub recent: &'a [f32],
}

/// Forecasts every `opts.stride`-th position of each person in `people`
/// (history up to 1080 minutes, MC dropout with BatchNorm on running
/// statistics, `opts.samples` samples, each window's dropout seeded from
/// `opts.seed`, the person and the position) and hands each window to
/// `visit`, in order: people as given, positions in time order.
pub fn each_window(
    model: &Gluformer,
    people: &[Person],
    opts: &EvalOptions,
    visit: &mut dyn FnMut(&WindowResult),
) -> Result<(), TrainError> {
    let predict = PredictOptions {
        mode: Mode::MonteCarlo {
            samples: opts.samples.max(1),
            batch_norm: BatchNormMode::Running,
        },
        ..PredictOptions::default()
    };
    let mut pending: Vec<(usize, Example)> = Vec::new();
    let mut flush = |batch: &mut Vec<(usize, Example)>| -> Result<(), TrainError> {
        if batch.is_empty() {
            return Ok(());
        }
        let windows: Vec<ModelWindow> = batch.iter().map(|(_, e)| e.window.clone()).collect();
        let fc = model.predict(&windows, &predict)?;
        for (i, (person, ex)) in batch.iter().enumerate() {
            let samples: Vec<Vec<f64>> = (0..fc.steps)
                .map(|t| to_mgdl(&ex.scaler, fc.at(i, t)))
                .collect();
            visit(&WindowResult {
                person: *person,
                samples_mgdl: &samples,
                truth: &ex.truth,
                recent: &ex.recent,
            });
        }
        batch.clear();
        Ok(())
    };
    for (p, person) in people.iter().enumerate() {
        for (k, (r, end)) in person.positions().into_iter().enumerate() {
            if k % opts.stride.max(1) != 0 {
                continue;
            }
            let seed = crate::model::dropout::splitmix64(
                opts.seed ^ ((p as u64) << 40) ^ ((r as u64) << 20) ^ end as u64,
            );
            pending.push((p, example(&person.runs[r], end, MAX_HISTORY, seed)?));
            if pending.len() == 256 {
                flush(&mut pending)?;
            }
        }
    }
    flush(&mut pending)
}

/// How many windows [`each_window`] scores for `people` with `opts`.
pub fn windows_to_score(people: &[Person], opts: &EvalOptions) -> usize {
    let stride = opts.stride.max(1);
    people
        .iter()
        .map(|p| p.positions().len().div_ceil(stride))
        .sum()
}

/// [`evaluate_per_person`] (or, without `per_person`, [`evaluate`] with an
/// empty per-person list), calling `progress` with the windows scored so far
/// after each one (for a progress bar; [`windows_to_score`] is the total).
pub fn evaluate_reporting(
    net: &Gluformer,
    people: &[Person],
    opts: &EvalOptions,
    per_person: bool,
    progress: &mut dyn FnMut(usize),
) -> Result<PerPersonEvaluation, TrainError> {
    let (pooled, per_person) = score(net, people, opts, per_person, progress)?;
    Ok(PerPersonEvaluation { pooled, per_person })
}

/// Scores `net` and the baselines on `people`, pooled; with `per_person`,
/// also each person on their own windows.
fn score(
    net: &Gluformer,
    people: &[Person],
    opts: &EvalOptions,
    per_person: bool,
    progress: &mut dyn FnMut(usize),
) -> Result<(Evaluation, Vec<PersonEvaluation>), TrainError> {
    let mut done = 0usize;
    let mut pooled = Forecasters::default();
    let mut each: Vec<Forecasters> = Vec::new();
    if per_person {
        each.resize_with(people.len(), Forecasters::default);
    }
    each_window(net, people, opts, &mut |w| {
        pooled.add(w);
        if let Some(f) = each.get_mut(w.person) {
            f.add(w);
        }
        done += 1;
        progress(done);
    })?;
    if pooled.model.windows() == 0 {
        return Err(TrainError::Data(
            "no window to score: each needs 545 minutes of history and 60 after".into(),
        ));
    }
    let people = each
        .iter()
        .zip(people)
        .filter(|(f, _)| f.model.windows() > 0)
        .map(|(f, p)| PersonEvaluation {
            person: p.name.clone(),
            scores: f.evaluation(),
        })
        .collect();
    Ok((pooled.evaluation(), people))
}

/// Scores `net` and the baselines on all windows of `people`.
pub fn evaluate(
    net: &Gluformer,
    people: &[Person],
    opts: &EvalOptions,
) -> Result<Evaluation, TrainError> {
    Ok(score(net, people, opts, false, &mut |_| {})?.0)
}

/// Scores `net` and the baselines on all windows of `people` and on each
/// person's (people without a window are left out of `per_person`). The
/// pooled figures are those of [`evaluate`].
pub fn evaluate_per_person(
    net: &Gluformer,
    people: &[Person],
    opts: &EvalOptions,
) -> Result<PerPersonEvaluation, TrainError> {
    evaluate_reporting(net, people, opts, true, &mut |_| {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_extrapolate() {
        let flat = [100f32; 7];
        assert_eq!(persistence(&flat), vec![100.0; 12]);
        assert_eq!(linear(&flat), vec![100.0; 12]);
        let rising: Vec<f32> = (0..7).map(|i| 100.0 + 2.0 * i as f32).collect();
        let l = linear(&rising);
        assert!(
            (l[0] - 114.0).abs() < 1e-9 && (l[11] - 136.0).abs() < 1e-9,
            "{l:?}"
        );
        assert_eq!(persistence(&rising)[11], 112.0);
    }
}
