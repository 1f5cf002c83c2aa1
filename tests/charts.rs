//! The PNG and SVG charts of real exports, through the engine with the small fixture model:
//! what their text says (title, dates, clock, unit, legend, warnings) for a Dexcom (US,
//! mg/dL, local time, a forecast across midnight), an mmol/L Libre and a Nightscout API
//! file (UTC); the `units` option on the CLI, REST and gRPC; and the older-sequence warning.
//!
//! With `GLURPC_CHART_OUT=DIR` the charts are also written there as PNG and SVG.

mod common;

use chrono::DateTime;
use common::server::{Setup, TestServer, b64};
use glurpc::engine::plots::{PlotSpec, plot_data};
use glurpc::engine::scheduler::PRIORITY_INTERACTIVE;
use glurpc::engine::{Engine, EngineConfig, ProcessOptions, Target, WindowKey, WindowKind};
use glurpc::plot::{Clock, PlotData, PlotFormat, Units};
use glurpc::proto;

fn opts() -> ProcessOptions {
    ProcessOptions {
        kind: WindowKind::Full,
        priority: PRIORITY_INTERACTIVE,
        force: false,
        queue_windows: false,
    }
}

fn real(name: &str) -> Vec<u8> {
    std::fs::read(common::data_dir().join("real").join(name)).unwrap()
}

/// The contents of an SVG's `<text>` elements.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let inner = t.split_once('>')?.1.split_once("</text>")?.0;
            Some(inner.trim().replace("&amp;", "&"))
        })
        .collect()
}

fn date_of(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap()
        .naive_utc()
        .format("%-d %b %Y")
        .to_string()
}

fn clock_of(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap()
        .naive_utc()
        .format("%H:%M")
        .to_string()
}

/// A processed upload's chart: the plot data and the SVG, written (with the PNG) to
/// `GLURPC_CHART_OUT` as `name`.
struct Chart {
    data: PlotData,
    svg: String,
    texts: Vec<String>,
}

impl Chart {
    fn has(&self, t: &str) -> bool {
        self.texts.iter().any(|x| x == t)
    }

    fn starts(&self, t: &str) -> bool {
        self.texts.iter().any(|x| x.starts_with(t))
    }
}

async fn chart(
    engine: &Engine,
    files: Vec<Vec<u8>>,
    target: Target,
    units: Option<Units>,
    name: &str,
) -> Chart {
    let p = engine.process(files, opts()).await.unwrap();
    let key = WindowKey {
        handle: p.handle.clone(),
        kind: WindowKind::Full,
        target,
    };
    let svg = engine
        .plot(key.clone(), PlotSpec::new(PlotFormat::Svg, units), false)
        .await
        .unwrap();
    let svg = String::from_utf8(svg.bytes.to_vec()).unwrap();
    let upload = engine.upload(&p.handle, WindowKind::Full).await.unwrap();
    let f = engine.window_forecast(key.clone()).await.unwrap();
    let data = plot_data(&upload, target, &f, units).unwrap();
    if let Ok(dir) = std::env::var("GLURPC_CHART_OUT") {
        let dir = std::path::Path::new(&dir);
        let png = engine
            .plot(key, PlotSpec::new(PlotFormat::Png, units), false)
            .await
            .unwrap();
        std::fs::write(dir.join(format!("{name}.png")), &png.bytes).unwrap();
        std::fs::write(dir.join(format!("{name}.svg")), &svg).unwrap();
    }
    let texts = texts(&svg);
    Chart { data, svg, texts }
}

fn small_engine() -> Engine {
    Engine::start(common::small_model(), EngineConfig::default()).unwrap()
}

