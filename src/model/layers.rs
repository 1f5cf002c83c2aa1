//! The building blocks of Gluformer, written from the reference's modules:
//! linear maps, the data embedding, the distilling ConvLayer
//! and the variance head. Weights are re-laid out once at load time
//! (transposed, im2col for the circular convolutions).

use std::sync::Arc;

use candle_core::{Device, Tensor};
use glurpc_gemm::PackedWeights;

use super::ModelError;
use super::dropout::{MaskSource, RowLayout};
use super::fused;
use super::kernels;
use super::weights::StateDict;

/// BatchNorm statistics of the distilling ConvLayers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchNormMode {
    /// Running statistics (eval; every row independent of its batch).
    #[default]
    Running,
    /// The current batch's statistics (torch train mode, as gluRPC runs it).
    Batch,
}

const NORM_EPS: f64 = 1e-5;

/// Which implementation the layers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ops {
    /// The fused CPU kernels where they apply (inference).
    #[default]
    Fast,
    /// candle's differentiable ops only, so gradients reach the weights
    /// (training). Slower; same results to float rounding.
    Autograd,
}

/// A state dict and the ops the layers built from it run.
#[derive(Debug, Clone, Copy)]
pub struct Weights<'a> {
    /// The tensors by torch key.
    pub sd: &'a StateDict,
    /// The implementation.
    pub ops: Ops,
}

pub(crate) fn get(sd: &Weights, key: &str) -> Result<Tensor, ModelError> {
    sd.sd
        .get(key)
        .cloned()
        .ok_or_else(|| ModelError::StateDict {
            missing: vec![key.to_string()],
            unexpected: vec![],
            mis_shaped: vec![],
        })
}

/// A tensor holding token rows `start..` of a sequence of `full` tokens (the
/// last decoder layer computes only the rows the projection reads). Dropout
/// masks are still drawn for the full sequence, then sliced, so results and
/// RNG streams are the same as computing every row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rows {
    /// Tokens in the whole sequence.
    pub full: usize,
    /// First token held.
    pub start: usize,
}

/// Where a dropout call on a tensor of `dims` (holding `rows` of the
/// sequence) lands in torch's view of it.
fn row_layout(dims: &[usize], rows: Option<Rows>, channels_first: bool) -> RowLayout {
    RowLayout {
        tokens: rows.map_or(dims[1], |r| r.full),
        start: rows.map_or(0, |r| r.start),
        held: dims[1],
        channels: dims[2],
        channels_first,
    }
}

/// Applies dropout through the mask source (its draws multiplied straight
/// into the activations where it can, [`MaskSource::apply`]; otherwise the
/// mask tensor). `channels_first` says the torch call saw the tensor as
/// (B, C, T) while we hold (B, T, C).
pub(crate) fn dropout(
    x: Tensor,
    masks: &mut dyn MaskSource,
    p: f32,
    channels_first: bool,
    rows: Option<Rows>,
) -> Result<Tensor, ModelError> {
    let dims = x.dims().to_vec();
    let t = rows.map_or(dims[1], |r| r.full);
    let torch_shape = if channels_first {
        vec![dims[0], dims[2], t]
    } else {
        let mut d = dims.clone();
        d[1] = t;
        d
    };
    if dims.len() == 3
        && let Some(y) = masks.apply(&x, p, row_layout(&dims, rows, channels_first))
    {
        return y;
    }
    let token_axis = if channels_first { 2 } else { 1 };
    let m = match masks.mask(&torch_shape, p, x.device())? {
        None => return Ok(x),
        Some(m) => match rows {
            Some(r) => m.narrow(token_axis, r.start, dims[1])?,
            None => m,
        },
    };
    if channels_first {
        Ok(x.mul(&m.transpose(1, 2)?)?)
    } else {
        Ok(x.mul(&m)?)
    }
}

/// [`dropout`] on CPU values of shape `dims` (B, T, C), in place when the
/// mask source can ([`MaskSource::apply_slice`]), then as a tensor.
fn dropout_vec(
    mut v: Vec<f32>,
    dims: Vec<usize>,
    masks: &mut dyn MaskSource,
    p: f32,
    channels_first: bool,
    rows: Option<Rows>,
) -> Result<Tensor, ModelError> {
    let device = Device::Cpu;
    if dims.len() == 3
        && let Some(done) = masks.apply_slice(&mut v, p, row_layout(&dims, rows, channels_first))
    {
        done?;
        return Ok(Tensor::from_vec(v, dims, &device)?);
    }
    dropout(
        Tensor::from_vec(v, dims, &device)?,
        masks,
        p,
        channels_first,
        rows,
    )
}

