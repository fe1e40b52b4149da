//! Writes nobody waits for — counters of what happened (rate-limit quotas
//! of delivered mail, alert bookkeeping) — off the hot path: [`WriteQueue::push`]
//! puts them on a bounded queue behind a mutex and returns at once. They
//! ride on the next phase read ([`WriteQueue::get_many`]): written in the
//! same round trip just before the read, so a read sees every write queued
//! before it and a busy gateway spends no round trip of its own on them.
//! Writes no read takes are written by one writer task in one
//! [`Store::batch`]: at once when this node is quiet (another node sees
//! them within a round trip), after at most [`LINGER`] while phase reads
//! or pushes come faster than one per millisecond (a read carries them,
//! or the writes of several messages go in one batch: with `[store] memo`
//! a busy node reads rarely). [`WriteQueue::push_urgent`] writes go at
//! once even then: a rate-limit counter near its limit, which the other
//! nodes must see within a round trip. Like
//! any counter read before the update, a quota can be passed by the
//! messages in flight at once. A full queue drops the write and counts it
//! (`smtpgate_store_queue_total{result="dropped"}`); a failed batch is
//! counted and logged by the store.

use super::{Store, StoreError, WriteOp};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long the writer leaves queued writes to the phase reads of a busy
/// node before writing them itself.
pub const LINGER: Duration = Duration::from_millis(2);

/// Two reads or pushes closer than this (to now) make the node busy.
const BUSY: Duration = Duration::from_millis(1);

/// Writes waiting at most.
pub const CAPACITY: usize = 10_000;

/// The queue of one store's deferred writes.
pub struct WriteQueue {
    store: Arc<dyn Store>,
    capacity: usize,
    shared: Arc<Shared>,
    writer: OnceLock<()>,
}

/// What the queue and its writer share.
struct Shared {
    /// When the queue was made: read times are microseconds since.
    born: Instant,
    /// When the last two phase reads came.
    reads: Stamps,
    /// When the last two pushes came.
    pushes: Stamps,
    pending: Mutex<Vec<WriteOp>>,
    /// Wakes the writer when the queue stops being empty (or is dropped).
    wake: Notify,
    /// Ends the writer's linger, or spares it one (an urgent write came:
    /// the permit waits for the writer).
    hurry: Notify,
    /// The queue is gone: the writer writes what is left and ends.
    closed: AtomicBool,
}

/// The times (microseconds since the queue was made, 0: never) of the
/// last two events of one kind.
#[derive(Default)]
struct Stamps {
    last: AtomicU64,
    before: AtomicU64,
}

impl Stamps {
    fn mark(&self, now: u64) {
        let previous = self.last.swap(now, Ordering::Relaxed);
        self.before.store(previous, Ordering::Relaxed);
    }

    /// The last two both came within [`BUSY`] of `now`.
    fn close(&self, now: u64) -> bool {
        let before = self.before.load(Ordering::Relaxed);
        before != 0 && now.saturating_sub(before) < BUSY.as_micros() as u64
    }
}

