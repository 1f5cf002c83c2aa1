//! The engine on a stand-in model (issue 20, item 1): the model thread only
//! turns windows into forecasts, so the engine's caching, delivery and
//! error handling can be checked with a forecaster that counts its calls
//! and answers with a value derived from each window.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use glurpc::engine::scheduler::PRIORITY_PROCESS;
use glurpc::engine::worker::Forecaster;
use glurpc::engine::{
    Engine, EngineConfig, EngineError, ProcessOptions, Target, WindowKey, WindowKind,
};
use glurpc::model::{Forecast, ModelError, ModelWindow, PredictOptions};

/// Answers every step and sample of a window with its last past value plus
/// the sample number; fails when `fail` is set.
struct Fake {
    steps: usize,
    samples: usize,
    windows: AtomicUsize,
    fail: bool,
}

impl Forecaster for Fake {
    fn predict(&self, windows: &[ModelWindow], _: &PredictOptions) -> Result<Forecast, ModelError> {
        if self.fail {
            return Err(ModelError::Config("the stand-in fails".into()));
        }
        self.windows.fetch_add(windows.len(), Ordering::SeqCst);
        let (steps, samples) = (self.steps, self.samples);
        let mut pred = Vec::with_capacity(windows.len() * steps * samples);
        for w in windows {
            let last = *w.past.last().unwrap();
            for _ in 0..steps {
                pred.extend((0..samples).map(|s| last + s as f32));
            }
        }
        Ok(Forecast {
            windows: windows.len(),
            steps,
            samples,
            pred,
            logvar: vec![0.0; windows.len() * samples],
        })
    }
}

fn start(fail: bool) -> (Engine, Arc<Fake>) {
    let model = Arc::new(common::small_model());
    let fake = Arc::new(Fake {
        steps: model.config().len_pred,
        samples: 3,
        windows: AtomicUsize::new(0),
        fail,
    });
    let cfg = EngineConfig {
        samples: 3,
        ..EngineConfig::default()
    };
    (Engine::start_with(model, fake.clone(), cfg).unwrap(), fake)
}

fn key(handle: &str, index: i64) -> WindowKey {
    WindowKey {
        handle: handle.to_string(),
        kind: WindowKind::Full,
        target: Target::Index(index),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_window_is_computed_once_and_served_from_the_cache() {
    let (engine, fake) = start(false);
    let bytes = common::dexcom_14d();
    let opts = ProcessOptions {
        kind: WindowKind::Full,
        priority: PRIORITY_PROCESS,
        force: false,
        queue_windows: true,
    };
    let p = engine.process_blocking(&[&bytes], opts).unwrap();
    let upload = engine.upload(&p.handle, WindowKind::Full).await.unwrap();
    // Every window, twice over and concurrently with the background queue.
    let mut asks = Vec::new();
    for round in 0..2 {
        for i in 0..p.total_samples as i64 {
            let (e, k) = (engine.clone(), key(&p.handle, -i));
            asks.push(tokio::spawn(
                async move { (round, e.window_forecast(k).await) },
            ));
        }
    }
    for a in asks {
        let (_, f) = a.await.unwrap();
        let f = f.unwrap();
        assert_eq!((f.steps, f.samples), (fake.steps, 3));
        assert!(
            (f.values[1] - f.values[0] - 1.0).abs() < 1e-5,
            "sample s is last + s"
        );
    }
    let w = upload.prepared.dataset.window(-5).unwrap();
    let f = engine.window_forecast(key(&p.handle, -5)).await.unwrap();
    assert_eq!(f.values[0], *w.past_target.last().unwrap());
    assert_eq!(fake.windows.load(Ordering::SeqCst), p.total_samples);
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_reaches_the_waiter_and_caches_nothing() {
    let (engine, _) = start(true);
    let bytes = common::dexcom_14d();
    let opts = ProcessOptions {
        kind: WindowKind::Full,
        priority: PRIORITY_PROCESS,
        force: false,
        queue_windows: false,
    };
    let p = engine.process_blocking(&[&bytes], opts).unwrap();
    for _ in 0..2 {
        match engine.window_forecast(key(&p.handle, 0)).await {
            Err(EngineError::Inference(m)) => assert!(m.contains("stand-in"), "{m}"),
            other => panic!("expected an inference error, got {other:?}"),
        }
    }
    engine.shutdown();
}
