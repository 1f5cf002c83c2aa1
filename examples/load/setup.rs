//! Unmeasured steps before a scenario: processing or converting the file,
//! and the `cached-plot` warm-up that plots every window once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use glurpc::proto;
use serde_json::{Value, json};
use tokio::time::{Instant, timeout_at};

use crate::cli::Protocol;
use crate::conn::{Conn, Conns, REQUEST_TIMEOUT, Target, read_rest};
use crate::phase::Stop;
use crate::work::Work;

/// A setup step under the request timeout and the run's deadline.
pub(crate) async fn setup<T>(
    stop: &Stop,
    what: &str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    let at = (Instant::now() + REQUEST_TIMEOUT).min(stop.deadline);
    let mut stop = stop.clone();
    tokio::select! {
        _ = stop.wait_interrupted() => bail!("{what}: interrupted"),
        r = timeout_at(at, fut) => r.map_err(|_| anyhow!("{what}: timed out"))?.with_context(|| what.to_string()),
    }
}

/// `/process_unified` (or `ProcessUnified`): the handle and window count.
async fn process(t: &Target, conn: &mut Conn, b64: &str) -> Result<(String, u64)> {
    match conn {
        Conn::Rest(http) => {
            let body = json!({"csv_base64": b64, "force_calculate": false}).to_string();
            let body = t
                .post_json(http, "/process_unified", body)
                .await
                .map_err(|e| anyhow!(e))?;
            let v: Value = serde_json::from_slice(&body)?;
            if let Some(e) = v
                .get("error")
                .and_then(Value::as_str)
                .filter(|e| !e.is_empty())
            {
                bail!("the server refused the file: {e}");
            }
            let handle = v
                .get("handle")
                .and_then(Value::as_str)
                .context("no handle in the answer")?;
            let total = v
                .get("total_samples")
                .and_then(Value::as_u64)
                .context("no total_samples in the answer")?;
            Ok((handle.to_string(), total))
        }
        Conn::Grpc(g) => {
            let req = proto::ProcessUnifiedRequest {
                csv_base64: b64.to_string(),
                force_calculate: false,
            };
            let r = g.process_unified(t.grpc_request(req)).await?.into_inner();
            if !r.error.is_empty() {
                bail!("the server refused the file: {}", r.error);
            }
            Ok((r.handle, r.total_samples.max(0) as u64))
        }
    }
}

/// `/convert_to_unified` (or `ConvertToUnified`): the unified CSV.
pub(crate) async fn convert(t: &Target, conn: &mut Conn, raw: &[u8]) -> Result<String> {
    match conn {
        Conn::Rest(http) => {
            let part = reqwest::multipart::Part::bytes(raw.to_vec()).file_name("upload");
            let form = reqwest::multipart::Form::new().part("file", part);
            let mut rb = http.post(t.url("/convert_to_unified")).multipart(form);
            if let Some(k) = &t.rest_key {
                rb = rb.header("X-API-Key", k);
            }
            let body = read_rest(rb.send().await).await.map_err(|e| anyhow!(e))?;
            let v: Value = serde_json::from_slice(&body)?;
            if let Some(e) = v
                .get("error")
                .and_then(Value::as_str)
                .filter(|e| !e.is_empty())
            {
                bail!("the server cannot convert the file: {e}");
            }
            Ok(v.get("csv_content")
                .and_then(Value::as_str)
                .context("no csv_content in the answer")?
                .to_string())
        }
        Conn::Grpc(g) => {
            let req = proto::ConvertToUnifiedRequest {
                file_content: raw.to_vec(),
            };
            let r = g
                .convert_to_unified(t.grpc_request(req))
                .await?
                .into_inner();
            if !r.error.is_empty() {
                bail!("the server cannot convert the file: {}", r.error);
            }
            Ok(r.csv_content)
        }
    }
}

/// The cached-plot warm-up's account.
pub(crate) struct Warmup {
    pub(crate) protocol: Protocol,
    pub(crate) windows: u64,
    pub(crate) plotted: u64,
    pub(crate) errors: u64,
    pub(crate) seconds: f64,
    pub(crate) complete: bool,
}

/// Processes the file and plots every window once, `connections` at a time.
pub(crate) async fn warm_up(
    t: &Arc<Target>,
    conns: &Conns,
    protocol: Protocol,
    b64: &str,
    limit: Duration,
    stop: &Stop,
) -> Result<(String, u64, Warmup)> {
    let started = Instant::now();
    let mut first = conns.of(protocol)[0].clone();
    let (handle, total) = setup(stop, "processing the file", process(t, &mut first, b64)).await?;
    if total == 0 {
        bail!("the file has no windows to plot");
    }
    let work = Arc::new(Work::Plot {
        handle: handle.clone(),
        total,
    });
    let next = Arc::new(AtomicU64::new(0));
    let deadline = (started + limit).min(stop.deadline);
    let tasks: Vec<_> = conns
        .of(protocol)
        .iter()
        .cloned()
        .map(|mut conn| {
            let (work, next, t, mut stop) = (work.clone(), next.clone(), t.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ok, mut errors) = (0u64, 0u64);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    // client 0, seq i: window -i.
                    let r = tokio::select! {
                        biased;
                        _ = stop.wait_interrupted() => break,
                        r = timeout_at(deadline, work.call(&t, &mut conn, 0, i)) => r,
                    };
                    match r {
                        Ok(Ok(())) => ok += 1,
                        Ok(Err(_)) => errors += 1,
                        Err(_) => break,
                    }
                }
                (ok, errors)
            })
        })
        .collect();
    let (mut plotted, mut errors) = (0, 0);
    for task in tasks {
        let (ok, e) = task.await.unwrap_or((0, 0));
        plotted += ok;
        errors += e;
    }
    let warmup = Warmup {
        protocol,
        windows: total,
        plotted,
        errors,
        seconds: started.elapsed().as_secs_f64(),
        complete: plotted + errors == total,
    };
    Ok((handle, total, warmup))
}
