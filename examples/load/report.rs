//! The run's report: a table, or one JSON object.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::cli::{Args, Scenario};
use crate::phase::Outcome;
use crate::setup::Warmup;

/// What a scenario reports besides its outcomes.
pub(crate) struct ScenarioNote {
    pub(crate) scenario: Scenario,
    pub(crate) note: String,
}

fn throughput(o: &Outcome) -> f64 {
    let secs = o.elapsed.as_secs_f64();
    if secs > 0.0 {
        o.stats.requests() as f64 / secs
    } else {
        0.0
    }
}

pub(crate) fn report_table(
    args: &Args,
    outcomes: &[Outcome],
    notes: &[ScenarioNote],
    warmup: Option<&Warmup>,
    interrupted: bool,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "glurpc load: {} / {}, {} clients per protocol, {} s per scenario{}, file {}",
        args.rest,
        args.grpc,
        args.connections,
        args.duration,
        if args.sequential {
            " (protocols one after the other)"
        } else {
            " (protocols at the same time)"
        },
        args.file.display()
    );
    let _ = writeln!(
        s,
        "{:<16} {:<5} {:>5} {:>7} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "scenario",
        "proto",
        "conns",
        "secs",
        "requests",
        "errors",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms"
    );
    for o in outcomes {
        let p = |i: usize| {
            o.percentiles
                .map_or("-".to_string(), |p| format!("{:.2}", p[i]))
        };
        let _ = writeln!(
            s,
            "{:<16} {:<5} {:>5} {:>7.2} {:>9} {:>7} {:>10.1} {:>9} {:>9} {:>9} {:>9}{}",
            o.scenario.name(),
            o.protocol.name(),
            o.connections,
            o.elapsed.as_secs_f64(),
            o.stats.requests(),
            o.stats.errors,
            throughput(o),
            p(0),
            p(1),
            p(2),
            p(3),
            if o.cut_short { "  (cut short)" } else { "" }
        );
    }
    for o in outcomes.iter().filter(|o| o.stats.errors > 0) {
        let kinds: Vec<String> = o
            .stats
            .error_kinds
            .iter()
            .map(|(k, n)| format!("{n} x {k}"))
            .collect();
        let _ = writeln!(
            s,
            "errors {} {}: {}",
            o.scenario.name(),
            o.protocol.name(),
            kinds.join("; ")
        );
    }
    if let Some(w) = warmup {
        let _ = writeln!(
            s,
            "cached-plot warm-up ({}): {} windows, {} plotted, {} errors, {:.1} s{}",
            w.protocol.name(),
            w.windows,
            w.plotted,
            w.errors,
            w.seconds,
            if w.complete { "" } else { " (incomplete)" }
        );
    }
    for n in notes {
        let _ = writeln!(s, "{}: {}", n.scenario.name(), n.note);
    }
    if interrupted {
        let _ = writeln!(s, "interrupted: partial results");
    }
    let _ = writeln!(
        s,
        "latencies over successful requests; req/s counts every completed request"
    );
    s
}

pub(crate) fn report_json(
    args: &Args,
    outcomes: &[Outcome],
    notes: &[ScenarioNote],
    warmup: Option<&Warmup>,
    interrupted: bool,
) -> Value {
    let results: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let latency = o
                .percentiles
                .map(|p| json!({"p50": p[0], "p90": p[1], "p99": p[2], "max": p[3]}));
            json!({
                "scenario": o.scenario.name(),
                "protocol": o.protocol.name(),
                "connections": o.connections,
                "elapsed_s": o.elapsed.as_secs_f64(),
                "requests": o.stats.requests(),
                "ok": o.stats.latencies_us.len(),
                "errors": o.stats.errors,
                "error_kinds": o.stats.error_kinds,
                "throughput_rps": throughput(o),
                "latency_ms": latency,
                "cut_short": o.cut_short,
            })
        })
        .collect();
    json!({
        "config": {
            "rest": args.rest,
            "grpc": args.grpc,
            "file": args.file.display().to_string(),
            "connections": args.connections,
            "duration_s": args.duration,
            "sequential": args.sequential,
        },
        "results": results,
        "warmup": warmup.map(|w| json!({
            "protocol": w.protocol.name(),
            "windows": w.windows,
            "plotted": w.plotted,
            "errors": w.errors,
            "seconds": w.seconds,
            "complete": w.complete,
        })),
        "notes": notes.iter().map(|n| json!({"scenario": n.scenario.name(), "note": n.note})).collect::<Vec<_>>(),
        "interrupted": interrupted,
    })
}
