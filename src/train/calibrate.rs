//! Fitting a per-step [`Calibration`] on held-out people: every window's
//! uncalibrated MC samples in mg/dL, per step the factor by which the 5-95%
//! band about the median must grow or shrink to reach the measured value,
//! and per step the factor that covers the target share of windows (raised
//! where needed so that the mean band width never shrinks with the horizon).

use serde_json::json;

use crate::model::Gluformer;
use crate::model::calibration::{self, Calibration, METHOD};
use crate::pipeline::dataset::OUTPUT_LEN;
use crate::plot::{median, quantile};

use super::TrainError;
use super::data::Person;
use super::eval::{self, EvalOptions};
use super::scores::{Accumulator, median_forecast};

/// Quantile levels of the band the factors are fitted for (the service's 90% band).
pub const BAND: [f64; 2] = [0.05, 0.95];

/// What `fit` measured beside the factors.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// The calibration to store.
    pub calibration: Calibration,
    /// Windows it was fitted on.
    pub windows: usize,
    /// Per step: the share of windows the uncalibrated band covered.
    pub coverage_before: Vec<f64>,
    /// Per step: mean band width in mg/dL before calibration.
    pub width_before: Vec<f64>,
    /// Per step: mean band width in mg/dL after calibration.
    pub width_after: Vec<f64>,
}

/// Fits one factor per step so that the 5-95% band holds `coverage` of
/// the measured values of `people`, from `model`'s samples without any
/// calibration (one already attached is ignored).
pub fn fit(
    model: &Gluformer,
    people: &[Person],
    opts: &EvalOptions,
    coverage: f64,
) -> Result<Fit, TrainError> {
    if !(0.0 < coverage && coverage < 1.0) {
        return Err(TrainError::Config(format!(
            "coverage must lie in (0, 1), not {coverage}"
        )));
    }
    if opts.samples < 2 {
        return Err(TrainError::Config(
            "calibration needs at least 2 MC samples per window".into(),
        ));
    }
    let raw = model.clone().with_calibration(None)?;
    let steps = raw.config().len_pred;
    if steps != OUTPUT_LEN {
        return Err(TrainError::Config(format!(
            "the model forecasts {steps} steps; calibration scores the service's {OUTPUT_LEN}"
        )));
    }
    let mut needed: Vec<Vec<f64>> = vec![Vec::new(); steps];
    // The uncalibrated bands' coverage and width, as `evaluate` scores them.
    let mut before = Accumulator::new();
    eval::each_window(&raw, people, opts, &mut |w| {
        before.add(
            Some(w.samples_mgdl),
            &median_forecast(w.samples_mgdl),
            w.truth,
        );
        for (t, samples) in w.samples_mgdl.iter().enumerate().take(steps) {
            let (m, lo, hi) = (
                median(samples),
                quantile(samples, BAND[0]),
                quantile(samples, BAND[1]),
            );
            needed[t].push(calibration::needed_scale(m, lo, hi, w.truth[t] as f64));
        }
    })?;
    let windows = before.windows();
    if windows == 0 {
        return Err(TrainError::Data(
            "no window to calibrate on: each needs 545 minutes of history and 60 after".into(),
        ));
    }
    let mut scales = Vec::with_capacity(steps);
    for (t, n) in needed.into_iter().enumerate() {
        let s = calibration::fit_scale(n, coverage).ok_or_else(|| {
            TrainError::Data(format!(
                "step {}: the samples have no spread to scale",
                t + 1
            ))
        })?;
        scales.push(s);
    }
    let per_step = before.scores().per_step;
    let width_before: Vec<f64> = per_step.iter().map(|p| p.width_90.unwrap_or(0.0)).collect();
    // Bands never narrow with the horizon: where a step's fitted mean width
    // falls below the step before, its factor is raised to match it.
    for t in 1..steps {
        let prev = width_before[t - 1] * scales[t - 1];
        if width_before[t] * scales[t] < prev && width_before[t] > 0.0 {
            scales[t] = prev / width_before[t];
        }
    }
    let width_after: Vec<f64> = width_before
        .iter()
        .zip(&scales)
        .map(|(w, s)| w * s)
        .collect();
    let coverage_before: Vec<f64> = per_step
        .iter()
        .map(|p| p.coverage_90.unwrap_or(0.0))
        .collect();
    let calibration = Calibration {
        method: METHOD.into(),
        scales,
        band: BAND,
        target_coverage: coverage,
        fitted_on: json!({
            "people": people.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
            "windows": windows,
            "stride": opts.stride,
            "samples": opts.samples,
            "seed": opts.seed,
            "coverage_before": round3(&coverage_before),
            "mean_width_before_mgdl": round3(&width_before),
            "mean_width_after_mgdl": round3(&width_after),
        }),
    };
    calibration.validate()?;
    Ok(Fit {
        calibration,
        windows,
        coverage_before,
        width_before,
        width_after,
    })
}

fn round3(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| (x * 1000.0).round() / 1000.0).collect()
}
