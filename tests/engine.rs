//! The engine handle end to end with the small fixture model: process an
//! upload, ask for single windows while the rest runs in the background,
//! and the errors a front end maps.

mod common;

use glurpc::bridge::{model_window, to_mgdl, window_seed};
use glurpc::engine::scheduler::PRIORITY_PROCESS;
use glurpc::engine::{
    Engine, EngineConfig, EngineError, ProcessOptions, Target, WindowKey, WindowKind,
};
use glurpc::model::PredictOptions;

fn queued(kind: WindowKind) -> ProcessOptions {
    ProcessOptions {
        kind,
        priority: PRIORITY_PROCESS,
        force: false,
        queue_windows: true,
    }
}

fn key(handle: &str, kind: WindowKind, index: i64) -> WindowKey {
    WindowKey {
        handle: handle.to_string(),
        kind,
        target: Target::Index(index),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deterministic_windows_match_the_reference_forecast() {
    let engine = Engine::start(
        common::small_model(),
        EngineConfig {
            samples: 0,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let bytes = common::dexcom_14d();
    let p = engine
        .process_blocking(&[&bytes], queued(WindowKind::Full))
        .unwrap();
    assert_eq!(p.total_samples, 110);
    assert!(p.warnings.imputation && p.warnings.time_duplicates);
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::data_dir().join("golden_forecast/dexcom_us_14d.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(p.handle, golden["handle"].as_str().unwrap());
    let upload = engine.upload(&p.handle, WindowKind::Full).await.unwrap();
    for k in [0i64, -1, -109] {
        let f = engine
            .window_forecast(key(&p.handle, WindowKind::Full, k))
            .await
            .unwrap();
        assert_eq!((f.steps, f.samples), (12, 1));
        let mgdl = to_mgdl(&upload.prepared.dataset.target_scaler, &f.values);
        let want = &golden["windows"][k.to_string()]["forecast_mgdl"];
        for (t, v) in mgdl.iter().enumerate() {
            assert!(
                (v - want[t].as_f64().unwrap()).abs() < 1e-3,
                "window {k} step {t}"
            );
        }
    }
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mc_samples_are_the_seeded_ones_whatever_the_batching() {
    let engine = Engine::start(common::small_model(), EngineConfig::default()).unwrap();
    let bytes = common::dexcom_14d();
    let p = engine
        .process_blocking(&[&bytes], queued(WindowKind::Quick))
        .unwrap();
    assert_eq!(p.total_samples, 2);
    let f = engine
        .window_forecast(key(&p.handle, WindowKind::Quick, 0))
        .await
        .unwrap();
    assert_eq!((f.steps, f.samples, f.logvar.len()), (12, 10, 10));
    // The same window computed alone, outside the engine, with its seed.
    let upload = engine.upload(&p.handle, WindowKind::Quick).await.unwrap();
    let w = upload.prepared.dataset.window(0).unwrap();
    let seed = window_seed(&p.handle, *w.input_times.last().unwrap(), 0);
    let direct = common::small_model()
        .predict(&[model_window(&w, seed)], &PredictOptions::default())
        .unwrap();
    assert_eq!(direct.pred.len(), f.values.len());
    for (a, b) in direct.pred.iter().zip(&f.values) {
        assert!((a - b).abs() < 1e-5);
    }
    // A second request is served from the cache: the same samples.
    let again = engine
        .window_forecast(key(&p.handle, WindowKind::Quick, 0))
        .await
        .unwrap();
    assert_eq!(again.values, f.values);
    // The health snapshot saw real batches.
    let h = engine.health();
    let batches: u64 = h.inference_requests_by_priority.iter().map(|p| p.1).sum();
    assert!(batches >= 1 && h.windows_inferred >= 1, "{h:?}");
    assert_eq!((h.device.as_str(), h.total_inference_errors), ("cpu", 0));
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_handles_bad_indices_and_bad_uploads_are_clear_errors() {
    let engine = Engine::start(common::small_model(), EngineConfig::default()).unwrap();
    let missing = engine
        .window_forecast(key(&"0".repeat(64), WindowKind::Full, 0))
        .await
        .unwrap_err();
    assert_eq!(missing, EngineError::NotFound);
    let bytes = common::dexcom_14d();
    let p = engine
        .process_blocking(&[&bytes], queued(WindowKind::Quick))
        .unwrap();
    for bad in [1, -2, -1000] {
        let e = engine
            .window_forecast(key(&p.handle, WindowKind::Quick, bad))
            .await
            .unwrap_err();
        assert_eq!(
            e,
            EngineError::BadIndex {
                index: bad,
                last: 1
            }
        );
        assert_eq!(
            e.to_string(),
            format!("Index {bad} out of range. Valid range: -1 to 0")
        );
    }
    let junk = engine
        .process_blocking(&[b"not,a,cgm\n1,2,3\n"], queued(WindowKind::Full))
        .unwrap_err();
    assert!(matches!(junk, EngineError::Input(_)), "{junk:?}");
    // Too short: the first 100 lines of the export (about 7 hours).
    let text = String::from_utf8_lossy(&bytes);
    let short: String = text.lines().take(100).collect::<Vec<_>>().join("\n");
    let e = engine
        .process_blocking(&[short.as_bytes()], queued(WindowKind::Full))
        .unwrap_err();
    assert!(e.to_string().contains("minimum duration"), "{e}");
    engine.shutdown();
    let after = engine.process_blocking(&[&bytes], queued(WindowKind::Full));
    assert!(matches!(after, Err(EngineError::ShuttingDown)), "{after:?}");
}

#[test]
fn a_full_queue_refuses_background_work_at_once() {
    let engine = Engine::start(
        common::small_model(),
        EngineConfig {
            queue_capacity: 5,
            interactive_reserve: 0,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let bytes = common::dexcom_14d();
    let e = engine
        .process_blocking(&[&bytes], queued(WindowKind::Full))
        .unwrap_err();
    assert_eq!(e, EngineError::Overloaded { retry_after_s: 30 });
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forward_forecast_starts_after_the_last_reading() {
    let engine = Engine::start(common::small_model(), EngineConfig::default()).unwrap();
    let bytes = common::dexcom_14d();
    let p = engine
        .process_blocking(&[&bytes], queued(WindowKind::Full))
        .unwrap();
    let forward = WindowKey {
        handle: p.handle.clone(),
        kind: WindowKind::Full,
        target: Target::Forward,
    };
    let f = engine.window_forecast(forward).await.unwrap();
    assert_eq!((f.steps, f.samples), (12, 10));
    // Not the back-test of the last hour: different inputs, different samples.
    let last = engine
        .window_forecast(key(&p.handle, WindowKind::Full, 0))
        .await
        .unwrap();
    assert_ne!(f.values, last.values);
    let upload = engine.upload(&p.handle, WindowKind::Full).await.unwrap();
    let fw = upload.prepared.dataset.forward().unwrap();
    let w0 = upload.prepared.dataset.window(0).unwrap();
    assert_eq!(fw.input_times[0], w0.input_times[12]);
    assert!(fw.output_times[0] > *w0.output_times.last().unwrap());
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_window_does_not_wait_for_the_whole_upload() {
    let engine = Engine::start(common::small_model(), EngineConfig::default()).unwrap();
    let p = engine
        .process(vec![common::dexcom_14d()], queued(WindowKind::Full))
        .await
        .unwrap();
    assert_eq!(p.total_samples, 110);
    // More background work from a second upload (95 windows).
    let libre = std::fs::read(common::data_dir().join("real/libre_eu_1y.csv")).unwrap();
    let q = engine
        .process(vec![libre], queued(WindowKind::Full))
        .await
        .unwrap();
    assert_eq!(q.total_samples, 95);
    // An old window, queued far behind the newest ones, jumps the queue.
    engine
        .window_forecast(key(&p.handle, WindowKind::Full, -100))
        .await
        .unwrap();
    assert!(
        engine.queued() > 0,
        "the background windows are still queued when the interactive one is answered"
    );
    let h = engine.health();
    assert!(h.inference_requests_by_priority[0].1 >= 1, "{h:?}");
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_model_threads_give_the_same_forecasts_after_a_warm_up() {
    let one = Engine::start(common::small_model(), EngineConfig::default()).unwrap();
    let two = Engine::start(
        common::small_model(),
        EngineConfig {
            workers: 2,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    assert!(two.warm_up().is_ok());
    assert_eq!(two.health().available_general_models, 2);
    let mut handle = String::new();
    for e in [&one, &two] {
        handle = e
            .process(vec![common::dexcom_14d()], queued(WindowKind::Full))
            .await
            .unwrap()
            .handle;
    }
    for i in [0, -7, -109] {
        let a = one
            .window_forecast(key(&handle, WindowKind::Full, i))
            .await
            .unwrap();
        let b = two
            .window_forecast(key(&handle, WindowKind::Full, i))
            .await
            .unwrap();
        assert_eq!(a.values, b.values, "window {i}");
    }
    one.shutdown();
    two.shutdown();
}
