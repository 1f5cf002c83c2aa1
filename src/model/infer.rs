//! Batched inference: windows in, (N, len_pred, S) forecasts and (N, S)
//! log-variances out, in scaled units. Deterministic, or Monte Carlo dropout
//! with one seeded RNG stream per (window, sample) so results never depend
//! on batching; BatchNorm on running statistics or, as gluRPC runs it, on
//! batch statistics with each window repeated S times in groups of windows.

use candle_core::{Device, Tensor};

use super::ModelError;
use super::dropout::{NoDropout, Rng, RowRng, splitmix64};
use super::layers::BatchNormMode;
use super::network::{Gluformer, Inputs};

/// One window's scaled model inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelWindow {
    /// Static features (`num_static_features` values).
    pub static_features: Vec<f32>,
    /// Past target (`len_seq` values).
    pub past: Vec<f32>,
    /// Past covariates, `len_seq` rows of `num_dynamic_features`, row-major.
    pub past_covariates: Vec<f32>,
    /// Future covariates, `len_pred` rows of `num_dynamic_features`, row-major.
    pub future_covariates: Vec<f32>,
    /// Seed of this window's dropout streams (e.g. from the data and index).
    pub seed: u64,
}

/// How to run the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Dropout off, running statistics, one pass (S = 1).
    Deterministic,
    /// MC dropout with `samples` passes per window.
    MonteCarlo {
        /// Samples per window (S).
        samples: usize,
        /// BatchNorm statistics.
        batch_norm: BatchNormMode,
    },
}

/// Inference settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictOptions {
    /// Deterministic or MC dropout.
    pub mode: Mode,
    /// Windows per forward pass (gluRPC's `BATCH_SIZE`, 32). With batch
    /// statistics this is the grouping that fixes the statistics; with
    /// running statistics it only bounds memory.
    pub batch_windows: usize,
    /// Rows (window x sample) per forward pass when rows are independent
    /// (running statistics): bounds memory without changing results.
    pub max_rows: usize,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            mode: Mode::MonteCarlo {
                samples: 10,
                batch_norm: BatchNormMode::Running,
            },
            batch_windows: 32,
            max_rows: 64,
        }
    }
}

impl PredictOptions {
    /// Samples per window in the output.
    pub fn samples(&self) -> usize {
        match self.mode {
            Mode::Deterministic => 1,
            Mode::MonteCarlo { samples, .. } => samples,
        }
    }
}

/// Forecasts of N windows in scaled units.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Windows (N).
    pub windows: usize,
    /// Forecast steps (len_pred).
    pub steps: usize,
    /// Samples per window (S).
    pub samples: usize,
    /// (N, steps, S) row-major: `pred[(i * steps + t) * samples + s]`.
    pub pred: Vec<f32>,
    /// (N, S) row-major.
    pub logvar: Vec<f32>,
}

impl Forecast {
    /// The S samples of window `i` at step `t`.
    pub fn at(&self, i: usize, t: usize) -> &[f32] {
        let start = (i * self.steps + t) * self.samples;
        &self.pred[start..start + self.samples]
    }
}

/// The standard normal quantile (Acklam's rational approximation, relative
/// error below 1.2e-9) for `p` in (0, 1).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The standard normal draws of a window's `samples` sample paths,
/// stratified: the quantiles at `(j + 0.5) / samples` in an order shuffled
/// by the window's seed, so every window's draws are balanced (they sum to
/// zero and the median is not moved by the luck of the draw).
pub fn mixture_draws(seed: u64, samples: usize) -> Vec<f32> {
    let mut order: Vec<usize> = (0..samples).collect();
    let mut rng = Rng::new(splitmix64(seed ^ 0x4E01_5E00_0000_0001));
    for i in (1..samples).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    order
        .into_iter()
        .map(|j| normal_quantile((j as f64 + 0.5) / samples as f64) as f32)
        .collect()
}

/// The dropout seed of sample `s` of a window seeded `seed`.
pub fn row_seed(seed: u64, s: usize) -> u64 {
    splitmix64(seed ^ splitmix64(s as u64 ^ 0x005E_ED0F_D20F))
}

impl Gluformer {
    /// Checks one window's lengths against the config.
    fn check_window(&self, w: &ModelWindow) -> Result<(), ModelError> {
        let c = self.config();
        let fd = c.num_dynamic_features;
        let want = [
            (
                "static features",
                w.static_features.len(),
                c.num_static_features,
            ),
            ("past values", w.past.len(), c.len_seq),
            ("past covariates", w.past_covariates.len(), c.len_seq * fd),
            (
                "future covariates",
                w.future_covariates.len(),
                c.len_pred * fd,
            ),
        ];
        for (what, got, need) in want {
            if got != need {
                return Err(ModelError::Input(format!(
                    "window has {got} {what}, the model needs {need}"
                )));
            }
        }
        if w.past
            .iter()
            .chain(&w.past_covariates)
            .any(|v| !v.is_finite())
        {
            return Err(ModelError::Input("window holds a non-finite value".into()));
        }
        Ok(())
    }

