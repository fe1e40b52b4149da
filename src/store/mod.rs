//! Shared state behind one trait: greylist triplets, rate counters, lockout
//! counters, known-bad recipients, callout results, verdicts. The memory
//! backend serves one node; the Redis backend shares state between nodes.
//! Every operation is one round trip; failures are [`StoreError`]s that the
//! caller turns into a tempfail (or skips, per `store.on_error`).

pub mod memory;

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

    /// The value at `key`, if present and not expired.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;

    /// Sets `key` to `value`, expiring after `ttl`.
    fn set<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()>;

    /// Removes `key`; true when it was there.
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool>;

    /// Adds `by` to the integer at `key` and returns the new value. A missing
    /// (or expired) key starts at 0 and expires after `ttl`; an existing key
    /// keeps its expiry (a fixed window, like Redis INCRBY + EXPIRE NX).
    fn incr<'a>(&'a self, key: &'a str, by: i64, ttl: Duration) -> StoreFuture<'a, i64>;

    /// Keys (without prefix) starting with `prefix`, at most `limit`.
    fn keys<'a>(&'a self, prefix: &'a str, limit: usize) -> StoreFuture<'a, Vec<String>>;
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

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(timed("get", self.0.get(key)))
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

    fn keys<'a>(&'a self, prefix: &'a str, limit: usize) -> StoreFuture<'a, Vec<String>> {
        Box::pin(timed("keys", self.0.keys(prefix, limit)))
    }
}
