//! Forecast scores, pure: an [`Accumulator`] takes one window at a time (the
//! MC samples of each of the 12 steps in mg/dL when the forecaster has them,
//! the point forecast, the measured values) and gives the [`Scores`]:
//!
//! - RMSE and MAE at 30 and 60 minutes and at every step (mean over windows);
//! - coverage of the 25-75% and 5-95% sample bands (inclusive) and the mean
//!   width of the 5-95% band, per step and over all steps;
//! - GlucoBench's RMSE and MAE: per window the MSE (MAE) over its 12 steps,
//!   then the median over windows (RMSE = the square root of that median);
//! - GlucoBench's calibration error: per step, the sum over the levels
//!   q = 0, 0.1, ..., 1 of (share of windows whose measured value is at most
//!   the q-quantile of the samples - q)^2, averaged over the 12 steps;
//! - the Clarke error grid zones at 30 and 60 minutes and the MARD at 60.
//!
//! Quantiles are numpy's linear ones ([`crate::plot::quantile`]), as the
//! service's bands and darts' `TimeSeries.quantile` compute them.

use serde::Serialize;

use crate::pipeline::dataset::OUTPUT_LEN;
use crate::plot::quantile;

use super::clarke::{Clarke, ZoneCounts};

/// Forecast steps scored (5 minutes apart).
pub const STEPS: usize = OUTPUT_LEN;
/// Step index of the 30-minute horizon (the 6th of 12 five-minute steps).
pub const STEP_30: usize = 5;
/// Step index of the 60-minute horizon.
pub const STEP_60: usize = 11;
/// Levels of the calibration error: `np.linspace(0, 1, 11)` (i * 0.1, the
/// last exactly 1), GlucoBench's `cal_thresholds`.
pub const CALIBRATION_LEVELS: usize = 11;

/// The `i`-th calibration level, bit for bit as `np.linspace(0, 1, 11)`.
pub fn calibration_level(i: usize) -> f64 {
    if i + 1 >= CALIBRATION_LEVELS {
        1.0
    } else {
        i as f64 * 0.1
    }
}

/// The figures of one forecast step.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepScores {
    /// Horizon in minutes (5 to 60).
    pub minutes: u32,
    /// Root mean squared error, mg/dL.
    pub rmse: f64,
    /// Mean absolute error, mg/dL.
    pub mae: f64,
    /// Share of measured values inside the 25-75% band (`None` for point forecasts).
    pub coverage_50: Option<f64>,
    /// Share inside the 5-95% band.
    pub coverage_90: Option<f64>,
    /// Mean width of the 5-95% band, mg/dL.
    pub width_90: Option<f64>,
}

/// One forecaster's figures (mg/dL; coverage as a fraction of all
/// 12 steps of all windows; band fields `None` for point forecasts).
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
    /// GlucoBench's RMSE: the square root of the median over windows of
    /// each window's MSE over its 12 steps (NaN, `null`, without windows).
    pub glucobench_rmse: f64,
    /// GlucoBench's MAE: the median over windows of each window's MAE.
    pub glucobench_mae: f64,
    /// GlucoBench's calibration error (see the module doc), the mean over
    /// the 12 steps; 0 is perfect, at most 11.
    pub calibration_error: Option<f64>,
    /// Mean absolute relative difference at 60 minutes, in percent:
    /// `100 * mean(|forecast - measured| / measured)`.
    pub mard_60: f64,
    /// Clarke error grid at 30 minutes (share of windows per zone).
    pub clarke_30: Clarke,
    /// Clarke error grid at 60 minutes.
    pub clarke_60: Clarke,
    /// The figures of each of the 12 steps, 5 minutes first.
    pub per_step: Vec<StepScores>,
}

/// Sums over the windows given so far.
#[derive(Debug, Clone)]
pub struct Accumulator {
    windows: usize,
    se: [f64; STEPS],
    ae: [f64; STEPS],
    window_mse: Vec<f64>,
    window_mae: Vec<f64>,
    ard_60: f64,
    clarke: [ZoneCounts; 2],
    /// Windows that came with samples.
    sampled: usize,
    inside_50: [usize; STEPS],
    inside_90: [usize; STEPS],
    width_90: [f64; STEPS],
    /// Windows whose truth is at most the level's quantile, per step and level.
    below: [[usize; CALIBRATION_LEVELS]; STEPS],
}

