//! The generic (candle-ops) forward path, which CUDA and other devices take,
//! checked against PyTorch on the CPU: its own test binary because it turns
//! the fused CPU kernels off for the whole process.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use common::{max_diff, model_fixture};
use glurpc::model::dropout::{Injected, NoDropout};
use glurpc::model::network::Inputs;
use glurpc::model::{self, BatchNormMode, kernels};

fn inputs(f: &HashMap<String, Tensor>, rows: &[u32]) -> Inputs {
    let idx = Tensor::from_vec(rows.to_vec(), rows.len(), &Device::Cpu).unwrap();
    let t = |k: &str| f[k].index_select(&idx, 0).unwrap();
    Inputs {
        x_id: t("x_id"),
        x_enc: t("x_enc"),
        x_mark_enc: t("x_mark_enc"),
        x_dec: t("x_dec"),
        x_mark_dec: t("x_mark_dec"),
    }
}

#[test]
fn generic_ops_path_matches_pytorch() {
    kernels::set_fused_cpu_kernels(false);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/model/small");
    let m = model::load(&model::source::resolve_local(&dir).unwrap(), &Device::Cpu).unwrap();
    let inp = model_fixture("inputs.safetensors");
    let all: Vec<u32> = (0..8).collect();
    let (pred, logvar) = m
        .forward(
            &inputs(&inp, &all),
            BatchNormMode::Running,
            &mut NoDropout,
            None,
        )
        .unwrap();
    let want = model_fixture("eval.safetensors");
    assert!(max_diff(&pred, &want["pred"]) < 1e-5);
    assert!(max_diff(&logvar, &want["logvar"]) < 1e-5);
    // Injected masks through the generic attention (causal mask, dropout).
    let f = model_fixture("mc_masks.safetensors");
    let mut keys: Vec<&String> = f.keys().filter(|k| k.starts_with("mask_")).collect();
    keys.sort();
    let mut masks = Injected::new(keys.iter().map(|k| f[*k].clone()));
    let (pred, _) = m
        .forward(
            &inputs(&inp, &[0, 0, 0, 1, 1, 1]),
            BatchNormMode::Batch,
            &mut masks,
            None,
        )
        .unwrap();
    assert_eq!(masks.remaining(), 0);
    assert!(max_diff(&pred, &f["pred"]) < 1e-5);
}
