//! Pipeline benchmarks: from the parsed unified table to the scaled dataset
//! (sequences, interpolation, grid, full window, series, scaling), the work
//! `tools/bench_pipeline.py` times on the reference.

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use glurpc::formats::{self, ParseOptions};
use glurpc::pipeline::{self, WindowConfig};

fn pipeline_bench(c: &mut Criterion) {
    for (label, file) in [
        ("libre_eu_1y", "libre_eu_1y.csv"),
        ("medtronic_86d", "medtronic_86d.csv.gz"),
    ] {
        let bytes = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/real")
                .join(file),
        )
        .unwrap();
        let parsed = formats::parse_bytes(&bytes, &ParseOptions::default()).unwrap();
        c.bench_function(&format!("pipeline_to_dataset/{label}"), |b| {
            b.iter(|| {
                let processed = pipeline::process(std::hint::black_box(&parsed.table));
                pipeline::prepare(&processed, WindowConfig::FULL).map(|p| p.dataset.len())
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = pipeline_bench
}
criterion_main!(benches);
