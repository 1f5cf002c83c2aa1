//! Helpers shared by the golden tests: fixture paths, gunzip, golden inputs, text diffs.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

use glurpc::formats::{self, ParseOptions, Parsed};
use serde_json::Value;

pub mod process;
pub mod redis;
pub mod server;

/// `tests/data`.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The text of a gzip file.
pub fn gunzip(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut out)
        .unwrap();
    out
}

/// Parses the input files a format golden names (`file`, optional `treatments_file`).
pub fn parse_golden_inputs(g: &Value) -> Parsed {
    let mut files = vec![std::fs::read(data_dir().join(g["file"].as_str().unwrap())).unwrap()];
    if let Some(t) = g["treatments_file"].as_str() {
        files.push(std::fs::read(data_dir().join(t)).unwrap());
    }
    let refs: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
    formats::parse_uploads(&refs, &ParseOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", g["file"]))
}

/// The first differing line of two texts, for assertion messages.
pub fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}:\n  ours: {x}\n  ref:  {y}", i + 1);
        }
    }
    format!(
        "line counts differ: ours {} ref {}",
        a.lines().count(),
        b.lines().count()
    )
}

/// `(stem, parsed JSON)` of every `*.json` in `tests/data/<dir>`, sorted by stem.
pub fn json_files(dir: &str) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(data_dir().join(dir))
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "json").then_some(p)
        })
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            (
                stem,
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The tensors of a model fixture under `tests/data/model/`.
pub fn model_fixture(name: &str) -> std::collections::HashMap<String, candle_core::Tensor> {
    candle_core::safetensors::load(
        data_dir().join("model").join(name),
        &candle_core::Device::Cpu,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Largest absolute element difference of two same-shaped tensors.
pub fn max_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    a.sub(b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .expect("tensor difference")
}

/// The small fixture Gluformer (`tests/data/model/small`) on the CPU.
pub fn small_model() -> glurpc::model::Gluformer {
    let dir = data_dir().join("model/small");
    let files = glurpc::model::source::resolve_local(&dir).unwrap();
    glurpc::model::load(&files, &candle_core::Device::Cpu).unwrap()
}

/// The 14-day Dexcom Clarity export (110 full windows).
pub fn dexcom_14d() -> Vec<u8> {
    std::fs::read(data_dir().join("real/dexcom_us_14d.csv")).unwrap()
}
