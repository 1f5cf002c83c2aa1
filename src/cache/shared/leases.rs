//! The shared tier's window leases (`SET NX PX`, taken many at a time with
//! their forecasts looked for in the same round trip, renewed by their
//! holder) and the finished results that release them.

use std::time::Duration;

use super::{DEFERRED_MAX, GROUP, Shared, SharedError};

/// A result to store with [`Shared::store_done`].
#[derive(Debug, Clone)]
pub struct Finished {
    /// Its key (under the prefix).
    pub name: String,
    /// Its bytes.
    pub value: Vec<u8>,
    /// The lease it releases.
    pub release: String,
    /// The work items (priority, entry id) it answers.
    pub acks: Vec<(u8, String)>,
}

/// A [`Finished`] with its keys under the prefix.
struct Prepared {
    key: String,
    value: Vec<u8>,
    lease: String,
    acks: Vec<(String, String)>,
}

impl Shared {
    /// Stores finished results (as [`Shared::set_or_defer`]), frees their
    /// leases and acknowledges the work items they answer, all in one
    /// round trip.
    pub fn store_done(&self, done: Vec<Finished>) {
        if done.is_empty() {
            return;
        }
        let ttl = self.cfg.ttl.as_secs().max(1);
        let items: Vec<Prepared> = done
            .into_iter()
            .map(|f| Prepared {
                acks: f
                    .acks
                    .iter()
                    .map(|(p, id)| (self.stream(*p), id.clone()))
                    .collect(),
                key: self.key(&f.name),
                value: f.value,
                lease: self.key(&f.release),
            })
            .collect();
        let wrote = self.call(|mut c| {
            let mut pipe = redis::pipe();
            for f in &items {
                pipe.set_ex(&f.key, f.value.as_slice(), ttl)
                    .ignore()
                    .unlink(&f.lease)
                    .ignore();
                for (stream, id) in &f.acks {
                    pipe.cmd("XACK").arg(stream).arg(GROUP).arg(id).ignore();
                    pipe.cmd("XDEL").arg(stream).arg(id).ignore();
                }
            }
            async move { pipe.query_async::<()>(&mut c).await }
        });
        if wrote.is_err()
            && let Ok(mut d) = self.deferred.lock()
        {
            for f in items {
                if d.len() >= DEFERRED_MAX {
                    d.pop_front();
                }
                d.push_back((f.key, f.value));
            }
        }
    }

    /// Takes the lease `name` for `lease` unless someone holds it.
    pub fn lease(&self, name: &str, holder: &str, lease: Duration) -> Result<bool, SharedError> {
        let key = self.key(name);
        let holder = holder.to_string();
        let ms = lease.as_millis().max(1) as u64;
        self.call(|mut c| async move {
            let set: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(holder)
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query_async(&mut c)
                .await?;
            Ok(set.is_some())
        })
    }

    /// For each `(lease, check)` pair, [`Shared::lease`] and then whether
    /// `check` exists, all in one round trip: (lease taken, `check` exists)
    /// per pair, in order.
    pub fn lease_many(
        &self,
        pairs: &[(String, String)],
        holder: &str,
        lease: Duration,
    ) -> Result<Vec<(bool, bool)>, SharedError> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<(String, String)> = pairs
            .iter()
            .map(|(l, c)| (self.key(l), self.key(c)))
            .collect();
        let holder = holder.to_string();
        let ms = lease.as_millis().max(1) as u64;
        let replies = self.call(|mut c| async move {
            let mut pipe = redis::pipe();
            for (l, check) in &keys {
                pipe.cmd("SET")
                    .arg(l)
                    .arg(&holder)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms);
                pipe.cmd("EXISTS").arg(check);
            }
            pipe.query_async::<Vec<redis::Value>>(&mut c).await
        })?;
        if replies.len() != pairs.len() * 2 {
            return Err(SharedError::Redis(format!(
                "{} replies to {} lease commands",
                replies.len(),
                pairs.len() * 2
            )));
        }
        Ok(replies
            .chunks(2)
            .map(|r| {
                let taken = !matches!(r[0], redis::Value::Nil);
                let exists = matches!(r[1], redis::Value::Int(n) if n > 0);
                (taken, exists)
            })
            .collect())
    }

    /// Extends the leases `names` that `holder` still holds by `lease`
    /// (one round trip; a lease that expired or passed to another holder is
    /// left alone).
    pub fn renew(
        &self,
        names: &[String],
        holder: &str,
        lease: Duration,
    ) -> Result<(), SharedError> {
        if names.is_empty() {
            return Ok(());
        }
        const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
            return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
        let keys: Vec<String> = names.iter().map(|n| self.key(n)).collect();
        let holder = holder.to_string();
        let ms = lease.as_millis().max(1) as u64;
        self.call(|mut c| async move {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("EVAL")
                    .arg(RENEW)
                    .arg(1)
                    .arg(k)
                    .arg(&holder)
                    .arg(ms)
                    .ignore();
            }
            pipe.query_async::<()>(&mut c).await
        })
    }
}
