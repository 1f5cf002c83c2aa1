//! Memory under many large uploads at once (issue 19, fault 1): a real
//! `glurpc serve` process, sixteen 60 MiB Dexcom exports (gzip, about 10 MB
//! on the wire) sent at once, half to the public `/convert_to_unified`, half
//! to `/process_unified`. Parse work is admitted against a bounded budget, so
//! the server's peak resident memory stays under a stated bound and every
//! answer is 200, 413 or 503.

mod common;

use std::io::Write;
use std::path::Path;

use common::process::Process;
use common::server::b64;
use serde_json::{Value, json};

/// The bound this test holds the server to (issue 19's target: 8 concurrent
/// 60 MiB uploads under 1.5 GiB; here twice as many).
const PEAK_BOUND_BYTES: u64 = 1536 << 20;

/// A Dexcom Clarity export of about `bytes` bytes: the 14-day file's header
/// and metadata, then five-minute readings from 2015 on.
fn big_dexcom(bytes: usize) -> Vec<u8> {
    let real = std::fs::read_to_string(common::data_dir().join("real/dexcom_us_14d.csv")).unwrap();
    let mut out = String::with_capacity(bytes + 4096);
    for line in real.split("\r\n").take(11) {
        out.push_str(line);
        out.push_str("\r\n");
    }
    let start = 1_420_070_400i64; // 2015-01-01T00:00:00
    let mut i = 11u64;
    let mut g = 120i64;
    while out.len() < bytes {
        let t = start + (i as i64 - 11) * 300;
        let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
        let date = chrono::DateTime::from_timestamp(days * 86_400, 0)
            .unwrap()
            .date_naive();
        g = (g + (i as i64 * 7919 % 9) - 4).clamp(40, 400);
        out.push_str(&format!(
            "{i},{date}T{:02}:{:02}:{:02},EGV,,,,Android G6,{g},,,,,{},8GH86L\r\n",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60,
            7573 + i * 300
        ));
        i += 1;
    }
    out.into_bytes()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

struct Serve {
    process: Process,
    rest: String,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn start(extra: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = common::process::serve_command(Path::new(env!("CARGO_BIN_EXE_glurpc")));
        cmd.arg("--model")
            .arg(common::data_dir().join("model/small"))
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(extra);
        let process = Process::start(cmd);
        Serve {
            rest: process.url(""),
            process,
            _dir: dir,
        }
    }

    /// The process's peak resident memory so far (`VmHWM`), in bytes.
    fn peak_rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.process.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
            * 1024
    }
}

#[test]
fn sixteen_large_uploads_at_once_stay_within_the_memory_bound() {
    let raw = big_dexcom(60 << 20);
    let gz = gzip(&raw);
    assert!(gz.len() < 16 << 20, "{} bytes gzipped", gz.len());
    let server = Serve::start(&[]);
    let idle = server.peak_rss();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let statuses: Vec<(u16, String)> = rt.block_on(async {
        let http = reqwest::Client::new();
        let body = json!({"csv_base64": b64(&gz)}).to_string();
        let mut tasks = Vec::new();
        for k in 0..16 {
            let http = http.clone();
            let rest = server.rest.clone();
            let (gz, body) = (gz.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let r = if k % 2 == 0 {
                    let part = reqwest::multipart::Part::bytes(gz).file_name("big.csv.gz");
                    http.post(format!("{rest}/convert_to_unified"))
                        .multipart(reqwest::multipart::Form::new().part("file", part))
                        .send()
                        .await
                } else {
                    http.post(format!("{rest}/process_unified"))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                }
                .unwrap();
                let status = r.status().as_u16();
                let retry = r
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                let text = r.text().await.unwrap();
                if status == 503 {
                    assert!(retry.is_some(), "503 without Retry-After");
                }
                (status, text.chars().take(200).collect::<String>())
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let peak = server.peak_rss();
    eprintln!(
        "16 uploads of {} MiB ({} MiB gzipped): idle {} MiB, peak {} MiB; statuses {:?}",
        raw.len() >> 20,
        gz.len() >> 20,
        idle >> 20,
        peak >> 20,
        statuses.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    for (status, text) in &statuses {
        assert!([200, 413, 503].contains(status), "{status}: {text}");
        if *status == 200 {
            // a conversion or a processing, not a failure reported in the body
            assert!(
                text.starts_with("{\"csv_content\":\"") || text.starts_with("{\"handle\":\""),
                "{text}"
            );
        }
    }
    assert!(statuses.iter().any(|s| s.0 == 200), "nothing was admitted");
    assert!(
        statuses
            .iter()
            .any(|s| s.0 == 503 && s.1.contains("Too many uploads")),
        "nothing was refused: {statuses:?}"
    );
    assert!(
        peak < PEAK_BOUND_BYTES,
        "peak resident memory {} MiB, bound {} MiB",
        peak >> 20,
        PEAK_BOUND_BYTES >> 20
    );
}

/// A conversion whose unified CSV would exceed the response bound is a 413
/// that says so, not a 200 of any size.
#[test]
fn a_conversion_larger_than_the_response_bound_is_refused() {
    let server = Serve::start(&["--max-response-mb", "1"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let convert = |name: &str| {
            let bytes = std::fs::read(common::data_dir().join("real").join(name)).unwrap();
            let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_string());
            http.post(format!("{}/convert_to_unified", server.rest))
                .multipart(reqwest::multipart::Form::new().part("file", part))
                .send()
        };
        // 22,149 Medtronic readings unify to about 1.7 MB of CSV
        let r = convert("medtronic_86d.csv.gz").await.unwrap();
        assert_eq!(r.status(), 413);
        let v: Value = r.json().await.unwrap();
        let detail = v["detail"].as_str().unwrap();
        assert!(
            detail.contains("unified CSV of this upload would be"),
            "{detail}"
        );
        // the 14-day Dexcom file (about 0.3 MB of CSV) is answered
        let r = convert("dexcom_us_14d.csv").await.unwrap();
        assert_eq!(r.status(), 200);
    });
}
