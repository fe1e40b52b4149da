//! Shared state behind one trait: greylist triplets, rate counters, lockout
//! counters, known-bad recipients, callout results, verdicts. The memory
//! backend serves one node; the Redis backend shares state between nodes.
//! Every operation is one round trip (the batch forms let a phase read or
//! count several keys in one); failures are [`StoreError`]s that the caller
//! turns into a tempfail (or skips, per `store.on_error`).

pub mod memory;
pub mod queue;
pub mod redis;
mod redis_batch;
pub mod ticked;

use std::sync::Arc;
use std::time::Instant;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The store could not answer (unreachable, slow, erroring).
#[derive(Debug, Clone, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

/// The future a store operation returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A key-value store with expiry. Keys are given without the configured
/// prefix; the backend adds it.
pub trait Store: Send + Sync {
    /// `memory` or `redis`, for logs.
    fn backend(&self) -> &'static str;

    /// True while the store's last operation failed (a node's memo of what
    /// it read is not used then). Never for the memory store.
    fn is_down(&self) -> bool {
        false
    }

    /// The value at `key`, if present and not expired.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;

    /// The values at `keys`, in order, in one round trip (Redis MGET).
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Vec<u8>>>>;

    /// Sets `key` to `value`, expiring after `ttl`.
    fn set<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()>;

    /// Removes `key`; true when it was there.
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool>;

    /// Adds `by` to the integer at `key` and returns the new value. A missing
    /// (or expired) key starts at 0 and expires after `ttl`; an existing key
    /// keeps its expiry (a fixed window, like Redis INCRBY + EXPIRE NX).
    fn incr<'a>(&'a self, key: &'a str, by: i64, ttl: Duration) -> StoreFuture<'a, i64>;

    /// [`Store::incr`] for each of `increments`, in one round trip, and the
    /// new values in order. On one server (or Sentinel) the batch is atomic
    /// (MULTI/EXEC); on a Cluster each key is (its keys may live on several
    /// nodes). A value that is not an integer fails the call.
    fn incr_many<'a>(&'a self, increments: &'a [Increment<'a>]) -> StoreFuture<'a, Vec<i64>>;

    /// Keys (without prefix) starting with `prefix`, at most `limit`.
    fn keys<'a>(&'a self, prefix: &'a str, limit: usize) -> StoreFuture<'a, Vec<String>>;

    /// One greylisting decision, atomically and in one round trip: reads
    /// the client network's pass counter and the triplet, updates them and
    /// says what to do (see [`Greylisting`] for the rules).
    fn greylist<'a>(&'a self, request: &'a Greylisting<'a>) -> StoreFuture<'a, GreylistOutcome>;

    /// Applies `ops` in one round trip (a Redis pipeline; on a Cluster, one
    /// command per op, all sent at once), not atomically: for writes nobody
    /// waits on (the message history, counters of what happened).
    fn batch<'a>(&'a self, ops: &'a [WriteOp]) -> StoreFuture<'a, ()>;

    /// [`Store::batch`] of `ops`, then [`Store::get_many`] of `keys`, in
    /// one round trip where the backend can (one Redis pipeline): the read
    /// sees the writes. What the writes did is the first value; a failed
    /// read (the call's error) also means the writes may not have landed.
    fn batch_then_get_many<'a>(
        &'a self,
        ops: &'a [WriteOp],
        keys: &'a [&'a str],
    ) -> StoreFuture<'a, WrittenAndRead> {
        Box::pin(async move {
            let written = self.batch(ops).await;
            Ok((written, self.get_many(keys).await?))
        })
    }
}

/// What [`Store::batch_then_get_many`] answers: what the writes did, and
/// the values read.
pub type WrittenAndRead = (Result<(), StoreError>, Vec<Option<Vec<u8>>>);

/// One write of [`Store::batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Sets the key, expiring after the ttl.
    Set(String, Vec<u8>, Duration),
    /// Appends to the key's value (a missing key starts empty) and sets its
    /// expiry to the ttl from now.
    Append(String, Vec<u8>, Duration),
    /// Adds to the integer at the key; a new key expires after the ttl.
    Incr(String, i64, Duration),
}

