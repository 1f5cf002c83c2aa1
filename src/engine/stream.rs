//! Every window of an upload, yielded as each forecast is ready: the
//! engine side of the gRPC streaming method. Cached windows come first;
//! the others are queued at priority 1 and arrive in completion order.
//! Dropping the stream drops its waiters, so queued windows nobody else
//! waits for are cancelled.

use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, Stream};

use crate::plot::PlotFormat;

use super::core::Engine;
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
        let cached: Vec<Option<Arc<WindowForecast>>> = keys
            .iter()
            .map(|k| self.inner.cached_forecast(&upload, k))
            .collect();
        let missing = cached.iter().filter(|c| c.is_none()).count();
        if self.inner.jobs.room(PRIORITY_PROCESS) < missing {
            return Err(EngineError::Overloaded { retry_after_s: 30 });
        }
        let futs = FuturesUnordered::new();
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
            futs.push(async move {
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
            });
        }
        Ok((n, futs))
    }
}
