//! The shared tier's work queues: one Redis Stream per priority, read by
//! one consumer group that every replica joins; an entry a consumer held
//! past the lease is taken over (`XAUTOCLAIM`) before new ones are read,
//! all in one script per pull (which can also take the items' leases).

use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::Value;

use super::reply::pulled;
use super::{GROUP, PullLeases, Pulled, Shared, SharedError};

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
    /// stream with work), with each item's lease taken in it when `leases`
    /// says how ([`Pulled::lease`]).
    pub fn pull(
        &self,
        consumer: &str,
        count: usize,
        lease: Duration,
        priorities: &[u8],
        leases: Option<&PullLeases<'_>>,
    ) -> Result<Vec<Pulled>, SharedError> {
        // KEYS: the streams, most urgent first. ARGV: group, consumer, idle
        // ms, count, then (or empty) the lease key prefix, the check key
        // prefix, the holder and the lease in ms. Returns {-1}, or the
        // position of the first stream that gave anything and its items as
        // {id, payload, reclaimed, lease taken, check exists, ...} (-1 for
        // the last two without leases). The lease and check keys are built
        // from the payloads: a single Redis, not a Redis Cluster.
        const PULL: &str = r#"
local out = {}
local function add(e, reclaimed)
  local f = e[2]
  if type(f) ~= 'table' then return end
  for j = 1, #f - 1, 2 do
    if f[j] == 'w' then
      local p, taken, exists = f[j + 1], -1, -1
      if ARGV[5] ~= '' then
        taken = redis.call('SET', ARGV[5] .. p, ARGV[7], 'NX', 'PX', ARGV[8]) and 1 or 0
        exists = redis.call('EXISTS', ARGV[6] .. p)
      end
      for _, v in ipairs({e[1], p, reclaimed, taken, exists}) do out[#out + 1] = v end
      return
    end
  end
end
for i, s in ipairs(KEYS) do
  local claimed = redis.call('XAUTOCLAIM', s, ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', ARGV[4])
  for _, e in ipairs(claimed[2]) do add(e, 1) end
  local read = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[4], 'STREAMS', s, '>')
  if read then
    for _, st in ipairs(read) do
      for _, e in ipairs(st[2]) do add(e, 0) end
    end
  end
  if #out > 0 or #claimed[2] > 0 or read then return {i - 1, out} end
end
return {-1}
"#;
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
        let lease_args: [String; 4] = match leases {
            Some(l) => [
                self.key(l.lease_prefix),
                self.key(l.check_prefix),
                l.holder.to_string(),
                l.ttl.as_millis().max(1).to_string(),
            ],
            None => Default::default(),
        };
        let reply: Result<Value, SharedError> = self.call(|mut c| async move {
            redis::cmd("EVAL")
                .arg(PULL)
                .arg(keys.len())
                .arg(&keys)
                .arg(GROUP)
                .arg(&who)
                .arg(idle)
                .arg(count)
                .arg(&lease_args)
                .query_async(&mut c)
                .await
        });
        match reply {
            Ok(r) => pulled(&r, priorities),
            Err(e) => {
                // A stream was flushed away: make the groups again next time.
                if matches!(&e, SharedError::Redis(m) if m.contains("NOGROUP"))
                    && let Ok(mut g) = self.groups.lock()
                {
                    for s in &streams {
                        g.remove(s);
                    }
                }
                Err(e)
            }
        }
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
