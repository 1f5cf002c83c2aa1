//! Hyperparameters read back from a state dict's shapes, for weights that come
//! without a `config.json` (`glurpc model convert`), and a one-line account of
//! where weights and a config disagree.
//!
//! The shapes fix `d_model`, `d_fcn`, the layer counts, `distil` (when there is
//! more than one encoder layer), `len_seq` and the feature counts. They fix
//! `n_heads` only up to the attention width `n_heads * (d_model / n_heads)`;
//! `label_len`, `len_pred`, `r_drop` and `activ` leave no trace in the weights.

use super::ModelError;
use super::config::GluformerConfig;
use super::weights::{self, StateDict};

/// The reference's head count, preferred among the counts the weights allow.
const REFERENCE_HEADS: usize = 10;

/// A config inferred from a state dict.
#[derive(Debug, Clone, PartialEq)]
pub struct Inferred {
    /// Every size the weights fix, the reference default for the rest.
    pub config: GluformerConfig,
    /// The head counts that give the weights' attention width (ascending);
    /// `config.n_heads` is the one closest to the reference's 10.
    pub n_heads_fits: Vec<usize>,
}

impl Inferred {
    /// One line saying what the weights did not fix and what was used.
    pub fn note(&self) -> String {
        let c = &self.config;
        let heads = if self.n_heads_fits.len() == 1 {
            String::new()
        } else {
            let fits: Vec<String> = self.n_heads_fits.iter().map(|h| h.to_string()).collect();
            format!("n_heads {} (any of {} fits), ", c.n_heads, fits.join(", "))
        };
        format!(
            "the weights do not fix {heads}label_len {}, len_pred {}, r_drop {}, activ {}: \
             check them in config.json or pass --config FILE",
            c.label_len, c.len_pred, c.r_drop, c.activ
        )
    }
}

/// Size `axis` of tensor `key`, if present with that many axes.
fn dim(sd: &StateDict, key: &str, axis: usize) -> Option<usize> {
    sd.get(key).and_then(|t| t.dims().get(axis).copied())
}

/// The first of `keys` present, its size `axis`.
fn first_dim(sd: &StateDict, keys: &[&str], axis: usize) -> Option<usize> {
    keys.iter().find_map(|k| dim(sd, k, axis))
}

