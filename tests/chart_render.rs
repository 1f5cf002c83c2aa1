//! The PNG and SVG charts of fixed windows (`tests/data/plot/*.input.json`): pixels of the
//! PNG, the text of the SVG (title, axis titles, ticks and dates, legend, warnings), the
//! unit and clock, and that neither changes the Plotly figure or the compact JSON.
//!
//! With `GLURPC_PLOT_OUT=DIR` the images are also written there.

use glurpc::plot::{self, Clock, PlotData, PlotFormat, Units};
use serde_json::Value;

/// The window of a case as the engine hands it over.
fn input(case: &str) -> PlotData {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/data/plot/{case}.input.json"));
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
        index: v["index"].as_i64().unwrap(),
        history_times: ints(&v["history_times"]),
        history: floats(&v["history"]),
        forecast_times: ints(&v["forecast_times"]),
        samples: v["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect(),
        actual: v["actual"].as_array().map(|_| floats(&v["actual"])),
        warnings: vec![],
        units: Units::MgDl,
        clock: Clock::Unknown,
    }
}

fn count_pixels(rgb: &[u8], f: impl Fn(u8, u8, u8) -> bool) -> usize {
    rgb.chunks_exact(3).filter(|p| f(p[0], p[1], p[2])).count()
}

#[test]
fn png_is_a_1000x600_chart() {
    let data = input("regular");
    let bytes = plot::render(&data, PlotFormat::Png).unwrap();
    if let Ok(dir) = std::env::var("GLURPC_PLOT_OUT") {
        std::fs::write(std::path::Path::new(&dir).join("regular.png"), &bytes).unwrap();
        let forward = PlotData {
            actual: None,
            ..input("irregular")
        };
        let png = plot::png(&forward).unwrap();
        std::fs::write(
            std::path::Path::new(&dir).join("irregular_forward.png"),
            png,
        )
        .unwrap();
    }
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1000, 600));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let rgb = &buf[..info.buffer_size()];
    let white = count_pixels(rgb, |r, g, b| r == 255 && g == 255 && b == 255);
    // the median forecast: Okabe-Ito blue (0, 114, 178)
    let median = count_pixels(rgb, |r, g, b| r < 20 && (100..130).contains(&g) && b > 160);
    // the bands: that blue at 20% and 20% + 38% over white or the target range
    let band = count_pixels(rgb, |r, g, b| {
        (120..235).contains(&r) && g > r && b > g && b >= 200 && (i32::from(b) - i32::from(r)) > 20
    });
    // the target range: Okabe-Ito bluish green (0, 158, 115) at 8% over white
    let target = count_pixels(rgb, |r, g, b| {
        (230..240).contains(&r) && g > 243 && (238..249).contains(&b)
    });
    let dark = count_pixels(rgb, |r, g, b| r < 80 && g < 80 && b < 80);
    println!(
        "PNG {} bytes: white {white}, median {median}, band {band}, target {target}, dark {dark}",
        bytes.len()
    );
    assert!(white > 200_000, "mostly white background");
    assert!(median > 300, "median line");
    assert!(band > 1000, "bands");
    assert!(target > 10_000, "target range");
    assert!(dark > 1500, "measured values, text and axes");
}

