//! [`Expiring`]: a bounded cache whose entries each end at an instant of
//! their own. Read on every message (a few dozen times: each DNS answer,
//! each record mail-auth reads through, the store memo), so a read is one
//! uncontended lock of one of 16 shards and one hash lookup: a tenth of a
//! general-purpose concurrent cache's cost.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// Shards of a large cache (a small one has one: its bound is exact).
const SHARDS: usize = 16;

/// Capacities from which the cache is sharded.
const SHARDED_FROM: u64 = 1_024;

type Hasher = foldhash::fast::RandomState;

/// A bounded cache whose entries each end at an instant of their own
/// (when the DNS answer they were made from expires): the DNS answers,
/// the SPF walk's reading of each record, mail-auth's record caches
/// (`mailauth::cache`), the callout's deliverable senders and the store
/// memo (`checks::recent`). Past its bound one entry goes for each new
/// one, never the whole cache at once (that would end every answer
/// together and spike DNS load): the oldest not read since the clock hand
/// last passed it (CLOCK, the usual approximation of least recently used).
pub struct Expiring<K, V> {
    shards: Box<[Mutex<Shard<K, V>>]>,
    hasher: Hasher,
    per_shard: usize,
}

struct Shard<K, V> {
    map: HashMap<K, Slot<V>, Hasher>,
    /// Keys in the order they came, the clock's hand at the front; a key
    /// taken out of `map` stays here until the hand reaches it.
    ring: VecDeque<K>,
}

struct Slot<V> {
    value: V,
    until: Instant,
    /// Read since the hand last passed it.
    used: bool,
}

impl<K, V> Default for Expiring<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Expiring::with_capacity(super::CACHE_SIZE)
    }
}

impl<K, V> Expiring<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// At most `capacity` entries (a sharded cache: at most its share in
    /// each shard).
    pub fn with_capacity(capacity: u64) -> Self {
        let shards = if capacity >= SHARDED_FROM { SHARDS } else { 1 };
        let per_shard = usize::try_from(capacity)
            .unwrap_or(usize::MAX)
            .div_ceil(shards)
            .max(1);
        Expiring {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::with_hasher(Hasher::default()),
                        ring: VecDeque::new(),
                    })
                })
                .collect(),
            hasher: Hasher::default(),
            per_shard,
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, Shard<K, V>> {
        let i = if self.shards.len() == 1 {
            0
        } else {
            (self.hasher.hash_one(key) >> 32) as usize % self.shards.len()
        };
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value kept for `key`, if it has not ended.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut shard = self.shard(key);
        let slot = shard.map.get_mut(key)?;
        if slot.until > Instant::now() {
            slot.used = true;
            Some(slot.value.clone())
        } else {
            shard.map.remove(key);
            None
        }
    }

    /// Takes out the value kept for `key` (ended or not).
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key).map.remove(key).map(|s| s.value)
    }

    /// Keeps `value` until `until` (`None`, or an instant passed: not kept).
    pub fn insert(&self, key: K, value: V, until: Option<Instant>) {
        let now = Instant::now();
        let Some(until) = until.filter(|u| *u > now) else {
            return;
        };
        let mut shard = self.shard(&key);
        if let Some(slot) = shard.map.get_mut(&key) {
            *slot = Slot {
                value,
                until,
                used: true,
            };
            return;
        }
        while shard.map.len() >= self.per_shard && shard.evict_one(now) {}
        if shard.ring.len() >= 2 * self.per_shard + 16 {
            // Keys taken out by `get` and `remove` piled up behind the hand.
            let keys: VecDeque<K> = shard.map.keys().cloned().collect();
            shard.ring = keys;
        }
        shard.ring.push_back(key.clone());
        shard.map.insert(
            key,
            Slot {
                value,
                until,
                used: false,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap().map.len())
            .sum()
    }

    /// Held (ended or not), without counting as a read.
    #[cfg(test)]
    fn holds(&self, key: &K) -> bool {
        self.shard(key).map.contains_key(key)
    }
}

