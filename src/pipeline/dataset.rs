//! The model dataset (gluRPC's `create_inference_dataset_fast_local` with
//! glucobench 0.4.1): the glucose series on a regular 5-minute grid, six
//! calendar covariates, per-request min-max scaling in float32, windows of
//! 96 inputs + 12 outputs with negative indexing, and the forward window.

use chrono::{DateTime, Datelike, Timelike};

use super::PipelineError;

/// Input points per window.
pub const INPUT_LEN: usize = 96;
/// Output points per window.
pub const OUTPUT_LEN: usize = 12;
/// Number of calendar covariates (day, month, year, hour, minute, second).
pub const NUM_COVARIATES: usize = 6;
/// The grid step, in milliseconds.
pub const STEP_MS: i64 = 5 * 60_000;
/// glucobench splits segments at gaps over 45 minutes...
const GAP_THRESHOLD_MINUTES: i64 = 45;
/// ...and drops segments shorter than 12 points.
const MIN_DROP_LENGTH: usize = 12;

/// sklearn `MinMaxScaler` parameters per feature: `x' = x * scale + min`.
#[derive(Debug, Clone, PartialEq)]
pub struct MinMax {
    /// Additive term per feature (`min_`).
    pub min: Vec<f32>,
    /// Multiplicative term per feature (`scale_`).
    pub scale: Vec<f32>,
}

impl MinMax {
    /// Fits on rows of `width` features, a zero range counting as 1 (float32).
    fn fit(rows: &[&[f32]], width: usize) -> Self {
        let mut lo = vec![f32::INFINITY; width];
        let mut hi = vec![f32::NEG_INFINITY; width];
        for r in rows {
            for j in 0..width {
                lo[j] = lo[j].min(r[j]);
                hi[j] = hi[j].max(r[j]);
            }
        }
        let mut min = vec![0.0; width];
        let mut scale = vec![1.0; width];
        for j in 0..width {
            let range = hi[j] - lo[j];
            // sklearn's _handle_zeros_in_scale: ranges below 10 * eps count as zero.
            let range = if range < 10.0 * f32::EPSILON {
                1.0
            } else {
                range
            };
            scale[j] = 1.0 / range;
            min[j] = -lo[j] * scale[j];
        }
        MinMax { min, scale }
    }

    /// Scales feature `j`.
    pub fn apply(&self, j: usize, x: f32) -> f32 {
        x * self.scale[j] + self.min[j]
    }

    /// Inverse of [`MinMax::apply`].
    pub fn invert(&self, j: usize, y: f32) -> f32 {
        (y - self.min[j]) / self.scale[j]
    }
}

/// The six raw calendar values of a naive timestamp, as float32.
pub fn calendar(t: i64) -> [f32; NUM_COVARIATES] {
    let d = DateTime::from_timestamp_millis(t)
        .map(|d| d.naive_utc())
        .unwrap_or_default();
    [
        d.day() as f32,
        d.month() as f32,
        d.year() as f32,
        d.hour() as f32,
        d.minute() as f32,
        d.second() as f32,
    ]
}

/// One regular segment of the series.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Grid times (ms).
    pub times: Vec<i64>,
    /// Glucose (mg/dL, float32).
    pub glucose: Vec<f32>,
}

/// The scaled dataset of one request.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Segments, in time order.
    pub segments: Vec<Segment>,
    /// Target (glucose) scaler.
    pub target_scaler: MinMax,
    /// Covariate scaler.
    pub covariate_scaler: MinMax,
    /// The static id feature (label-encoded sequence: 0.0).
    pub static_id: f32,
}

/// The model inputs of one window, scaled.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowInputs {
    /// Past target, `INPUT_LEN` values.
    pub past_target: Vec<f32>,
    /// Past covariates, `INPUT_LEN` rows of `NUM_COVARIATES`.
    pub past_covariates: Vec<[f32; NUM_COVARIATES]>,
    /// Future covariates, `OUTPUT_LEN` rows.
    pub future_covariates: Vec<[f32; NUM_COVARIATES]>,
    /// Static covariates (one value).
    pub static_covariates: [f32; 1],
    /// Scaled true future target, when measured (`None` for a forward forecast).
    pub future_target: Option<Vec<f32>>,
    /// Times of the input points.
    pub input_times: Vec<i64>,
    /// Times of the output points.
    pub output_times: Vec<i64>,
}

