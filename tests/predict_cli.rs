//! `glurpc predict` end to end: the binary, the small fixture model, the
//! 14-day Dexcom export; the deterministic forecast is the reference's
//! eval-mode forecast (golden from tools/make_forecast_goldens.py).

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn predict(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_glurpc"))
        .arg("predict")
        .arg(root().join("tests/data/real/dexcom_us_14d.csv"))
        .arg("--model")
        .arg(root().join("tests/data/model/small"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn deterministic_json_matches_the_reference_forecast() {
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/data/golden_forecast/dexcom_us_14d.json"))
            .unwrap(),
    )
    .unwrap();
    for index in ["0", "-1", "-109"] {
        let out = predict(&["--deterministic", "--format", "json", "--index", index]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["handle"], golden["handle"]);
        assert_eq!(v["index"].as_i64().unwrap().to_string(), index);
        let want = golden["windows"][index]["forecast_mgdl"]
            .as_array()
            .unwrap();
        let got = v["median"].as_array().unwrap();
        let sample = v["samples"][0].as_array().unwrap();
        assert_eq!(
            (
                got.len(),
                want.len(),
                v["samples"].as_array().unwrap().len()
            ),
            (12, 12, 1)
        );
        for t in 0..12 {
            let w = want[t].as_f64().unwrap();
            assert!(
                (got[t].as_f64().unwrap() - w).abs() < 1e-3,
                "index {index} step {t}"
            );
            assert!((sample[t].as_f64().unwrap() - w).abs() < 1e-3);
        }
        assert_eq!(v["history"].as_array().unwrap().len(), 96);
        assert_eq!(v["actual"].as_array().unwrap().len(), 12);
    }
}

#[test]
fn formats_forward_forecasts_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("p.png");
    let out = predict(&[
        "--format",
        "png",
        "-o",
        png.to_str().unwrap(),
        "--window",
        "quick",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&bytes[16..24], &[0, 0, 0x03, 0xe8, 0, 0, 0x02, 0x58]);

    let out = predict(&["--forecast", "--samples", "4", "--seed", "7"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["actual"].is_null());
    assert_eq!(v["samples"].as_array().unwrap().len(), 4);
    assert!(v["forecast_times"][0].as_str().unwrap() > v["history_times"][95].as_str().unwrap());
    // The same seed gives the same samples.
    let again = predict(&["--forecast", "--samples", "4", "--seed", "7"]);
    assert_eq!(again.stdout, out.stdout);

    let out = predict(&["--index", "3"]);
    assert_eq!(out.status.code(), Some(65), "refused input");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Index 3 out of range. Valid range: -109 to 0")
    );
    let out = Command::new(env!("CARGO_BIN_EXE_glurpc"))
        .args(["predict", "--model"])
        .arg(root().join("tests/data/model/small"))
        .arg(root().join("Cargo.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65), "refused input");
    assert!(!out.stderr.is_empty());
}

/// With no `--model`, the embedded default model forecasts the next hour
/// offline: plausible values that start near the last reading, a band
/// around the median, and the same output twice.
#[test]
fn the_default_model_forecasts_offline() {
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_glurpc"))
            .arg("predict")
            .arg(root().join("tests/data/real/dexcom_us_14d.csv"))
            .args(["--forecast", "--format", "json"])
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_HOME", root().join("no-such-hf-home"))
            .output()
            .unwrap()
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = |x: &serde_json::Value| x.as_f64().unwrap();
    let last = f(v["history"].as_array().unwrap().last().unwrap());
    let median: Vec<f64> = v["median"].as_array().unwrap().iter().map(f).collect();
    let lo: Vec<f64> = v["quantiles"]["0.05"]
        .as_array()
        .unwrap()
        .iter()
        .map(f)
        .collect();
    let hi: Vec<f64> = v["quantiles"]["0.95"]
        .as_array()
        .unwrap()
        .iter()
        .map(f)
        .collect();
    assert_eq!(median.len(), 12);
    assert!(
        (median[0] - last).abs() < 30.0,
        "last {last}, forecast {median:?}"
    );
    for t in 0..12 {
        assert!((30.0..=450.0).contains(&median[t]), "{median:?}");
        assert!(
            lo[t] < median[t] && median[t] < hi[t],
            "step {t}: {lo:?} {hi:?}"
        );
    }
    assert_eq!(run().stdout, out.stdout);
}