impl<K: Hash + Eq, V> Shard<K, V> {
    /// Moves the hand until one entry is out: a key already gone is
    /// skipped, a read one loses its mark and goes to the back, an ended
    /// or unread one is taken out. False when nothing is left to take.
    fn evict_one(&mut self, now: Instant) -> bool {
        while let Some(key) = self.ring.pop_front() {
            match self.map.get_mut(&key) {
                None => continue,
                Some(slot) if slot.used && slot.until > now => {
                    slot.used = false;
                    self.ring.push_back(key);
                }
                Some(_) => {
                    self.map.remove(&key);
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn past_the_bound_entries_go_one_at_a_time_oldest_first() {
        let cache: Expiring<u32, u32> = Expiring::with_capacity(100);
        let later = Some(Instant::now() + Duration::from_secs(3600));
        for i in 0..100 {
            cache.insert(i, i, later);
        }
        assert_eq!(cache.len(), 100);
        for extra in 0..10u32 {
            cache.insert(100 + extra, 0, later);
            // One more in, the oldest one out; the rest stay.
            assert_eq!(cache.len(), 100, "after {extra}");
            assert!(!cache.holds(&extra), "entry {extra} evicted");
            assert!(cache.holds(&(extra + 1)));
            assert!(cache.holds(&(100 + extra)));
        }
        assert!((10..110).all(|i| cache.get(&i).is_some()));
    }

    #[test]
    fn an_entry_read_since_the_hand_passed_stays_and_the_next_goes() {
        let cache: Expiring<&str, u32> = Expiring::with_capacity(3);
        let later = Some(Instant::now() + Duration::from_secs(3600));
        for k in ["a", "b", "c"] {
            cache.insert(k, 1, later);
        }
        assert_eq!(cache.get("a"), Some(1));
        cache.insert("d", 1, later);
        assert!(cache.holds(&"a") && cache.holds(&"c") && cache.holds(&"d"));
        assert!(!cache.holds(&"b"), "b was never read");
        // a lost its mark when the hand passed: next time it goes.
        cache.insert("e", 1, later);
        assert!(!cache.holds(&"c"), "c is older than a at the hand");
        cache.insert("f", 1, later);
        assert!(!cache.holds(&"a"));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn expired_entries_are_not_answered_and_go_first() {
        let cache: Expiring<u32, u32> = Expiring::with_capacity(10);
        cache.insert(1, 1, Some(Instant::now() - Duration::from_secs(1)));
        cache.insert(2, 2, Some(Instant::now() + Duration::from_secs(60)));
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.get(&2), Some(2));
        let soon = Some(Instant::now() + Duration::from_millis(20));
        let later = Some(Instant::now() + Duration::from_secs(60));
        let small: Expiring<u32, u32> = Expiring::with_capacity(2);
        small.insert(1, 1, soon);
        small.insert(2, 2, later);
        assert_eq!(small.get(&1), Some(1), "read: marked");
        std::thread::sleep(Duration::from_millis(30));
        small.insert(3, 3, later);
        assert!(!small.holds(&1), "ended: out although read");
        assert!(small.holds(&2) && small.holds(&3));
    }

    #[test]
    fn a_large_cache_is_sharded_and_stays_within_its_bound() {
        let cache: Expiring<u32, u32> = Expiring::with_capacity(2_000);
        let later = Some(Instant::now() + Duration::from_secs(3600));
        for i in 0..50_000 {
            cache.insert(i, i, later);
            if i % 3 == 0 {
                cache.remove(&i);
            }
        }
        assert!(cache.len() <= 2_000 + SHARDS, "{}", cache.len());
        assert!(cache.len() >= 1_500, "{}", cache.len());
        assert_eq!(cache.get(&49_999), Some(49_999), "the newest is kept");
        for shard in cache.shards.iter() {
            let shard = shard.lock().unwrap();
            assert!(shard.ring.len() <= 2 * cache.per_shard + 16);
        }
    }
}
