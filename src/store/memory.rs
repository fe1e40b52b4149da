//! The in-process store: a map with per-key expiry and a bound on its size.
//! An index by expiry beside the map (O(log n) per write) drops expired keys
//! as writes come and, when `max_entries` is reached, evicts the key that
//! would expire first — so a spray of distinct keys (greylist triplets from
//! a botnet) cannot grow the process without end. Time is
//! `tokio::time::Instant`, so tests with paused time see keys expire.

use super::{
    parse_triplet, GreylistOutcome, Greylisting, Increment, Store, StoreError, StoreFuture, WriteOp,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Expired keys dropped per write at most (more than one, so expired keys
/// never accumulate; few, so no write pays for a mass expiry).
const SWEEP_PER_WRITE: usize = 8;

/// The entries gauge is refreshed every this many writes.
const GAUGE_EVERY: u64 = 1024;

struct Entry {
    value: Vec<u8>,
    expires: Instant,
    /// Tie-breaker in the expiry index (keys with one expiry instant).
    seq: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Arc<str>, Entry>,
    by_expiry: BTreeMap<(Instant, u64), Arc<str>>,
    next_seq: u64,
}

impl Inner {
    /// The live entry at `key`; an expired one is dropped.
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        let expired = self.map.get(key)?.expires <= now;
        if expired {
            self.remove(key);
            return None;
        }
        self.map.get_mut(key)
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.map.remove(key)?;
        self.by_expiry.remove(&(entry.expires, entry.seq));
        Some(entry)
    }

    /// Drops up to `most` expired keys; returns how many.
    fn sweep(&mut self, now: Instant, most: usize) -> usize {
        let mut dropped = 0;
        while dropped < most {
            match self.by_expiry.first_key_value() {
                Some((&(expires, _), _)) if expires <= now => {
                    if let Some((_, key)) = self.by_expiry.pop_first() {
                        self.map.remove(&key);
                    }
                    dropped += 1;
                }
                _ => break,
            }
        }
        dropped
    }

    /// Sets `key`; returns how many live keys were evicted to make room.
    fn put(&mut self, key: &str, value: Vec<u8>, expires: Instant, max: usize) -> u64 {
        let now = Instant::now();
        self.sweep(now, SWEEP_PER_WRITE);
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some((shared, entry)) = self.map.get_key_value(key) {
            let shared = Arc::clone(shared);
            self.by_expiry.remove(&(entry.expires, entry.seq));
            self.by_expiry.insert((expires, seq), shared.clone());
            self.map.insert(
                shared,
                Entry {
                    value,
                    expires,
                    seq,
                },
            );
            return 0;
        }
        let mut evicted = 0;
        while max > 0 && self.map.len() >= max {
            let Some((_, victim)) = self.by_expiry.pop_first() else {
                break;
            };
            if let Some(old) = self.map.remove(&victim) {
                if old.expires > now {
                    evicted += 1;
                }
            }
        }
        let shared: Arc<str> = Arc::from(key);
        self.by_expiry.insert((expires, seq), shared.clone());
        self.map.insert(
            shared,
            Entry {
                value,
                expires,
                seq,
            },
        );
        evicted
    }

    fn integer(&mut self, key: &str, now: Instant) -> Result<Option<i64>, StoreError> {
        match self.live(key, now) {
            None => Ok(None),
            Some(e) => std::str::from_utf8(&e.value)
                .ok()
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(|| StoreError(format!("{key}: value is not an integer"))),
        }
    }
}

/// The memory backend.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// Most keys held; 0 = no bound.
    max_entries: usize,
    writes: AtomicU64,
    evicted: AtomicU64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_max_entries(crate::config::StoreConfig::default().max_entries)
    }
}

