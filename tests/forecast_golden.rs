//! End to end against the reference's code path: a real CGM export through
//! ingestion, the pipeline (full window), the small fixture model in eval
//! mode and the scaler's inverse, compared in mg/dL with goldens written by
//! `tools/make_forecast_goldens.py` (cgm-format 0.13.0 + gluRPC 0.6.3 +
//! glucobench 0.4.1).

use std::path::PathBuf;

use candle_core::Device;
use glurpc::bridge::{model_window, to_mgdl, window_seed};
use glurpc::formats::{self, ParseOptions};
use glurpc::model::{self, Mode, PredictOptions};
use glurpc::pipeline::{self, WindowConfig};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn eval_forecasts_match_the_reference_in_mgdl() {
    let m = model::load(
        &model::source::resolve_local(&root().join("tests/data/model/small")).unwrap(),
        &Device::Cpu,
    )
    .unwrap();
    for (stem, file) in [
        ("dexcom_us_14d", "dexcom_us_14d.csv"),
        ("libre_eu_1y", "libre_eu_1y.csv"),
    ] {
        let golden: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                root().join(format!("tests/data/golden_forecast/{stem}.json")),
            )
            .unwrap(),
        )
        .unwrap();
        let bytes = std::fs::read(root().join("tests/data/real").join(file)).unwrap();
        let parsed = formats::parse_bytes(&bytes, &ParseOptions::default()).unwrap();
        assert_eq!(parsed.handle, golden["handle"].as_str().unwrap());
        let processed = pipeline::process(&parsed.table);
        let prepared = pipeline::prepare(&processed, WindowConfig::FULL).unwrap();
        let ds = &prepared.dataset;
        assert_eq!(ds.len() as u64, golden["samples"].as_u64().unwrap());
        let mut worst = 0f64;
        for (k, want) in golden["windows"].as_object().unwrap() {
            let w = ds.window(k.parse().unwrap()).unwrap();
            let seed = window_seed(&parsed.handle, w.input_times[95], 0);
            let opts = PredictOptions {
                mode: Mode::Deterministic,
                ..PredictOptions::default()
            };
            let fc = m.predict(&[model_window(&w, seed)], &opts).unwrap();
            let mgdl = to_mgdl(&ds.target_scaler, &fc.pred);
            let want: Vec<f64> = want["forecast_mgdl"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            for (a, b) in mgdl.iter().zip(&want) {
                worst = worst.max((a - b).abs());
            }
        }
        eprintln!("{stem}: worst |diff| {worst:e} mg/dL");
        assert!(worst < 1e-3, "{stem}: {worst} mg/dL");
    }
}

#[test]
fn window_seeds_depend_on_data_and_time_only() {
    let a = window_seed("abc", 1_000, 0);
    assert_eq!(a, window_seed("abc", 1_000, 0));
    assert_ne!(a, window_seed("abd", 1_000, 0));
    assert_ne!(a, window_seed("abc", 1_300, 0));
    assert_ne!(a, window_seed("abc", 1_000, 1));
}
