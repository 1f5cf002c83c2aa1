//! Post-hoc uncertainty calibration, one factor per forecast step.
//!
//! Gluformer predicts one variance per window for all 12 steps, so its bands
//! are as wide at +5 minutes as at +60. A [`Calibration`] rescales each
//! step's samples about that step's median by a factor fitted on people the
//! model never trained on (`glurpc calibrate`), so that the 5-95% band holds
//! the nominal share of measured values at every step. The median does not
//! move (the map is monotone and fixes it), so point accuracy is unchanged,
//! and the factors work on any weights, the published ones included.
//!
//! Stored as `calibration.json` beside `config.json`; loaded only when it is
//! there or passed explicitly, so the reference-compatible paths stay as
//! they are without one.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ModelError;

/// The one method this file format knows.
pub const METHOD: &str = "per_step_scale";
/// The file name looked for beside the weights.
pub const FILE_NAME: &str = "calibration.json";

/// Per-step spread factors and how they were fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Always [`METHOD`]: samples become `median + scale[t] * (x - median)`.
    pub method: String,
    /// One factor per forecast step (`len_pred` of them), each > 0.
    pub scales: Vec<f64>,
    /// The band the factors were fitted for: its lower and upper quantile
    /// levels (0.05 and 0.95 for the 90% band).
    pub band: [f64; 2],
    /// The share of held-out values the band was fitted to hold.
    pub target_coverage: f64,
    /// What the factors were fitted on (people, windows, samples, seed, model).
    #[serde(default)]
    pub fitted_on: serde_json::Value,
}

impl Calibration {
    /// Parses and checks a `calibration.json`.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let c: Calibration = serde_json::from_str(text)
            .map_err(|e| ModelError::Config(format!("calibration: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    /// Reads and checks a calibration file.
    pub fn read(path: &std::path::Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ModelError::Io(format!("{}: {e}", path.display())))?;
        Self::from_json(&text).map_err(|e| ModelError::Config(format!("{}: {e}", path.display())))
    }

    /// The canonical JSON text (pretty, trailing newline).
    pub fn to_json(&self) -> String {
        // Serialising plain numbers, strings and a JSON value cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// SHA-256 of the factors and band, hex: keys caches, so forecasts made
    /// with and without (or with another) calibration never mix.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.method.as_bytes());
        for s in self.scales.iter().chain(&self.band) {
            h.update(s.to_le_bytes());
        }
        hex::encode(h.finalize())
    }

    /// Checks the method and the factors.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.method != METHOD {
            return Err(ModelError::Config(format!(
                "calibration method {:?} is not known (only {METHOD:?})",
                self.method
            )));
        }
        if self.scales.is_empty() || self.scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(ModelError::Config(
                "calibration scales must be positive and finite, one per step".into(),
            ));
        }
        Ok(())
    }

    /// Checks the factors against a model's forecast length.
    pub fn check_steps(&self, len_pred: usize) -> Result<(), ModelError> {
        if self.scales.len() != len_pred {
            return Err(ModelError::Config(format!(
                "calibration has {} step factors, the model forecasts {len_pred} steps",
                self.scales.len()
            )));
        }
        Ok(())
    }

    /// Rescales one window's samples in place: `values[t * samples + s]`
    /// becomes `median_t + scale[t] * (values - median_t)`, where `median_t`
    /// is the median of step `t`'s samples (the mean of the two middle ones
    /// for an even count), computed in f64 as the plots compute it.
    pub fn apply(&self, values: &mut [f32], samples: usize) {
        if samples < 2 {
            return;
        }
        let mut sorted = vec![0f64; samples];
        for (step, scale) in values.chunks_mut(samples).zip(&self.scales) {
            for (o, v) in sorted.iter_mut().zip(step.iter()) {
                *o = *v as f64;
            }
            sorted.sort_by(f64::total_cmp);
            let mid = samples / 2;
            let m = if samples % 2 == 1 {
                sorted[mid]
            } else {
                0.5 * (sorted[mid - 1] + sorted[mid])
            };
            for v in step.iter_mut() {
                *v = (m + scale * (*v as f64 - m)) as f32;
            }
        }
    }
}

