//! What this node read of a shared store a moment ago (`[store] memo`), so
//! that a busy node does not ask Redis the same thing for every message:
//!
//! * a rate-limit counter, while the value read plus what this node let
//!   through since stays in the lower half of the limit. Near a limit
//!   every message reads the store, so the nodes sharing Redis keep it;
//!   only an identity sending more than half its limit within one memo
//!   can pass it.
//! * a recipient that is not known bad. A node that learns a recipient
//!   bad forgets its memo of it at once; the other nodes see it within
//!   the memo. A known-bad recipient is never answered from here, so a
//!   removal (`smtpgate bad-recipients remove`) is seen at once.
//!
//! While the store is failing nothing is answered from here (each check
//! reads, and fails as `store.on_error` says). The memory store is in this
//! process: nothing to remember, every read is exact.

use crate::dns::Expiring;
use crate::store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys remembered at most (least recently used go first).
const CAPACITY: u64 = 100_000;

/// A value as read, and what this node added to it since.
#[derive(Clone)]
struct Entry {
    value: Option<u64>,
    spent: Arc<AtomicU64>,
}

/// The memo of one configuration (shared by its checks and the learning
/// of bad recipients; a reload starts a new one).
pub struct Recent {
    entries: Expiring<String, Entry>,
    memo: Duration,
    store: Arc<dyn Store>,
}

impl Recent {
    /// A memo of `memo` (zero: none) for reads of `store`; none for the
    /// memory store.
    pub fn new(store: Arc<dyn Store>, memo: Duration) -> Recent {
        let memo = if store.backend() == "memory" {
            Duration::ZERO
        } else {
            memo
        };
        Recent {
            entries: Expiring::with_capacity(CAPACITY),
            memo,
            store,
        }
    }

    /// Nothing remembered, ever (the reads are exact).
    pub fn none(store: Arc<dyn Store>) -> Recent {
        Recent::new(store, Duration::ZERO)
    }

    fn fresh(&self, key: &str) -> Option<Entry> {
        if self.memo.is_zero() || self.store.is_down() {
            return None;
        }
        self.entries.get(key)
    }

    fn keep(&self, key: &str, value: Option<u64>, spent: u64) {
        if !self.memo.is_zero() {
            let entry = Entry {
                value,
                spent: Arc::new(AtomicU64::new(spent)),
            };
            self.entries
                .insert(key.to_string(), entry, Some(Instant::now() + self.memo));
        }
    }

    /// The counter at `key` with `need` more still in the lower half of
    /// `limit`: the value it answers (the read plus what this node let
    /// through since) without reading the store. `None`: read it.
    pub fn counter(&self, key: &str, limit: u64, need: u64) -> Option<u64> {
        self.lower_half(key, limit, need).map(|(known, _)| known)
    }

    /// [`Recent::counter`], and `add` counted as let through.
    pub fn spend(&self, key: &str, limit: u64, need: u64, add: u64) -> Option<u64> {
        let (known, entry) = self.lower_half(key, limit, need)?;
        entry.spent.fetch_add(add, Ordering::Relaxed);
        Some(known)
    }

    /// What is known of the counter at `key`, and its entry, when `need`
    /// more keeps it in the lower half of `limit`.
    fn lower_half(&self, key: &str, limit: u64, need: u64) -> Option<(u64, Entry)> {
        let entry = self.fresh(key)?;
        let known = entry.value.unwrap_or(0) + entry.spent.load(Ordering::Relaxed);
        (known.saturating_add(need).saturating_mul(2) <= limit).then_some((known, entry))
    }

    /// The counter at `key` was just read as `value`, and `add` more is
    /// being let through.
    pub fn read_counter(&self, key: &str, value: u64, add: u64) {
        self.keep(key, Some(value), add);
    }

    /// True when `key` was read absent a moment ago.
    pub fn absent(&self, key: &str) -> bool {
        self.fresh(key).is_some_and(|e| e.value.is_none())
    }

    /// `key` was just read: absent (`false`) is remembered, present is not.
    pub fn read_presence(&self, key: &str, present: bool) {
        if present {
            self.entries.remove(key);
        } else {
            self.keep(key, None, 0);
        }
    }

    /// `key` was just written by this node: read it next time.
    pub fn forget(&self, key: &str) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    /// A store that says it is not the memory store, and can be down.
    struct Shared(MemoryStore, std::sync::atomic::AtomicBool);