/// glucobench's `interpolate`: split at gaps over 45 minutes, drop segments
/// under 12 points, reindex each to the 5-minute grid with linear interpolation.
fn regular_segments(series: &[(i64, f32)]) -> Result<Vec<Segment>, PipelineError> {
    let mut segments = Vec::new();
    let mut start = 0;
    for i in 1..=series.len() {
        let split =
            i == series.len() || (series[i].0 - series[i - 1].0) / 60_000 > GAP_THRESHOLD_MINUTES;
        if !split {
            continue;
        }
        let part = &series[start..i];
        start = i;
        if part.len() < MIN_DROP_LENGTH {
            continue;
        }
        if part.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(PipelineError::Dataset(
                "duplicate times in a segment".into(),
            ));
        }
        let (t0, t1) = (part[0].0, part[part.len() - 1].0);
        let mut times = Vec::new();
        let mut glucose = Vec::new();
        let mut k = 0;
        let mut t = t0;
        while t <= t1 {
            while k + 1 < part.len() && part[k + 1].0 <= t {
                k += 1;
            }
            let (ta, ga) = part[k];
            let g = if ta == t || k + 1 >= part.len() {
                ga
            } else {
                let (tb, gb) = part[k + 1];
                let r = (t - ta) as f64 / (tb - ta) as f64;
                (ga as f64 + r * (gb as f64 - ga as f64)) as f32
            };
            times.push(t);
            glucose.push(g);
            t += STEP_MS;
        }
        segments.push(Segment { times, glucose });
    }
    if segments.is_empty() {
        return Err(PipelineError::Dataset(
            "no segment of at least 12 points".into(),
        ));
    }
    Ok(segments)
}

impl Dataset {
    /// Builds the dataset from the glucose series (time, mg/dL).
    pub fn build(series: &[(i64, Option<f64>)]) -> Result<Self, PipelineError> {
        let values: Vec<(i64, f32)> = series
            .iter()
            .filter_map(|(t, g)| Some((*t, (*g)? as f32)))
            .collect();
        let segments = regular_segments(&values)?;
        let targets: Vec<[f32; 1]> = segments
            .iter()
            .flat_map(|s| s.glucose.iter().map(|g| [*g]))
            .collect();
        let covs: Vec<[f32; NUM_COVARIATES]> = segments
            .iter()
            .flat_map(|s| s.times.iter().map(|t| calendar(*t)))
            .collect();
        let target_rows: Vec<&[f32]> = targets.iter().map(|r| r.as_slice()).collect();
        let cov_rows: Vec<&[f32]> = covs.iter().map(|r| r.as_slice()).collect();
        Ok(Dataset {
            target_scaler: MinMax::fit(&target_rows, 1),
            covariate_scaler: MinMax::fit(&cov_rows, NUM_COVARIATES),
            segments,
            static_id: 0.0,
        })
    }

    /// Number of points over all segments (L).
    pub fn points(&self) -> usize {
        self.segments.iter().map(|s| s.times.len()).sum()
    }

