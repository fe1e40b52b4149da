//! Writes nobody waits for — counters of what happened (rate-limit quotas
//! of delivered mail, alert bookkeeping) — off the hot path: [`WriteQueue::push`]
//! puts them on a bounded queue and returns at once; one writer task takes
//! whatever is queued and writes it in one [`Store::batch`] (one round
//! trip), so the client's reply never waits for them. The writer is woken
//! before the reply is sent, so the next command usually sees the write;
//! like any counter read before the update, a quota can be passed by the
//! messages in flight at once. A full queue drops the write and counts it
//! (`smtpgate_store_queue_total{result="dropped"}`); a failed batch is
//! counted and logged by the store.

use super::{Store, WriteOp};
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot};

/// Writes taken per batch at most.
const BATCH: usize = 512;

/// Writes waiting at most.
pub const CAPACITY: usize = 10_000;

/// What the writer takes: a write, or a caller waiting for the writes
/// queued before it.
enum Item {
    Write(WriteOp),
    Flushed(oneshot::Sender<()>),
}

/// The queue of one store's deferred writes.
pub struct WriteQueue {
    store: Arc<dyn Store>,
    capacity: usize,
    sender: OnceLock<mpsc::Sender<Item>>,
}

impl WriteQueue {
    /// A queue writing to `store`, holding up to `capacity` writes; the
    /// writer task starts on the first push.
    pub fn new(store: Arc<dyn Store>, capacity: usize) -> WriteQueue {
        WriteQueue {
            store,
            capacity: capacity.max(1),
            sender: OnceLock::new(),
        }
    }

    /// Queues `ops` and returns at once. Outside a runtime (or when the
    /// queue is full) a write is dropped, counted.
    pub fn push(&self, ops: impl IntoIterator<Item = WriteOp>) {
        let sender = self.sender();
        for op in ops {
            match sender {
                Some(s) if s.try_send(Item::Write(op)).is_ok() => {}
                _ => crate::metrics::store_queue("dropped", 1),
            }
        }
    }

    /// Waits until every write queued before the call has been written
    /// (or has failed).
    pub async fn flush(&self) {
        let Some(sender) = self.sender() else { return };
        let (tx, rx) = oneshot::channel();
        if sender.send(Item::Flushed(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    fn sender(&self) -> Option<&mpsc::Sender<Item>> {
        if let Some(s) = self.sender.get() {
            return Some(s);
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(self.sender.get_or_init(|| {
            let (tx, rx) = mpsc::channel(self.capacity);
            runtime.spawn(write_loop(Arc::clone(&self.store), rx));
            tx
        }))
    }
}

/// Writes what is queued, one batch at a time, until the queue is dropped.
async fn write_loop(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Item>) {
    let mut items = Vec::with_capacity(BATCH);
    let mut ops = Vec::with_capacity(BATCH);
    let mut waiting = Vec::new();
    while rx.recv_many(&mut items, BATCH).await > 0 {
        for item in items.drain(..) {
            match item {
                Item::Write(op) => ops.push(op),
                Item::Flushed(done) => waiting.push(done),
            }
        }
        if !ops.is_empty() {
            // Counters of one drain merged (one increment per key).
            let count = ops.len();
            let merged = super::coalesce(std::mem::take(&mut ops));
            match store.batch(&merged).await {
                Ok(()) => crate::metrics::store_queue("written", count),
                Err(e) => {
                    crate::metrics::store_queue("failed", count);
                    tracing::debug!(error = %e, writes = count, "queued store writes failed");
                }
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use std::time::Duration;

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
}