impl MemoryStore {
    /// An empty store holding at most the default `[store] max_entries` keys.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// An empty store holding at most `max_entries` keys (0 = no bound);
    /// beyond it, the key that would expire first is evicted.
    pub fn with_max_entries(max_entries: usize) -> MemoryStore {
        MemoryStore {
            inner: Mutex::new(Inner::default()),
            max_entries,
            writes: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    /// Number of keys held (expired ones may be counted until swept).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Live keys evicted so far to stay within `max_entries`.
    pub fn evictions(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding it leaves a consistent map (every update
        // is applied whole or not at all), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a write's evictions and refreshes the entries gauge now and then.
    fn wrote(&self, evicted: u64, inner: &Inner) {
        if evicted > 0 {
            self.evicted.fetch_add(evicted, Ordering::Relaxed);
            crate::metrics::store_evicted(evicted);
        }
        if self
            .writes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(GAUGE_EVERY)
        {
            crate::metrics::store_entries(inner.map.len());
        }
    }

    fn set_in(&self, inner: &mut Inner, key: &str, value: Vec<u8>, ttl: Duration) {
        let evicted = inner.put(key, value, Instant::now() + ttl, self.max_entries);
        self.wrote(evicted, inner);
    }

    fn incr_in(
        &self,
        inner: &mut Inner,
        key: &str,
        by: i64,
        ttl: Duration,
    ) -> Result<i64, StoreError> {
        let now = Instant::now();
        match inner.integer(key, now)? {
            Some(current) => {
                let next = current.saturating_add(by);
                if let Some(e) = inner.live(key, now) {
                    e.value = next.to_string().into_bytes();
                }
                Ok(next)
            }
            None => {
                self.set_in(inner, key, by.to_string().into_bytes(), ttl);
                Ok(by)
            }
        }
    }

    fn greylist_now(&self, r: &Greylisting<'_>) -> Result<GreylistOutcome, StoreError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let now = Instant::now();
        let count = inner
            .integer(r.client_key, now)?
            .map_or(0, |n| u64::try_from(n).unwrap_or(0));
        if r.auto_whitelist_after > 0 && count >= r.auto_whitelist_after {
            return Ok(GreylistOutcome::Whitelisted);
        }
        let max_age = Duration::from_secs(r.max_age);
        let triplet = inner
            .live(r.triplet_key, now)
            .and_then(|e| parse_triplet(&e.value));
        if let Some((first, passed)) = triplet {
            if !passed && r.now < first.saturating_add(r.delay) {
                // (at most the delay, should another node's clock be ahead)
                return Ok(GreylistOutcome::Wait(
                    (first + r.delay - r.now).min(r.delay),
                ));
            }
            if passed || r.now - first <= r.retry_window {
                let passed = format!("{first}:1").into_bytes();
                self.set_in(inner, r.triplet_key, passed, max_age);
                let count = count + 1;
                self.set_in(inner, r.client_key, count.to_string().into_bytes(), max_age);
                return Ok(GreylistOutcome::Passed(count));
            }
        }
        let value = format!("{}:0", r.now).into_bytes();
        self.set_in(
            inner,
            r.triplet_key,
            value,
            Duration::from_secs(r.retry_window),
        );
        Ok(GreylistOutcome::Wait(r.delay))
    }
}

impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn batch<'a>(&'a self, ops: &'a [WriteOp]) -> StoreFuture<'a, ()> {
        let mut inner = self.lock();
        let now = Instant::now();
        let mut result = Ok(());
        for op in ops {
            match op {
                WriteOp::Set(key, value, ttl) => self.set_in(&mut inner, key, value.clone(), *ttl),
                WriteOp::Append(key, value, ttl) => {
                    // Taken from a live entry, put back under its own key
                    // (no new key, no eviction for it).
                    let mut joined = inner
                        .live(key, now)
                        .map(|e| std::mem::take(&mut e.value))
                        .unwrap_or_default();
                    joined.extend_from_slice(value);
                    self.set_in(&mut inner, key, joined, *ttl);
                }
                WriteOp::Incr(key, by, ttl) => {
                    // (as Redis: the other ops of the batch still apply)
                    if let Err(e) = self.incr_in(&mut inner, key, *by, *ttl) {
                        result = Err(e);
                    }
                }
            }
        }
        drop(inner);
        Box::pin(async move { result })
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let value = self
            .lock()
            .live(key, Instant::now())
            .map(|e| e.value.clone());
        Box::pin(async move { Ok(value) })
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        let now = Instant::now();
        let mut inner = self.lock();
        let values = keys
            .iter()
            .map(|k| inner.live(k, now).map(|e| e.value.clone()))
            .collect();
        drop(inner);
        Box::pin(async move { Ok(values) })
    }

    fn set<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()> {
        self.set_in(&mut self.lock(), key, value.to_vec(), ttl);
        Box::pin(async { Ok(()) })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        let now = Instant::now();
        let removed = self.lock().remove(key).is_some_and(|e| e.expires > now);
        Box::pin(async move { Ok(removed) })
    }

    fn incr<'a>(&'a self, key: &'a str, by: i64, ttl: Duration) -> StoreFuture<'a, i64> {
        let result = self.incr_in(&mut self.lock(), key, by, ttl);
        Box::pin(async move { result })
    }

    fn incr_many<'a>(&'a self, increments: &'a [Increment<'a>]) -> StoreFuture<'a, Vec<i64>> {
        let mut inner = self.lock();
        let now = Instant::now();
        // All or nothing: a non-integer anywhere fails the batch unapplied.
        let checked = increments
            .iter()
            .try_for_each(|i| inner.integer(i.key, now).map(drop));
        let result = checked.and_then(|()| {
            increments
                .iter()
                .map(|i| self.incr_in(&mut inner, i.key, i.by, i.ttl))
                .collect()
        });
        drop(inner);
        Box::pin(async move { result })
    }

