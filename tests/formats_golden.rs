//! Golden parity with cgm-format 0.13.0: every fixture in `tests/data/golden/`
//! (made by `tools/make_format_goldens.py`) must give the same format, row
//! counts, time span, handle and byte-identical unified CSV.

mod common;

use common::{data_dir, first_difference, gunzip, json_files, parse_golden_inputs};

use glurpc::formats::{self, ParseOptions};

#[test]
fn every_golden_fixture_matches_the_reference() {
    let all = json_files("golden");
    assert!(
        all.len() >= 12,
        "expected the golden set, found {}",
        all.len()
    );
    for (stem, g) in &all {
        let p = parse_golden_inputs(g);
        let expected_format = if g["call"]
            .as_str()
            .unwrap_or("")
            .starts_with("FormatParser.parse_nightscout")
        {
            "nightscout_json"
        } else {
            g["format"].as_str().unwrap()
        };
        assert_eq!(p.format.id(), expected_format, "{stem}: format");
        let want_csv = gunzip(&data_dir().join(format!("golden/{stem}.unified.csv.gz")));
        assert!(
            p.csv == want_csv,
            "{stem}: unified CSV differs at {}",
            first_difference(&p.csv, &want_csv)
        );
        assert_eq!(p.handle, g["handle"].as_str().unwrap(), "{stem}: handle");
        assert_eq!(
            p.table.len() as u64,
            g["rows"].as_u64().unwrap(),
            "{stem}: rows"
        );
        let counts = serde_json::to_value(p.table.event_counts()).unwrap();
        assert_eq!(counts, g["event_counts"], "{stem}: event counts");
        let info = glurpc::cli::Inspection::of(&p);
        assert_eq!(info.first.as_deref(), g["first"].as_str(), "{stem}: first");
        assert_eq!(info.last.as_deref(), g["last"].as_str(), "{stem}: last");
    }
}

#[test]
fn handles_match_the_published_table() {
    // ../shared/data/README.md, "What the reference parser produces".
    let table = [
        (
            "real/dexcom_us_14d.csv",
            "5c6d1eae4ea4776595ab02785ab63ee90e8ef295ae73b345e2864ebfb1d79a78",
        ),
        (
            "real/libre_eu_1y.csv",
            "20e8b488d518e531583c380ef52f404ad91be45c10e0380a52cca45aeb63e0be",
        ),
        (
            "real/medtronic_86d.csv.gz",
            "13e4b31744d1674ad7cd29df584c8e32d22d701a9f91a3880412435b05a9a992",
        ),
        (
            "real/nightscout_exporter.csv",
            "9c2df82a1c12cbdc0c0bcb212bf26ab986d34c8273491a3d44593a8659a692fa",
        ),
    ];
    for (file, handle) in table {
        let bytes = std::fs::read(data_dir().join(file)).unwrap();
        let p = formats::parse_bytes(&bytes, &ParseOptions::default()).unwrap();
        assert_eq!(p.handle, handle, "{file}");
    }
    let e = std::fs::read(data_dir().join("real/nightscout_entries.json.gz")).unwrap();
    let t = std::fs::read(data_dir().join("real/nightscout_treatments.json.gz")).unwrap();
    let p = formats::parse_uploads(&[&e, &t], &ParseOptions::default()).unwrap();
    assert_eq!(
        p.handle,
        "9137f925ee9f20175eb9b5a2de76828e53bd92ab7aae1e01858799dcb18cd7c3"
    );
}

#[test]
fn unified_csv_round_trips_to_the_same_handle() {
    for (stem, g) in json_files("golden") {
        let p = parse_golden_inputs(&g);
        let again = formats::parse_bytes(p.csv.as_bytes(), &ParseOptions::default()).unwrap();
        assert_eq!(again.format.id(), "unified", "{stem}");
        assert_eq!(
            again.handle, p.handle,
            "{stem}: round trip changed the handle"
        );
    }
}

/// With the `polars` feature (CI runs it): the DataFrame writes our CSV text.
#[cfg(feature = "polars")]
#[test]
fn polars_dataframe_writes_the_same_csv() {
    use polars::prelude::{CsvWriter, SerWriter};
    for file in ["real/dexcom_us_14d.csv", "real/medtronic_86d.csv.gz"] {
        let bytes = std::fs::read(data_dir().join(file)).unwrap();
        let p = formats::parse_bytes(&bytes, &ParseOptions::default()).unwrap();
        let mut df = p.table.to_dataframe().unwrap();
        let mut buf = Vec::new();
        CsvWriter::new(&mut buf).finish(&mut df).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text == p.csv, "{file}: {}", first_difference(&text, &p.csv));
    }
}

#[test]
fn gzip_and_plain_uploads_give_the_same_handle() {
    use std::io::Write;
    let bytes = std::fs::read(data_dir().join("real/dexcom_us_14d.csv")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&bytes).unwrap();
    let gz = enc.finish().unwrap();
    let a = formats::parse_bytes(&bytes, &ParseOptions::default()).unwrap();
    let b = formats::parse_bytes(&gz, &ParseOptions::default()).unwrap();
    assert_eq!(a.handle, b.handle);
}
