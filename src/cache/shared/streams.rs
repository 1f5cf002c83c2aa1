//! The shared tier's work queues: one Redis Stream per priority, read by
//! one consumer group that every replica joins; an entry a consumer held
//! past the lease is taken over (`XAUTOCLAIM`) before new ones are read.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::Value;

use super::reply::{entries, read_entries};
use super::{GROUP, Pulled, Shared, SharedError};

impl Shared {
    /// Appends `payloads` to the work stream of `priority`.
    pub fn enqueue(&self, priority: u8, payloads: &[String]) -> Result<(), SharedError> {
        if payloads.is_empty() {
            return Ok(());
        }
        let stream = self.stream(priority);
        let payloads = payloads.to_vec();
        self.call(|mut c| async move {
            let mut pipe = redis::pipe();
            for p in &payloads {
                pipe.cmd("XADD")
                    .arg(&stream)
                    .arg("*")
                    .arg("w")
                    .arg(p)
                    .ignore();
            }
            pipe.query_async::<()>(&mut c).await
        })
    }

    /// Up to `count` work items for `consumer`, most urgent priority first:
    /// items another consumer held past `lease` before new ones.
    pub fn pull(
        &self,
        consumer: &str,
        count: usize,
        lease: Duration,
        priorities: &[u8],
    ) -> Result<Vec<Pulled>, SharedError> {
        for &p in priorities {
            let stream = self.stream(p);
            let known = self.groups.lock().is_ok_and(|g| g.contains(&stream));
            if !known {
                self.ensure_group(&stream)?;
                if let Ok(mut g) = self.groups.lock() {
                    g.insert(stream.clone());
                }
            }
            let (s, who) = (stream.clone(), consumer.to_string());
            let idle = lease.as_millis() as u64;
            // Items held past the lease, then new ones: one round trip.
            let replies: Result<(Value, Value), SharedError> = self.call(|mut c| async move {
                redis::pipe()
                    .cmd("XAUTOCLAIM")
                    .arg(&s)
                    .arg(GROUP)
                    .arg(&who)
                    .arg(idle)
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(count)
                    .cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(GROUP)
                    .arg(&who)
                    .arg("COUNT")
                    .arg(count)
                    .arg("STREAMS")
                    .arg(&s)
                    .arg(">")
                    .query_async(&mut c)
                    .await
            });
            let (claimed, read) = match replies {
                Ok(r) => r,
                Err(e) => {
                    // The stream was flushed away: make the group again next time.
                    if matches!(&e, SharedError::Redis(m) if m.contains("NOGROUP"))
                        && let Ok(mut g) = self.groups.lock()
                    {
                        g.remove(&stream);
                    }
                    return Err(e);
                }
            };
            let mut items = entries(&claimed, 1, p, true);
            items.extend(read_entries(&read, p));
            if !items.is_empty() {
                return Ok(items);
            }
        }
        Ok(Vec::new())
    }

    fn ensure_group(&self, stream: &str) -> Result<(), SharedError> {
        let s = stream.to_string();
        let created: Result<(), SharedError> = self.call(|mut c| async move {
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(s)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut c)
                .await
        });
        match created {
            Err(SharedError::Redis(m)) if m.contains("BUSYGROUP") => {
                // Exists: the failure was an answer, not an outage.
                self.reachable.store(true, Ordering::Relaxed);
                self.counters.errors.fetch_sub(1, Ordering::Relaxed);
                Ok(())
            }
            other => other,
        }
    }

    /// Marks a work item done and removes it from its stream.
    pub fn ack(&self, priority: u8, id: &str) -> Result<(), SharedError> {
        let (stream, id) = (self.stream(priority), id.to_string());
        self.call(|mut c| async move {
            redis::pipe()
                .cmd("XACK")
                .arg(&stream)
                .arg(GROUP)
                .arg(&id)
                .ignore()
                .cmd("XDEL")
                .arg(&stream)
                .arg(&id)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
    }
}