/// `ops` with the writes to one key merged into one where that changes
/// nothing: the appends to a key (all with one ttl) into one append of
/// their values in order, the increments of a key (all with one ttl) into
/// one of their sum. A key also written another way keeps its writes as
/// they are. Each merged write takes the place of the key's first.
pub fn coalesce(ops: Vec<WriteOp>) -> Vec<WriteOp> {
    use std::collections::hash_map::{Entry, HashMap};
    fn key_of(op: &WriteOp) -> &str {
        match op {
            WriteOp::Set(k, _, _) | WriteOp::Append(k, _, _) | WriteOp::Incr(k, _, _) => k,
        }
    }
    // Per op: the first op of its key; per first op: can the key's writes
    // merge (same kind, same ttl). Indices only: no key is copied.
    let mut first_of: Vec<usize> = (0..ops.len()).collect();
    let mut mergeable = vec![true; ops.len()];
    let mut repeated = false;
    {
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            match seen.entry(key_of(op)) {
                Entry::Vacant(e) => {
                    e.insert(i);
                }
                Entry::Occupied(e) => {
                    let first = *e.get();
                    first_of[i] = first;
                    repeated = true;
                    mergeable[first] &= match (&ops[first], op) {
                        (WriteOp::Append(_, _, a), WriteOp::Append(_, _, b))
                        | (WriteOp::Incr(_, _, a), WriteOp::Incr(_, _, b)) => a == b,
                        _ => false,
                    };
                }
            }
        }
    }
    if !repeated {
        return ops;
    }
    let mut out: Vec<WriteOp> = Vec::with_capacity(ops.len());
    // Where each key's first op went in `out`.
    let mut placed = vec![0; ops.len()];
    for (i, op) in ops.into_iter().enumerate() {
        let first = first_of[i];
        if first == i || !mergeable[first] {
            placed[i] = out.len();
            out.push(op);
            continue;
        }
        match (&mut out[placed[first]], op) {
            (WriteOp::Append(_, value, _), WriteOp::Append(_, more, _)) => {
                value.extend_from_slice(&more)
            }
            (WriteOp::Incr(_, by, _), WriteOp::Incr(_, more, _)) => *by += more,
            (_, op) => out.push(op),
        }
    }
    out
}

/// One counter update of [`Store::incr_many`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Increment<'a> {
    /// The counter's key.
    pub key: &'a str,
    /// What to add.
    pub by: i64,
    /// The window a new counter starts (an existing one keeps its expiry).
    pub ttl: Duration,
}

/// A greylisting request (postgrey semantics). Times are whole seconds on
/// the caller's clock (Unix time, so several nodes agree).
///
/// * client counter `>= auto_whitelist_after` (and that is not 0): the
///   network is whitelisted.
/// * unknown triplet, or one first seen longer than `retry_window` ago and
///   never passed: recorded as first seen `now` (kept `retry_window`), wait
///   `delay`.
/// * triplet first seen less than `delay` ago: wait the rest of the delay.
/// * else it passes: marked passed and kept `max_age` from now; the
///   client's counter goes up by one (kept `max_age`).
#[derive(Debug, Clone, Copy)]
pub struct Greylisting<'a> {
    /// The triplet's key.
    pub triplet_key: &'a str,
    /// The client network's pass counter key.
    pub client_key: &'a str,
    /// Now, in seconds.
    pub now: u64,
    /// The greylisting delay, seconds.
    pub delay: u64,
    /// How long an unpassed triplet waits for its retry, seconds.
    pub retry_window: u64,
    /// How long a passed triplet (and a client counter) is kept, seconds.
    pub max_age: u64,
    /// Passes after which the network is whitelisted; 0 = never.
    pub auto_whitelist_after: u64,
}

/// What the store decided for a [`Greylisting`] request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GreylistOutcome {
    /// The client network is auto-whitelisted.
    Whitelisted,
    /// The triplet passed; this many passes counted for the network now.
    Passed(u64),
    /// Greylisted: try again in this many seconds.
    Wait(u64),
}

