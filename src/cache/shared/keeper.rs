//! The shared tier's background side: once a second it asks Redis who it
//! is (`INFO server`: reachability, and a restart shows as a new
//! `run_id`), and writes back what was deferred while Redis was away.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;

use super::{Counters, Deferred, Groups, SharedConfig, observe};

/// The `run_id` of an `INFO server` reply: it changes when Redis restarts.
pub(super) fn run_id(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|id| id.trim().to_string())
}

/// The background side: asks Redis who it is once a second (a restart
/// shows as a new `run_id`) and writes back what was deferred while it was
/// away.
pub(super) struct Keeper {
    pub(super) conn: ConnectionManager,
    pub(super) cfg: Arc<SharedConfig>,
    pub(super) reachable: Arc<AtomicBool>,
    pub(super) counters: Arc<Counters>,
    pub(super) deferred: Deferred,
    pub(super) groups: Groups,
    pub(super) restarts: Arc<AtomicU64>,
}

impl Keeper {
    pub(super) async fn keep_up(&self, last_run: &mut Option<String>) {
        let mut conn = self.conn.clone();
        let started = Instant::now();
        let mut cmd = redis::cmd("INFO");
        cmd.arg("server");
        let info =
            tokio::time::timeout(self.cfg.timeout, cmd.query_async::<String>(&mut conn)).await;
        let ok = matches!(info, Ok(Ok(_)));
        observe(&self.counters, &self.reachable, started.elapsed(), ok);
        let Ok(Ok(info)) = info else { return };
        let now = run_id(&info);
        if now.is_some() && now != *last_run {
            if last_run.is_some() {
                // A restarted Redis may have lost the streams and their groups.
                if let Ok(mut g) = self.groups.lock() {
                    g.clear();
                }
                self.restarts.fetch_add(1, Ordering::Relaxed);
            }
            *last_run = now;
        }
        loop {
            let next = self.deferred.lock().ok().and_then(|mut d| d.pop_front());
            let Some((key, value)) = next else { break };
            let ttl = self.cfg.ttl.as_secs().max(1);
            let wrote: Result<Result<(), _>, _> =
                tokio::time::timeout(self.cfg.timeout, conn.set_ex(&key, &value, ttl)).await;
            if !matches!(wrote, Ok(Ok(()))) {
                if let Ok(mut d) = self.deferred.lock() {
                    d.push_front((key, value));
                }
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::run_id;

    #[test]
    fn run_id_is_read_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:4f1c0a\r\ntcp_port:6379\r\n";
        assert_eq!(run_id(info).as_deref(), Some("4f1c0a"));
        assert_eq!(run_id("# Server\r\nredis_version:7.0.15\r\n"), None);
    }
}