    fn keys<'a>(&'a self, prefix: &'a str, limit: usize) -> StoreFuture<'a, Vec<String>> {
        let now = Instant::now();
        let mut keys: Vec<String> = self
            .lock()
            .map
            .iter()
            .filter(|(k, e)| k.starts_with(prefix) && e.expires > now)
            .map(|(k, _)| k.to_string())
            .take(limit)
            .collect();
        keys.sort();
        Box::pin(async move { Ok(keys) })
    }

    fn greylist<'a>(&'a self, request: &'a Greylisting<'a>) -> StoreFuture<'a, GreylistOutcome> {
        let result = self.greylist_now(request);
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn values_expire() {
        let s = MemoryStore::new();
        s.set("a", b"1", Duration::from_secs(10)).await.unwrap();
        assert_eq!(s.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(s.get("a").await.unwrap(), None);
        assert!(!s.delete("a").await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn counters_keep_their_window() {
        let s = MemoryStore::new();
        assert_eq!(s.incr("c", 1, Duration::from_secs(60)).await.unwrap(), 1);
        tokio::time::advance(Duration::from_secs(50)).await;
        assert_eq!(s.incr("c", 2, Duration::from_secs(60)).await.unwrap(), 3);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(
            s.incr("c", 1, Duration::from_secs(60)).await.unwrap(),
            1,
            "window restarted"
        );
        s.set("t", b"x", Duration::from_secs(60)).await.unwrap();
        assert!(s.incr("t", 1, Duration::from_secs(60)).await.is_err());
    }

    #[tokio::test]
    async fn keys_by_prefix() {
        let s = MemoryStore::new();
        for k in ["bad:b", "bad:a", "other"] {
            s.set(k, b"", Duration::from_secs(60)).await.unwrap();
        }
        assert_eq!(s.keys("bad:", 10).await.unwrap(), ["bad:a", "bad:b"]);
        assert_eq!(s.keys("bad:", 1).await.unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_soonest_to_expire_is_evicted_first() {
        let s = MemoryStore::with_max_entries(3);
        s.set("long", b"", Duration::from_secs(300)).await.unwrap();
        s.set("short", b"", Duration::from_secs(10)).await.unwrap();
        s.set("mid", b"", Duration::from_secs(100)).await.unwrap();
        s.set("new", b"", Duration::from_secs(50)).await.unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.get("short").await.unwrap(), None, "evicted");
        s.set("newer", b"", Duration::from_secs(500)).await.unwrap();
        assert_eq!(s.get("new").await.unwrap(), None, "evicted next");
        for k in ["long", "mid", "newer"] {
            assert!(s.get(k).await.unwrap().is_some(), "{k} kept");
        }
        // Overwriting a held key evicts nothing and moves it in the index.
        s.set("mid", b"2", Duration::from_secs(1000)).await.unwrap();
        s.set("x", b"", Duration::from_secs(600)).await.unwrap();
        assert_eq!(s.get("long").await.unwrap(), None);
        assert_eq!(s.get("mid").await.unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[tokio::test(start_paused = true)]
    async fn expired_keys_go_without_reads() {
        let s = MemoryStore::with_max_entries(0);
        for i in 0..100 {
            s.set(&format!("k{i}"), b"", Duration::from_secs(1))
                .await
                .unwrap();
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        for i in 0..20 {
            s.set(&format!("n{i}"), b"", Duration::from_secs(60))
                .await
                .unwrap();
        }
        assert_eq!(s.len(), 20, "each write swept up to {SWEEP_PER_WRITE}");
    }
}