/// A CPU result: its values and its shape.
pub(crate) type HostOutput = (Vec<f32>, Vec<usize>);

/// `y = x Wᵀ + b` over the last axis. On a CPU with AVX-512F or AVX2 + FMA
/// (fast ops) Wᵀ is held only as packed panels for the `glurpc-gemm` kernel
/// (`GLURPC_GEMM` may force one, or the portable path); otherwise as a
/// contiguous tensor.
#[derive(Debug, Clone)]
pub struct Linear {
    w_t: Option<Tensor>,
    packed: Option<Arc<PackedWeights>>,
    b: Tensor,
    fused: bool,
}

impl Linear {
    /// From a (out, in) weight (or (out, in, 1) for kernel-1 convolutions).
    pub fn load(sd: &Weights, prefix: &str) -> Result<Self, ModelError> {
        let w = get(sd, &format!("{prefix}.weight"))?;
        let w = if w.rank() == 3 { w.squeeze(2)? } else { w };
        Self::from_parts(
            w.t()?.contiguous()?,
            get(sd, &format!("{prefix}.bias"))?,
            sd.ops,
        )
    }

    fn from_parts(w_t: Tensor, b: Tensor, ops: Ops) -> Result<Self, ModelError> {
        let fused = ops == Ops::Fast;
        let packed = if fused && kernels::on_cpu(w_t.device()) {
            // A GLURPC_GEMM naming a kernel this CPU lacks (or no kernel)
            // refuses the model rather than falling back unannounced.
            glurpc_gemm::selected().map_err(|e| ModelError::Device(e.to_string()))?;
            let (k, n) = w_t.dims2()?;
            kernels::with_slice(&w_t, |w| Ok(PackedWeights::pack(w, k, n)))?
        } else {
            None
        };
        Ok(Linear {
            w_t: if packed.is_some() { None } else { Some(w_t) },
            packed: packed.map(Arc::new),
            b,
            fused,
        })
    }

    /// Wᵀ as a (in, out) tensor (unpacked when only the panels are held).
    fn weight_t(&self) -> Result<Tensor, ModelError> {
        match (&self.w_t, &self.packed) {
            (Some(w), _) => Ok(w.clone()),
            (None, Some(p)) => Ok(Tensor::from_vec(
                p.unpack(),
                (p.k(), p.n()),
                self.b.device(),
            )?),
            (None, None) => Err(ModelError::Input("linear map without weights".into())),
        }
    }

    /// The map on the CPU fast path: the output's values and shape, or
    /// `None` where the layer runs candle's ops (another device, autograd,
    /// the fused kernels off).
    pub(crate) fn forward_cpu(&self, x: &Tensor) -> Result<Option<HostOutput>, ModelError> {
        if !(self.fused && kernels::on_cpu(x.device())) {
            return Ok(None);
        }
        let mut out = x.dims().to_vec();
        let last = out.len() - 1;
        let k = out[last];
        let rows = x.elem_count() / k.max(1);
        let y = match (&self.packed, &self.w_t) {
            (Some(p), _) if p.k() == k => {
                out[last] = p.n();
                kernels::with_slice(x, |a| {
                    kernels::with_slice(&self.b, |b| Ok(glurpc_gemm::linear(a, rows, p, b)))
                })?
            }
            (_, Some(w_t)) => {
                let n = w_t.dim(1)?;
                out[last] = n;
                kernels::with_slice(x, |a| {
                    kernels::with_slice(w_t, |w| {
                        kernels::with_slice(&self.b, |b| Ok(kernels::linear(a, rows, k, w, n, b)))
                    })
                })?
            }
            _ => {
                return Err(ModelError::Input(format!(
                    "input width {k} does not match the linear map"
                )));
            }
        };
        Ok(Some((y, out)))
    }

