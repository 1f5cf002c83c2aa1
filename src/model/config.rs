//! Gluformer hyperparameters: the `config.json` beside the weights, with the
//! reference's names, its defaults and the sizes derived from it.

use serde::{Deserialize, Serialize};

use super::ModelError;

/// Rows of the stored positional table (`pos_emb`), fixed by the reference.
pub const POS_TABLE_ROWS: usize = 5000;

/// Gluformer hyperparameters (glucobench 0.4.1 constructor names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GluformerConfig {
    /// Model width D.
    pub d_model: usize,
    /// Attention heads H; the head width is `d_model / n_heads` (integer division).
    pub n_heads: usize,
    /// Feed-forward width F.
    pub d_fcn: usize,
    /// Encoder layers.
    pub num_enc_layers: usize,
    /// Decoder layers.
    pub num_dec_layers: usize,
    /// Input length L (96 in gluRPC).
    pub len_seq: usize,
    /// Decoder label length (the last `label_len` inputs start the decoder).
    pub label_len: usize,
    /// Forecast length (12 in gluRPC).
    pub len_pred: usize,
    /// Dynamic covariates per step (6 calendar features).
    pub num_dynamic_features: usize,
    /// Static covariates (1: the subject id).
    pub num_static_features: usize,
    /// Dropout probability of every dropout site.
    pub r_drop: f32,
    /// Activation: "relu", anything else is exact (erf) GELU as in the reference.
    pub activ: String,
    /// Distilling ConvLayers between encoder layers.
    pub distil: bool,
    /// glurpc extension: each MC sample also carries its pass's predicted
    /// spread (a seeded standard normal draw times `exp(logvar / 2)`, one
    /// draw per sample path), so the samples follow the Gaussian mixture the
    /// loss trains (Gluformer's predictive distribution), not dropout alone.
    /// Off for the published weights, which gluRPC samples by dropout only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mixture_samples: bool,
}

impl Default for GluformerConfig {
    /// gluRPC 0.6.3's configuration, used when a `.pth` comes without `config.json`.
    fn default() -> Self {
        GluformerConfig {
            d_model: 512,
            n_heads: 10,
            d_fcn: 1024,
            num_enc_layers: 2,
            num_dec_layers: 2,
            len_seq: 96,
            label_len: 32,
            len_pred: 12,
            num_dynamic_features: 6,
            num_static_features: 1,
            r_drop: 0.2,
            activ: "gelu".into(),
            distil: true,
            mixture_samples: false,
        }
    }
}

impl GluformerConfig {
    /// Parses and validates a `config.json` text. Extra keys that Hugging Face
    /// tooling adds (`model_type`, `architectures`, ...) are ignored.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let mut value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ModelError::Config(format!("config.json is not valid JSON: {e}")))?;
        if let Some(obj) = value.as_object_mut() {
            for extra in [
                "model_type",
                "architectures",
                "transformers_version",
                "glurpc",
            ] {
                obj.remove(extra);
            }
        }
        let cfg: GluformerConfig = serde_json::from_value(value)
            .map_err(|e| ModelError::Config(format!("config.json: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that the sizes make a network.
    pub fn validate(&self) -> Result<(), ModelError> {
        let positive = [
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("d_fcn", self.d_fcn),
            ("num_enc_layers", self.num_enc_layers),
            ("num_dec_layers", self.num_dec_layers),
            ("len_seq", self.len_seq),
            ("len_pred", self.len_pred),
            ("num_dynamic_features", self.num_dynamic_features),
            ("num_static_features", self.num_static_features),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(ModelError::Config(format!("{name} must be positive")));
            }
        }
        if self.n_heads > self.d_model {
            return Err(ModelError::Config(format!(
                "n_heads ({}) exceeds d_model ({}): the head width would be 0",
                self.n_heads, self.d_model
            )));
        }
        if self.label_len > self.len_seq {
            return Err(ModelError::Config(format!(
                "label_len ({}) exceeds len_seq ({})",
                self.label_len, self.len_seq
            )));
        }
        if self.len_seq >= POS_TABLE_ROWS || self.label_len + self.len_pred >= POS_TABLE_ROWS {
            return Err(ModelError::Config(format!(
                "sequences must be shorter than the {POS_TABLE_ROWS}-row positional table"
            )));
        }
        if !(0.0..1.0).contains(&self.r_drop) {
            return Err(ModelError::Config(format!(
                "r_drop must be in [0, 1), got {}",
                self.r_drop
            )));
        }
        Ok(())
    }

    /// Per-head width `d_model // n_heads`.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// Attention inner width `n_heads * head_dim` (not `d_model` when it does not divide).
    pub fn inner(&self) -> usize {
        self.n_heads * self.head_dim()
    }

    /// Decoder input length `label_len + len_pred`.
    pub fn dec_len(&self) -> usize {
        self.label_len + self.len_pred
    }

    /// True for ReLU, false for exact GELU.
    pub fn is_relu(&self) -> bool {
        self.activ == "relu"
    }

    /// Distilling ConvLayers in the encoder.
    pub fn num_conv_layers(&self) -> usize {
        if self.distil {
            self.num_enc_layers - 1
        } else {
            0
        }
    }

    /// Pretty JSON for `config.json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_sizes_match_the_reference() {
        let c = GluformerConfig::default();
        assert_eq!(c.head_dim(), 51);
        assert_eq!(c.inner(), 510);
        assert_eq!(c.dec_len(), 44);
        assert_eq!(c.num_conv_layers(), 1);
    }

    #[test]
    fn config_json_round_trips_and_rejects_nonsense() {
        let c = GluformerConfig::default();
        assert_eq!(GluformerConfig::from_json(&c.to_json()).unwrap(), c);
        let bad = c.to_json().replace("\"n_heads\": 10", "\"n_heads\": 0");
        assert!(matches!(
            GluformerConfig::from_json(&bad),
            Err(ModelError::Config(_))
        ));
        let typo = c.to_json().replace("\"d_fcn\"", "\"d_fnc\"");
        let err = GluformerConfig::from_json(&typo).unwrap_err().to_string();
        assert!(err.contains("d_fnc"), "{err}");
        assert!(GluformerConfig::from_json("{").is_err());
    }
}
