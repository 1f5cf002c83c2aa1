//! The Gluformer network: encoder/decoder layers, the forward pass in the
//! reference's order (so dropout calls come in torch's order), and loading
//! from a strictly checked state dict.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use super::ModelError;
use super::attention::Attention;
use super::calibration::Calibration;
use super::config::GluformerConfig;
use super::dropout::MaskSource;
use super::layers::{
    BatchNormMode, ConvLayer, DataEmbedding, FeedForward, LayerNorm, Linear, Ops, Rows, Variance,
    Weights, dropout,
};
use super::weights::{self, StateDict};

/// Model inputs of one forward pass (all f32, on the model's device).
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Static features (B, Fs).
    pub x_id: Tensor,
    /// Past target (B, L, 1).
    pub x_enc: Tensor,
    /// Past covariates (B, L, Fd).
    pub x_mark_enc: Tensor,
    /// Decoder target: last `label_len` inputs then zeros (B, Ldec, 1).
    pub x_dec: Tensor,
    /// Decoder covariates (B, Ldec, Fd).
    pub x_mark_dec: Tensor,
}

/// Activations recorded by module name (the torch module paths).
pub type Capture = HashMap<String, Tensor>;

/// Per-channel batch mean and biased variance of each distilling ConvLayer's
/// BatchNorm input, in layer order (training updates the running statistics
/// from them).
pub type BatchStats = Vec<(Tensor, Tensor)>;

#[derive(Debug, Clone)]
struct EncoderLayer {
    att: Attention,
    ffn: FeedForward,
    norm1: LayerNorm,
    norm2: LayerNorm,
    p: f32,
}

impl EncoderLayer {
    fn forward(&self, x: &Tensor, masks: &mut dyn MaskSource) -> Result<Tensor, ModelError> {
        let a = self.att.forward(x, x, masks, None)?;
        let x1 = self
            .norm1
            .forward_add(x, &dropout(a, masks, self.p, false, None)?)?;
        let h = self.ffn.forward(&x1, masks, None)?;
        self.norm2.forward_add(&x1, &h)
    }
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    self_att: Attention,
    cross_att: Attention,
    ffn: FeedForward,
    norm1: LayerNorm,
    norm2: LayerNorm,
    norm3: LayerNorm,
}

impl DecoderLayer {
    /// With `keep`, only the last `keep` token rows are computed (keys and
    /// values of the self-attention still see every row).
    fn forward(
        &self,
        y: &Tensor,
        enc: &Tensor,
        masks: &mut dyn MaskSource,
        keep: Option<usize>,
    ) -> Result<Tensor, ModelError> {
        let t = y.dim(1)?;
        let rows = keep.filter(|k| *k < t).map(|k| Rows {
            full: t,
            start: t - k,
        });
        let yq = match rows {
            Some(r) => y.narrow(1, r.start, t - r.start)?,
            None => y.clone(),
        };
        let y1 = self
            .norm1
            .forward_add(&yq, &self.self_att.forward(&yq, y, masks, rows)?)?;
        let y2 = self
            .norm2
            .forward_add(&y1, &self.cross_att.forward(&y1, enc, masks, rows)?)?;
        let h = self.ffn.forward(&y2, masks, rows)?;
        self.norm3.forward_add(&y2, &h)
    }
}

/// A loaded Gluformer.
#[derive(Debug, Clone)]
pub struct Gluformer {
    cfg: GluformerConfig,
    device: Device,
    enc_embedding: DataEmbedding,
    dec_embedding: DataEmbedding,
    enc_layers: Vec<EncoderLayer>,
    conv_layers: Vec<ConvLayer>,
    enc_norm: LayerNorm,
    dec_layers: Vec<DecoderLayer>,
    dec_norm: LayerNorm,
    projection: Linear,
    var: Variance,
    calibration: Option<Calibration>,
}

impl Gluformer {
    /// Builds the network from a state dict after a strict check against `cfg`.
    pub fn from_state_dict(
        sd: StateDict,
        cfg: GluformerConfig,
        device: &Device,
    ) -> Result<Self, ModelError> {
        Self::build(sd, cfg, device, Ops::Fast)
    }

