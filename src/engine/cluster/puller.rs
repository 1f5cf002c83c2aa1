//! The puller: each replica's thread that takes work items from the shared
//! streams when its model thread has room, leases their windows (all of a
//! pull in one round trip) and queues them locally; it also renews the
//! leases this replica holds and answers a Redis restart.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::cache::shared::{PullLeases, Pulled};

use super::super::error::EngineError;
use super::super::forecast::JobKey;
use super::super::state::Inner;
use super::codec::parse_window;
use super::{Cluster, FORECAST, LEASE, Lease, POLL, PRIORITIES};

impl Inner {
    /// The puller: while the model threads have room for their next pass
    /// (`take` windows), takes work items from the streams, leases their
    /// windows and queues them locally. Runs until the queue closes.
    pub(crate) fn pull_shared_work(&self, take: usize) {
        let Some(c) = &self.cluster else { return };
        while !self.jobs.is_closed() {
            c.renew_held();
            let restarts = c.shared.restarts();
            if c.restarts_seen.swap(restarts, Ordering::Relaxed) != restarts {
                self.reshare(c);
            }
            // At most `take` windows waiting here (the model threads' next
            // pass): the rest stay on the streams for other replicas.
            let queued = self.jobs.queued();
            if queued >= take {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            // The items' leases are taken in the same round trip.
            let leases = PullLeases {
                lease_prefix: LEASE,
                check_prefix: FORECAST,
                holder: &c.replica,
                ttl: c.lease,
            };
            let pulled = c.shared.pull(
                &c.replica,
                take - queued,
                c.lease,
                &PRIORITIES,
                Some(&leases),
            );
            let items = match pulled {
                Ok(items) => items,
                Err(e) => {
                    tracing::debug!(error = %e, "shared work not pulled");
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
            };
            if items.is_empty() {
                c.nap(POLL);
                continue;
            }
            self.take_items(c, items);
        }
    }

    /// Queues the pulled items whose windows this replica now holds (their
    /// leases were taken by the pull); items of windows unknown, gone or
    /// already computed are acknowledged, and their leases given back.
    fn take_items(&self, c: &Cluster, items: Vec<Pulled>) {
        let mut back = Vec::new();
        for item in items {
            // Taken over from a replica past its lease, even when its window
            // was finished meanwhile (a person's request computes a window
            // nobody delivered for a lease).
            if item.reclaimed {
                c.reclaimed.fetch_add(1, Ordering::Relaxed);
            }
            // No lease outcome (none was asked for): treated as held
            // elsewhere, so the item stays pending.
            let lease = match item.lease {
                Some(found) => c.settle_lease(&item.payload, found, &mut back),
                None => Lease::Held,
            };
            let known = parse_window(&item.payload).and_then(|key| {
                // Deleted or flushed since: nothing to compute.
                let upload = self.resolve(&key.handle, key.kind).ok()?;
                self.cached_forecast(&upload, &key)
                    .is_none()
                    .then_some((key, upload))
            });
            let Some((key, upload)) = known else {
                if lease == Lease::Taken {
                    c.give_back(&item.payload, &mut back);
                }
                let _ = c.shared.ack(item.priority, &item.id);
                continue;
            };
            match lease {
                // Another replica computes it: the item stays pending, and
                // is taken over after the lease if that replica dies.
                Lease::Held => continue,
                // Finished elsewhere a moment ago.
                Lease::Done => {
                    let _ = c.shared.ack(item.priority, &item.id);
                    continue;
                }
                Lease::Taken => {}
            }
            c.claimed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut acks) = c.acks.lock() {
                acks.entry(item.payload.clone())
                    .or_default()
                    .push((item.priority, item.id.clone()));
            }
            if let Err(e) = self
                .jobs
                .submit(JobKey::new(key, upload), item.priority, true)
            {
                tracing::debug!(error = %EngineError::from(e), "shared work not queued");
                // Left for another replica (or a later pull), not held here.
                c.give_back(&item.payload, &mut back);
            }
        }
        let _ = c.shared.delete(&back);
    }
}