    /// Builds the forward inputs for `rows`, each row a window index.
    pub fn inputs(&self, windows: &[ModelWindow], rows: &[usize]) -> Result<Inputs, ModelError> {
        let c = self.config();
        let (l, ll, lp, fd, fs) = (
            c.len_seq,
            c.label_len,
            c.len_pred,
            c.num_dynamic_features,
            c.num_static_features,
        );
        let b = rows.len();
        let ldec = ll + lp;
        let mut x_id = Vec::with_capacity(b * fs);
        let mut x_enc = Vec::with_capacity(b * l);
        let mut x_mark_enc = Vec::with_capacity(b * l * fd);
        let mut x_dec = Vec::with_capacity(b * ldec);
        let mut x_mark_dec = Vec::with_capacity(b * ldec * fd);
        for &r in rows {
            let w = &windows[r];
            x_id.extend_from_slice(&w.static_features);
            x_enc.extend_from_slice(&w.past);
            x_mark_enc.extend_from_slice(&w.past_covariates);
            x_dec.extend_from_slice(&w.past[l - ll..]);
            x_dec.extend(std::iter::repeat_n(0.0, lp));
            x_mark_dec.extend_from_slice(&w.past_covariates[(l - ll) * fd..]);
            x_mark_dec.extend_from_slice(&w.future_covariates);
        }
        let dev: &Device = self.device();
        Ok(Inputs {
            x_id: Tensor::from_vec(x_id, (b, fs), dev)?,
            x_enc: Tensor::from_vec(x_enc, (b, l, 1), dev)?,
            x_mark_enc: Tensor::from_vec(x_mark_enc, (b, l, fd), dev)?,
            x_dec: Tensor::from_vec(x_dec, (b, ldec, 1), dev)?,
            x_mark_dec: Tensor::from_vec(x_mark_dec, (b, ldec, fd), dev)?,
        })
    }

    /// Forecasts every window. Rows are (window, sample) pairs laid out
    /// window-major with each window's samples consecutive, as gluRPC's
    /// collate repeats them.
    pub fn predict(
        &self,
        windows: &[ModelWindow],
        opts: &PredictOptions,
    ) -> Result<Forecast, ModelError> {
        for w in windows {
            self.check_window(w)?;
        }
        let s = opts.samples();
        if s == 0 {
            return Err(ModelError::Input("at least one sample is needed".into()));
        }
        let steps = self.config().len_pred;
        let group = opts.batch_windows.max(1);
        let mut pred = Vec::with_capacity(windows.len() * steps * s);
        let mut logvar = Vec::with_capacity(windows.len() * s);
        let all: Vec<usize> = (0..windows.len()).collect();
        for chunk in all.chunks(group) {
            let pairs: Vec<(usize, usize)> = chunk
                .iter()
                .flat_map(|&i| (0..s).map(move |k| (i, k)))
                .collect();
            let per_pass = match opts.mode {
                Mode::MonteCarlo {
                    batch_norm: BatchNormMode::Batch,
                    ..
                } => pairs.len(),
                _ => opts.max_rows.max(1),
            };
            let mixture =
                self.config().mixture_samples && matches!(opts.mode, Mode::MonteCarlo { .. });
            // Each window's draws once (chunks hold consecutive window indices).
            let draws: Vec<Vec<f32>> = if mixture {
                chunk
                    .iter()
                    .map(|&i| mixture_draws(windows[i].seed, s))
                    .collect()
            } else {
                Vec::new()
            };
            // Row-major (row, step) with row = window * s + sample.
            let mut rows_pred = Vec::with_capacity(pairs.len() * steps);
            for part in pairs.chunks(per_pass) {
                let rows: Vec<usize> = part.iter().map(|p| p.0).collect();
                let inp = self.inputs(windows, &rows)?;
                let (p, lv) = match opts.mode {
                    Mode::Deterministic => {
                        self.forward(&inp, BatchNormMode::Running, &mut NoDropout, None)?
                    }
                    Mode::MonteCarlo { batch_norm, .. } => {
                        let seeds = part.iter().map(|&(i, k)| row_seed(windows[i].seed, k));
                        self.forward(&inp, batch_norm, &mut RowRng::new(seeds), None)?
                    }
                };
                let mut p = p.flatten_all()?.to_vec1::<f32>()?;
                let lv = lv.flatten_all()?.to_vec1::<f32>()?;
                if mixture {
                    for ((row, &(i, k)), v) in p.chunks_mut(steps).zip(part).zip(&lv) {
                        let shift = draws[i - chunk[0]][k] * (v / 2.0).exp();
                        row.iter_mut().for_each(|x| *x += shift);
                    }
                }
                rows_pred.extend(p);
                logvar.extend(lv);
            }
            for j in 0..chunk.len() {
                let at = pred.len();
                for t in 0..steps {
                    pred.extend((0..s).map(|k| rows_pred[(j * s + k) * steps + t]));
                }
                if let (Some(cal), Mode::MonteCarlo { .. }) = (self.calibration(), opts.mode) {
                    cal.apply(&mut pred[at..], s);
                }
            }
        }
        Ok(Forecast {
            windows: windows.len(),
            steps,
            samples: s,
            pred,
            logvar,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles_are_accurate() {
        for (p, z) in [
            (0.5, 0.0),
            (0.975, 1.959_963_985),
            (0.05, -1.644_853_627),
            (0.01, -2.326_347_874),
            (0.999, 3.090_232_306),
        ] {
            assert!((normal_quantile(p) - z).abs() < 1e-8, "{p}");
        }
    }

    #[test]
    fn mixture_draws_are_balanced_seeded_strata() {
        let a = mixture_draws(42, 10);
        assert_eq!(a, mixture_draws(42, 10));
        assert_ne!(a, mixture_draws(43, 10));
        assert!(a.iter().sum::<f32>().abs() < 1e-5);
        let mut sorted = a.clone();
        sorted.sort_by(f32::total_cmp);
        assert!((sorted[0] + 1.644_853_6).abs() < 1e-5 && (sorted[9] - 1.644_853_6).abs() < 1e-5);
        assert_eq!(mixture_draws(1, 1), vec![0.0]);
    }
}
