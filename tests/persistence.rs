//! Persistence across crashes, with the real binary killed by SIGKILL: an
//! accepted upload is on disk before its windows are computed (a restart
//! answers for its handle and recomputes what is missing), the cache holds
//! no world-readable file and no crash leftover, an upload refused with 503
//! is not kept, and `glurpc train` writes owner-only outputs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::process::Process;
use glurpc::engine::scheduler::PRIORITY_PROCESS;
use glurpc::engine::{Engine, EngineConfig, EngineError, ProcessOptions, WindowKind};
use glurpc::plot::PlotFormat;
use serde_json::{Value, json};

/// `glurpc serve` on free ports over `cache`.
fn start(cache: &Path, env: &[(&str, &str)]) -> Process {
    let mut cmd = common::process::serve_command(Path::new(env!("CARGO_BIN_EXE_glurpc")));
    cmd.arg("--model")
        .arg(common::data_dir().join("model/small"))
        .arg("--cache-dir")
        .arg(cache)
        .envs(env.iter().copied());
    Process::start(cmd)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn records(dir: &Path) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "glc"))
        .collect()
}

/// What a `kill -9` during a write leaves beside the record `record`: a
/// temporary file of a dead process holding the record's bytes.
fn plant_leftover(record: &Path) -> PathBuf {
    let stem = record.file_stem().unwrap().to_str().unwrap();
    let tmp = record.with_file_name(format!(".{stem}.4000000.tmp"));
    std::fs::copy(record, &tmp).unwrap();
    tmp
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

async fn draw(http: &reqwest::Client, s: &Process, handle: &str, index: i64) -> (u16, Vec<u8>) {
    let r = http
        .post(s.url("/draw_a_plot"))
        .json(&json!({"handle": handle, "index": index}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

#[test]
fn an_accepted_upload_survives_kill_9_and_leaves_nothing_readable() {
    let base = tempfile::tempdir().unwrap();
    let cache = base.path().join("cache");
    // Many samples per window: the 110 windows take far longer than the
    // test's 14 plots, so the kill lands with most of them still queued.
    let env = [("NUM_SAMPLES", "64"), ("BATCH_SIZE", "1")];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();

    let server = start(&cache, &env);
    let (handle, drawn) = rt.block_on(async {
        let p: Value = http
            .post(server.url("/process_unified"))
            .json(&json!({"csv_base64": common::server::b64(&common::dexcom_14d())}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(p["total_samples"], 110, "{p}");
        let handle = p["handle"].as_str().unwrap().to_string();
        let mut drawn = Vec::new();
        for i in 0..14 {
            let (status, bytes) = draw(&http, &server, &handle, -i).await;
            assert_eq!(status, 200);
            drawn.push(bytes);
        }
        let health: Value = http
            .get(server.url("/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            health["inference_queue_size"].as_u64().unwrap() > 0,
            "every window was computed before the kill: {health}"
        );
        (handle, drawn)
    });
    server.kill();

    // The upload was on disk before its windows were all computed, and
    // nothing in the cache is readable by others.
    let recs = records(&cache);
    assert_eq!(recs.len(), 1, "{:?}", files(&cache));
    #[cfg(unix)]
    {
        assert_eq!(mode(&cache), 0o700);
        for f in files(&cache) {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
    }
    let leftover = plant_leftover(&recs[0]);

    // A restart removes the crash leftover, answers for the handle with the
    // same plots, and recomputes the windows that were never computed.
    let server = start(&cache, &env);
    assert!(!leftover.exists(), "a crash leftover survived a restart");
    rt.block_on(async {
        // Before any request, the windows never computed are queued again.
        let mut resumed = false;
        for _ in 0..100 {
            let health: Value = http
                .get(server.url("/health"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let started: i64 = health["inference_requests_by_priority"]
                .as_object()
                .map_or(0, |m| m.values().filter_map(Value::as_i64).sum());
            if started > 0 || health["inference_queue_size"].as_i64() > Some(0) {
                resumed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(resumed, "the unfinished upload was not resumed");
        for (i, want) in drawn.iter().enumerate() {
            let (status, bytes) = draw(&http, &server, &handle, -(i as i64)).await;
            assert_eq!(status, 200, "window {} after the kill", -(i as i64));
            assert_eq!(&bytes, want, "window {}", -(i as i64));
        }
        let (status, _) = draw(&http, &server, &handle, -109).await;
        assert_eq!(status, 200);

        // Flush removes leftovers too.
        let leftover = plant_leftover(&records(&cache)[0]);
        let r = http
            .post(server.url("/cache_management?action=flush"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(!leftover.exists(), "flush kept a crash leftover");
        assert!(files(&cache).is_empty(), "{:?}", files(&cache));
    });
    server.kill();
}

fn engine(dir: &Path, queue: usize) -> Engine {
    let cfg = EngineConfig {
        samples: 0,
        queue_capacity: queue,
        interactive_reserve: 0,
        cache_dir: Some(dir.to_path_buf()),
        model_id: "m".into(),
        ..EngineConfig::default()
    };
    Engine::start(common::small_model(), cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_refused_with_503_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let raw = common::dexcom_14d();
    // `/process_unified` (REST and gRPC): 110 windows, room for 10.
    let e = engine(dir.path(), 10);
    let handle = e.convert_blocking(&[&raw]).unwrap().handle;
    let opts = ProcessOptions {
        kind: WindowKind::Full,
        priority: PRIORITY_PROCESS,
        force: false,
        queue_windows: true,
    };
    let refused = e.process(vec![raw.clone()], opts).await.unwrap_err();
    assert!(
        matches!(refused, EngineError::Overloaded { .. }),
        "{refused:?}"
    );
    for kind in WindowKind::ALL {
        let kept = e.upload(&handle, kind).await;
        assert!(
            matches!(kept, Err(EngineError::NotFound)),
            "a refused upload was kept ({})",
            kind.as_str()
        );
    }
    assert!(e.handles().is_empty());
    e.shutdown();
    assert!(records(dir.path()).is_empty());

    // `/quick_plot` and `/forecast` (an upload, then one window at
    // interactive priority): no room at all.
    let e = engine(dir.path(), 0);
    let (_, plot) = e
        .quick_plot(vec![raw.clone()], PlotFormat::Plotly, false)
        .await
        .unwrap();
    assert!(
        matches!(plot, Err(EngineError::Overloaded { .. })),
        "{plot:?}"
    );
    let kept = e.upload(&handle, WindowKind::Quick).await;
    assert!(
        matches!(kept, Err(EngineError::NotFound)),
        "a refused quick plot's upload was kept"
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(e.handles().is_empty());
    assert_eq!(e.cache_stats().uploads, 0);
    e.shutdown();
    assert!(records(dir.path()).is_empty());

    // Accepted, it is kept, and on disk before any window is computed.
    let e = engine(dir.path(), 200);
    let p = e.process(vec![raw], opts).await.unwrap();
    assert_eq!(p.handle, handle);
    assert!(e.upload(&handle, WindowKind::Full).await.is_ok());
    e.shutdown();
    assert_eq!(records(dir.path()).len(), 1);
}

#[test]
fn train_outputs_are_owner_only() {
    let base = tempfile::tempdir().unwrap();
    let out = base.path().join("trained");
    let real = common::data_dir().join("real");
    let status = Command::new(env!("CARGO_BIN_EXE_glurpc"))
        .arg("train")
        .arg("--train")
        .arg(real.join("dexcom_us_14d.csv"))
        .arg("--val")
        .arg(real.join("nightscout_entries.json.gz"))
        .arg("--out")
        .arg(&out)
        .args(["--d-model", "8", "--n-heads", "2", "--d-fcn", "16"])
        .args([
            "--batch-size",
            "8",
            "--epochs",
            "1",
            "--steps-per-epoch",
            "2",
        ])
        .args(["--val-stride", "48"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    #[cfg(unix)]
    {
        assert_eq!(mode(&out), 0o700);
        for name in ["model.safetensors", "config.json", "training.json"] {
            assert_eq!(mode(&out.join(name)), 0o600, "{name}");
        }
    }
}
