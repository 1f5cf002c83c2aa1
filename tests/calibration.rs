//! Per-step band calibration on real data: the shipped default model's bands
//! on a person it never saw (neither in training nor in calibration), the fit
//! itself, and `glurpc calibrate` / `--calibration` end to end.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Device;
use glurpc::model::{self, Calibration};
use glurpc::train::calibrate;
use glurpc::train::data::{self, Person};
use glurpc::train::eval::{self, EvalOptions};

fn real(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/real")
        .join(file)
}

fn people(file: &str) -> Vec<Person> {
    data::load_people(&real(file)).unwrap()
}

/// Per step: share of windows whose truth lies in the 5-95% band, and the
/// mean band width (mg/dL), as `glurpc evaluate` scores them.
fn coverage_and_width(
    net: &model::Gluformer,
    people: &[Person],
    stride: usize,
) -> (Vec<f64>, Vec<f64>) {
    let opts = EvalOptions {
        stride,
        samples: 10,
        seed: 0,
    };
    let scores = eval::evaluate(net, people, &opts).unwrap().model;
    assert!(scores.windows > 100, "{} windows", scores.windows);
    scores
        .per_step
        .iter()
        .map(|p| (p.coverage_90.unwrap(), p.width_90.unwrap()))
        .unzip()
}

#[test]
fn the_shipped_bands_hold_about_90_percent_at_every_step_on_a_held_out_person() {
    // The 14-day Dexcom G6 export (type 1) is in the default model's test
    // split: never trained on, never calibrated on.
    let dexcom = people("dexcom_us_14d.csv");
    let shipped = model::default::load(&Device::Cpu).unwrap();
    assert!(shipped.calibration().is_some());
    let (cov, width) = coverage_and_width(&shipped, &dexcom, 3);
    for t in [0, 5, 11] {
        assert!(
            (0.80..=0.98).contains(&cov[t]),
            "+{} min: 90% band holds {:.1}% ({cov:?})",
            5 * (t + 1),
            100.0 * cov[t]
        );
    }
    assert!(
        width[0] <= width[11] / 3.0,
        "+5 min band {:.1} mg/dL against +60 min {:.1}",
        width[0],
        width[11]
    );
    for t in 1..12 {
        assert!(
            width[t] >= width[t - 1] * 0.98,
            "band narrows at +{} min: {width:?}",
            5 * (t + 1)
        );
    }
    // Without the calibration (each step's spread divided by its factor) the
    // band is about as wide at +5 as at +60 minutes.
    let scales = &shipped.calibration().unwrap().scales;
    let raw_width: Vec<f64> = width.iter().zip(scales).map(|(w, s)| w / s).collect();
    assert!(raw_width[0] > 0.7 * raw_width[11], "{raw_width:?}");
}

#[test]
fn a_fit_reaches_its_target_on_the_data_it_was_fitted_on() {
    let val = people("nightscout_entries.json.gz");
    let net = model::default::load(&Device::Cpu).unwrap();
    // A validation person of the default model (Nightscout, iAPS loop).
    let opts = EvalOptions {
        stride: 1,
        samples: 10,
        seed: 0,
    };
    let fit = calibrate::fit(&net, &val, &opts, 0.9).unwrap();
    let cal = &fit.calibration;
    assert_eq!(cal.scales.len(), 12);
    assert!(fit.windows > 100, "{} windows", fit.windows);
    for t in 1..12 {
        assert!(
            fit.width_after[t] >= fit.width_after[t - 1] - 1e-9,
            "{:?}",
            fit.width_after
        );
    }
    let fitted = net.with_calibration(Some(cal.clone())).unwrap();
    let (cov, _) = coverage_and_width(&fitted, &val, 1);
    for (t, c) in cov.iter().enumerate() {
        // At least the target (ties and the monotone widths can only add).
        assert!(*c >= 0.9 - 1e-9 && *c <= 0.97, "+{} min: {c}", 5 * (t + 1));
    }
    assert!(calibrate::fit(&fitted, &val, &opts, 1.5).is_err());
    let one = EvalOptions { samples: 1, ..opts };
    assert!(calibrate::fit(&fitted, &val, &one, 0.9).is_err());
}

#[test]
fn calibrate_writes_a_file_that_predict_applies() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("calibration.json");
    let bin = env!("CARGO_BIN_EXE_glurpc");
    let run = Command::new(bin)
        .args(["calibrate", "--stride", "2", "--out"])
        .arg(&out)
        .arg(real("nightscout_entries.json.gz"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(err.contains("+60 min"), "{err}");
    let cal = Calibration::read(&out).unwrap();
    assert_eq!(cal.scales.len(), 12);
    assert_eq!(
        cal.fitted_on["windows"].as_u64().map(|n| n > 50),
        Some(true)
    );

    let predict = |calibration: Option<&str>| {
        let mut c = Command::new(bin);
        c.args(["predict", "--forecast"]);
        if let Some(f) = calibration {
            c.args(["--calibration", f]);
        }
        let o = c
            .arg(real("dexcom_us_14d.csv"))
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("GLURPC_CALIBRATION")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let numbers = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let ours = predict(Some(out.to_str().unwrap()));
    let none = predict(Some("none"));
    let shipped_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("model/calibration.json");
    let shipped = predict(Some(shipped_file.to_str().unwrap()));
    let default = predict(None);
    for other in [&ours, &shipped] {
        for (a, b) in numbers(&other["median"])
            .iter()
            .zip(numbers(&none["median"]))
        {
            assert!((a - b).abs() < 1e-3, "the median moved: {a} vs {b}");
        }
        assert_ne!(other["samples"], none["samples"]);
    }
    assert_eq!(
        default, shipped,
        "the default model applies its shipped calibration"
    );
    // The shipped bands widen from +5 to +60 minutes.
    let q = |v: &serde_json::Value, k: &str| numbers(&v["quantiles"][k]);
    let (lo, hi) = (q(&default, "0.05"), q(&default, "0.95"));
    assert!(hi[0] - lo[0] < hi[11] - lo[11], "{lo:?} {hi:?}");

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"method":"per_step_scale","scales":[1.0],"band":[0.05,0.95],"target_coverage":0.9}"#,
    )
    .unwrap();
    let o = Command::new(bin)
        .args(["predict", "--forecast", "--calibration"])
        .arg(&bad)
        .arg(real("dexcom_us_14d.csv"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 step factors"));
}
