//! Fresh weights for any config, initialised as torch initialises the
//! reference modules (uniform ±1/√fan_in for Linear and Conv1d, the stored
//! sinusoid table, unit norms): for training from scratch and for benchmarks
//! with random weights of the default size.

use candle_core::{DType, Device, Tensor};

use super::ModelError;
use super::config::GluformerConfig;
use super::dropout::Rng;
use super::weights::{StateDict, expected};

/// The sinusoidal positional table (rows × d), as the reference computes it
/// (in f32; a stored table from torch may differ in the last bits).
pub fn positional_table(rows: usize, d: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * d];
    for t in 0..rows {
        for i in (0..d).step_by(2) {
            let div = (i as f32 * -(10000f32.ln() / d as f32)).exp();
            let arg = t as f32 * div;
            out[t * d + i] = arg.sin();
            if i + 1 < d {
                out[t * d + i + 1] = arg.cos();
            }
        }
    }
    out
}

/// A complete state dict of fresh weights for `cfg` from `seed`.
pub fn random_state_dict(cfg: &GluformerConfig, seed: u64) -> Result<StateDict, ModelError> {
    cfg.validate()?;
    let mut rng = Rng::new(seed);
    let mut uniform = |n: usize, bound: f32| -> Vec<f32> {
        (0..n)
            .map(|_| {
                let u = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
                (2.0 * u - 1.0) * bound
            })
            .collect()
    };
    let mut sd = StateDict::new();
    let exp = expected(cfg);
    for e in &exp {
        let n: usize = e.shape.iter().product();
        let k = &e.key;
        let data = if k.ends_with("pos_emb") {
            positional_table(e.shape[1], e.shape[2])
        } else if k.ends_with("running_mean") {
            vec![0.0; n]
        } else if k.ends_with("running_var") || is_norm_weight(k) {
            vec![1.0; n]
        } else if is_norm_bias(k) {
            vec![0.0; n]
        } else {
            // Linear/Conv1d: fan_in = in_channels * kernel of the weight.
            let wkey = k.trim_end_matches(".bias").to_string() + ".weight";
            let w = exp
                .iter()
                .find(|x| x.key == wkey || (k.ends_with(".weight") && x.key == *k))
                .map(|x| x.shape.clone())
                .unwrap_or_else(|| e.shape.clone());
            let fan_in: usize = w[1..].iter().product::<usize>().max(1);
            uniform(n, 1.0 / (fan_in as f32).sqrt())
        };
        sd.insert(
            k.clone(),
            Tensor::from_vec(data, e.shape.as_slice(), &Device::Cpu)?,
        );
    }
    for l in 0..cfg.num_conv_layers() {
        sd.insert(
            format!("encoder.conv_layers.{l}.norm.num_batches_tracked"),
            Tensor::zeros((), DType::I64, &Device::Cpu)?,
        );
    }
    Ok(sd)
}

fn is_norm(k: &str) -> bool {
    k.split('.')
        .rev()
        .nth(1)
        .is_some_and(|m| m.starts_with("norm"))
}

fn is_norm_weight(k: &str) -> bool {
    is_norm(k) && k.ends_with(".weight")
}

fn is_norm_bias(k: &str) -> bool {
    is_norm(k) && k.ends_with(".bias")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::weights::check;

    #[test]
    fn random_weights_pass_the_strict_check_and_are_seeded() {
        let cfg = GluformerConfig {
            d_model: 16,
            n_heads: 3,
            d_fcn: 8,
            ..GluformerConfig::default()
        };
        let a = random_state_dict(&cfg, 1).unwrap();
        check(&a, &cfg).unwrap();
        let b = random_state_dict(&cfg, 1).unwrap();
        let k = "decoder.layers.0.cross_att.proj_v.weight";
        let v = |sd: &StateDict| sd[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v(&a), v(&b));
        assert!(v(&a).iter().all(|x| x.abs() <= 0.25));
        let n = |sd: &StateDict, k: &str| sd[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(n(&a, "encoder.norm.weight").iter().all(|x| *x == 1.0));
        assert!(
            n(&a, "encoder.conv_layers.0.norm.running_var")
                .iter()
                .all(|x| *x == 1.0)
        );
    }

    #[test]
    fn positional_table_is_the_sinusoid() {
        let t = positional_table(3, 4);
        assert_eq!(&t[0..4], &[0.0, 1.0, 0.0, 1.0]);
        assert!((t[4] - 1f32.sin()).abs() < 1e-7);
        assert!((t[6] - (0.01f32).sin()).abs() < 1e-6);
    }
}
