//! The inference queue: jobs keyed by what they compute, ordered by
//! priority (0 interactive, 1 process, 3 prefetch; lower first, then
//! oldest), identical jobs merged, every waiter woken with the job's result
//! or error, queued jobs nobody waits for any more cancelled, and a bounded
//! queue that refuses at once with [`Refused::Overloaded`] (priority 0 has reserved
//! room). Workers are plain threads that block on [`Scheduler::next_batch`].
//!
//! Each job remembers the requests that asked for it ([`Links`]: their
//! tracing spans and request ids, taken from the submitting task), so that
//! the model thread's span can follow from them and name them.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// Requests remembered per job at most (identical jobs merge, so a popular
/// window could otherwise collect a link per waiter).
const MAX_LINKS: usize = 8;

tokio::task_local! {
    /// The id of the request being served on this task: set by the front
    /// ends around each request, read when a job is submitted.
    pub static CURRENT_REQUEST: Arc<str>;
}

/// The requests a job was submitted for: their spans (for
/// `follows_from`) and request ids (for the log). Not part of a job's
/// identity: any two compare equal.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// The submitting tasks' current spans.
    pub spans: Vec<tracing::Span>,
    /// The submitting requests' ids.
    pub requests: Vec<Arc<str>>,
}

impl PartialEq for Links {
    fn eq(&self, _: &Links) -> bool {
        true
    }
}

impl Eq for Links {}

impl Links {
    /// Adds the calling task's span and request id, if any.
    fn add_current(&mut self) {
        let span = tracing::Span::current();
        if !span.is_none() && self.spans.len() < MAX_LINKS {
            self.spans.push(span);
        }
        if let Ok(id) = CURRENT_REQUEST.try_with(Arc::clone)
            && self.requests.len() < MAX_LINKS
            && !self.requests.contains(&id)
        {
            self.requests.push(id);
        }
    }
}

/// Interactive work (`/quick_plot`, `/draw_a_plot`, forecasts).
pub const PRIORITY_INTERACTIVE: u8 = 0;
/// Processing of a whole upload (`/process_unified`).
pub const PRIORITY_PROCESS: u8 = 1;
/// Prefetch nobody waits for yet.
pub const PRIORITY_PREFETCH: u8 = 3;

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The queue is full for this priority.
    #[error("inference queue full ({queued} jobs queued)")]
    Overloaded {
        /// Jobs queued when the request was refused.
        queued: usize,
    },
    /// The engine is shutting down.
    #[error("the service is shutting down")]
    ShuttingDown,
}

/// What a waiter receives.
pub type Outcome<T, E> = Result<T, E>;

struct Job<T, E> {
    priority: u8,
    seq: u64,
    /// Kept even when every waiter left (background work).
    background: bool,
    waiters: Vec<oneshot::Sender<Outcome<T, E>>>,
    links: Links,
}

impl<T, E> Job<T, E> {
    fn abandoned(&self) -> bool {
        !self.background && self.waiters.iter().all(|w| w.is_closed())
    }
}

struct State<K, T, E> {
    order: BTreeMap<(u8, u64), K>,
    jobs: HashMap<K, Job<T, E>>,
    running: HashMap<K, Vec<oneshot::Sender<Outcome<T, E>>>>,
    seq: u64,
    closed: bool,
    cancelled: u64,
}

/// The queue shared by the front ends (submit) and the workers (take, complete).
pub struct Scheduler<K, T, E> {
    state: Mutex<State<K, T, E>>,
    ready: Condvar,
    capacity: usize,
    reserved: usize,
}

/// A job handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken<K> {
    /// What to compute.
    pub key: K,
    /// Its priority when taken.
    pub priority: u8,
    /// The requests it was submitted for.
    pub links: Links,
}

