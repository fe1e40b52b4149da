//! Work nobody waits for, taken in batches on a tick: [`Ticked::push`]
//! puts an item on a bounded vector behind a mutex (no task woken per
//! item) and returns at once; every `period` one writer task takes
//! everything queued and hands it to its `write` function. The message
//! history and the anomaly baselines are written this way. A full queue
//! (or no runtime to start the writer on) refuses the item: the caller
//! counts the drop and goes on, so this never slows mail. A queue made
//! [`Ticked::with_early`] is also taken as soon as that many items wait
//! (a burst is written within that many items, not a whole period). The
//! writer ends when the `Ticked` is dropped (a reload builds another).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// What a writer function returns for one tick's batch, when it is
/// easier to name than an `async` block's type.
pub type TickWork = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A bounded queue of `T` drained by a writer task every `period`.
pub struct Ticked<T> {
    items: Arc<Mutex<Vec<T>>>,
    capacity: usize,
    period: Duration,
    /// Items that wake the writer before its tick (0: never).
    early: usize,
    wake: Arc<Notify>,
    writer: OnceLock<()>,
}

impl<T: Send + 'static> Ticked<T> {
    /// A queue of at most `capacity` items, drained every `period`.
    pub fn new(capacity: usize, period: Duration) -> Ticked<T> {
        Ticked::with_early(capacity, period, 0)
    }

    /// The same, also drained as soon as `early` items wait.
    pub fn with_early(capacity: usize, period: Duration, early: usize) -> Ticked<T> {
        Ticked {
            items: Arc::new(Mutex::new(Vec::new())),
            capacity: capacity.max(1),
            period,
            early,
            wake: Arc::new(Notify::new()),
            writer: OnceLock::new(),
        }
    }

    /// Queues `item`; false (the item dropped) when the queue is full or
    /// there is no runtime. The first push starts the writer with the
    /// function `writer` makes: it is called on every tick with what was
    /// taken (possibly nothing).
    pub fn push<W, F>(&self, item: T, writer: impl FnOnce() -> W) -> bool
    where
        W: FnMut(Vec<T>) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        if self.writer.get().is_none() {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return false;
            };
            self.writer.get_or_init(|| {
                let wake = Arc::clone(&self.wake);
                runtime.spawn(drain(
                    Arc::downgrade(&self.items),
                    self.period,
                    wake,
                    writer(),
                ));
            });
        }
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if items.len() >= self.capacity {
            return false;
        }
        items.push(item);
        if items.len() == self.early {
            self.wake.notify_one();
        }
        true
    }
}

/// Every `period` (or when woken early), takes what is queued and writes
/// it, until the queue is dropped.
async fn drain<T, W, F>(
    items: Weak<Mutex<Vec<T>>>,
    period: Duration,
    wake: Arc<Notify>,
    mut write: W,
) where
    W: FnMut(Vec<T>) -> F,
    F: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = wake.notified() => {}
        }
        let Some(queue) = items.upgrade() else {
            return;
        };
        let taken = std::mem::take(&mut *queue.lock().unwrap_or_else(|e| e.into_inner()));
        drop(queue);
        write(taken).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Seen = Arc<Mutex<Vec<Vec<u32>>>>;

    /// A writer keeping every batch that is not empty in `seen`.
    fn collecting(seen: &Seen) -> impl FnMut(Vec<u32>) -> TickWork + Send + 'static {
        let seen = Arc::clone(seen);
        move |batch: Vec<u32>| {
            let seen = Arc::clone(&seen);
            Box::pin(async move {
                if !batch.is_empty() {
                    seen.lock().unwrap().push(batch);
                }
            })
        }
    }

    #[tokio::test]
    async fn items_are_taken_in_batches_a_full_queue_refuses_and_the_writer_ends_with_it() {
        let seen: Seen = Arc::default();
        let ticked = Ticked::new(3, Duration::from_millis(20));
        let writer = || collecting(&seen);
        // The first tick fires at once: wait for it, then fill the queue.
        assert!(ticked.push(1, writer));
        tokio::time::sleep(Duration::from_millis(5)).await;
        let pushed: Vec<bool> = (2..=5).map(|n| ticked.push(n, writer)).collect();
        assert_eq!(pushed, [true, true, true, false]);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(*seen.lock().unwrap(), vec![vec![1], vec![2, 3, 4]]);
        let weak = Arc::downgrade(&ticked.items);
        drop(ticked);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(weak.upgrade().is_none());
    }

    #[tokio::test]
    async fn a_queue_with_early_is_taken_when_that_many_wait() {
        let seen: Seen = Arc::default();
        let ticked = Ticked::with_early(100, Duration::from_secs(3600), 3);
        let writer = || collecting(&seen);
        // The first tick fires at once; the next is an hour away.
        assert!(ticked.push(1, writer));
        tokio::time::sleep(Duration::from_millis(20)).await;
        for n in 2..=4 {
            assert!(ticked.push(n, writer));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        for n in 5..=6 {
            assert!(ticked.push(n, writer));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The third item woke the writer; 5 and 6 wait for a third or the tick.
        assert_eq!(*seen.lock().unwrap(), vec![vec![1], vec![2, 3, 4]]);
    }

    #[test]
    fn without_a_runtime_an_item_is_refused() {
        let ticked: Ticked<u32> = Ticked::new(3, Duration::from_millis(20));
        assert!(!ticked.push(1, || |_: Vec<u32>| async {}));
    }
}