    /// Applies the map to (..., in).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        if let Some((y, dims)) = self.forward_cpu(x)? {
            return Ok(Tensor::from_vec(y, dims, x.device())?);
        }
        let dims = x.dims().to_vec();
        let k = dims[dims.len() - 1];
        let rows = x.elem_count() / k.max(1);
        let w_t = self.weight_t()?;
        let mut out = dims;
        let last = out.len() - 1;
        out[last] = w_t.dim(1)?;
        let x2 = x.contiguous()?.reshape((rows, k))?;
        let y = x2.matmul(&w_t)?.broadcast_add(&self.b)?;
        Ok(y.reshape(out)?)
    }
}

/// LayerNorm with eps 1e-5 over the last axis.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    w: Tensor,
    b: Tensor,
    ops: Ops,
}

impl LayerNorm {
    /// From `{prefix}.weight` / `.bias`.
    pub fn load(sd: &Weights, prefix: &str) -> Result<Self, ModelError> {
        Ok(LayerNorm {
            w: get(sd, &format!("{prefix}.weight"))?,
            b: get(sd, &format!("{prefix}.bias"))?,
            ops: sd.ops,
        })
    }

    /// Normalises (..., D).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        self.norm(x, None)
    }

    /// Normalises `x + r` (the residual add fused into the norm's pass on
    /// the CPU).
    pub fn forward_add(&self, x: &Tensor, r: &Tensor) -> Result<Tensor, ModelError> {
        self.norm(x, Some(r))
    }

    fn norm(&self, x: &Tensor, r: Option<&Tensor>) -> Result<Tensor, ModelError> {
        if self.ops == Ops::Fast
            && kernels::on_cpu(x.device())
            && r.is_none_or(|r| r.dims() == x.dims())
            && x.dims().last() == self.w.dims().last()
        {
            let eps = NORM_EPS as f32;
            let y = kernels::with_slice(x, |xs| {
                kernels::with_slice(&self.w, |w| {
                    kernels::with_slice(&self.b, |b| match r {
                        Some(r) => kernels::with_slice(r, |rs| {
                            Ok(fused::layer_norm(xs, Some(rs), w, b, eps))
                        }),
                        None => Ok(fused::layer_norm(xs, None, w, b, eps)),
                    })
                })
            })?;
            return Ok(Tensor::from_vec(y, x.dims(), x.device())?);
        }
        let x = match r {
            Some(r) => x.add(r)?,
            None => x.clone(),
        };
        let norm = match self.ops {
            Ops::Fast => candle_nn::ops::layer_norm,
            Ops::Autograd => candle_nn::ops::layer_norm_slow,
        };
        Ok(norm(&x.contiguous()?, &self.w, &self.b, NORM_EPS as f32)?)
    }
}

/// (B, T, C) with each step's neighbours, circularly: [x[t-1], x[t], x[t+1]]
/// concatenated on the last axis, giving (B, T, 3C).
fn circular_neighbours(x: &Tensor) -> Result<Tensor, ModelError> {
    let t = x.dim(1)?;
    let prev = Tensor::cat(&[x.narrow(1, t - 1, 1)?, x.narrow(1, 0, t - 1)?], 1)?;
    let next = Tensor::cat(&[x.narrow(1, 1, t - 1)?, x.narrow(1, 0, 1)?], 1)?;
    Ok(Tensor::cat(&[&prev, x, &next], 2)?)
}

/// Circular kernel-3 Conv1d as a linear map on [x[t-1], x[t], x[t+1]].
fn circular_conv(sd: &Weights, prefix: &str) -> Result<Linear, ModelError> {
    let w = get(sd, &format!("{prefix}.weight"))?; // (out, in, 3)
    let (out, inp, k) = w.dims3()?;
    let w_t = w
        .permute((0, 2, 1))?
        .contiguous()?
        .reshape((out, k * inp))?
        .t()?
        .contiguous()?;
    Linear::from_parts(w_t, get(sd, &format!("{prefix}.bias"))?, sd.ops)
}

/// Value + position + covariate embedding, the subject token prepended, dropout.
#[derive(Debug, Clone)]
pub struct DataEmbedding {
    value: Linear,
    time: Linear,
    subject: Linear,
    pos: Tensor,
    p: f32,
}

impl DataEmbedding {
    /// From `{prefix}.{value,time,positional,subject}_embedding`.
    pub fn load(sd: &Weights, prefix: &str, p: f32) -> Result<Self, ModelError> {
        let pos = get(sd, &format!("{prefix}.positional_embedding.pos_emb"))?;
        Ok(DataEmbedding {
            value: circular_conv(sd, &format!("{prefix}.value_embedding.conv"))?,
            time: Linear::load(sd, &format!("{prefix}.time_embedding.embed"))?,
            subject: Linear::load(sd, &format!("{prefix}.subject_embedding.id_embedding"))?,
            pos: pos.squeeze(0)?,
            p,
        })
    }

