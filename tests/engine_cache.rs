//! The engine's caches: plots memoised and invalidated by force, bounds in
//! bytes, persistence across a restart, damaged and foreign records on disk,
//! and cache management with the reference's results and messages.

mod common;

use std::path::{Path, PathBuf};

use glurpc::engine::scheduler::PRIORITY_PROCESS;
use glurpc::engine::{
    Engine, EngineConfig, EngineError, ProcessOptions, Target, WindowKey, WindowKind,
};
use glurpc::plot::PlotFormat;

fn config(dir: Option<&Path>, model_id: &str) -> EngineConfig {
    EngineConfig {
        samples: 0,
        cache_dir: dir.map(Path::to_path_buf),
        model_id: model_id.into(),
        ..EngineConfig::default()
    }
}

fn full(force: bool) -> ProcessOptions {
    ProcessOptions {
        kind: WindowKind::Full,
        priority: PRIORITY_PROCESS,
        force,
        queue_windows: true,
    }
}

fn key(handle: &str, index: i64) -> WindowKey {
    WindowKey {
        handle: handle.to_string(),
        kind: WindowKind::Full,
        target: Target::Index(index),
    }
}

/// Processes the 14-day file and waits for all its 110 windows.
async fn process_all(engine: &Engine) -> String {
    let p = engine
        .process(vec![common::dexcom_14d()], full(false))
        .await
        .unwrap();
    assert_eq!(p.total_samples, 110);
    for i in -109..=0 {
        engine.window_forecast(key(&p.handle, i)).await.unwrap();
    }
    p.handle
}