/// The contents of an SVG's `<text>` elements.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            Some(
                t.split_once('>')?
                    .1
                    .split_once("</text>")?
                    .0
                    .trim()
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn svg_has_title_labels_and_bands() {
    let data = input("irregular");
    let svg = String::from_utf8(plot::render(&data, PlotFormat::Svg).unwrap()).unwrap();
    if let Ok(dir) = std::env::var("GLURPC_PLOT_OUT") {
        std::fs::write(std::path::Path::new(&dir).join("irregular.svg"), &svg).unwrap();
    }
    assert!(svg.trim_start().starts_with("<svg"));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("width=\"1000\"") && svg.contains("height=\"600\""));
    let texts = svg_texts(&svg);
    let has = |t: &str| texts.iter().any(|x| x == t);
    for text in [
        "Glucose (mg/dL)",
        "Time (as in the upload, timezone not stated)",
        "measured",
        "median forecast",
        "50% band",
        "90% band",
        "target range",
        "70–180 mg/dL",
        "forecast from 03:07",
    ] {
        assert!(has(text), "{text} not in {texts:?}");
    }
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("Glucose forecast: 60 minutes from ")),
        "{texts:?}"
    );
    // two bands, drawn with one colour each (the same shading at every step)
    assert_eq!(svg.matches("<polygon").count(), 2);
    assert!(svg.contains("fill=\"#0072B2\""), "forecast colour");
    // tick labels on round wall-clock times (every 30 minutes over these 4 hours), the
    // date under the first
    for tick in ["00:30", "01:00", "03:00"] {
        assert!(has(tick), "{tick} not in {texts:?}");
    }
    let first = texts.iter().position(|t| t == "00:30").unwrap();
    assert!(
        texts[first + 1].ends_with(" 2025"),
        "date under the first tick: {texts:?}"
    );
}

#[test]
fn units_and_clock_change_only_the_images() {
    let mut data = input("regular");
    let plotly = plot::plotly_json(&data);
    let compact = plot::compact_json(&data);
    data.units = Units::MmolL;
    data.clock = Clock::Utc;
    assert_eq!(plot::plotly_json(&data), plotly);
    // the compact JSON keeps its numbers (mg/dL) and only names the unit and clock to show
    let mut before: serde_json::Value = serde_json::from_str(&compact).unwrap();
    let mut after: serde_json::Value = serde_json::from_str(&plot::compact_json(&data)).unwrap();
    assert_eq!(after["display_units"], "mmol/L");
    assert_eq!(after["clock"], "utc");
    for v in [&mut before, &mut after] {
        let o = v.as_object_mut().unwrap();
        o.remove("display_units");
        o.remove("clock");
    }
    assert_eq!(after, before);
    let texts = svg_texts(&plot::svg(&data).unwrap());
    let has = |t: &str| texts.iter().any(|x| x == t);
    assert!(has("Glucose (mmol/L)"), "{texts:?}");
    assert!(has("Time (UTC)"), "{texts:?}");
    assert!(has("3.9–10.0 mmol/L"), "{texts:?}");
    // mmol/L tick labels: whole numbers or one decimal, none above 40
    let values: Vec<f64> = texts
        .iter()
        .filter(|t| !t.contains(':'))
        .filter_map(|t| t.parse().ok())
        .collect();
    assert!(values.len() >= 3, "{texts:?}");
    assert!(values.iter().all(|v| *v < 40.0), "{values:?}");
}

#[test]
fn warnings_are_printed_in_plain_words() {
    let mut data = input("regular");
    data.actual = None;
    data.warnings = vec![
        "IMPUTATION: Contains imputed gaps".into(),
        "OLDER_SEQUENCE: The most recent data (up to 2024-05-03T10:00) covers less than 540 minutes; using an earlier sequence ending 2024-05-01T07:55".into(),
    ];
    let texts = svg_texts(&plot::svg(&data).unwrap());
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("⚠ Gaps in the readings were filled")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with(
            "⚠ Forecast from an older sequence ending 2024-05-01 07:55: the newest data (up to 2024-05-03 10:00)"
        )),
        "{texts:?}"
    );
    // the forecast is not about the newest data: its line is not "now"
    assert!(
        texts.iter().any(|t| t == "forecast from 07:55"),
        "{texts:?}"
    );
    if let Ok(dir) = std::env::var("GLURPC_PLOT_OUT") {
        std::fs::write(
            std::path::Path::new(&dir).join("regular_warnings.png"),
            plot::png(&data).unwrap(),
        )
        .unwrap();
    }
}