    /// `x_id` (B, Fs), `x` (B, S, 1), `x_mark` (B, S, Fd) → (B, S+1, D).
    pub fn forward(
        &self,
        x_id: &Tensor,
        x: &Tensor,
        x_mark: &Tensor,
        masks: &mut dyn MaskSource,
    ) -> Result<Tensor, ModelError> {
        let s = x.dim(1)?;
        let value = self.value.forward_cpu(&circular_neighbours(x)?)?;
        if let Some((v, dims)) = value {
            let (time, id) = (self.time.forward(x_mark)?, self.subject.forward(x_id)?);
            let (b, d) = (dims[0], dims[2]);
            if time.dims() != [b, s, d] || id.dims() != [b, d] || self.pos.dim(0)? < s {
                return Err(ModelError::Input(format!(
                    "embedding inputs disagree: values {dims:?}, covariates {:?}, static {:?}",
                    time.dims(),
                    id.dims()
                )));
            }
            let out = kernels::with_slice(&self.pos.narrow(0, 0, s)?, |pos| {
                kernels::with_slice(&time, |tm| {
                    kernels::with_slice(&id, |id| Ok(fused::embed(&v, pos, tm, id, b, s, d)))
                })
            })?;
            return dropout_vec(out, vec![b, s + 1, d], masks, self.p, false, None);
        }
        let v = self.value.forward(&circular_neighbours(x)?)?;
        let sum = v
            .broadcast_add(&self.pos.narrow(0, 0, s)?)?
            .add(&self.time.forward(x_mark)?)?;
        let id = self.subject.forward(x_id)?.unsqueeze(1)?;
        dropout(Tensor::cat(&[&id, &sum], 1)?, masks, self.p, false, None)
    }
}

/// The two kernel-1 convolutions of a layer with the activation between.
#[derive(Debug, Clone)]
pub struct FeedForward {
    up: Linear,
    down: Linear,
    relu: bool,
    p: f32,
}

impl FeedForward {
    /// From `{prefix}.conv1` / `{prefix}.conv2`.
    pub fn load(sd: &Weights, prefix: &str, relu: bool, p: f32) -> Result<Self, ModelError> {
        Ok(FeedForward {
            up: Linear::load(sd, &format!("{prefix}.conv1"))?,
            down: Linear::load(sd, &format!("{prefix}.conv2"))?,
            relu,
            p,
        })
    }

    /// `Dropout(conv2(Dropout(act(conv1(x)))))`.
    pub fn forward(
        &self,
        x: &Tensor,
        masks: &mut dyn MaskSource,
        rows: Option<Rows>,
    ) -> Result<Tensor, ModelError> {
        let h = match self.up.forward_cpu(x)? {
            Some((mut h, dims)) => {
                if self.relu {
                    fused::relu(&mut h);
                } else {
                    fused::gelu(&mut h);
                }
                dropout_vec(h, dims, masks, self.p, true, rows)?
            }
            None => {
                let h = self.up.forward(x)?;
                let h = if self.relu { h.relu()? } else { h.gelu_erf()? };
                dropout(h, masks, self.p, true, rows)?
            }
        };
        match self.down.forward_cpu(&h)? {
            Some((y, dims)) => dropout_vec(y, dims, masks, self.p, false, rows),
            None => dropout(self.down.forward(&h)?, masks, self.p, false, rows),
        }
    }
}

/// The distilling ConvLayer: circular conv, BatchNorm, ELU, max-pool 3/2.
#[derive(Debug, Clone)]
pub struct ConvLayer {
    conv: Linear,
    weight: Tensor,
    bias: Tensor,
    running_scale: Tensor,
    running_shift: Tensor,
}

