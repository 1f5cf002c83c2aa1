//! Ingestion benchmarks: decode + detect + parse + unify + CSV text + handle,
//! the same work as cgm-format's `parse_from_bytes` + `write_csv` + SHA-256
//! (timed on the Python side by `tools/bench_cgm_format.py`).

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use glurpc::formats::{self, ParseOptions};

fn load(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/real")
            .join(name),
    )
    .unwrap()
}

fn ingest(c: &mut Criterion) {
    let opts = ParseOptions::default();
    for (label, file) in [
        ("dexcom_us_14d", "dexcom_us_14d.csv"),
        ("libre_eu_1y", "libre_eu_1y.csv"),
        ("medtronic_86d_gz", "medtronic_86d.csv.gz"),
    ] {
        let bytes = load(file);
        c.bench_function(&format!("parse_unify_handle/{label}"), |b| {
            b.iter(|| formats::parse_bytes(std::hint::black_box(&bytes), &opts).unwrap())
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = ingest
}
criterion_main!(benches);
