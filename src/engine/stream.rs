//! Every window of an upload, yielded as each forecast is ready: the
//! engine side of the gRPC streaming method. Cached windows come first;
//! the others are queued at priority 1 and arrive in completion order.
//! Dropping the stream drops its waiters, so queued windows nobody else
//! waits for are cancelled.

use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, Stream};

use crate::plot::PlotFormat;

use super::core::{Engine, blocking};
use super::error::EngineError;
use super::forecast::JobKey;
use super::forecast::{Target, WindowForecast, WindowKey};
use super::plots::PlotBytes;
use super::scheduler::PRIORITY_PROCESS;
use super::upload::WindowKind;

/// One window of a stream.
#[derive(Debug, Clone)]
pub struct StreamedWindow {
    /// The window's index (0 = last).
    pub index: i64,
    /// Its plot in the requested format, or why it failed.
    pub plot: Result<Arc<PlotBytes>, EngineError>,
}

impl Engine {
    /// The windows of `handle`'s `kind` dataset rendered in `format`, as a
    /// stream that yields each as soon as it is ready, with the number of
    /// windows. Refuses at once (Overloaded) when the queue has no room for
    /// the windows not yet cached.
    pub async fn stream_windows(
        &self,
        handle: &str,
        kind: WindowKind,
        format: PlotFormat,
    ) -> Result<(usize, impl Stream<Item = StreamedWindow> + Send + 'static), EngineError> {
        let upload = self.upload(handle, kind).await?;
        let n = upload.windows();
        let keys: Vec<WindowKey> = (-(n as i64 - 1)..=0)
            .rev()
            .map(|index| WindowKey {
                handle: upload.handle.clone(),
                kind,
                target: Target::Index(index),
            })
            .collect();
        if self.inner.cluster.is_some() {
            return self.stream_shared(upload, keys, format).await;
        }
        let cached: Vec<Option<Arc<WindowForecast>>> = keys
            .iter()
            .map(|k| self.inner.cached_forecast(&upload, k))
            .collect();
        let missing = cached.iter().filter(|c| c.is_none()).count();
        if self.inner.jobs.room(PRIORITY_PROCESS) < missing {
            return Err(EngineError::Overloaded { retry_after_s: 30 });
        }
        let futs: FuturesUnordered<StreamFuture> = FuturesUnordered::new();
        for (key, hit) in keys.into_iter().zip(cached) {
            let index = match key.target {
                Target::Index(i) => i,
                Target::Forward => continue,
            };
            let pending = match hit {
                Some(f) => Ok(f),
                None => Err(self.inner.jobs.submit(
                    JobKey::new(key.clone(), upload.clone()),
                    PRIORITY_PROCESS,
                    false,
                )?),
            };
            let engine = self.clone();
            let upload = upload.clone();
            futs.push(Box::pin(async move {
                let forecast = match pending {
                    Ok(f) => Ok(f),
                    Err(rx) => rx.await.unwrap_or_else(|_| {
                        Err(EngineError::Internal(
                            "the model worker dropped a job".into(),
                        ))
                    }),
                };
                let plot = match forecast {
                    Ok(f) => engine.rendered(&upload, key, f, format).await,
                    Err(e) => Err(e),
                };
                StreamedWindow { index, plot }
            }));
        }
        Ok((n, futs))
    }

    /// [`Engine::stream_windows`] with replicas: the windows missing here
    /// are queued on the shared stream (once per upload) and taken from
    /// Redis as any replica finishes them; a window nobody delivered for a
    /// lease is computed here.
    async fn stream_shared(
        &self,
        upload: Arc<super::upload::Upload>,
        keys: Vec<WindowKey>,
        format: PlotFormat,
    ) -> Result<(usize, FuturesUnordered<StreamFuture>), EngineError> {
        let n = keys.len();
        let (inner, up, ks) = (self.inner.clone(), upload.clone(), keys.clone());
        blocking(move || {
            let missing: Vec<WindowKey> = ks
                .into_iter()
                .filter(|k| inner.cached_forecast(&up, k).is_none())
                .collect();
            inner.adopt_shared(&up, &missing);
            inner.queue_windows(&up, PRIORITY_PROCESS).map(|_| ())
        })
        .await?;
        let lease = self
            .inner
            .cluster
            .as_ref()
            .map_or(std::time::Duration::from_secs(30), |c| c.lease);
        // One poller per stream adopts what other replicas finished.
        let (inner, up, ks) = (self.inner.clone(), upload.clone(), keys.clone());
        let poller = tokio::spawn(async move {
            loop {
                let missing: Vec<WindowKey> = ks
                    .iter()
                    .filter(|k| inner.cached_forecast(&up, k).is_none())
                    .cloned()
                    .collect();
                if missing.is_empty() {
                    return;
                }
                let (i2, u2) = (inner.clone(), up.clone());
                let _ = blocking(move || Ok(i2.adopt_shared(&u2, &missing))).await;
                tokio::time::sleep(POLL).await;
            }
        });
        let poller = Arc::new(AbortOnDrop(poller));
        let futs = FuturesUnordered::new();
        for key in keys {
            let Target::Index(index) = key.target else {
                continue;
            };
            let (engine, upload, poller) = (self.clone(), upload.clone(), poller.clone());
            futs.push(Box::pin(async move {
                let _poller = poller;
                let started = tokio::time::Instant::now();
                let forecast = loop {
                    if let Some(f) = engine.inner.cached_forecast(&upload, &key) {
                        break Ok(f);
                    }
                    if started.elapsed() >= lease {
                        break engine.window_of(&upload, key.clone()).await;
                    }
                    tokio::time::sleep(POLL).await;
                };
                let plot = match forecast {
                    Ok(f) => engine.rendered(&upload, key, f, format).await,
                    Err(e) => Err(e),
                };
                StreamedWindow { index, plot }
            }) as StreamFuture);
        }
        Ok((n, futs))
    }
}

/// One window of a shared stream.
type StreamFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = StreamedWindow> + Send + 'static>>;

/// How often a shared stream looks for windows finished elsewhere.
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Stops a task when the last holder drops it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