impl<K: Eq + Hash + Clone, T: Clone, E: Clone> Scheduler<K, T, E> {
    /// A queue holding `capacity` jobs, plus `reserved` more for priority 0.
    pub fn new(capacity: usize, reserved: usize) -> Self {
        Scheduler {
            state: Mutex::new(State {
                order: BTreeMap::new(),
                jobs: HashMap::new(),
                running: HashMap::new(),
                seq: 0,
                closed: false,
                cancelled: 0,
            }),
            ready: Condvar::new(),
            capacity,
            reserved,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<K, T, E>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `key` (or joins the identical queued or running job) and
    /// returns a receiver for its outcome. A merged job takes the more urgent
    /// priority. `background` keeps the job even if every waiter leaves.
    pub fn submit(
        &self,
        key: K,
        priority: u8,
        background: bool,
    ) -> Result<oneshot::Receiver<Outcome<T, E>>, Refused> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.lock();
        if st.closed {
            return Err(Refused::ShuttingDown);
        }
        if let Some(waiters) = st.running.get_mut(&key) {
            waiters.push(tx);
            return Ok(rx);
        }
        if let Some(job) = st.jobs.get_mut(&key) {
            job.waiters.push(tx);
            job.links.add_current();
            job.background |= background;
            if priority < job.priority {
                let old = (job.priority, job.seq);
                job.priority = priority;
                let new = (priority, job.seq);
                st.order.remove(&old);
                st.order.insert(new, key);
                self.ready.notify_one();
            }
            return Ok(rx);
        }
        let queued = st.jobs.len();
        let limit = if priority == PRIORITY_INTERACTIVE {
            self.capacity + self.reserved
        } else {
            self.capacity
        };
        if queued >= limit {
            return Err(Refused::Overloaded { queued });
        }
        st.seq += 1;
        let seq = st.seq;
        let mut links = Links::default();
        links.add_current();
        st.order.insert((priority, seq), key.clone());
        st.jobs.insert(
            key,
            Job {
                priority,
                seq,
                background,
                waiters: vec![tx],
                links,
            },
        );
        drop(st);
        self.ready.notify_one();
        Ok(rx)
    }

    /// Blocks until work is queued, then takes up to `max` jobs of the most
    /// urgent priority present (oldest first), dropping abandoned ones.
    /// Returns an empty batch once the scheduler is closed.
    pub fn next_batch(&self, max: usize) -> Vec<Taken<K>> {
        let mut st = self.lock();
        loop {
            let mut batch = Vec::new();
            while batch.len() < max.max(1) {
                let Some((&(prio, seq), _)) = st.order.iter().next() else {
                    break;
                };
                if batch.first().is_some_and(|t: &Taken<K>| t.priority != prio) {
                    break;
                }
                let Some(key) = st.order.remove(&(prio, seq)) else {
                    break;
                };
                let Some(job) = st.jobs.remove(&key) else {
                    continue;
                };
                if job.abandoned() {
                    st.cancelled += 1;
                    continue;
                }
                st.running.insert(key.clone(), job.waiters);
                batch.push(Taken {
                    key,
                    priority: prio,
                    links: job.links,
                });
            }
            if !batch.is_empty() || st.closed {
                return batch;
            }
            st = self.ready.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Delivers a taken job's outcome to every waiter (success or failure).
    pub fn complete(&self, key: &K, outcome: Outcome<T, E>) {
        let waiters = self.lock().running.remove(key).unwrap_or_default();
        for w in waiters {
            let _ = w.send(outcome.clone());
        }
    }

    /// Room left in the queue for new jobs at `priority`.
    pub fn room(&self, priority: u8) -> usize {
        let limit = if priority == PRIORITY_INTERACTIVE {
            self.capacity + self.reserved
        } else {
            self.capacity
        };
        limit.saturating_sub(self.lock().jobs.len())
    }

    /// True once [`Scheduler::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Queued jobs (not running).
    pub fn queued(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Jobs cancelled because every waiter left.
    pub fn cancelled(&self) -> u64 {
        self.lock().cancelled
    }

    /// The capacity for priorities above 0.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Stops the workers: `next_batch` returns empty batches from now on;
    /// queued jobs fail their waiters with `err`.
    pub fn close(&self, err: E) {
        let mut st = self.lock();
        st.closed = true;
        st.order.clear();
        let jobs: Vec<Job<T, E>> = st.jobs.drain().map(|(_, j)| j).collect();
        drop(st);
        for j in jobs {
            for w in j.waiters {
                let _ = w.send(Err(err.clone()));
            }
        }
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    type S = Scheduler<&'static str, u32, String>;

    fn keys(b: &[Taken<&'static str>]) -> Vec<&'static str> {
        b.iter().map(|t| t.key).collect()
    }

    #[test]
    fn priority_order_then_oldest_first() {
        let s = S::new(10, 2);
        let _a = s.submit("prefetch", PRIORITY_PREFETCH, false).unwrap();
        let _b = s.submit("process1", PRIORITY_PROCESS, false).unwrap();
        let _c = s.submit("process2", PRIORITY_PROCESS, false).unwrap();
        let _d = s.submit("click", PRIORITY_INTERACTIVE, false).unwrap();
        assert_eq!(keys(&s.next_batch(8)), vec!["click"]);
        assert_eq!(keys(&s.next_batch(8)), vec!["process1", "process2"]);
        assert_eq!(keys(&s.next_batch(8)), vec!["prefetch"]);
    }

    #[test]
    fn interactive_work_is_served_while_background_work_is_queued() {
        let s = S::new(3, 2);
        let _bg: Vec<_> = ["w1", "w2", "w3"]
            .iter()
            .map(|k| s.submit(k, PRIORITY_PREFETCH, true).unwrap())
            .collect();
        // Full for background work, but priority 0 has reserved room...
        assert_eq!(
            s.submit("w4", PRIORITY_PROCESS, false).unwrap_err(),
            Refused::Overloaded { queued: 3 }
        );
        let _now = s.submit("now", PRIORITY_INTERACTIVE, false).unwrap();
        // ...and jumps the queue.
        assert_eq!(keys(&s.next_batch(1)), vec!["now"]);
    }

    #[test]
    fn identical_jobs_merge_and_every_waiter_is_woken() {
        let s = S::new(10, 0);
        let r1 = s.submit("w", PRIORITY_PREFETCH, false).unwrap();
        let r2 = s.submit("w", PRIORITY_INTERACTIVE, false).unwrap();
        assert_eq!(s.queued(), 1);
        let b = s.next_batch(8);
        assert_eq!(
            b[0].priority, PRIORITY_INTERACTIVE,
            "merged at the urgent priority"
        );
        // A waiter arriving while it runs joins it too.
        let r3 = s.submit("w", PRIORITY_PROCESS, false).unwrap();
        s.complete(&"w", Ok(7));
        for r in [r1, r2, r3] {
            assert_eq!(r.blocking_recv().unwrap(), Ok(7));
        }
    }

    #[test]
    fn a_failing_job_fails_all_its_waiters() {
        let s = S::new(10, 0);
        let r1 = s.submit("w", PRIORITY_PROCESS, false).unwrap();
        let r2 = s.submit("w", PRIORITY_PROCESS, false).unwrap();
        s.next_batch(1);
        s.complete(&"w", Err("model failed".into()));
        assert_eq!(r1.blocking_recv().unwrap(), Err("model failed".to_string()));
        assert_eq!(r2.blocking_recv().unwrap(), Err("model failed".to_string()));
    }

    #[test]
    fn jobs_whose_waiters_all_left_are_cancelled_but_background_work_stays() {
        let s = S::new(10, 0);
        drop(s.submit("gone", PRIORITY_INTERACTIVE, false).unwrap());
        let _kept = s.submit("bg", PRIORITY_PREFETCH, true).unwrap();
        drop(_kept);
        assert_eq!(keys(&s.next_batch(8)), vec!["bg"]);
        assert_eq!(s.cancelled(), 1);
    }

    #[test]
    fn jobs_remember_the_requests_that_asked_for_them() {
        let s = S::new(10, 0);
        let _r: Vec<_> = ["req-1", "req-2", "req-1"]
            .into_iter()
            .map(|id| {
                CURRENT_REQUEST.sync_scope(Arc::from(id), || {
                    s.submit("w", PRIORITY_INTERACTIVE, false).unwrap()
                })
            })
            .collect();
        let _bg = s.submit("bg", PRIORITY_PREFETCH, true).unwrap();
        let b = s.next_batch(1);
        let ids: Vec<&str> = b[0].links.requests.iter().map(|r| &**r).collect();
        assert_eq!(ids, vec!["req-1", "req-2"]);
        assert!(s.next_batch(1)[0].links.requests.is_empty());
    }

    #[test]
    fn closing_fails_queued_waiters() {
        let s = S::new(10, 0);
        let r = s.submit("q", PRIORITY_PROCESS, false).unwrap();
        s.close("shutting down".into());
        assert_eq!(r.blocking_recv().unwrap(), Err("shutting down".to_string()));
        assert!(s.next_batch(4).is_empty());
    }

    #[test]
    fn workers_block_until_work_arrives_and_stop_on_close() {
        let s = Arc::new(S::new(10, 0));
        let worker = {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                loop {
                    let b = s.next_batch(4);
                    if b.is_empty() {
                        return seen;
                    }
                    for t in b {
                        s.complete(&t.key, Ok(1));
                        seen.push(t.key);
                    }
                }
            })
        };
        let r = s.submit("x", PRIORITY_PROCESS, false).unwrap();
        assert_eq!(r.blocking_recv().unwrap(), Ok(1));
        s.close("shutting down".into());
        assert_eq!(worker.join().unwrap(), vec!["x"]);
        assert_eq!(
            s.submit("late", PRIORITY_PROCESS, false).unwrap_err(),
            Refused::ShuttingDown
        );
    }
}