impl ConvLayer {
    /// From `{prefix}.downConv` and `{prefix}.norm`.
    pub fn load(sd: &Weights, prefix: &str) -> Result<Self, ModelError> {
        let w = get(sd, &format!("{prefix}.norm.weight"))?;
        let b = get(sd, &format!("{prefix}.norm.bias"))?;
        let mean = get(sd, &format!("{prefix}.norm.running_mean"))?;
        let var = get(sd, &format!("{prefix}.norm.running_var"))?;
        // y = (x - mean) / sqrt(var + eps) * w + b = x * scale + shift
        let scale = w.div(&(var + NORM_EPS)?.sqrt()?)?;
        let shift = b.sub(&mean.mul(&scale)?)?;
        Ok(ConvLayer {
            conv: circular_conv(sd, &format!("{prefix}.downConv"))?,
            weight: w,
            bias: b,
            running_scale: scale,
            running_shift: shift,
        })
    }

    /// (B, T, D) → (B, floor((T-1)/2)+1, D), with the batch mean and
    /// biased variance (D each) in [`BatchNormMode::Batch`].
    pub fn forward(
        &self,
        x: &Tensor,
        mode: BatchNormMode,
    ) -> Result<(Tensor, Option<(Tensor, Tensor)>), ModelError> {
        let (b, t, d) = x.dims3()?;
        if mode == BatchNormMode::Running && self.conv.fused && kernels::on_cpu(x.device()) {
            let xn = kernels::with_slice(x, |xs| Ok(fused::circular_neighbours(xs, t, d)))?;
            let xn = Tensor::from_vec(xn, (b, t, 3 * d), x.device())?;
            if let Some((y, dims)) = self.conv.forward_cpu(&xn)? {
                let c = dims[2];
                let out = kernels::with_slice(&self.running_scale, |s| {
                    kernels::with_slice(&self.running_shift, |h| {
                        Ok(fused::norm_elu_pool(y, s, h, t))
                    })
                })?;
                let out_len = out.len() / (b * c).max(1);
                return Ok((Tensor::from_vec(out, (b, out_len, c), x.device())?, None));
            }
        }
        let y = self.conv.forward(&circular_neighbours(x)?)?;
        let (y, stats) = match mode {
            BatchNormMode::Running => (
                y.broadcast_mul(&self.running_scale)?
                    .broadcast_add(&self.running_shift)?,
                None,
            ),
            BatchNormMode::Batch => {
                let flat = y.reshape((b * t, d))?;
                let mean = flat.mean_keepdim(0)?;
                let centred = flat.broadcast_sub(&mean)?;
                let var = centred.sqr()?.mean_keepdim(0)?;
                let y = centred
                    .broadcast_div(&(&var + NORM_EPS)?.sqrt()?)?
                    .broadcast_mul(&self.weight)?
                    .broadcast_add(&self.bias)?
                    .reshape((b, t, d))?;
                (y, Some((mean.squeeze(0)?, var.squeeze(0)?)))
            }
        };
        let y = y.elu(1.0)?;
        // Max-pool, kernel 3, stride 2, padding 1 (padding never wins).
        let pad = Tensor::full(f32::NEG_INFINITY, (b, 1, d), x.device())?;
        let padded = Tensor::cat(&[&pad, &y, &pad], 1)?;
        let out_len = (t - 1) / 2 + 1;
        let pick = |offset: u32| -> Result<Tensor, ModelError> {
            let idx: Vec<u32> = (0..out_len as u32).map(|i| 2 * i + offset).collect();
            let idx = Tensor::from_vec(idx, out_len, x.device())?;
            Ok(padded.index_select(&idx, 1)?)
        };
        Ok((pick(0)?.maximum(&pick(1)?)?.maximum(&pick(2)?)?, stats))
    }
}

/// The log-variance head on the embedded encoder input.
#[derive(Debug, Clone)]
pub struct Variance {
    proj1: Linear,
    proj2: Linear,
    p: f32,
}

impl Variance {
    /// From `var.proj1` / `var.proj2`.
    pub fn load(sd: &Weights, prefix: &str, p: f32) -> Result<Self, ModelError> {
        Ok(Variance {
            proj1: Linear::load(sd, &format!("{prefix}.proj1"))?,
            proj2: Linear::load(sd, &format!("{prefix}.proj2"))?,
            p,
        })
    }

    /// (B, L+1, D) → (B, 1, 1), `10·tanh(·)`.
    pub fn forward(&self, x: &Tensor, masks: &mut dyn MaskSource) -> Result<Tensor, ModelError> {
        let a = self.proj1.forward(x)?.relu()?;
        let a = dropout(a, masks, self.p, false, None)?.transpose(1, 2)?;
        Ok((self.proj2.forward(&a)?.tanh()? * 10.0)?)
    }
}
