//! The state dict: the keys and shapes a config implies, reading safetensors
//! or PyTorch zip `.pth` files, strict checking, conversion and counting.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::ModelError;
use super::config::{GluformerConfig, POS_TABLE_ROWS};

/// A state dict: torch key → tensor.
pub type StateDict = HashMap<String, Tensor>;

/// One expected entry of the state dict.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    /// The torch key.
    pub key: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Trainable parameter (false for buffers).
    pub trainable: bool,
}

fn push(out: &mut Vec<Expected>, key: String, shape: &[usize], trainable: bool) {
    out.push(Expected {
        key,
        shape: shape.to_vec(),
        trainable,
    });
}

/// Every key of the state dict for `cfg`, in torch's order, except
/// `num_batches_tracked` (never used; accepted when present, see [`check`]).
pub fn expected(cfg: &GluformerConfig) -> Vec<Expected> {
    let (d, f, i) = (cfg.d_model, cfg.d_fcn, cfg.inner());
    let mut out = Vec::new();
    let linear = |out: &mut Vec<Expected>, p: &str, o: usize, n: usize| {
        push(out, format!("{p}.weight"), &[o, n], true);
        push(out, format!("{p}.bias"), &[o], true);
    };
    let norm = |out: &mut Vec<Expected>, p: &str| {
        push(out, format!("{p}.weight"), &[d], true);
        push(out, format!("{p}.bias"), &[d], true);
    };
    let attention = |out: &mut Vec<Expected>, p: &str| {
        for q in ["proj_q", "proj_k", "proj_v"] {
            linear(out, &format!("{p}.{q}"), i, d);
        }
        linear(out, &format!("{p}.proj_out"), d, i);
    };
    let ffn = |out: &mut Vec<Expected>, p: &str| {
        push(out, format!("{p}.conv1.weight"), &[f, d, 1], true);
        push(out, format!("{p}.conv1.bias"), &[f], true);
        push(out, format!("{p}.conv2.weight"), &[d, f, 1], true);
        push(out, format!("{p}.conv2.bias"), &[d], true);
    };
    for e in ["enc_embedding", "dec_embedding"] {
        push(
            &mut out,
            format!("{e}.value_embedding.conv.weight"),
            &[d, 1, 3],
            true,
        );
        push(
            &mut out,
            format!("{e}.value_embedding.conv.bias"),
            &[d],
            true,
        );
        linear(
            &mut out,
            &format!("{e}.time_embedding.embed"),
            d,
            cfg.num_dynamic_features,
        );
        push(
            &mut out,
            format!("{e}.positional_embedding.pos_emb"),
            &[1, POS_TABLE_ROWS, d],
            false,
        );
        linear(
            &mut out,
            &format!("{e}.subject_embedding.id_embedding"),
            d,
            cfg.num_static_features,
        );
    }
    for l in 0..cfg.num_enc_layers {
        let p = format!("encoder.enc_layers.{l}");
        attention(&mut out, &format!("{p}.att"));
        ffn(&mut out, &p);
        norm(&mut out, &format!("{p}.norm1"));
        norm(&mut out, &format!("{p}.norm2"));
    }
    for l in 0..cfg.num_conv_layers() {
        let p = format!("encoder.conv_layers.{l}");
        push(&mut out, format!("{p}.downConv.weight"), &[d, d, 3], true);
        push(&mut out, format!("{p}.downConv.bias"), &[d], true);
        norm(&mut out, &format!("{p}.norm"));
        push(&mut out, format!("{p}.norm.running_mean"), &[d], false);
        push(&mut out, format!("{p}.norm.running_var"), &[d], false);
    }
    norm(&mut out, "encoder.norm");
    for l in 0..cfg.num_dec_layers {
        let p = format!("decoder.layers.{l}");
        attention(&mut out, &format!("{p}.self_att"));
        attention(&mut out, &format!("{p}.cross_att"));
        ffn(&mut out, &p);
        for n in ["norm1", "norm2", "norm3"] {
            norm(&mut out, &format!("{p}.{n}"));
        }
    }
    norm(&mut out, "decoder.norm");
    linear(&mut out, "projection", 1, d);
    linear(&mut out, "var.proj1", 1, d);
    linear(&mut out, "var.proj2", 1, cfg.len_seq + 1);
    out
}

/// Trainable parameters of `cfg` (the reference's count: buffers excluded).
pub fn parameter_count(cfg: &GluformerConfig) -> usize {
    expected(cfg)
        .iter()
        .filter(|e| e.trainable)
        .map(|e| e.shape.iter().product::<usize>())
        .sum()
}

fn is_batch_counter(key: &str) -> bool {
    key.starts_with("encoder.conv_layers.") && key.ends_with(".norm.num_batches_tracked")
}