/// The triplet's stored value: `first_seen:passed` (passed is 0 or 1).
pub(crate) fn parse_triplet(value: &[u8]) -> Option<(u64, bool)> {
    let text = std::str::from_utf8(value).ok()?;
    let (first, passed) = text.split_once(':')?;
    Some((first.parse().ok()?, passed == "1"))
}

/// A store that records each operation's latency and failures in metrics.
pub struct Metered(pub Arc<dyn Store>);

async fn timed<T>(op: &'static str, fut: StoreFuture<'_, T>) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = fut.await;
    crate::metrics::store(op, started.elapsed(), result.is_err());
    result
}

impl Store for Metered {
    fn backend(&self) -> &'static str {
        self.0.backend()
    }

    fn is_down(&self) -> bool {
        self.0.is_down()
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(timed("get", self.0.get(key)))
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(timed("get_many", self.0.get_many(keys)))
    }

    fn set<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()> {
        Box::pin(timed("set", self.0.set(key, value, ttl)))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(timed("delete", self.0.delete(key)))
    }

    fn incr<'a>(&'a self, key: &'a str, by: i64, ttl: Duration) -> StoreFuture<'a, i64> {
        Box::pin(timed("incr", self.0.incr(key, by, ttl)))
    }

    fn incr_many<'a>(&'a self, increments: &'a [Increment<'a>]) -> StoreFuture<'a, Vec<i64>> {
        Box::pin(timed("incr_many", self.0.incr_many(increments)))
    }

    fn keys<'a>(&'a self, prefix: &'a str, limit: usize) -> StoreFuture<'a, Vec<String>> {
        Box::pin(timed("keys", self.0.keys(prefix, limit)))
    }

    fn greylist<'a>(&'a self, request: &'a Greylisting<'a>) -> StoreFuture<'a, GreylistOutcome> {
        Box::pin(timed("greylist", self.0.greylist(request)))
    }

    fn batch<'a>(&'a self, ops: &'a [WriteOp]) -> StoreFuture<'a, ()> {
        Box::pin(timed("batch", self.0.batch(ops)))
    }

    fn batch_then_get_many<'a>(
        &'a self,
        ops: &'a [WriteOp],
        keys: &'a [&'a str],
    ) -> StoreFuture<'a, WrittenAndRead> {
        Box::pin(timed(
            "batch_get_many",
            self.0.batch_then_get_many(ops, keys),
        ))
    }
}

#[cfg(test)]
mod coalesce_tests {
    use super::{coalesce, WriteOp};
    use std::time::Duration;

    #[test]
    fn appends_and_increments_of_one_key_merge_in_order() {
        let (h, d) = (Duration::from_secs(3600), Duration::from_secs(86400));
        let ops = vec![
            WriteOp::Set("r:1".into(), b"a".to_vec(), h),
            WriteOp::Append("i:x".into(), b"1\n".to_vec(), h),
            WriteOp::Incr("n:a".into(), 1, d),
            WriteOp::Set("r:2".into(), b"b".to_vec(), h),
            WriteOp::Append("i:x".into(), b"2\n".to_vec(), h),
            WriteOp::Incr("n:a".into(), 2, d),
            // Another ttl, or another kind of write: kept as they are.
            WriteOp::Incr("n:b".into(), 1, d),
            WriteOp::Incr("n:b".into(), 1, h),
            WriteOp::Append("m".into(), b"x".to_vec(), h),
            WriteOp::Set("m".into(), b"y".to_vec(), h),
        ];
        assert_eq!(
            coalesce(ops),
            vec![
                WriteOp::Set("r:1".into(), b"a".to_vec(), h),
                WriteOp::Append("i:x".into(), b"1\n2\n".to_vec(), h),
                WriteOp::Incr("n:a".into(), 3, d),
                WriteOp::Set("r:2".into(), b"b".to_vec(), h),
                WriteOp::Incr("n:b".into(), 1, d),
                WriteOp::Incr("n:b".into(), 1, h),
                WriteOp::Append("m".into(), b"x".to_vec(), h),
                WriteOp::Set("m".into(), b"y".to_vec(), h),
            ]
        );
    }
}
