//! Batched inference: windows in, (N, len_pred, S) forecasts and (N, S)
//! log-variances out, in scaled units. Deterministic, or Monte Carlo dropout
//! with one seeded RNG stream per (window, sample) so results never depend
//! on batching; BatchNorm on running statistics or, as gluRPC runs it, on
//! batch statistics with each window repeated S times in groups of windows.

use candle_core::{Device, Tensor};

use super::ModelError;
use super::dropout::{NoDropout, RowRng, splitmix64};
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
                rows_pred.extend(p.flatten_all()?.to_vec1::<f32>()?);
                logvar.extend(lv.flatten_all()?.to_vec1::<f32>()?);
            }
            for j in 0..chunk.len() {
                for t in 0..steps {
                    pred.extend((0..s).map(|k| rows_pred[(j * s + k) * steps + t]));
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