fn records(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "glc"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plots_are_memoised_and_force_replaces_them() {
    let engine = Engine::start(common::small_model(), config(None, "m")).unwrap();
    let p = engine
        .process(vec![common::dexcom_14d()], full(false))
        .await
        .unwrap();
    let k = key(&p.handle, -3);
    let a = engine
        .plot(k.clone(), PlotFormat::Json, false)
        .await
        .unwrap();
    let b = engine
        .plot(k.clone(), PlotFormat::Json, false)
        .await
        .unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&a, &b),
        "the second request is served the same bytes"
    );
    let png = engine
        .plot(k.clone(), PlotFormat::Png, false)
        .await
        .unwrap();
    assert_eq!(&png.bytes[..8], b"\x89PNG\r\n\x1a\n");
    let before = engine.cache_stats().plots;
    assert!(before >= 2);
    let windows_before = engine.health().windows_inferred;

    // Forcing the upload: a new version, its plots and forecasts dropped,
    // the next plot recomputed (same seed, so the same numbers).
    engine
        .process(vec![common::dexcom_14d()], full(true))
        .await
        .unwrap();
    assert_eq!(engine.cache_stats().plots, 0);
    let c = engine
        .plot(k.clone(), PlotFormat::Json, false)
        .await
        .unwrap();
    assert!(!std::sync::Arc::ptr_eq(&a, &c));
    assert_eq!(a.bytes, c.bytes);
    assert!(engine.health().windows_inferred > windows_before);

    // Forcing one plot recomputes that window only.
    let n = engine.health().windows_inferred;
    let d = engine
        .plot(k.clone(), PlotFormat::Json, true)
        .await
        .unwrap();
    assert!(!std::sync::Arc::ptr_eq(&c, &d));
    assert!(engine.health().windows_inferred > n);
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_caches_stay_within_their_byte_bounds() {
    let cfg = EngineConfig {
        forecast_cache_bytes: 20 * 200,
        plot_cache_bytes: 400_000,
        ..config(None, "m")
    };
    let engine = Engine::start(common::small_model(), cfg).unwrap();
    let handle = process_all(&engine).await;
    let s = engine.cache_stats();
    assert!(s.forecast_bytes <= 20 * 200, "{s:?}");
    assert!(s.forecasts < 110 && s.forecasts > 0, "{s:?}");
    for i in 0..4 {
        engine
            .plot(key(&handle, -i), PlotFormat::Plotly, false)
            .await
            .unwrap();
    }
    let s = engine.cache_stats();
    assert!(s.plot_bytes <= 400_000 && s.plots >= 1, "{s:?}");
    // An evicted window is simply computed again.
    let f = engine.window_forecast(key(&handle, -109)).await.unwrap();
    assert_eq!(f.steps, 12);
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecasts_survive_a_restart_and_bad_records_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(common::small_model(), config(Some(dir.path()), "model-a")).unwrap();
    let handle = process_all(&engine).await;
    let want = engine.window_forecast(key(&handle, -50)).await.unwrap();
    engine.shutdown();
    let files = records(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");

    // A restart serves every window from disk without running the model.
    let engine = Engine::start(common::small_model(), config(Some(dir.path()), "model-a")).unwrap();
    let report = engine.cache_management("info", None).await.unwrap();
    assert_eq!(report.cache_size, 1);
    let got = engine.window_forecast(key(&handle, -50)).await.unwrap();
    assert_eq!(got.values, want.values);
    for i in -109..=0 {
        engine.window_forecast(key(&handle, i)).await.unwrap();
    }
    assert_eq!(engine.health().windows_inferred, 0);
    engine.shutdown();

    // Another model (or pipeline version: the same fingerprint) never reads it.
    let engine = Engine::start(common::small_model(), config(Some(dir.path()), "model-b")).unwrap();
    let e = engine.window_forecast(key(&handle, 0)).await.unwrap_err();
    assert_eq!(e, EngineError::NotFound);
    assert_eq!(
        engine
            .cache_management("info", None)
            .await
            .unwrap()
            .cache_size,
        0
    );
    engine.shutdown();

    // A truncated record is skipped (and removed), never trusted.
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() / 2]).unwrap();
    let engine = Engine::start(common::small_model(), config(Some(dir.path()), "model-a")).unwrap();
    let e = engine.window_forecast(key(&handle, 0)).await.unwrap_err();
    assert_eq!(e, EngineError::NotFound);
    assert!(records(dir.path()).is_empty());
    // The upload is simply processed again.
    let again = process_all(&engine).await;
    assert_eq!(again, handle);
    assert_eq!(engine.health().windows_inferred, 110);
    engine.shutdown();
    assert_eq!(records(dir.path()).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_management_reports_as_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(common::small_model(), config(Some(dir.path()), "m")).unwrap();
    let handle = process_all(&engine).await;
    engine
        .plot(key(&handle, 0), PlotFormat::Plotly, false)
        .await
        .unwrap();

    let info = engine.cache_management("info", None).await.unwrap();
    assert!(info.success);
    assert_eq!(
        info.message,
        "Cache info retrieved (Inference: 1, Plots: 1)"
    );
    assert_eq!(
        (info.cache_size, info.persisted_count, info.items_affected),
        (1, 2, None)
    );

    let save = engine.cache_management("save", None).await.unwrap();
    assert_eq!(save.message, "Cache is automatically persisted (No-op)");
    assert_eq!((save.success, save.items_affected), (true, Some(0)));

    for action in ["delete", "load"] {
        let e = engine.cache_management(action, None).await.unwrap_err();
        assert_eq!(
            e,
            EngineError::BadRequest(format!("Handle parameter required for {action} action"))
        );
    }
    let e = engine.cache_management("purge", None).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "Unknown action: purge. Valid actions are: flush, info, delete, save, load"
    );

    let load = engine
        .cache_management("load", Some(&handle))
        .await
        .unwrap();
    assert_eq!(
        load.message,
        format!("Handle {handle} loaded/verified in memory")
    );
    assert_eq!((load.success, load.items_affected), (true, Some(1)));

    let del = engine
        .cache_management("delete", Some(&handle))
        .await
        .unwrap();
    assert_eq!(del.message, format!("Handle {handle} deleted successfully"));
    assert_eq!(
        (del.success, del.cache_size, del.items_affected),
        (true, 0, Some(1))
    );
    assert!(records(dir.path()).is_empty());
    assert_eq!(
        engine.window_forecast(key(&handle, 0)).await.unwrap_err(),
        EngineError::NotFound
    );

    let del = engine
        .cache_management("delete", Some(&handle))
        .await
        .unwrap();
    assert_eq!(del.message, format!("Handle {handle} not found in cache"));
    assert_eq!((del.success, del.items_affected), (false, Some(0)));
    let load = engine
        .cache_management("load", Some(&handle))
        .await
        .unwrap();
    assert_eq!(load.message, format!("Handle {handle} not found on disk"));
    assert_eq!((load.success, load.items_affected), (false, Some(0)));

    // Flush clears memory and disk.
    process_all(&engine).await;
    let flush = engine.cache_management("flush", None).await.unwrap();
    assert_eq!(flush.message, "Cache flushed successfully");
    assert_eq!(
        (
            flush.success,
            flush.cache_size,
            flush.persisted_count,
            flush.items_affected
        ),
        (true, 0, 0, None)
    );
    let s = engine.cache_stats();
    assert_eq!((s.uploads, s.forecasts, s.plots), (0, 0, 0));
    assert!(records(dir.path()).is_empty());
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_plot_answers_then_prefetches_the_full_window() {
    let engine = Engine::start(common::small_model(), config(None, "m")).unwrap();
    let (p, plot) = engine
        .quick_plot(vec![common::dexcom_14d()], PlotFormat::Plotly, false)
        .await
        .unwrap();
    assert_eq!(p.total_samples, 2);
    let plot = plot.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&plot.bytes).unwrap();
    assert_eq!(v["layout"]["title"]["text"], "Gluformer Prediction");
    // The handle now serves the full window too (built from the same CSV),
    // and its windows were queued as prefetch work.
    let f = engine.window_forecast(key(&p.handle, -109)).await.unwrap();
    assert_eq!(f.steps, 12);
    for _ in 0..200 {
        if engine.health().inference_requests_by_priority[2].1 > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(engine.health().inference_requests_by_priority[2].1 > 0);
    // A bad upload is an error before anything is queued.
    let e = engine
        .quick_plot(vec![b"garbage".to_vec()], PlotFormat::Plotly, false)
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::Input(_)), "{e:?}");
    engine.shutdown();
}
