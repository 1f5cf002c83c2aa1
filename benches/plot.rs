//! Plot rendering benchmarks: one window (96 history points, 12 steps, S = 10 samples,
//! 11 fans; `tests/data/plot/regular.input.json`) in each output format.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use glurpc::plot::{self, PlotData};
use serde_json::Value;

fn window() -> PlotData {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plot/regular.input.json");
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let floats = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let ints = |v: &Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect()
    };
    PlotData {
        handle: v["handle"].as_str().unwrap().to_string(),
        index: 0,
        history_times: ints(&v["history_times"]),
        history: floats(&v["history"]),
        forecast_times: ints(&v["forecast_times"]),
        samples: v["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect(),
        actual: Some(floats(&v["actual"])),
        warnings: vec![],
        units: plot::Units::MgDl,
        clock: plot::Clock::Unknown,
    }
}

fn plot_bench(c: &mut Criterion) {
    let data = window();
    assert_eq!(data.samples.len(), 10);
    c.bench_function("plot/plotly_json", |b| {
        b.iter(|| plot::plotly_json(black_box(&data)).len())
    });
    c.bench_function("plot/compact_json", |b| {
        b.iter(|| plot::compact_json(black_box(&data)).len())
    });
    c.bench_function("plot/png", |b| {
        b.iter(|| plot::png(black_box(&data)).map(|p| p.len()))
    });
    c.bench_function("plot/svg", |b| {
        b.iter(|| plot::svg(black_box(&data)).map(|s| s.len()))
    });
    c.bench_function("plot/kde_fans_12_steps", |b| {
        b.iter(|| {
            (0..12)
                .filter_map(|p| {
                    let step: Vec<f64> = data.samples.iter().map(|s| s[p]).collect();
                    plot::kde_fan(black_box(&step))
                })
                .count()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = plot_bench
}
criterion_main!(benches);