/// The factor that makes a band `[lo, hi]` about median `m` just reach `y`:
/// the smallest `s` with `m + s (lo - m) <= y <= m + s (hi - m)`
/// (infinite when the band has no width on `y`'s side).
pub fn needed_scale(m: f64, lo: f64, hi: f64, y: f64) -> f64 {
    let (dist, half) = if y >= m {
        (y - m, hi - m)
    } else {
        (m - y, m - lo)
    };
    if dist <= 0.0 {
        0.0
    } else if half > 0.0 {
        dist / half
    } else {
        f64::INFINITY
    }
}

/// The factor at which a share `coverage` of the windows is covered, from
/// each window's [`needed_scale`]: their `coverage` quantile (the smallest
/// value that at least that share does not exceed), raised by 0.01%.
pub fn fit_scale(mut needed: Vec<f64>, coverage: f64) -> Option<f64> {
    needed.retain(|s| !s.is_nan());
    if needed.is_empty() {
        return None;
    }
    needed.sort_by(f64::total_cmp);
    let k = ((coverage * needed.len() as f64).ceil() as usize).clamp(1, needed.len());
    // A hair above the k-th factor: that window's value sits exactly on the
    // band's edge, and the f32 rounding of the rescaled samples must not push
    // it out.
    let s = needed[k - 1] * (1.0 + 1e-4);
    s.is_finite().then_some(s.max(1e-6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(scales: Vec<f64>) -> Calibration {
        Calibration {
            method: METHOD.into(),
            scales,
            band: [0.05, 0.95],
            target_coverage: 0.9,
            fitted_on: serde_json::Value::Null,
        }
    }

    #[test]
    fn applying_scales_each_step_about_its_median() {
        // 2 steps x 4 samples; medians 2.5 and 10.
        let mut v = vec![1.0, 2.0, 3.0, 4.0, 10.0, 8.0, 12.0, 10.0];
        cal(vec![2.0, 0.5]).apply(&mut v, 4);
        assert_eq!(v, vec![-0.5, 1.5, 3.5, 5.5, 10.0, 9.0, 11.0, 10.0]);
        let mut one = vec![3.0, 4.0];
        cal(vec![2.0, 2.0]).apply(&mut one, 1);
        assert_eq!(one, vec![3.0, 4.0]);
    }

    #[test]
    fn needed_scales_and_the_fitted_quantile() {
        // Band 90..130 about 100: 120 needs 20/30, 80 needs 20/10 = 2.
        assert!((needed_scale(100.0, 90.0, 130.0, 120.0) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(needed_scale(100.0, 90.0, 130.0, 80.0), 2.0);
        assert_eq!(needed_scale(100.0, 90.0, 130.0, 100.0), 0.0);
        assert_eq!(needed_scale(100.0, 100.0, 130.0, 99.0), f64::INFINITY);
        let needed: Vec<f64> = (1..=10).map(f64::from).collect();
        // 90% of ten windows: the 9th smallest.
        assert_eq!(fit_scale(needed.clone(), 0.9), Some(9.0 * 1.0001));
        assert_eq!(fit_scale(needed, 0.5), Some(5.0 * 1.0001));
        assert_eq!(fit_scale(vec![], 0.9), None);
    }

    #[test]
    fn files_round_trip_and_bad_ones_are_refused() {
        let c = cal(vec![0.3, 1.2]);
        assert_eq!(Calibration::from_json(&c.to_json()).unwrap(), c);
        assert!(c.check_steps(2).is_ok());
        assert!(
            c.check_steps(12)
                .unwrap_err()
                .to_string()
                .contains("12 steps")
        );
        assert_ne!(c.digest(), cal(vec![0.3, 1.3]).digest());
        for bad in [
            r#"{"method":"isotonic","scales":[1.0],"band":[0.05,0.95],"target_coverage":0.9}"#,
            r#"{"method":"per_step_scale","scales":[0.0],"band":[0.05,0.95],"target_coverage":0.9}"#,
            r#"{"method":"per_step_scale","scales":[],"band":[0.05,0.95],"target_coverage":0.9}"#,
            r#"{"scales":[1.0]}"#,
        ] {
            assert!(Calibration::from_json(bad).is_err(), "{bad}");
        }
    }
}