impl Shared {
    fn now(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The last two reads, or the last two pushes, both came within
    /// [`BUSY`]: another is near.
    fn busy(&self) -> bool {
        let now = self.now();
        self.reads.close(now) || self.pushes.close(now)
    }

    fn take(&self) -> Vec<WriteOp> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Vec<WriteOp>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for WriteQueue {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

impl WriteQueue {
    /// A queue writing to `store`, holding up to `capacity` writes; the
    /// writer task starts on the first push.
    pub fn new(store: Arc<dyn Store>, capacity: usize) -> WriteQueue {
        WriteQueue {
            store,
            capacity: capacity.max(1),
            shared: Arc::new(Shared {
                born: Instant::now(),
                reads: Stamps::default(),
                pushes: Stamps::default(),
                pending: Mutex::default(),
                wake: Notify::new(),
                hurry: Notify::new(),
                closed: AtomicBool::new(false),
            }),
            writer: OnceLock::new(),
        }
    }

    /// [`WriteQueue::push`] of writes another node should see within a
    /// round trip (a counter near its limit): the writer writes them at
    /// once, busy node or not.
    pub fn push_urgent(&self, ops: impl IntoIterator<Item = WriteOp>) {
        self.push(ops);
        self.shared.hurry.notify_one();
    }

    /// Queues `ops` and returns at once. Outside a runtime (or when the
    /// queue is full) a write is dropped, counted.
    pub fn push(&self, ops: impl IntoIterator<Item = WriteOp>) {
        if !self.start_writer() {
            crate::metrics::store_queue("dropped", ops.into_iter().count());
            return;
        }
        self.shared.pushes.mark(self.shared.now());
        let mut dropped = 0;
        let mut pending = self.shared.lock();
        let was_empty = pending.is_empty();
        for op in ops {
            if pending.len() < self.capacity {
                pending.push(op);
            } else {
                dropped += 1;
            }
        }
        let wake = was_empty && !pending.is_empty();
        drop(pending);
        if wake {
            self.shared.wake.notify_one();
        }
        if dropped > 0 {
            crate::metrics::store_queue("dropped", dropped);
        }
    }

    /// The values at `keys`, in one round trip that first writes whatever
    /// is queued (so the read sees it): [`Store::get_many`] with the
    /// queue's writes carried along.
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.shared.reads.mark(self.shared.now());
        let ops = self.shared.take();
        if ops.is_empty() {
            return self.store.get_many(keys).await;
        }
        let count = ops.len();
        let merged = super::coalesce(ops);
        match self.store.batch_then_get_many(&merged, keys).await {
            Ok((written, values)) => {
                counted(written, count);
                Ok(values)
            }
            Err(e) => {
                counted(Err(e.clone()), count);
                Err(e)
            }
        }
    }

    /// Writes everything still queued now (or fails to), without waiting
    /// for the writer.
    pub async fn flush(&self) {
        write(self.store.as_ref(), self.shared.take()).await;
    }

    /// Starts the writer on the current runtime once; false without one.
    fn start_writer(&self) -> bool {
        if self.writer.get().is_some() {
            return true;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        self.writer.get_or_init(|| {
            runtime.spawn(write_loop(
                Arc::clone(&self.store),
                Arc::clone(&self.shared),
            ));
        });
        true
    }
}

/// Counts `count` writes as written or failed.
fn counted(written: Result<(), StoreError>, count: usize) {
    match written {
        Ok(()) => crate::metrics::store_queue("written", count),
        Err(e) => {
            crate::metrics::store_queue("failed", count);
            tracing::debug!(error = %e, writes = count, "queued store writes failed");
        }
    }
}

/// `ops`, counters of one take merged (one increment per key), in one batch.
async fn write(store: &dyn Store, ops: Vec<WriteOp>) {
    if ops.is_empty() {
        return;
    }
    let count = ops.len();
    let merged = super::coalesce(ops);
    counted(store.batch(&merged).await, count);
}

/// Woken when writes are queued: on a busy node waits [`LINGER`] (a phase
/// read carries them meanwhile; an urgent write ends the wait), then
/// writes what is left; ends (after
/// writing what is left) when the queue is dropped.
async fn write_loop(store: Arc<dyn Store>, shared: Arc<Shared>) {
    loop {
        shared.wake.notified().await;
        if shared.busy() {
            tokio::select! {
                () = tokio::time::sleep(LINGER) => {}
                () = shared.hurry.notified() => {}
            }
        }
        write(store.as_ref(), shared.take()).await;
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn queued_writes_land_in_one_batch_and_a_full_queue_drops() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let queue = WriteQueue::new(Arc::clone(&store), 3);
        let hour = Duration::from_secs(3600);
        queue.push([
            WriteOp::Incr("a".into(), 2, hour),
            WriteOp::Incr("a".into(), 3, hour),
            WriteOp::Set("b".into(), b"x".to_vec(), hour),
            // The fourth does not fit (the writer has not run yet).
            WriteOp::Set("c".into(), b"y".to_vec(), hour),
        ]);
        queue.flush().await;
        assert_eq!(store.get("a").await.unwrap(), Some(b"5".to_vec()));
        assert_eq!(store.get("b").await.unwrap(), Some(b"x".to_vec()));
        assert_eq!(store.get("c").await.unwrap(), None);
        queue.push([WriteOp::Set("c".into(), b"z".to_vec(), hour)]);
        queue.flush().await;
        assert_eq!(store.get("c").await.unwrap(), Some(b"z".to_vec()));
    }

    #[tokio::test]
    async fn a_read_carries_the_queued_writes_and_the_writer_takes_what_no_read_took() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let queue = WriteQueue::new(Arc::clone(&store), 100);
        let hour = Duration::from_secs(3600);
        queue.push([WriteOp::Incr("n".into(), 1, hour)]);
        queue.push([WriteOp::Incr("n".into(), 2, hour)]);
        // Read at once (the writer has not run yet): the read writes them first.
        let values = queue.get_many(&["n", "none"]).await.unwrap();
        assert_eq!(values, [Some(b"3".to_vec()), None]);
        // Taken by the read: the writer finds nothing left to add.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(store.get("n").await.unwrap(), Some(b"3".to_vec()));
        // No read comes: the writer writes it when it runs.
        queue.push([WriteOp::Incr("n".into(), 4, hour)]);
        assert_eq!(store.get("n").await.unwrap(), Some(b"3".to_vec()));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(store.get("n").await.unwrap(), Some(b"7".to_vec()));
        // A write the store refuses fails the writes, not the read.
        store.set("text", b"abc", hour).await.unwrap();
        queue.push([WriteOp::Incr("text".into(), 1, hour)]);
        let values = queue.get_many(&["n"]).await.unwrap();
        assert_eq!(values, [Some(b"7".to_vec())]);
    }

    #[tokio::test]
    async fn two_pushes_within_a_millisecond_make_the_node_busy_and_one_does_not() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let hour = Duration::from_secs(3600);
        let queue = WriteQueue::new(Arc::clone(&store), 100);
        queue.push([WriteOp::Incr("n".into(), 1, hour)]);
        assert!(!queue.shared.busy(), "one push: the writer writes at once");
        std::thread::sleep(BUSY * 2);
        // A pair of pushes (timed, so that a preempted test thread is not
        // taken for a quiet node): the writer lingers for more.
        let mut pairs = 0;
        loop {
            let started = Instant::now();
            queue.push([WriteOp::Incr("n".into(), 1, hour)]);
            queue.push([WriteOp::Incr("n".into(), 1, hour)]);
            pairs += 1;
            let busy = queue.shared.busy();
            if started.elapsed() < BUSY / 2 {
                assert!(busy, "the writer lingers for more");
                break;
            }
            assert!(pairs < 20, "never two pushes within {BUSY:?}");
        }
        std::thread::sleep(BUSY * 2);
        assert!(!queue.shared.busy(), "quiet again");
        // Whatever it decided, everything lands.
        tokio::time::sleep(LINGER * 5).await;
        let n = store.get("n").await.unwrap().expect("written");
        assert_eq!(String::from_utf8(n).unwrap(), (1 + 2 * pairs).to_string());
    }

    #[tokio::test]
    async fn a_dropped_queue_still_writes_what_it_held() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let queue = WriteQueue::new(Arc::clone(&store), 100);
        queue.push([WriteOp::Set(
            "k".into(),
            b"v".to_vec(),
            Duration::from_secs(60),
        )]);
        drop(queue);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(store.get("k").await.unwrap(), Some(b"v".to_vec()));
    }
}
