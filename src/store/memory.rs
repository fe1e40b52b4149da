//! The in-process store: a sharded map with per-key expiry. Time is
//! `tokio::time::Instant`, so tests with paused time see keys expire.

use super::{parse_triplet, GreylistOutcome, Greylisting, Store, StoreError, StoreFuture};
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Sweep expired keys every this many writes.
const SWEEP_EVERY: u64 = 4096;

struct Entry {
    value: Vec<u8>,
    expires: Instant,
}

/// The memory backend.
#[derive(Default)]
pub struct MemoryStore {
    map: DashMap<String, Entry>,
    writes: AtomicU64,
    /// Makes a greylisting decision (two keys) atomic.
    greylisting: Mutex<()>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Number of live keys (expired ones may still be counted until swept).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn wrote(&self) {
        if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let now = Instant::now();
            self.map.retain(|_, e| e.expires > now);
        }
    }

    fn get_now(&self, key: &str) -> Option<Vec<u8>> {
        let now = Instant::now();
        let entry = self.map.get(key)?;
        if entry.expires > now {
            return Some(entry.value.clone());
        }
        drop(entry);
        self.map.remove_if(key, |_, e| e.expires <= now);
        None
    }

    fn incr_now(&self, key: &str, by: i64, ttl: Duration) -> Result<i64, StoreError> {
        let now = Instant::now();
        let mut entry = self.map.entry(key.to_string()).or_insert_with(|| Entry {
            value: b"0".to_vec(),
            expires: now + ttl,
        });
        if entry.expires <= now {
            entry.value = b"0".to_vec();
            entry.expires = now + ttl;
        }
        let current: i64 = std::str::from_utf8(&entry.value)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| StoreError(format!("{key}: value is not an integer")))?;
        let next = current.saturating_add(by);
        entry.value = next.to_string().into_bytes();
        drop(entry);
        self.wrote();
        Ok(next)
    }

    fn set_now(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        let expires = Instant::now() + ttl;
        self.map.insert(key.to_string(), Entry { value, expires });
        self.wrote();
    }

    fn greylist_now(&self, r: &Greylisting<'_>) -> Result<GreylistOutcome, StoreError> {
        let _one_at_a_time = self.greylisting.lock().unwrap_or_else(|e| e.into_inner());
        let count: u64 = match self.get_now(r.client_key) {
            None => 0,
            Some(v) => std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| StoreError(format!("{}: value is not an integer", r.client_key)))?,
        };
        if r.auto_whitelist_after > 0 && count >= r.auto_whitelist_after {
            return Ok(GreylistOutcome::Whitelisted);
        }
        let max_age = Duration::from_secs(r.max_age);
        if let Some((first, passed)) = self.get_now(r.triplet_key).and_then(|v| parse_triplet(&v)) {
            if !passed && r.now < first.saturating_add(r.delay) {
                // (at most the delay, should another node's clock be ahead)
                return Ok(GreylistOutcome::Wait(
                    (first + r.delay - r.now).min(r.delay),
                ));
            }
            if passed || r.now - first <= r.retry_window {
                self.set_now(r.triplet_key, format!("{first}:1").into_bytes(), max_age);
                let count = count + 1;
                self.set_now(r.client_key, count.to_string().into_bytes(), max_age);
                return Ok(GreylistOutcome::Passed(count));
            }
        }
        let value = format!("{}:0", r.now).into_bytes();
        self.set_now(r.triplet_key, value, Duration::from_secs(r.retry_window));
        Ok(GreylistOutcome::Wait(r.delay))
    }
}

impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let value = self.get_now(key);
        Box::pin(async move { Ok(value) })
    }

    fn set<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()> {
        self.set_now(key, value.to_vec(), ttl);
        Box::pin(async { Ok(()) })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        let now = Instant::now();
        let removed = self.map.remove(key).is_some_and(|(_, e)| e.expires > now);
        Box::pin(async move { Ok(removed) })
    }

    fn incr<'a>(&'a self, key: &'a str, by: i64, ttl: Duration) -> StoreFuture<'a, i64> {
        let result = self.incr_now(key, by, ttl);
        Box::pin(async move { result })
    }

    fn keys<'a>(&'a self, prefix: &'a str, limit: usize) -> StoreFuture<'a, Vec<String>> {
        let now = Instant::now();
        let mut keys: Vec<String> = self
            .map
            .iter()
            .filter(|e| e.key().starts_with(prefix) && e.expires > now)
            .map(|e| e.key().clone())
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
}
