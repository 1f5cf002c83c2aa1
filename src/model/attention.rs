//! Gluformer's full multi-head attention (causal in the decoder's
//! self-attention): on the CPU the fused kernel (`kernels::attention`,
//! dropout drawn inside it from the seeded streams), elsewhere candle's ops.

use candle_core::{Device, Tensor};

use super::ModelError;
use super::dropout::{MaskSource, MaskStream};
use super::kernels::{self, AttentionShape, AttnDropout};
use super::layers::{Linear, Ops, Rows, Weights};

/// Full multi-head attention (causal in decoder self-attention).
#[derive(Debug, Clone)]
pub struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    head_dim: usize,
    causal: bool,
    p: f32,
    ops: Ops,
}

impl Attention {
    /// From `{prefix}.proj_{q,k,v,out}`.
    pub fn load(
        sd: &Weights,
        prefix: &str,
        heads: usize,
        head_dim: usize,
        causal: bool,
        p: f32,
    ) -> Result<Self, ModelError> {
        let l = |n: &str| Linear::load(sd, &format!("{prefix}.{n}"));
        Ok(Attention {
            q: l("proj_q")?,
            k: l("proj_k")?,
            v: l("proj_v")?,
            out: l("proj_out")?,
            heads,
            head_dim,
            causal,
            p,
            ops: sd.ops,
        })
    }

    fn split_heads(&self, x: Tensor) -> Result<Tensor, ModelError> {
        let (b, n, _) = x.dims3()?;
        Ok(x.reshape((b, n, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// Queries (B, Nq, D) attend to keys/values (B, Nk, D). With `rows`, the
    /// queries are tokens `start..` of a longer sequence (causal offset).
    pub fn forward(
        &self,
        q_in: &Tensor,
        kv: &Tensor,
        masks: &mut dyn MaskSource,
        rows: Option<Rows>,
    ) -> Result<Tensor, ModelError> {
        let (b, nq, _) = q_in.dims3()?;
        let (full_q, q_offset) = rows.map_or((nq, 0), |r| (r.full, r.start));
        let mask_rows = |m: Tensor| -> Result<Tensor, ModelError> {
            Ok(if full_q == nq {
                m
            } else {
                m.narrow(2, q_offset, nq)?
            })
        };
        if self.ops == Ops::Fast && kernels::on_cpu(q_in.device()) {
            let nk = kv.dim(1)?;
            let (q, k, v) = (
                self.q.forward(q_in)?,
                self.k.forward(kv)?,
                self.v.forward(kv)?,
            );
            let shape = AttentionShape {
                batch: b,
                nq,
                nk,
                heads: self.heads,
                head_dim: self.head_dim,
                causal: self.causal,
                q_offset,
            };
            let run = |drop: AttnDropout<'_, MaskStream<'_>>| {
                kernels::with_slice(&q, |q| {
                    kernels::with_slice(&k, |k| {
                        kernels::with_slice(&v, |v| Ok(kernels::attention(q, k, v, drop, shape)))
                    })
                })
            };
            let o = match masks.row_streams().filter(|r| self.p > 0.0 && r.len() == b) {
                // The seeded source: each row's mask drawn inside the kernel.
                Some(rngs) => {
                    let mut streams: Vec<MaskStream> = rngs
                        .iter_mut()
                        .map(|r| MaskStream::new(r, self.p))
                        .collect();
                    run(AttnDropout::Streams(&mut streams))?
                }
                None => match masks
                    .mask(&[b, self.heads, full_q, nk], self.p, q_in.device())?
                    .map(mask_rows)
                    .transpose()?
                {
                    Some(m) => kernels::with_slice(&m, |m| run(AttnDropout::Mask(m)))?,
                    None => run(AttnDropout::Off)?,
                },
            };
            let o = Tensor::from_vec(o, (b, nq, self.heads * self.head_dim), q_in.device())?;
            return self.out.forward(&o);
        }
        let q = self.split_heads(self.q.forward(q_in)?)?;
        let k = self.split_heads(self.k.forward(kv)?)?;
        let v = self.split_heads(self.v.forward(kv)?)?;
        let nk = kv.dim(1)?;
        let mut scores = q.matmul(&k.transpose(2, 3)?)?;
        if self.causal {
            scores = scores.broadcast_add(&causal_mask(nq, nk, q_offset, q_in.device())?)?;
        }
        let scores = (scores / (self.head_dim as f64).sqrt())?;
        let att = match self.ops {
            Ops::Fast => candle_nn::ops::softmax_last_dim(&scores)?,
            Ops::Autograd => candle_nn::ops::softmax(&scores, candle_core::D::Minus1)?,
        };
        let att = match masks.mask(&[b, self.heads, full_q, nk], self.p, q_in.device())? {
            Some(m) => att.mul(&mask_rows(m)?)?,
            None => att,
        };
        let o = att
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, nq, self.heads * self.head_dim))?;
        self.out.forward(&o)
    }
}

/// (nq, nk) additive mask: query i (token `offset + i`) sees keys j <= offset + i.
fn causal_mask(nq: usize, nk: usize, offset: usize, device: &Device) -> Result<Tensor, ModelError> {
    let data: Vec<f32> = (0..nq * nk)
        .map(|ij| {
            if ij % nk > offset + ij / nk {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(data, (nq, nk), device)?)
}