    /// Number of windows (N = L - 107 for one segment).
    pub fn len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| (s.times.len() + 1).saturating_sub(INPUT_LEN + OUTPUT_LEN))
            .sum()
    }

    /// True when no window can be formed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn scaled_cov(&self, t: i64) -> [f32; NUM_COVARIATES] {
        let c = calendar(t);
        std::array::from_fn(|j| self.covariate_scaler.apply(j, c[j]))
    }

    /// The window at a user index: 0 is the last window, -(N-1) the first.
    pub fn window(&self, index: i64) -> Result<WindowInputs, PipelineError> {
        let n = self.len() as i64;
        if n == 0 {
            return Err(PipelineError::Dataset(
                "no window: fewer than 108 points".into(),
            ));
        }
        if index > 0 || index < -(n - 1) {
            return Err(PipelineError::BadIndex {
                index,
                windows: n as usize,
            });
        }
        let mut flat = (index + n - 1) as usize;
        for seg in &self.segments {
            let count = (seg.times.len() + 1).saturating_sub(INPUT_LEN + OUTPUT_LEN);
            if flat >= count {
                flat -= count;
                continue;
            }
            let s = flat;
            let scale_t = |g: &f32| self.target_scaler.apply(0, *g);
            return Ok(WindowInputs {
                past_target: seg.glucose[s..s + INPUT_LEN].iter().map(scale_t).collect(),
                past_covariates: seg.times[s..s + INPUT_LEN]
                    .iter()
                    .map(|t| self.scaled_cov(*t))
                    .collect(),
                future_covariates: seg.times[s + INPUT_LEN..s + INPUT_LEN + OUTPUT_LEN]
                    .iter()
                    .map(|t| self.scaled_cov(*t))
                    .collect(),
                static_covariates: [self.static_id],
                future_target: Some(
                    seg.glucose[s + INPUT_LEN..s + INPUT_LEN + OUTPUT_LEN]
                        .iter()
                        .map(scale_t)
                        .collect(),
                ),
                input_times: seg.times[s..s + INPUT_LEN].to_vec(),
                output_times: seg.times[s + INPUT_LEN..s + INPUT_LEN + OUTPUT_LEN].to_vec(),
            });
        }
        Err(PipelineError::BadIndex {
            index,
            windows: n as usize,
        })
    }

    /// The forward window: the last 96 points as input and the 12 grid times
    /// after the last reading as the horizon (covariates computed for them).
    pub fn forward(&self) -> Result<WindowInputs, PipelineError> {
        let seg = self
            .segments
            .last()
            .filter(|s| s.times.len() >= INPUT_LEN)
            .ok_or_else(|| {
                PipelineError::Dataset(format!("a forward forecast needs {INPUT_LEN} points"))
            })?;
        let s = seg.times.len() - INPUT_LEN;
        let last = seg.times[seg.times.len() - 1];
        let output_times: Vec<i64> = (1..=OUTPUT_LEN as i64)
            .map(|k| last + k * STEP_MS)
            .collect();
        Ok(WindowInputs {
            past_target: seg.glucose[s..]
                .iter()
                .map(|g| self.target_scaler.apply(0, *g))
                .collect(),
            past_covariates: seg.times[s..].iter().map(|t| self.scaled_cov(*t)).collect(),
            future_covariates: output_times.iter().map(|t| self.scaled_cov(*t)).collect(),
            static_covariates: [self.static_id],
            future_target: None,
            input_times: seg.times[s..].to_vec(),
            output_times,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-01-10 00:00:00 UTC.
    const START: i64 = 1_704_844_800_000;

    fn series(start: i64, n: usize) -> Vec<(i64, Option<f64>)> {
        (0..n)
            .map(|i| (start + i as i64 * STEP_MS, Some(100.0 + (i % 37) as f64)))
            .collect()
    }

    #[test]
    fn forward_window_uses_the_last_points_and_the_next_grid_times() {
        let data = series(START, 200);
        let last = data[199].0;
        let ds = Dataset::build(&data).unwrap();
        let fw = ds.forward().unwrap();
        assert_eq!(
            fw.input_times,
            data[104..].iter().map(|p| p.0).collect::<Vec<_>>()
        );
        let expected: Vec<i64> = (1..=12).map(|k| last + k * STEP_MS).collect();
        assert_eq!(fw.output_times, expected);
        assert!(fw.future_target.is_none());
        for (t, g) in fw.input_times.iter().zip(&fw.past_target) {
            let raw = data.iter().find(|p| p.0 == *t).unwrap().1.unwrap() as f32;
            assert_eq!(*g, ds.target_scaler.apply(0, raw));
        }
        // Covariates are the scaled calendar of the future times themselves.
        for (t, c) in expected.iter().zip(&fw.future_covariates) {
            let raw = calendar(*t);
            for j in 0..NUM_COVARIATES {
                assert_eq!(c[j], ds.covariate_scaler.apply(j, raw[j]));
            }
        }
        // The last measured window ends where the forward window starts its horizon.
        let w0 = ds.window(0).unwrap();
        assert_eq!(*w0.output_times.last().unwrap(), last);
        assert_eq!(w0.input_times[0] + STEP_MS * 12, fw.input_times[0]);
    }

    #[test]
    fn forward_horizon_crosses_midnight_and_month_end() {
        // Last reading 2024-03-31 23:55:00 UTC.
        let last = DateTime::parse_from_rfc3339("2024-03-31T23:55:00Z")
            .unwrap()
            .timestamp_millis();
        let data = series(last - 199 * STEP_MS, 200);
        let ds = Dataset::build(&data).unwrap();
        let fw = ds.forward().unwrap();
        let first = calendar(fw.output_times[0]);
        assert_eq!(first, [1.0, 4.0, 2024.0, 0.0, 0.0, 0.0]);
        // Day and month took one value each in the input (31 and 3), so their
        // range counts as 1 and the horizon's values extrapolate rather than
        // clip, as sklearn does: day 1 -> 1 - 31 = -30, month 4 -> 4 - 3 = 1.
        assert_eq!(fw.future_covariates[0][0], -30.0);
        assert_eq!(fw.future_covariates[0][1], 1.0);
        assert_eq!(
            fw.future_covariates[11][4],
            ds.covariate_scaler.apply(4, 55.0)
        );
    }

    #[test]
    fn forward_needs_96_points_in_the_last_segment() {
        let mut data = series(0, 200);
        // A 50-minute gap leaves a last segment of 60 points.
        for p in data.iter_mut().skip(140) {
            p.0 += 50 * 60_000;
        }
        let ds = Dataset::build(&data).unwrap();
        assert_eq!(ds.segments.len(), 2);
        assert!(matches!(ds.forward(), Err(PipelineError::Dataset(_))));
        // Measured windows still exist in the first segment.
        assert_eq!(ds.len(), 140 + 1 - 108);
    }

    #[test]
    fn scaler_inverse_round_trips_and_zero_range_counts_as_one() {
        let flat: Vec<(i64, Option<f64>)> = (0..120).map(|i| (i * STEP_MS, Some(140.0))).collect();
        let ds = Dataset::build(&flat).unwrap();
        assert_eq!(ds.target_scaler.scale[0], 1.0);
        assert_eq!(ds.target_scaler.apply(0, 140.0), 0.0);
        let ds = Dataset::build(&series(0, 150)).unwrap();
        for g in [40.0f32, 100.0, 136.0, 400.0] {
            let back = ds.target_scaler.invert(0, ds.target_scaler.apply(0, g));
            assert!((back - g).abs() < 1e-3, "{g} -> {back}");
        }
    }
}