/// Checks shared by every chart: title, legend, "now" label, a date under the first tick
/// and under the tick of each new day, real `<text>` elements.
fn check_common(c: &Chart) {
    let t0 = *c.data.history_times.last().unwrap();
    assert!(
        c.has(&format!(
            "Glucose forecast: 60 minutes from {} {}",
            date_of(t0),
            clock_of(t0)
        )),
        "{:?}",
        c.texts
    );
    for entry in [
        "measured",
        "median forecast",
        "50% band",
        "90% band",
        "target range",
    ] {
        assert!(c.has(entry), "legend entry {entry} not in {:?}", c.texts);
    }
    let older = c
        .data
        .warnings
        .iter()
        .any(|w| w.starts_with("OLDER_SEQUENCE"));
    let now = if c.data.actual.is_some() || older {
        format!("forecast from {}", clock_of(t0))
    } else {
        format!("now {}", clock_of(t0))
    };
    assert!(c.has(&now), "{now} not in {:?}", c.texts);
    // the last forecast time's date is written under a tick (the first tick, or midnight)
    let last = *c.data.forecast_times.last().unwrap();
    assert!(
        c.has(&date_of(last)),
        "{} not in {:?}",
        date_of(last),
        c.texts
    );
    // three hours of history: 36 measured points before the forecast
    assert!(c.data.history.len() >= 36);
    assert!(c.svg.matches("<text").count() > 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dexcom_chart_in_local_time_and_mgdl_across_midnight() {
    let engine = small_engine();
    let c = chart(
        &engine,
        vec![common::dexcom_14d()],
        Target::Forward,
        None,
        "dexcom_us_14d_forward",
    )
    .await;
    check_common(&c);
    assert_eq!((c.data.units, c.data.clock), (Units::MgDl, Clock::Local));
    assert!(c.has("Glucose (mg/dL)"), "{:?}", c.texts);
    assert!(c.has("Time (local time of the export)"), "{:?}", c.texts);
    assert!(c.has("70–180 mg/dL"));
    // the last reading is 2019-10-28 23:57: the forecast runs past midnight, and both
    // days are written under their ticks, the new one under 00:00
    assert!(c.has("now 23:57"), "{:?}", c.texts);
    assert!(
        c.has("28 Oct 2019") && c.has("29 Oct 2019"),
        "{:?}",
        c.texts
    );
    let midnight = c.texts.iter().position(|t| t == "00:00").unwrap();
    assert_eq!(c.texts[midnight + 1], "29 Oct 2019");
    // this upload's imputed gaps, in plain words (repeated timestamps are not printed)
    assert!(
        c.starts("⚠ Gaps in the readings were filled"),
        "{:?}",
        c.texts
    );
    assert!(!c.texts.iter().any(|t| t.contains("TIME_DUPLICATES")));

    // a past window: the measured values after it, and its own label
    let c = chart(
        &engine,
        vec![common::dexcom_14d()],
        Target::Index(-30),
        None,
        "dexcom_us_14d_window_-30",
    )
    .await;
    check_common(&c);
    assert!(c.starts("A past window: the model saw the readings up to "));
    tokio::task::spawn_blocking(move || engine.shutdown())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libre_mmol_export_is_drawn_in_mmol_unless_asked_otherwise() {
    let engine = small_engine();
    let raw = real("libre_eu_1y.csv");
    let c = chart(
        &engine,
        vec![raw.clone()],
        Target::Forward,
        None,
        "libre_eu_1y_forward",
    )
    .await;
    check_common(&c);
    assert_eq!((c.data.units, c.data.clock), (Units::MmolL, Clock::Local));
    assert!(c.has("Glucose (mmol/L)"), "{:?}", c.texts);
    assert!(c.has("Time (local time of the export)"), "{:?}", c.texts);
    assert!(c.has("3.9–10.0 mmol/L"), "{:?}", c.texts);
    // mmol/L ticks: small numbers
    let ticks: Vec<f64> = c.texts.iter().filter_map(|t| t.parse().ok()).collect();
    assert!(
        ticks.len() >= 3 && ticks.iter().all(|v| *v <= 30.0),
        "{ticks:?}"
    );

    // the same upload in mg/dL on request
    let c = chart(
        &engine,
        vec![raw.clone()],
        Target::Forward,
        Some(Units::MgDl),
        "libre_eu_1y_forward_mgdl",
    )
    .await;
    assert!(
        c.has("Glucose (mg/dL)") && c.has("70–180 mg/dL"),
        "{:?}",
        c.texts
    );

    // its unified CSV (the reference's convert-then-process flow) on an engine that never
    // saw the export: the unit is read from the values; a unified CSV states no clock.
    // (An engine that parsed the export keeps its unit and clock for the same handle.)
    let unified = engine.convert(vec![raw]).await.unwrap().csv.into_bytes();
    let c = chart(
        &engine,
        vec![unified.clone()],
        Target::Forward,
        None,
        "libre_eu_1y_unified_same_engine",
    )
    .await;
    assert_eq!((c.data.units, c.data.clock), (Units::MmolL, Clock::Local));
    let fresh = small_engine();
    let c = chart(
        &fresh,
        vec![unified],
        Target::Forward,
        None,
        "libre_eu_1y_unified",
    )
    .await;
    assert_eq!(c.data.units, Units::MmolL);
    assert!(
        c.has("Glucose (mmol/L)") && c.has("Time (as in the upload, timezone not stated)"),
        "{:?}",
        c.texts
    );
    tokio::task::spawn_blocking(move || fresh.shutdown())
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || engine.shutdown())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nightscout_api_times_are_utc() {
    let engine = small_engine();
    let raw = common::gunzip(&common::data_dir().join("real/nightscout_entries.json.gz"));
    let c = chart(
        &engine,
        vec![raw.into_bytes()],
        Target::Forward,
        None,
        "nightscout_entries_forward",
    )
    .await;
    check_common(&c);
    assert_eq!((c.data.units, c.data.clock), (Units::MgDl, Clock::Utc));
    assert!(c.has("Time (UTC)"), "{:?}", c.texts);
    assert!(c.has("Glucose (mg/dL)"), "{:?}", c.texts);
    tokio::task::spawn_blocking(move || engine.shutdown())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_sequence_warning_names_the_forecast_time() {
    let engine = small_engine();
    // the 14-day Dexcom export and, two days after it, 20 minutes of newer readings:
    // too short to forecast from, so the forecast comes from the older sequence
    let mut text = String::from_utf8(common::dexcom_14d()).unwrap();
    for (i, minute) in [0, 5, 10, 15, 20].iter().enumerate() {
        text.push_str(&format!(
            "{},2019-10-30T08:{minute:02}:00,EGV,,,,Android G6,{},,,,,1300000,8GH86L\r\n",
            5000 + i,
            120 + i
        ));
    }
    let c = chart(
        &engine,
        vec![text.into_bytes()],
        Target::Forward,
        None,
        "dexcom_older_sequence",
    )
    .await;
    check_common(&c);
    assert!(
        c.starts(
            "⚠ Forecast from an older sequence ending 2019-10-28 23:57: the newest data (up to 2019-10-30 08:20)"
        ),
        "{:?}",
        c.texts
    );
    // not "now": newer data exists
    assert!(c.has("forecast from 23:57"), "{:?}", c.texts);
    assert!(c.starts("The hour after the end of an older sequence"));
    tokio::task::spawn_blocking(move || engine.shutdown())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_over_rest_and_grpc() {
    let s = TestServer::start(Setup::small()).await;
    let raw = real("libre_eu_1y.csv");
    let body = serde_json::json!({ "csv_base64": b64(&raw) });
    let svg_of = |r: reqwest::Response| async move {
        assert_eq!(r.status().as_u16(), 200);
        texts(&r.text().await.unwrap())
    };
    // /forecast: the export's unit by default, mg/dL on request
    let r = s
        .http
        .post(s.url("/forecast?format=svg"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(svg_of(r).await.contains(&"Glucose (mmol/L)".to_string()));
    let r = s
        .http
        .post(s.url("/forecast?format=svg&units=mg/dL"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(svg_of(r).await.contains(&"Glucose (mg/dL)".to_string()));
    // /draw_a_plot of the processed upload, mmol/L asked for by another spelling
    let p: serde_json::Value = s
        .http
        .post(s.url("/process_unified"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let handle = p["handle"].as_str().unwrap().to_string();
    let plot = serde_json::json!({ "handle": handle, "index": 0 });
    for (units, want) in [("mgdl", "Glucose (mg/dL)"), ("MMOL", "Glucose (mmol/L)")] {
        let r = s
            .http
            .post(s.url(&format!("/draw_a_plot?format=svg&units={units}")))
            .json(&plot)
            .send()
            .await
            .unwrap();
        assert!(svg_of(r).await.contains(&want.to_string()), "{units}");
    }
    // an unknown unit is a 400 naming the accepted ones
    let r = s
        .http
        .post(s.url("/draw_a_plot?format=svg&units=g/L"))
        .json(&plot)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let detail: serde_json::Value = r.json().await.unwrap();
    assert!(detail["detail"].as_str().unwrap().contains("mmol/L"));
    // the Plotly figure is the same whatever the unit
    let plotly = |u: &'static str| {
        let (s, plot) = (&s, &plot);
        async move {
            s.http
                .post(s.url(&format!("/draw_a_plot?units={u}")))
                .json(plot)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        }
    };
    assert_eq!(plotly("mgdl").await, plotly("mmol").await);

    // gRPC Forecast: `units` is a new optional field; a request without it is unchanged
    let mut c = s.grpc().await;
    let f = c
        .forecast(proto::ForecastRequest {
            handle: handle.clone(),
            format: "svg".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(texts(&String::from_utf8(f.body).unwrap()).contains(&"Glucose (mmol/L)".to_string()));
    let f = c
        .forecast(proto::ForecastRequest {
            handle: handle.clone(),
            format: "svg".into(),
            units: Some("mg/dL".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(texts(&String::from_utf8(f.body).unwrap()).contains(&"Glucose (mg/dL)".to_string()));
    let e = c
        .forecast(proto::ForecastRequest {
            handle,
            format: "png".into(),
            units: Some("furlongs".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    s.stop().await;
}

#[test]
fn predict_units_on_the_command_line() {
    let run = |extra: &[&str]| -> Vec<String> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_glurpc"))
            .arg("predict")
            .arg(common::data_dir().join("real/libre_eu_1y.csv"))
            .arg("--model")
            .arg(common::data_dir().join("model/small"))
            .args(["--forecast", "--format", "svg"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        texts(&String::from_utf8(out.stdout).unwrap())
    };
    assert!(run(&[]).contains(&"Glucose (mmol/L)".to_string()));
    assert!(run(&["--units", "mgdl"]).contains(&"Glucose (mg/dL)".to_string()));
    assert!(run(&["--units", "mg/dL"]).contains(&"Glucose (mg/dL)".to_string()));
    assert!(run(&["--units", "mmol"]).contains(&"Glucose (mmol/L)".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_and_unit_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || EngineConfig {
        samples: 0,
        cache_dir: Some(dir.path().to_path_buf()),
        ..EngineConfig::default()
    };
    let raw = common::gunzip(&common::data_dir().join("real/nightscout_entries.json.gz"));
    let engine = Engine::start(common::small_model(), config()).unwrap();
    let p = engine
        .process(vec![raw.into_bytes()], opts())
        .await
        .unwrap();
    let key = WindowKey {
        handle: p.handle.clone(),
        kind: WindowKind::Full,
        target: Target::Index(0),
    };
    engine.window_forecast(key.clone()).await.unwrap();
    tokio::task::spawn_blocking(move || engine.shutdown())
        .await
        .unwrap();
    // a new process reads the upload back from its record on disk
    let engine = Engine::start(common::small_model(), config()).unwrap();
    let svg = engine.plot(key, PlotFormat::Svg, false).await.unwrap();
    let t = texts(std::str::from_utf8(&svg.bytes).unwrap());
    assert!(t.contains(&"Time (UTC)".to_string()), "{t:?}");
    tokio::task::spawn_blocking(move || engine.shutdown())
        .await
        .unwrap();
}
