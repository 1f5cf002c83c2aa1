//! Measured phases: the clients that send requests for a scenario's time,
//! their statistics and latency percentiles, and the run's stop signal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};

use crate::cli::{Protocol, Scenario};
use crate::conn::{Conn, Conns, REQUEST_TIMEOUT, Target};
use crate::work::Work;

/// How long clients may finish their last requests after a scenario's time.
pub(crate) const GRACE: Duration = Duration::from_secs(30);
/// Distinct error kinds kept per (scenario, protocol); the rest are "other".
const MAX_ERROR_KINDS: usize = 16;

/// One client's (or a merged group's) measurements.
#[derive(Default)]
pub(crate) struct Stats {
    /// Latency of each successful request, microseconds.
    pub(crate) latencies_us: Vec<u32>,
    pub(crate) errors: u64,
    pub(crate) error_kinds: BTreeMap<String, u64>,
}

impl Stats {
    fn error(&mut self, kind: String) {
        self.errors += 1;
        let kind =
            if self.error_kinds.len() < MAX_ERROR_KINDS || self.error_kinds.contains_key(&kind) {
                kind
            } else {
                "other".to_string()
            };
        *self.error_kinds.entry(kind).or_default() += 1;
    }

    fn merge(&mut self, other: Stats) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        for (k, n) in other.error_kinds {
            *self.error_kinds.entry(k).or_default() += n;
        }
    }

    pub(crate) fn requests(&self) -> u64 {
        self.latencies_us.len() as u64 + self.errors
    }
}

/// The merged result of one (scenario, protocol).
pub(crate) struct Outcome {
    pub(crate) scenario: Scenario,
    pub(crate) protocol: Protocol,
    pub(crate) connections: u32,
    pub(crate) elapsed: Duration,
    pub(crate) stats: Stats,
    /// Latency percentiles, ms: p50, p90, p99, max (sorted latencies).
    pub(crate) percentiles: Option<[f64; 4]>,
    pub(crate) cut_short: bool,
}

fn percentiles(sorted: &[u32]) -> Option<[f64; 4]> {
    if sorted.is_empty() {
        return None;
    }
    let at = |q: f64| {
        let rank = (q * sorted.len() as f64).ceil() as usize;
        f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
    };
    Some([
        at(0.50),
        at(0.90),
        at(0.99),
        f64::from(sorted[sorted.len() - 1]) / 1000.0,
    ])
}

/// Why the run stops early.
#[derive(Clone)]
pub(crate) struct Stop {
    pub(crate) interrupted: watch::Receiver<bool>,
    /// The whole run's end.
    pub(crate) deadline: Instant,
}

impl Stop {
    pub(crate) fn interrupted(&self) -> bool {
        *self.interrupted.borrow()
    }

    pub(crate) async fn wait_interrupted(&mut self) {
        // The sender gone (Ctrl-C could not be watched): never interrupted.
        if self.interrupted.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// One client: requests until `end`, cut off at `hard`; its stats and when
/// it finished.
async fn client(
    work: Arc<Work>,
    target: Arc<Target>,
    mut conn: Conn,
    id: u64,
    end: Instant,
    hard: Instant,
    mut stop: Stop,
) -> (Stats, Instant) {
    let mut stats = Stats::default();
    let mut seq = 0u64;
    while Instant::now() < end && !stop.interrupted() {
        let t0 = Instant::now();
        let r = tokio::select! {
            biased;
            _ = stop.wait_interrupted() => break,
            _ = sleep_until(hard) => break,
            r = timeout(REQUEST_TIMEOUT, work.call(&target, &mut conn, id, seq)) => r,
        };
        match r {
            Ok(Ok(())) => {
                let us = t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                stats.latencies_us.push(us);
            }
            Ok(Err(kind)) => stats.error(kind),
            Err(_) => stats.error("timeout".into()),
        }
        seq += 1;
    }
    (stats, Instant::now())
}

/// Runs `work` on every protocol of `protocols` at once for `duration`.
pub(crate) async fn run_phase(
    scenario: Scenario,
    protocols: &[(Protocol, Arc<Work>)],
    conns: &Conns,
    target: &Arc<Target>,
    duration: Duration,
    stop: &Stop,
) -> Vec<Outcome> {
    let start = Instant::now();
    let end = (start + duration).min(stop.deadline);
    let hard = (end + GRACE).min(stop.deadline);
    let mut groups = Vec::new();
    for (protocol, work) in protocols {
        let clients = conns.of(*protocol);
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, conn)| {
                tokio::spawn(client(
                    work.clone(),
                    target.clone(),
                    conn.clone(),
                    i as u64,
                    end,
                    hard,
                    stop.clone(),
                ))
            })
            .collect();
        groups.push((*protocol, clients.len() as u32, handles));
    }
    let mut out = Vec::new();
    for (protocol, connections, handles) in groups {
        let mut stats = Stats::default();
        let mut last = start;
        for h in handles {
            match h.await {
                Ok((s, finished)) => {
                    stats.merge(s);
                    last = last.max(finished);
                }
                Err(e) => stats.error(format!("client task failed: {e}")),
            }
        }
        stats.latencies_us.sort_unstable();
        out.push(Outcome {
            scenario,
            protocol,
            connections,
            elapsed: last - start,
            percentiles: percentiles(&stats.latencies_us),
            stats,
            cut_short: stop.interrupted() || end < start + duration,
        });
    }
    out
}