/// Strict check of a state dict against `cfg`: every expected key present
/// with its shape and a float dtype, nothing unexpected. The error lists all
/// missing, unexpected and mis-shaped keys at once.
pub fn check(sd: &StateDict, cfg: &GluformerConfig) -> Result<(), ModelError> {
    let exp = expected(cfg);
    let mut missing = Vec::new();
    let mut mis_shaped = Vec::new();
    for e in &exp {
        match sd.get(&e.key) {
            None => missing.push(e.key.clone()),
            Some(t) if t.dims() != e.shape.as_slice() || !t.dtype().is_float() => {
                mis_shaped.push(format!(
                    "{} is {:?} {:?}, expected {:?} float",
                    e.key,
                    t.dims(),
                    t.dtype(),
                    e.shape
                ))
            }
            Some(_) => {}
        }
    }
    let known: std::collections::HashSet<&str> = exp.iter().map(|e| e.key.as_str()).collect();
    let conv_layers = cfg.num_conv_layers();
    let mut unexpected: Vec<String> = sd
        .keys()
        .filter(|k| !known.contains(k.as_str()))
        .filter(|k| {
            // The BatchNorm batch counter is kept by torch but never read.
            !(is_batch_counter(k)
                && k.split('.')
                    .nth(2)
                    .and_then(|n| n.parse::<usize>().ok())
                    .is_some_and(|n| n < conv_layers))
        })
        .cloned()
        .collect();
    unexpected.sort();
    if missing.is_empty() && unexpected.is_empty() && mis_shaped.is_empty() {
        return Ok(());
    }
    Err(ModelError::StateDict {
        missing,
        unexpected,
        mis_shaped,
    })
}

/// Weight file kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsKind {
    /// `model.safetensors`.
    Safetensors,
    /// PyTorch zip-format state dict.
    Pth,
}

impl WeightsKind {
    /// Guesses from the file name, then from the first bytes (zip magic).
    pub fn detect(path: &Path) -> WeightsKind {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext {
            "safetensors" => WeightsKind::Safetensors,
            "pth" | "pt" | "bin" => WeightsKind::Pth,
            _ => {
                let mut head = [0u8; 4];
                let zip = std::fs::File::open(path)
                    .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
                    .is_ok()
                    && head == *b"PK\x03\x04";
                if zip {
                    WeightsKind::Pth
                } else {
                    WeightsKind::Safetensors
                }
            }
        }
    }
}

/// Reads every tensor of a weights file onto the CPU, as stored.
pub fn read(path: &Path) -> Result<StateDict, ModelError> {
    if !path.is_file() {
        return Err(ModelError::NotFound {
            what: "weights file".into(),
            looked: vec![path.display().to_string()],
        });
    }
    let corrupt = |e: candle_core::Error| ModelError::Corrupt {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    match WeightsKind::detect(path) {
        WeightsKind::Safetensors => {
            candle_core::safetensors::load(path, &Device::Cpu).map_err(corrupt)
        }
        WeightsKind::Pth => Ok(candle_core::pickle::read_all(path)
            .map_err(corrupt)?
            .into_iter()
            .collect()),
    }
}

/// Converts float tensors to f32 on `device` (the model computes in f32).
pub fn to_f32(sd: StateDict, device: &Device) -> Result<StateDict, ModelError> {
    sd.into_iter()
        .map(|(k, t)| {
            let t = if t.dtype().is_float() {
                t.to_dtype(DType::F32)?.to_device(device)?
            } else {
                t
            };
            Ok((k, t))
        })
        .collect()
}

/// Writes a state dict as safetensors (keys sorted, as candle does), with the
/// `{"format": "pt"}` header metadata that Hugging Face tooling
/// (`transformers`' `from_pretrained`) expects of PyTorch weights.
pub fn save(sd: &StateDict, path: &Path) -> Result<(), ModelError> {
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(sd, Some(metadata), path)
        .map_err(|e| ModelError::Io(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_has_the_reference_keys_and_parameters() {
        let cfg = GluformerConfig::default();
        // 115 keys minus the one num_batches_tracked.
        assert_eq!(expected(&cfg).len(), 114);
        assert_eq!(parameter_count(&cfg), 11_294_272);
    }

    #[test]
    fn saved_weights_carry_the_pytorch_format_tag() {
        let cfg = GluformerConfig {
            d_model: 8,
            n_heads: 2,
            d_fcn: 16,
            ..GluformerConfig::default()
        };
        let sd = crate::model::init::random_state_dict(&cfg, 3).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        save(&sd, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let format = meta.metadata().as_ref().and_then(|m| m.get("format"));
        assert_eq!(format.map(String::as_str), Some("pt"));
        let back = read(&path).unwrap();
        check(&back, &cfg).unwrap();
    }

    #[test]
    fn parameter_count_follows_the_closed_form() {
        for (d, h, f, ne, nd, distil) in [
            (32, 3, 64, 3, 2, true),
            (64, 4, 128, 1, 1, false),
            (48, 5, 96, 2, 3, true),
        ] {
            let cfg = GluformerConfig {
                d_model: d,
                n_heads: h,
                d_fcn: f,
                num_enc_layers: ne,
                num_dec_layers: nd,
                distil,
                ..GluformerConfig::default()
            };
            let i = cfg.inner();
            let (fd, fs, l) = (6, 1, 96);
            let mha = 4 * d * i + 3 * i + d;
            let ffn = 2 * d * f + f + d;
            let conv = if distil {
                (ne - 1) * (3 * d * d + 3 * d)
            } else {
                0
            };
            let p = 2 * d * (6 + fd + fs)
                + ne * (mha + ffn + 4 * d)
                + conv
                + 2 * d
                + nd * (2 * mha + ffn + 6 * d)
                + 2 * d
                + (d + 1)
                + (d + 1)
                + (l + 2);
            assert_eq!(parameter_count(&cfg), p, "{cfg:?}");
        }
    }
}