impl Default for Accumulator {
    fn default() -> Self {
        Accumulator {
            windows: 0,
            se: [0.0; STEPS],
            ae: [0.0; STEPS],
            window_mse: Vec::new(),
            window_mae: Vec::new(),
            ard_60: 0.0,
            clarke: [ZoneCounts::default(); 2],
            sampled: 0,
            inside_50: [0; STEPS],
            inside_90: [0; STEPS],
            width_90: [0.0; STEPS],
            below: [[0; CALIBRATION_LEVELS]; STEPS],
        }
    }
}

/// The median of each step's samples (numpy's `quantile(.., 0.5)`).
pub fn median_forecast(samples: &[Vec<f64>]) -> Vec<f64> {
    samples.iter().map(|s| quantile(s, 0.5)).collect()
}

/// numpy's `median`: the middle value, or the mean of the two middle
/// values (NaN when empty).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

impl Accumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Windows added.
    pub fn windows(&self) -> usize {
        self.windows
    }

    /// Adds one window: `point` and `truth` hold the 12 steps (mg/dL),
    /// `samples`, when given, the samples of each of the 12 steps.
    ///
    /// # Panics
    ///
    /// When `point`, `truth` or `samples` hold fewer than 12 steps.
    pub fn add(&mut self, samples: Option<&[Vec<f64>]>, point: &[f64], truth: &[f32]) {
        let (mut se, mut ae) = (0.0, 0.0);
        for t in 0..STEPS {
            let e = point[t] - truth[t] as f64;
            self.se[t] += e * e;
            self.ae[t] += e.abs();
            se += e * e;
            ae += e.abs();
        }
        self.window_mse.push(se / STEPS as f64);
        self.window_mae.push(ae / STEPS as f64);
        for (k, step) in [STEP_30, STEP_60].into_iter().enumerate() {
            self.clarke[k].add(truth[step] as f64, point[step]);
        }
        let y60 = truth[STEP_60] as f64;
        self.ard_60 += (point[STEP_60] - y60).abs() / y60;
        self.windows += 1;
        if let Some(samples) = samples {
            for t in 0..STEPS {
                let (s, y) = (&samples[t], truth[t] as f64);
                let inside = |lo: f64, hi: f64| (lo..=hi).contains(&y);
                if inside(quantile(s, 0.25), quantile(s, 0.75)) {
                    self.inside_50[t] += 1;
                }
                let (lo, hi) = (quantile(s, 0.05), quantile(s, 0.95));
                if inside(lo, hi) {
                    self.inside_90[t] += 1;
                }
                self.width_90[t] += hi - lo;
                for (j, below) in self.below[t].iter_mut().enumerate() {
                    if y <= quantile(s, calibration_level(j)) {
                        *below += 1;
                    }
                }
            }
            self.sampled += 1;
        }
    }

    /// The figures so far (band fields `None` unless a window came with
    /// samples; they are then shares of those windows).
    pub fn scores(&self) -> Scores {
        let n = self.windows.max(1) as f64;
        let banded = self.sampled > 0;
        let m = self.sampled.max(1) as f64;
        let share = |count: usize| banded.then(|| count as f64 / m);
        let per_step: Vec<StepScores> = (0..STEPS)
            .map(|t| StepScores {
                minutes: 5 * (t as u32 + 1),
                rmse: (self.se[t] / n).sqrt(),
                mae: self.ae[t] / n,
                coverage_50: share(self.inside_50[t]),
                coverage_90: share(self.inside_90[t]),
                width_90: banded.then(|| self.width_90[t] / m),
            })
            .collect();
        let all_steps = |inside: &[usize; STEPS]| {
            banded.then(|| inside.iter().sum::<usize>() as f64 / (self.sampled * STEPS) as f64)
        };
        let calibration = banded.then(|| {
            let per_step: f64 = self
                .below
                .iter()
                .map(|levels| {
                    levels
                        .iter()
                        .enumerate()
                        .map(|(j, below)| (*below as f64 / m - calibration_level(j)).powi(2))
                        .sum::<f64>()
                })
                .sum();
            per_step / STEPS as f64
        });
        Scores {
            rmse_30: per_step[STEP_30].rmse,
            rmse_60: per_step[STEP_60].rmse,
            mae_30: per_step[STEP_30].mae,
            mae_60: per_step[STEP_60].mae,
            coverage_50: all_steps(&self.inside_50),
            coverage_90: all_steps(&self.inside_90),
            windows: self.windows,
            glucobench_rmse: median(&self.window_mse).sqrt(),
            glucobench_mae: median(&self.window_mae),
            calibration_error: calibration,
            mard_60: 100.0 * self.ard_60 / n,
            clarke_30: self.clarke[0].fractions(),
            clarke_60: self.clarke[1].fractions(),
            per_step,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }

    /// Three windows, the same samples at every step:
    /// 1. samples 90..110 by 5, truth 100 (median 100, exact);
    /// 2. samples 100..140 by 10, truth 150 (median 120), but 120 at 60 min;
    /// 3. samples 60..100 by 10, truth 62 (median 80): on the 5% quantile.
    fn hand_made() -> Vec<(Vec<Vec<f64>>, Vec<f32>)> {
        let same = |s: [f64; 5]| vec![s.to_vec(); STEPS];
        let mut truth_2 = vec![150f32; STEPS];
        truth_2[STEP_60] = 120.0;
        vec![
            (same([90.0, 95.0, 100.0, 105.0, 110.0]), vec![100.0; STEPS]),
            (same([100.0, 110.0, 120.0, 130.0, 140.0]), truth_2),
            (same([60.0, 70.0, 80.0, 90.0, 100.0]), vec![62.0; STEPS]),
        ]
    }

    fn model(windows: &[(Vec<Vec<f64>>, Vec<f32>)]) -> Scores {
        let mut acc = Accumulator::new();
        for (samples, truth) in windows {
            acc.add(Some(samples), &median_forecast(samples), truth);
        }
        assert_eq!(acc.windows(), windows.len());
        acc.scores()
    }

    #[test]
    fn levels_are_numpy_linspace() {
        assert_eq!(calibration_level(0), 0.0);
        assert_eq!(calibration_level(3), 0.30000000000000004);
        assert_eq!(calibration_level(5), 0.5);
        assert_eq!(calibration_level(10), 1.0);
    }

    #[test]
    fn errors_per_step_and_at_30_and_60_minutes() {
        let s = model(&hand_made());
        // Errors 0, -30, 18 at every step but 60 min, where they are 0, 0, 18.
        close(s.rmse_30, (1224.0f64 / 3.0).sqrt());
        close(s.mae_30, 16.0);
        close(s.rmse_60, (324.0f64 / 3.0).sqrt());
        close(s.mae_60, 6.0);
        assert_eq!(s.windows, 3);
        assert_eq!(s.per_step.len(), 12);
        for (t, step) in s.per_step.iter().enumerate() {
            assert_eq!(step.minutes, 5 * (t as u32 + 1));
            let (rmse, mae) = if t == STEP_60 {
                (s.rmse_60, s.mae_60)
            } else {
                (s.rmse_30, s.mae_30)
            };
            close(step.rmse, rmse);
            close(step.mae, mae);
        }
    }

    #[test]
    fn bands_cover_inclusively_and_have_widths() {
        let s = model(&hand_made());
        // 25-75%: 95-105, 110-130, 70-90. 5-95%: 91-109, 102-138, 62-98.
        let step = &s.per_step[0];
        close(step.coverage_50.unwrap_or(-1.0), 1.0 / 3.0);
        close(step.coverage_90.unwrap_or(-1.0), 2.0 / 3.0);
        close(step.width_90.unwrap_or(-1.0), (18.0 + 36.0 + 36.0) / 3.0);
        // At 60 min the second window's 120 is inside both bands.
        let step = &s.per_step[STEP_60];
        close(step.coverage_50.unwrap_or(-1.0), 2.0 / 3.0);
        close(step.coverage_90.unwrap_or(-1.0), 1.0);
        close(s.coverage_50.unwrap_or(-1.0), 13.0 / 36.0);
        close(s.coverage_90.unwrap_or(-1.0), 25.0 / 36.0);
    }

    #[test]
    fn glucobench_medians_over_windows() {
        // Window MSEs 0, (11 * 900) / 12 = 825, 324; MAEs 0, 27.5, 18.
        let s = model(&hand_made());
        close(s.glucobench_rmse, 18.0);
        close(s.glucobench_mae, 18.0);
        // Two windows: the mean of the middle two.
        let s = model(&hand_made()[..2]);
        close(s.glucobench_rmse, 412.5f64.sqrt());
        close(s.glucobench_mae, 13.75);
    }

    #[test]
    fn calibration_error_by_hand() {
        // Off 60 min: window 1 is at most the quantiles from q = 0.5 on, window
        // 2 never, window 3 from q = 0.1 on: shares 0, 1/3 (x4), 2/3 (x6);
        // squared gaps in 900ths: 49+16+1+4 + 25+4+1+16+49+100 = 265.
        // At 60 min window 2 joins window 1: 1/3 (x4), 1 (x6): 70 + 495 = 565.
        let s = model(&hand_made());
        close(
            s.calibration_error.unwrap_or(-1.0),
            (11.0 * 265.0 + 565.0) / 900.0 / 12.0,
        );
    }

    #[test]
    fn clarke_and_mard() {
        // (100, 100) A; (150, 120) and (120, 120) A (the 20% edge is in);
        // (62, 80): above 6/5 of a reference under 70, D.
        let s = model(&hand_made());
        for c in [s.clarke_30, s.clarke_60] {
            close(c.a, 2.0 / 3.0);
            close(c.d, 1.0 / 3.0);
            assert_eq!((c.b, c.c, c.e), (0.0, 0.0, 0.0));
        }
        close(s.mard_60, 100.0 * (18.0 / 62.0) / 3.0);
    }

    #[test]
    fn point_forecasts_have_no_bands() {
        let mut acc = Accumulator::new();
        for (_, truth) in hand_made() {
            acc.add(None, &[100.0; STEPS], &truth);
        }
        let s = acc.scores();
        // Errors 0, -50 (-20 at 60 min), 38.
        close(s.rmse_30, ((2500.0 + 1444.0) / 3.0f64).sqrt());
        close(s.mae_60, (20.0 + 38.0) / 3.0);
        // Window MSEs 0, (11 * 2500 + 400) / 12 = 2325, 1444.
        close(s.glucobench_rmse, 38.0);
        assert_eq!(s.coverage_50, None);
        assert_eq!(s.coverage_90, None);
        assert_eq!(s.calibration_error, None);
        assert!(s.per_step.iter().all(|p| p.width_90.is_none()));
        // (150, 100) is B; (62, 100): D.
        close(s.clarke_30.b, 1.0 / 3.0);
        close(s.clarke_30.d, 1.0 / 3.0);
        close(s.mard_60, 100.0 * (20.0 / 120.0 + 38.0 / 62.0) / 3.0);
    }

    #[test]
    fn the_service_figures_stay_as_they_were() {
        // The tally `evaluate` used before the per-step scores: squares at
        // 30 and 60 min averaged over windows, band hits over all steps.
        let mut acc = Accumulator::new();
        let truth = [0f32; 12];
        let mut f = vec![0.0; 12];
        f[STEP_30] = 3.0;
        f[STEP_60] = -4.0;
        acc.add(None, &f, &truth);
        acc.add(None, &[0.0; 12], &truth);
        let s = acc.scores();
        assert!((s.rmse_30 - (9.0f64 / 2.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.mae_60, 2.0);
        assert_eq!(s.windows, 2);
        assert!(s.coverage_90.is_none());
        // A window with samples: band shares count the sampled windows only.
        let samples = vec![vec![-1.0, 0.0, 1.0]; 6]
            .into_iter()
            .chain(vec![vec![1.0, 1.5, 2.0]; 6])
            .collect::<Vec<_>>();
        acc.add(Some(&samples), &median_forecast(&samples), &truth);
        let s = acc.scores();
        assert_eq!(s.coverage_50, Some(0.5));
        assert_eq!(s.coverage_90, Some(0.5));
        assert_eq!(s.windows, 3);
    }
}