    impl Store for Shared {
        fn backend(&self) -> &'static str {
            "redis"
        }
        fn is_down(&self) -> bool {
            self.1.load(Ordering::Relaxed)
        }
        fn get<'a>(&'a self, k: &'a str) -> crate::store::StoreFuture<'a, Option<Vec<u8>>> {
            self.0.get(k)
        }
        fn get_many<'a>(
            &'a self,
            k: &'a [&'a str],
        ) -> crate::store::StoreFuture<'a, Vec<Option<Vec<u8>>>> {
            self.0.get_many(k)
        }
        fn set<'a>(
            &'a self,
            k: &'a str,
            v: &'a [u8],
            t: Duration,
        ) -> crate::store::StoreFuture<'a, ()> {
            self.0.set(k, v, t)
        }
        fn delete<'a>(&'a self, k: &'a str) -> crate::store::StoreFuture<'a, bool> {
            self.0.delete(k)
        }
        fn incr<'a>(
            &'a self,
            k: &'a str,
            by: i64,
            t: Duration,
        ) -> crate::store::StoreFuture<'a, i64> {
            self.0.incr(k, by, t)
        }
        fn incr_many<'a>(
            &'a self,
            i: &'a [crate::store::Increment<'a>],
        ) -> crate::store::StoreFuture<'a, Vec<i64>> {
            self.0.incr_many(i)
        }
        fn keys<'a>(&'a self, p: &'a str, l: usize) -> crate::store::StoreFuture<'a, Vec<String>> {
            self.0.keys(p, l)
        }
        fn greylist<'a>(
            &'a self,
            r: &'a crate::store::Greylisting<'a>,
        ) -> crate::store::StoreFuture<'a, crate::store::GreylistOutcome> {
            self.0.greylist(r)
        }
        fn batch<'a>(
            &'a self,
            o: &'a [crate::store::WriteOp],
        ) -> crate::store::StoreFuture<'a, ()> {
            self.0.batch(o)
        }
    }

    fn shared() -> Arc<Shared> {
        Arc::new(Shared(
            MemoryStore::new(),
            std::sync::atomic::AtomicBool::new(false),
        ))
    }

    #[test]
    fn a_counter_is_answered_only_in_the_lower_half_of_its_limit() {
        let store = shared();
        let recent = Recent::new(store.clone(), Duration::from_secs(60));
        assert_eq!(recent.counter("rl", 10, 1), None, "never read");
        recent.read_counter("rl", 2, 1);
        // 2 read + 1 let through; each spend answers what is known and
        // adds one: 3 and 4 (each with 1 more still within 5 of 10).
        assert_eq!(recent.spend("rl", 10, 1, 1), Some(3));
        assert_eq!(recent.spend("rl", 10, 1, 1), Some(4));
        assert_eq!(recent.counter("rl", 10, 1), None, "5 + 1 of 10: upper half");
        assert_eq!(recent.counter("rl", 12, 1), Some(5), "5 + 1 of 12");
        assert_eq!(recent.counter("rl", 12, 2), None, "5 + 2 of 12");
        store.1.store(true, Ordering::Relaxed);
        assert_eq!(recent.counter("rl", 1000, 1), None, "the store is down");
        store.1.store(false, Ordering::Relaxed);
        recent.forget("rl");
        assert_eq!(recent.counter("rl", 1000, 1), None, "forgotten");
    }

    #[test]
    fn only_an_absent_key_is_remembered_and_it_ends() {
        let recent = Recent::new(shared(), Duration::from_millis(50));
        recent.read_presence("bad", true);
        assert!(!recent.absent("bad"), "a present key is read each time");
        recent.read_presence("bad", false);
        assert!(recent.absent("bad"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!recent.absent("bad"), "the memo ended");
        recent.read_presence("bad", false);
        recent.forget("bad");
        assert!(!recent.absent("bad"), "learned bad on this node");
    }

    #[test]
    fn the_memory_store_and_a_zero_memo_remember_nothing() {
        let memory = Recent::new(Arc::new(MemoryStore::new()), Duration::from_secs(60));
        memory.read_presence("bad", false);
        memory.read_counter("rl", 0, 0);
        assert!(!memory.absent("bad"));
        assert_eq!(memory.counter("rl", 1000, 1), None);
        let zero = Recent::none(shared());
        zero.read_presence("bad", false);
        assert!(!zero.absent("bad"));
    }
}
