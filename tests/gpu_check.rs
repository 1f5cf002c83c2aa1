//! `tools/gpu-check --device cpu` end to end against this build's binary, so
//! that the script the GPU machines run cannot rot (issue 23): the device
//! report, the parity checks on the fixture goldens, the forward-pass
//! timings and the service timings with 1 and 2 model copies. PyTorch is
//! not needed to run the tests, so the PyTorch comparison is off
//! (`--no-torch`, which the report states); `--quick` times fewer runs.
//! The requests go through the script's bash `/dev/tcp` client, its
//! fallback where curl is missing (curl is the default elsewhere).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[test]
fn gpu_check_runs_end_to_end_on_the_cpu() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gpu-check.json");
    let run = Command::new("bash")
        .arg(root.join("tools/gpu-check"))
        .args(["--device", "cpu", "--no-torch", "--quick", "--glurpc-bin"])
        .arg(env!("CARGO_BIN_EXE_glurpc"))
        .arg("--out")
        .arg(&out)
        // bash's own HTTP client: the one a GPU machine without curl uses.
        .env("GLURPC_GPU_CHECK_HTTP", "bash")
        .env_remove("GLURPC_DEVICE")
        .env_remove("GLURPC_MODEL")
        .output()
        .expect("running tools/gpu-check (bash)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");

    let text = std::fs::read_to_string(&out).unwrap();
    let r: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(r["device"], "cpu");
    assert_eq!(r["http"], "bash");
    assert_eq!(r["info"]["device"], "cpu");
    assert_eq!(r["failures"].as_array().map(Vec::len), Some(0), "{text}");

    // Parity: every check ran and passed at the CPU's tolerance.
    assert_eq!(r["parity_pass"], true);
    let checks = r["parity"]["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "eval",
            "train_batchnorm",
            "intermediates",
            "injected_masks",
            "mc_samples_vs_cpu"
        ]
    );
    assert_eq!(r["parity"]["tolerance"].as_f64(), Some(1e-5));
    for c in checks {
        assert_eq!(c["pass"], true, "{c}");
    }

    // Forward timings: ours measured, PyTorch's skipped with the reason.
    let f = &r["forward"];
    assert!(f["glurpc_eval_batch32"]["median_s"].as_f64().unwrap() > 0.0);
    assert_eq!(f["glurpc_eval_batch32"]["batch"], 32);
    assert_eq!(f["glurpc_mc_110x10"]["batch"], 110);
    assert_eq!(f["glurpc_mc_110x10"]["samples"], 10);
    assert!(f["glurpc_mc_110x10"]["median_s"].as_f64().unwrap() > 0.0);
    assert!(f["torch"].is_null());
    assert!(f["ratio_eval_batch32_torch_over_glurpc"].is_null());
    assert!(f["torch_note"].as_str().unwrap().contains("--no-torch"));

    // The service with 1 and 2 model copies: every window of the upload drawn.
    let serve = r["serve"].as_array().unwrap();
    assert_eq!(serve.len(), 2);
    for (s, copies) in serve.iter().zip([1, 2]) {
        assert_eq!(s["copies"], copies, "{s}");
        assert_eq!(s["all_ok"], true, "{s}");
        assert_eq!(s["windows"], 110, "{s}");
        for k in [
            "startup_s",
            "quick_plot_cold_s",
            "process_first_plot_s",
            "all_windows_s",
        ] {
            assert!(s[k].as_f64().unwrap() > 0.0, "{k}: {s}");
        }
    }

    // The summary beside the JSON.
    let summary = std::fs::read_to_string(dir.path().join("gpu-check.txt")).unwrap();
    assert!(summary.contains("parity: true"), "{summary}");
    assert!(summary.contains("failures: 0"), "{summary}");
}

/// A device that cannot be used is one line and exit 69, before any work:
/// several devices are refused, and a build without CUDA says how to get one.
#[test]
fn unusable_devices_are_refused_in_one_line() {
    let bin = env!("CARGO_BIN_EXE_glurpc");
    let cases: [(&[&str], &str); 3] = [
        (
            &["model", "info", "default", "--device", "cuda:0,cuda:1"],
            "one device per process",
        ),
        (
            &["model", "parity", "--device", "cuda:0,cuda:1"],
            "one device per process",
        ),
        (
            &["model", "time", "model", "--device", "cuda:0,cuda:1"],
            "one device per process",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(bin)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(69), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    if !candle_core::utils::cuda_is_available() {
        let out = Command::new(bin)
            .args(["model", "info", "default", "--device", "cuda:0"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(69), "{err}");
        assert!(err.contains("tools/cuda-build"), "{err}");
    }
}
