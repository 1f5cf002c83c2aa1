//! Forecast accuracy on held-out people: forward forecasts at every
//! position (history up to 1080 minutes, scaler fitted on it alone, as the
//! service prepares an upload), scored in mg/dL against the measured values
//! with the statistics the service shows (the median and the 5-95 / 25-75%
//! bands of the MC samples), beside two baselines.

use serde::Serialize;

use crate::engine::forecast::to_mgdl;
use crate::model::{BatchNormMode, Gluformer, Mode, ModelWindow, PredictOptions};
use crate::pipeline::dataset::OUTPUT_LEN;
use crate::plot::{median, quantile};

use super::TrainError;
use super::data::{Example, MAX_HISTORY, Person, example};

/// Step index of the 30-minute horizon (the 6th of 12 five-minute steps).
pub const STEP_30: usize = 5;
/// Step index of the 60-minute horizon.
pub const STEP_60: usize = 11;

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

/// One forecaster's figures (mg/dL; coverage as a fraction of all
/// 12 steps of all windows).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Scores {
    /// RMSE at 30 minutes.
    pub rmse_30: f64,
    /// RMSE at 60 minutes.
    pub rmse_60: f64,
    /// MAE at 30 minutes.
    pub mae_30: f64,
    /// MAE at 60 minutes.
    pub mae_60: f64,
    /// Share of measured values inside the 25-75% band (`None` for point forecasts).
    pub coverage_50: Option<f64>,
    /// Share inside the 5-95% band.
    pub coverage_90: Option<f64>,
    /// Windows scored.
    pub windows: usize,
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

#[derive(Default)]
struct Tally {
    se: [f64; 2],
    ae: [f64; 2],
    inside: [usize; 2],
    steps: usize,
    windows: usize,
}

impl Tally {
    fn point(&mut self, forecast: &[f64], truth: &[f32]) {
        for (k, step) in [STEP_30, STEP_60].into_iter().enumerate() {
            let e = forecast[step] - truth[step] as f64;
            self.se[k] += e * e;
            self.ae[k] += e.abs();
        }
        self.windows += 1;
    }

    fn bands(&mut self, lo_hi: &[[(f64, f64); 2]], truth: &[f32]) {
        for (bands, y) in lo_hi.iter().zip(truth) {
            for (k, (lo, hi)) in bands.iter().enumerate() {
                if (*lo..=*hi).contains(&(*y as f64)) {
                    self.inside[k] += 1;
                }
            }
            self.steps += 1;
        }
    }

    fn scores(&self, with_bands: bool) -> Scores {
        let n = self.windows.max(1) as f64;
        let cov = |k: usize| with_bands.then(|| self.inside[k] as f64 / self.steps.max(1) as f64);
        Scores {
            rmse_30: (self.se[0] / n).sqrt(),
            rmse_60: (self.se[1] / n).sqrt(),
            mae_30: self.ae[0] / n,
            mae_60: self.ae[1] / n,
            coverage_50: cov(0),
            coverage_90: cov(1),
            windows: self.windows,
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

/// Scores `net` and the baselines on `people`.
pub fn evaluate(
    net: &Gluformer,
    people: &[Person],
    opts: &EvalOptions,
) -> Result<Evaluation, TrainError> {
    let (mut model, mut last, mut line) = (Tally::default(), Tally::default(), Tally::default());
    each_window(net, people, opts, &mut |w| {
        let med: Vec<f64> = w.samples_mgdl.iter().map(|s| median(s)).collect();
        let bands: Vec<[(f64, f64); 2]> = w
            .samples_mgdl
            .iter()
            .map(|s| {
                [
                    (quantile(s, 0.25), quantile(s, 0.75)),
                    (quantile(s, 0.05), quantile(s, 0.95)),
                ]
            })
            .collect();
        model.point(&med, w.truth);
        model.bands(&bands, w.truth);
        last.point(&persistence(w.recent), w.truth);
        line.point(&linear(w.recent), w.truth);
    })?;
    if model.windows == 0 {
        return Err(TrainError::Data(
            "no window to score: each needs 545 minutes of history and 60 after".into(),
        ));
    }
    Ok(Evaluation {
        model: model.scores(true),
        persistence: last.scores(false),
        linear: line.scores(false),
    })
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

    #[test]
    fn tallies_average_squares_and_count_band_hits() {
        let mut t = Tally::default();
        let truth = [0f32; 12];
        let mut f = vec![0.0; 12];
        f[STEP_30] = 3.0;
        f[STEP_60] = -4.0;
        t.point(&f, &truth);
        t.point(&[0.0; 12], &truth);
        let bands = vec![[(-1.0, 1.0), (-2.0, 2.0)]; 6]
            .into_iter()
            .chain(vec![[(1.0, 2.0), (-2.0, 2.0)]; 6])
            .collect::<Vec<_>>();
        t.bands(&bands, &truth);
        let s = t.scores(true);
        assert!((s.rmse_30 - (9.0f64 / 2.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.mae_60, 2.0);
        assert_eq!(s.coverage_50, Some(0.5));
        assert_eq!(s.coverage_90, Some(1.0));
        assert_eq!(s.windows, 2);
        assert_eq!(t.scores(false).coverage_90, None);
    }
}
