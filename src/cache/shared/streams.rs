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
    /// items another consumer held past `lease` before new ones. One round
    /// trip whatever the priorities (a script that stops at the first
    /// stream with work), so a pull costs the same at every priority.
    pub fn pull(
        &self,
        consumer: &str,
        count: usize,
        lease: Duration,
        priorities: &[u8],
    ) -> Result<Vec<Pulled>, SharedError> {
        // KEYS: the streams, most urgent first. ARGV: group, consumer, idle
        // ms, count. Returns {position, XAUTOCLAIM reply, XREADGROUP reply}
        // of the first stream that gave anything, or {-1}.
        const PULL: &str = "for i, s in ipairs(KEYS) do \
            local claimed = redis.call('XAUTOCLAIM', s, ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', ARGV[4]) \
            local read = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[4], 'STREAMS', s, '>') \
            if #claimed[2] > 0 or read then return {i - 1, claimed, read} end \
            end return {-1}";
        if count == 0 || priorities.is_empty() {
            return Ok(Vec::new());
        }
        let streams: Vec<String> = priorities.iter().map(|&p| self.stream(p)).collect();
        for stream in &streams {
            let known = self.groups.lock().is_ok_and(|g| g.contains(stream));
            if !known {
                self.ensure_group(stream)?;
                if let Ok(mut g) = self.groups.lock() {
                    g.insert(stream.clone());
                }
            }
        }
        let (keys, who) = (streams.clone(), consumer.to_string());
        let idle = lease.as_millis() as u64;
        let reply: Result<Value, SharedError> = self.call(|mut c| async move {
            redis::cmd("EVAL")
                .arg(PULL)
                .arg(keys.len())
                .arg(&keys)
                .arg(GROUP)
                .arg(&who)
                .arg(idle)
                .arg(count)
                .query_async(&mut c)
                .await
        });
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                // A stream was flushed away: make the groups again next time.
                if matches!(&e, SharedError::Redis(m) if m.contains("NOGROUP"))
                    && let Ok(mut g) = self.groups.lock()
                {
                    for s in &streams {
                        g.remove(s);
                    }
                }
                return Err(e);
            }
        };
        let Value::Array(parts) = reply else {
            return Err(SharedError::Redis(
                "pull: the script's reply is not a list".into(),
            ));
        };
        let at = match parts.first() {
            Some(Value::Int(i)) if *i >= 0 => *i as usize,
            Some(Value::Int(_)) => return Ok(Vec::new()),
            _ => {
                return Err(SharedError::Redis(
                    "pull: the script's reply has no position".into(),
                ));
            }
        };
        let Some(&priority) = priorities.get(at) else {
            return Err(SharedError::Redis(format!("pull: no stream {at}")));
        };
        let mut items = parts
            .get(1)
            .map(|c| entries(c, 1, priority, true))
            .unwrap_or_default();
        if let Some(read) = parts.get(2) {
            items.extend(read_entries(read, priority));
        }
        Ok(items)
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