    /// As [`Gluformer::from_state_dict`], running the layers with `ops`
    /// ([`Ops::Autograd`] lets gradients reach the state dict's variables).
    pub fn build(
        sd: StateDict,
        cfg: GluformerConfig,
        device: &Device,
        ops: Ops,
    ) -> Result<Self, ModelError> {
        cfg.validate()?;
        weights::check(&sd, &cfg)?;
        let sd = weights::to_f32(sd, device)?;
        let sd = &Weights { sd: &sd, ops };
        let p = cfg.r_drop;
        let (h, dk, relu) = (cfg.n_heads, cfg.head_dim(), cfg.is_relu());
        let ln = |k: &str| LayerNorm::load(sd, k);
        let enc_layers = (0..cfg.num_enc_layers)
            .map(|l| {
                let pre = format!("encoder.enc_layers.{l}");
                Ok(EncoderLayer {
                    att: Attention::load(sd, &format!("{pre}.att"), h, dk, false, p)?,
                    ffn: FeedForward::load(sd, &pre, relu, p)?,
                    norm1: ln(&format!("{pre}.norm1"))?,
                    norm2: ln(&format!("{pre}.norm2"))?,
                    p,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let conv_layers = (0..cfg.num_conv_layers())
            .map(|l| ConvLayer::load(sd, &format!("encoder.conv_layers.{l}")))
            .collect::<Result<Vec<_>, _>>()?;
        let dec_layers = (0..cfg.num_dec_layers)
            .map(|l| {
                let pre = format!("decoder.layers.{l}");
                Ok(DecoderLayer {
                    self_att: Attention::load(sd, &format!("{pre}.self_att"), h, dk, true, p)?,
                    cross_att: Attention::load(sd, &format!("{pre}.cross_att"), h, dk, false, p)?,
                    ffn: FeedForward::load(sd, &pre, relu, p)?,
                    norm1: ln(&format!("{pre}.norm1"))?,
                    norm2: ln(&format!("{pre}.norm2"))?,
                    norm3: ln(&format!("{pre}.norm3"))?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let net = Gluformer {
            enc_embedding: DataEmbedding::load(sd, "enc_embedding", p)?,
            dec_embedding: DataEmbedding::load(sd, "dec_embedding", p)?,
            enc_layers,
            conv_layers,
            enc_norm: ln("encoder.norm")?,
            dec_layers,
            dec_norm: ln("decoder.norm")?,
            projection: Linear::load(sd, "projection")?,
            var: Variance::load(sd, "var", p)?,
            calibration: None,
            device: device.clone(),
            cfg,
        };
        // On CUDA the uploads above are queued on this thread's stream (candle
        // uses the per-thread default stream) and the model threads that read
        // the weights run on their own: let the uploads finish here.
        device.synchronize()?;
        Ok(net)
    }

    /// The hyperparameters.
    pub fn config(&self) -> &GluformerConfig {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Attaches (or with `None` removes) a per-step calibration of the MC
    /// samples, after checking it against the forecast length.
    pub fn with_calibration(mut self, cal: Option<Calibration>) -> Result<Self, ModelError> {
        if let Some(c) = &cal {
            c.validate()?;
            c.check_steps(self.cfg.len_pred)?;
        }
        self.calibration = cal;
        Ok(self)
    }

    /// The calibration applied to MC samples, if any.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_ref()
    }

    /// One forward pass: `pred` (B, len_pred, 1) and `logvar` (B, 1, 1).
    /// Dropout masks come from `masks` in the reference's call order; with
    /// `capture`, block outputs are recorded under their torch module names.
    pub fn forward(
        &self,
        inp: &Inputs,
        bn: BatchNormMode,
        masks: &mut dyn MaskSource,
        capture: Option<&mut Capture>,
    ) -> Result<(Tensor, Tensor), ModelError> {
        self.run(inp, bn, masks, capture, None)
    }

    /// A training pass: BatchNorm on batch statistics, which are returned
    /// with `pred` and `logvar`.
    pub fn forward_train(
        &self,
        inp: &Inputs,
        masks: &mut dyn MaskSource,
    ) -> Result<(Tensor, Tensor, BatchStats), ModelError> {
        let mut stats = BatchStats::new();
        let (pred, logvar) = self.run(inp, BatchNormMode::Batch, masks, None, Some(&mut stats))?;
        Ok((pred, logvar, stats))
    }

    fn run(
        &self,
        inp: &Inputs,
        bn: BatchNormMode,
        masks: &mut dyn MaskSource,
        mut capture: Option<&mut Capture>,
        mut stats: Option<&mut BatchStats>,
    ) -> Result<(Tensor, Tensor), ModelError> {
        let capturing = capture.is_some();
        let mut keep = |name: String, t: &Tensor| {
            if let Some(c) = capture.as_deref_mut() {
                c.insert(name, t.clone());
            }
        };
        let mut enc = self
            .enc_embedding
            .forward(&inp.x_id, &inp.x_enc, &inp.x_mark_enc, masks)?;
        keep("enc_embedding".into(), &enc);
        let logvar = self.var.forward(&enc, masks)?;
        keep("var".into(), &logvar);
        let n = self.enc_layers.len();
        for (l, layer) in self.enc_layers.iter().enumerate() {
            enc = layer.forward(&enc, masks)?;
            keep(format!("encoder.enc_layers.{l}"), &enc);
            if l + 1 < n
                && let Some(conv) = self.conv_layers.get(l)
            {
                let (out, batch) = conv.forward(&enc, bn)?;
                enc = out;
                if let (Some(all), Some(b)) = (stats.as_deref_mut(), batch) {
                    all.push(b);
                }
                keep(format!("encoder.conv_layers.{l}"), &enc);
            }
        }
        let enc = self.enc_norm.forward(&enc)?;
        keep("encoder".into(), &enc);
        let mut dec = self
            .dec_embedding
            .forward(&inp.x_id, &inp.x_dec, &inp.x_mark_dec, masks)?;
        keep("dec_embedding".into(), &dec);
        let last = self.dec_layers.len() - 1;
        for (l, layer) in self.dec_layers.iter().enumerate() {
            // The projection reads only the last len_pred rows, so the last
            // layer computes only those (unless block outputs are captured).
            let tail = (l == last && !capturing).then_some(self.cfg.len_pred);
            dec = layer.forward(&dec, &enc, masks, tail)?;
            keep(format!("decoder.layers.{l}"), &dec);
        }
        let dec = self.dec_norm.forward(&dec)?;
        keep("decoder".into(), &dec);
        let out = self.projection.forward(&dec)?;
        keep("projection".into(), &out);
        let len = out.dim(1)?;
        let lp = self.cfg.len_pred;
        Ok((out.narrow(1, len - lp, lp)?, logvar))
    }
}
