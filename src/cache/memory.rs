//! A concurrent in-memory cache bounded by bytes, not entries: a dashmap of
//! shared values, each with its size and a last-use tick; inserting past the
//! budget evicts the least recently used entries.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;

/// Values that know their approximate heap size.
pub trait Weigh {
    /// Bytes this value holds.
    fn weight(&self) -> usize;
}

impl Weigh for Vec<u8> {
    fn weight(&self) -> usize {
        self.len()
    }
}

struct Slot<V> {
    value: Arc<V>,
    bytes: usize,
    last_used: AtomicU64,
}

/// Byte-bounded LRU map.
pub struct MemoryCache<K, V> {
    map: DashMap<K, Slot<V>>,
    bytes: AtomicUsize,
    max_bytes: usize,
    tick: AtomicU64,
}

impl<K: Eq + Hash + Clone, V: Weigh> MemoryCache<K, V> {
    /// An empty cache holding at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        MemoryCache {
            map: DashMap::new(),
            bytes: AtomicUsize::new(0),
            max_bytes,
            tick: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.tick.fetch_add(1, Ordering::Relaxed)
    }

    /// The value under `key`, marking it recently used.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        let slot = self.map.get(key)?;
        slot.last_used.store(self.now(), Ordering::Relaxed);
        Some(slot.value.clone())
    }

    /// True when `key` is present (does not touch recency).
    pub fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Inserts or replaces; returns the keys evicted to make room. A value
    /// larger than the whole budget is not kept (and evicts nothing).
    pub fn insert(&self, key: K, value: Arc<V>) -> Vec<K> {
        let bytes = value.weight();
        if bytes > self.max_bytes {
            self.remove(&key);
            return vec![key];
        }
        let slot = Slot {
            value,
            bytes,
            last_used: AtomicU64::new(self.now()),
        };
        if let Some(old) = self.map.insert(key.clone(), slot) {
            self.bytes.fetch_sub(old.bytes, Ordering::Relaxed);
        }
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut evicted = Vec::new();
        while self.bytes.load(Ordering::Relaxed) > self.max_bytes {
            let victim = self
                .map
                .iter()
                .filter(|e| *e.key() != key)
                .min_by_key(|e| e.value().last_used.load(Ordering::Relaxed))
                .map(|e| e.key().clone());
            match victim {
                Some(v) => {
                    self.remove(&v);
                    evicted.push(v);
                }
                None => break,
            }
        }
        evicted
    }

    /// Removes `key`; returns its value when present.
    pub fn remove(&self, key: &K) -> Option<Arc<V>> {
        let (_, slot) = self.map.remove(key)?;
        self.bytes.fetch_sub(slot.bytes, Ordering::Relaxed);
        Some(slot.value)
    }

    /// Removes every entry matching `pred`; returns how many.
    pub fn remove_where(&self, pred: impl Fn(&K) -> bool) -> usize {
        let keys: Vec<K> = self
            .map
            .iter()
            .filter(|e| pred(e.key()))
            .map(|e| e.key().clone())
            .collect();
        keys.iter().filter(|k| self.remove(k).is_some()).count()
    }

    /// The keys matching `pred`.
    pub fn keys_where(&self, pred: impl Fn(&K) -> bool) -> Vec<K> {
        self.map
            .iter()
            .filter(|e| pred(e.key()))
            .map(|e| e.key().clone())
            .collect()
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.map.clear();
        self.bytes.store(0, Ordering::Relaxed);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: usize) -> Arc<Vec<u8>> {
        Arc::new(vec![0u8; n])
    }

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        let c: MemoryCache<&str, Vec<u8>> = MemoryCache::new(100);
        c.insert("a", blob(40));
        c.insert("b", blob(40));
        assert!(c.get(&"a").is_some()); // a is now newer than b
        let evicted = c.insert("c", blob(40));
        assert_eq!(evicted, vec!["b"]);
        assert!(c.contains(&"a") && c.contains(&"c") && !c.contains(&"b"));
        assert_eq!(c.bytes(), 80);
        // One large value pushes out several.
        let evicted = c.insert("d", blob(90));
        assert_eq!(evicted.len(), 2);
        assert_eq!((c.len(), c.bytes()), (1, 90));
    }

    #[test]
    fn replacing_updates_the_byte_count_and_oversized_values_are_not_kept() {
        let c: MemoryCache<u32, Vec<u8>> = MemoryCache::new(50);
        c.insert(1, blob(30));
        c.insert(1, blob(10));
        assert_eq!(c.bytes(), 10);
        assert_eq!(c.insert(2, blob(51)), vec![2]);
        assert!(!c.contains(&2));
        assert_eq!(c.remove_where(|k| *k == 1), 1);
        assert_eq!((c.len(), c.bytes()), (0, 0));
    }
}
