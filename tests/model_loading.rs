//! Loading errors and model sources: strict state-dict checks, corrupt
//! files, a missing config, and Hub ids served from an offline HF cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use glurpc::model::{self, ModelError, weights};

fn small_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/model/small")
}

/// A copy of the small model with its state dict changed by `edit`.
fn edited(edit: impl FnOnce(&mut weights::StateDict)) -> (tempfile::TempDir, ModelError) {
    let dir = tempfile::tempdir().unwrap();
    let mut sd = weights::read(&small_dir().join("model.safetensors")).unwrap();
    edit(&mut sd);
    weights::save(&sd, &dir.path().join("model.safetensors")).unwrap();
    std::fs::copy(
        small_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let files = model::source::resolve_local(dir.path()).unwrap();
    let err = model::load(&files, &Device::Cpu).unwrap_err();
    (dir, err)
}

#[test]
fn missing_key_is_named() {
    let (_d, err) = edited(|sd| {
        sd.remove("decoder.layers.1.cross_att.proj_k.bias");
    });
    match &err {
        ModelError::StateDict {
            missing,
            unexpected,
            mis_shaped,
        } => {
            assert_eq!(missing, &["decoder.layers.1.cross_att.proj_k.bias"]);
            assert!(unexpected.is_empty() && mis_shaped.is_empty());
        }
        e => panic!("{e}"),
    }
    assert!(
        err.to_string()
            .contains("1 missing [decoder.layers.1.cross_att.proj_k.bias]")
    );
}

#[test]
fn unexpected_key_is_named() {
    let (_d, err) = edited(|sd| {
        sd.insert(
            "module.extra".into(),
            Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
    });
    assert!(
        matches!(&err, ModelError::StateDict { unexpected, .. } if unexpected == &["module.extra"]),
        "{err}"
    );
}

#[test]
fn wrong_shape_is_named_with_both_shapes() {
    let (_d, err) = edited(|sd| {
        sd.insert(
            "var.proj2.weight".into(),
            Tensor::zeros((1, 50), candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let msg = err.to_string();
    assert!(
        msg.contains("var.proj2.weight is [1, 50] F32, expected [1, 97]"),
        "{msg}"
    );
}

#[test]
fn all_problems_are_listed_at_once() {
    let (_d, err) = edited(|sd| {
        sd.remove("projection.bias");
        sd.insert(
            "x".into(),
            Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
        sd.insert(
            "encoder.norm.weight".into(),
            Tensor::zeros(31, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
    });
    match err {
        ModelError::StateDict {
            missing,
            unexpected,
            mis_shaped,
        } => assert_eq!(
            (missing.len(), unexpected.len(), mis_shaped.len()),
            (1, 1, 1)
        ),
        e => panic!("{e}"),
    }
}

fn truncated_copy(src: &Path, name: &str, keep: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(src).unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, &bytes[..keep.min(bytes.len())]).unwrap();
    (dir, path)
}

#[test]
fn corrupt_files_give_a_corrupt_error() {
    for (src, name) in [
        ("model.safetensors", "model.safetensors"),
        ("weights.pth", "w.pth"),
    ] {
        let full = std::fs::metadata(small_dir().join(src)).unwrap().len() as usize;
        for keep in [0, 7, full / 2, full - 10] {
            let (_d, path) = truncated_copy(&small_dir().join(src), name, keep);
            match weights::read(&path) {
                Err(ModelError::Corrupt { path: p, .. }) => assert!(p.ends_with(name)),
                Err(e) => panic!("{src} cut at {keep}: {e}"),
                Ok(_) => panic!("{src} cut at {keep} was accepted"),
            }
        }
    }
    // Random bytes named .pth.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("junk.pth");
    std::fs::write(&p, b"this is not a checkpoint").unwrap();
    assert!(matches!(weights::read(&p), Err(ModelError::Corrupt { .. })));
}

#[test]
fn a_pth_without_config_uses_the_default_and_says_what_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        small_dir().join("weights.pth"),
        dir.path().join("weights.pth"),
    )
    .unwrap();
    let files = model::source::resolve_local(dir.path()).unwrap();
    assert!(files.config.is_none());
    let err = model::load(&files, &Device::Cpu).unwrap_err().to_string();
    // The default (d_model 512) against d_model 32 weights.
    assert!(err.contains("expected [512, 1, 3]"), "{err}");
    assert!(
        err.contains("encoder.enc_layers.2.att.proj_q.weight"),
        "{err}"
    );
}

#[test]
fn a_directory_without_weights_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let err = model::source::resolve_local(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("*.pth"),
        "{err}"
    );
}

fn glurpc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_glurpc"))
}

/// An HF cache holding `org/tiny` at some revision, as hf-hub lays it out.
fn hf_home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let repo = home.path().join("hub/models--org--tiny");
    let snap = repo.join("snapshots/0123456789abcdef0123456789abcdef01234567");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(
        repo.join("refs/main"),
        "0123456789abcdef0123456789abcdef01234567",
    )
    .unwrap();
    for f in ["model.safetensors", "config.json"] {
        std::fs::copy(small_dir().join(f), snap.join(f)).unwrap();
    }
    home
}

#[test]
fn hub_ids_resolve_from_the_cache_offline() {
    let home = hf_home();
    let out = glurpc()
        .args(["model", "info", "org/tiny", "--json"])
        .env("HF_HOME", home.path())
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["parameters"], 56922);
    assert_eq!(
        info["sha256"],
        model::sha256_file(&small_dir().join("model.safetensors")).unwrap()
    );
    // Cached files are used without the offline switch too: the endpoint is
    // unreachable, so any network use would fail.
    let out = glurpc()
        .args(["model", "info", "org/tiny"])
        .env("HF_HOME", home.path())
        .env_remove("HF_HUB_OFFLINE")
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_model_missing_from_the_offline_cache_names_the_cache() {
    let home = hf_home();
    let out = glurpc()
        .args(["model", "info", "org/absent"])
        .env("HF_HOME", home.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66), "no input");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
    assert!(err.contains("models--org--absent"), "{err}");
    let out = glurpc()
        .args(["model", "info", "./no/such/dir"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66), "no input");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Hub id"));
}

#[test]
fn convert_writes_a_loadable_safetensors_copy() {
    let dir = tempfile::tempdir().unwrap();
    let out = glurpc()
        .args(["model", "convert"])
        .arg(small_dir().join("weights.pth"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = weights::read(&dir.path().join("model.safetensors")).unwrap();
    let b = weights::read(&small_dir().join("weights.pth")).unwrap();
    assert_eq!(a.len(), b.len());
    let files = model::source::resolve_local(dir.path()).unwrap();
    assert!(files.config.is_some());
    model::load(&files, &Device::Cpu).unwrap();
}

/// `glurpc model convert IN OUT [--config CFG]`.
fn convert(input: &Path, out_dir: &Path, config: Option<&Path>) -> std::process::Output {
    let mut cmd = glurpc();
    cmd.args(["model", "convert"]).arg(input).arg(out_dir);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.env_remove("GLURPC_MODEL_CONFIG").output().unwrap()
}

#[test]
fn convert_of_a_lone_pth_reads_the_sizes_from_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let pth = dir.path().join("weights.pth");
    std::fs::copy(small_dir().join("weights.pth"), &pth).unwrap();
    let target = dir.path().join("out");
    let out = convert(&pth, &target, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // What the weights do not fix is said in one line, with --config.
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("n_heads") && stderr.contains("--config"),
        "{stderr}"
    );
    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let got = read(target.join("config.json"));
    let want = read(small_dir().join("config.json"));
    // Every field the shapes fix (and the defaults the rest take, which the
    // small model shares) equals the model's own config.
    for (field, value) in want.as_object().unwrap() {
        if field != "n_heads" {
            assert_eq!(&got[field], value, "{field}");
        }
    }
    // n_heads is fixed only up to the attention width (3 x (32 / 3) = 30).
    let h = got["n_heads"].as_u64().unwrap();
    assert_eq!(h * (32 / h), 30, "n_heads {h}");
    let files = model::source::resolve_local(&target).unwrap();
    let net = model::load(&files, &Device::Cpu).unwrap();
    assert_eq!(net.config().d_model, 32);
}

#[test]
fn convert_against_a_config_that_does_not_fit_says_so_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let pth = dir.path().join("w.pth");
    std::fs::copy(small_dir().join("weights.pth"), &pth).unwrap();
    let wrong = dir.path().join("wrong.json");
    std::fs::write(&wrong, model::GluformerConfig::default().to_json()).unwrap();
    // Given with --config, and found beside the weights.
    let beside = tempfile::tempdir().unwrap();
    std::fs::copy(&pth, beside.path().join("w.pth")).unwrap();
    std::fs::copy(&wrong, beside.path().join("config.json")).unwrap();
    for (input, config) in [
        (pth.clone(), Some(wrong.as_path())),
        (beside.path().join("w.pth"), None),
    ] {
        let target = dir.path().join("out");
        let out = convert(&input, &target, config);
        assert_eq!(out.status.code(), Some(65), "refused input");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr.trim_end();
        assert_eq!(line.lines().count(), 1, "{stderr}");
        assert!(line.len() < 300, "{} characters: {line}", line.len());
        assert!(line.contains("--config"), "{line}");
        assert!(line.contains("d_model 32 vs 512"), "{line}");
        assert!(line.contains("num_enc_layers 3 vs 2"), "{line}");
        assert!(!target.join("model.safetensors").exists());
    }
}