/// Number of layers under `prefix` (`prefix.N.…`): the highest N plus one.
fn layers(sd: &StateDict, prefix: &str) -> usize {
    sd.keys()
        .filter_map(|k| {
            k.strip_prefix(prefix)?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .map(|n| n + 1)
        .max()
        .unwrap_or(0)
}

/// The sizes a state dict shows, each `None` when its key is absent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sizes {
    d_model: Option<usize>,
    d_fcn: Option<usize>,
    inner: Option<usize>,
    enc: usize,
    dec: usize,
    conv: usize,
    len_seq: Option<usize>,
    dynamic: Option<usize>,
    statics: Option<usize>,
}

impl Sizes {
    fn read(sd: &StateDict) -> Sizes {
        Sizes {
            d_model: dim(sd, "projection.weight", 1)
                .or_else(|| first_dim(sd, &["encoder.norm.weight", "decoder.norm.weight"], 0)),
            d_fcn: first_dim(
                sd,
                &[
                    "encoder.enc_layers.0.conv1.weight",
                    "decoder.layers.0.conv1.weight",
                ],
                0,
            ),
            inner: first_dim(
                sd,
                &[
                    "encoder.enc_layers.0.att.proj_q.weight",
                    "decoder.layers.0.self_att.proj_q.weight",
                ],
                0,
            ),
            enc: layers(sd, "encoder.enc_layers."),
            dec: layers(sd, "decoder.layers."),
            conv: layers(sd, "encoder.conv_layers."),
            len_seq: dim(sd, "var.proj2.weight", 1).and_then(|n| n.checked_sub(1)),
            dynamic: dim(sd, "enc_embedding.time_embedding.embed.weight", 1),
            statics: dim(sd, "enc_embedding.subject_embedding.id_embedding.weight", 1),
        }
    }
}

/// Head counts `h` with `h * (d_model / h) == inner`, ascending.
fn heads_fitting(d_model: usize, inner: usize) -> Vec<usize> {
    (1..=d_model)
        .filter(|h| h * (d_model / h) == inner)
        .collect()
}

/// Reads the config from the weights' shapes and checks the weights against
/// it. Fails in one line when the weights are not a Gluformer state dict.
pub fn infer(sd: &StateDict) -> Result<Inferred, ModelError> {
    let s = Sizes::read(sd);
    let need = |v: Option<usize>, what: &str| {
        v.ok_or_else(|| {
            ModelError::Mismatch(format!(
                "cannot read {what} from the weights (not a Gluformer state dict?); pass --config FILE"
            ))
        })
    };
    let d_model = need(s.d_model, "d_model")?;
    let inner = need(s.inner, "the attention width")?;
    let defaults = GluformerConfig::default();
    let n_heads_fits = heads_fitting(d_model, inner);
    let n_heads = n_heads_fits
        .iter()
        .copied()
        .min_by_key(|h| (h.abs_diff(REFERENCE_HEADS), *h))
        .ok_or_else(|| {
            ModelError::Mismatch(format!(
                "no head count gives attention width {inner} with d_model {d_model}; pass --config FILE"
            ))
        })?;
    let config = GluformerConfig {
        d_model,
        n_heads,
        d_fcn: need(s.d_fcn, "d_fcn")?,
        num_enc_layers: s.enc,
        num_dec_layers: s.dec,
        len_seq: need(s.len_seq, "len_seq")?,
        num_dynamic_features: need(s.dynamic, "num_dynamic_features")?,
        num_static_features: need(s.statics, "num_static_features")?,
        // Without distilling layers a model of several encoder layers was
        // built with distil off; with one encoder layer it makes no difference.
        distil: s.conv > 0 || s.enc <= 1,
        ..defaults
    };
    config.validate().map_err(|e| {
        ModelError::Mismatch(format!("{e} (read from the weights); pass --config FILE"))
    })?;
    weights::check(sd, &config)
        .map_err(|e| ModelError::Mismatch(summary(&e, "the inferred sizes")))?;
    Ok(Inferred {
        config,
        n_heads_fits,
    })
}

/// One line (well under 300 characters) on why `sd` does not fit `cfg`
/// (named `cfg_name`): the sizes that differ, or else the first key of each
/// kind of problem, and `--config`.
pub fn mismatch(sd: &StateDict, cfg: &GluformerConfig, cfg_name: &str) -> String {
    let s = Sizes::read(sd);
    let mut diffs = Vec::new();
    let mut cmp = |name: &str, weights: Option<usize>, config: usize| {
        if let Some(w) = weights.filter(|w| *w != config) {
            diffs.push(format!("{name} {w} vs {config}"));
        }
    };
    cmp("d_model", s.d_model, cfg.d_model);
    cmp("d_fcn", s.d_fcn, cfg.d_fcn);
    cmp("attention width", s.inner, cfg.inner());
    cmp("num_enc_layers", Some(s.enc), cfg.num_enc_layers);
    cmp("num_dec_layers", Some(s.dec), cfg.num_dec_layers);
    cmp("distilling layers", Some(s.conv), cfg.num_conv_layers());
    cmp("len_seq", s.len_seq, cfg.len_seq);
    cmp("num_dynamic_features", s.dynamic, cfg.num_dynamic_features);
    cmp("num_static_features", s.statics, cfg.num_static_features);
    let what = if diffs.is_empty() {
        match weights::check(sd, cfg) {
            Err(e) => summary(&e, cfg_name),
            Ok(()) => format!("the weights fit {cfg_name}"),
        }
    } else {
        format!(
            "the weights do not fit {cfg_name}: {} (weights vs config)",
            diffs.join(", ")
        )
    };
    format!("{what}; pass --config FILE with the config the weights were trained with")
}

/// A strict-check failure in one line: counts and the first key of each kind.
fn summary(e: &ModelError, against: &str) -> String {
    let ModelError::StateDict {
        missing,
        unexpected,
        mis_shaped,
    } = e
    else {
        return e.to_string();
    };
    let mut parts = Vec::new();
    for (n, kind, first) in [
        (missing.len(), "missing", missing.first()),
        (unexpected.len(), "unexpected", unexpected.first()),
        (mis_shaped.len(), "mis-shaped", mis_shaped.first()),
    ] {
        if let Some(first) = first {
            let first: String = first.chars().take(80).collect();
            parts.push(format!("{n} {kind} (first: {first})"));
        }
    }
    format!(
        "the weights do not fit {against}: {} keys",
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::init::random_state_dict;

    #[test]
    fn sizes_come_back_from_random_weights() {
        for cfg in [
            GluformerConfig::default(),
            GluformerConfig {
                d_model: 64,
                n_heads: 4,
                d_fcn: 96,
                num_enc_layers: 3,
                num_dec_layers: 1,
                len_seq: 48,
                num_dynamic_features: 4,
                num_static_features: 2,
                distil: false,
                ..GluformerConfig::default()
            },
        ] {
            let sd = random_state_dict(&cfg, 1).unwrap();
            let got = infer(&sd).unwrap();
            assert!(got.n_heads_fits.contains(&cfg.n_heads), "{got:?}");
            let mut want = cfg.clone();
            want.n_heads = got.config.n_heads;
            assert_eq!(got.config, want);
            assert_eq!(got.config.inner(), cfg.inner());
        }
        // The reference's 512/10 comes back as 10, the count it prefers.
        let sd = random_state_dict(&GluformerConfig::default(), 1).unwrap();
        assert_eq!(infer(&sd).unwrap().config.n_heads, 10);
    }

    #[test]
    fn head_counts_fitting_a_width() {
        assert_eq!(heads_fitting(32, 30), vec![3, 5, 6, 10, 15, 30]);
        assert_eq!(heads_fitting(8, 8), vec![1, 2, 4, 8]);
        assert!(heads_fitting(32, 7).is_empty());
    }

    #[test]
    fn a_mismatch_is_one_short_line() {
        let small = GluformerConfig {
            d_model: 32,
            n_heads: 3,
            d_fcn: 64,
            num_enc_layers: 3,
            ..GluformerConfig::default()
        };
        let sd = random_state_dict(&small, 1).unwrap();
        let msg = mismatch(&sd, &GluformerConfig::default(), "config.json");
        assert!(msg.len() < 300, "{msg}");
        assert!(
            msg.contains("d_model 32 vs 512") && msg.contains("--config"),
            "{msg}"
        );
        let mut sd = sd;
        sd.remove("projection.bias");
        let msg = mismatch(&sd, &small, "config.json");
        assert!(msg.contains("1 missing (first: projection.bias)"), "{msg}");
        assert!(msg.len() < 300, "{msg}");
    }
}
