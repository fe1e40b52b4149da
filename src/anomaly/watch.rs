//! Counting off the hot path: [`Watch::count`] puts a transaction on a
//! bounded queue and returns at once; a writer task counts what is queued
//! in batches and hands each hold it placed to an [`Announce`] (the alert
//! path's, which this layer may not name), on a task of its own. A full
//! queue drops the transaction, counted: the watch never slows mail.

use super::{Anomaly, Hold, Observation};
use crate::config::Config;
use crate::store::Store;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// Transactions counted per batch at most.
const BATCH: usize = 256;

/// Transactions waiting to be counted at most.
const QUEUE: usize = 10_000;

/// Holds in force are counted (the gauge) this often.
const GAUGE_EVERY: Duration = Duration::from_secs(60);

/// The future an [`Announce`] returns.
pub type AnnounceFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Tells people about a hold just placed (once per hold, by the node that
/// placed it): the report to the abuse desk, the alert to the customer.
pub trait Announce: Send + Sync {
    /// Sends what a new hold calls for.
    fn announce(&self, hold: Hold) -> AnnounceFuture<'_>;
}

/// The anomaly hold of one configuration: its settings, the holds, and
/// the counting queue.
pub struct Watch {
    anomaly: Arc<Anomaly>,
    enabled: bool,
    queue: OnceLock<mpsc::Sender<Observation>>,
}

impl Watch {
    /// The watch of `config` over `store`.
    pub fn new(config: &Config, store: Arc<dyn Store>) -> Watch {
        Watch {
            anomaly: Arc::new(Anomaly::new(&config.anomaly, store)),
            enabled: config.anomaly.enabled,
            queue: OnceLock::new(),
        }
    }

    /// True when `[anomaly] enabled`.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The settings and the holds.
    pub fn anomaly(&self) -> &Arc<Anomaly> {
        &self.anomaly
    }

    /// Queues `observation` for counting and returns at once. The writer
    /// starts on first use with the announcer `announce` makes.
    pub fn count(&self, observation: Observation, announce: impl FnOnce() -> Arc<dyn Announce>) {
        if !self.enabled || self.anomaly.is_trusted(&observation.identity) {
            return;
        }
        let queue = match self.queue.get() {
            Some(q) => q,
            None => {
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    crate::metrics::anomaly_counted("dropped", 1);
                    return;
                };
                self.queue.get_or_init(|| {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    runtime.spawn(write_loop(Arc::clone(&self.anomaly), rx, announce()));
                    tx
                })
            }
        };
        if queue.try_send(observation).is_err() {
            crate::metrics::anomaly_counted("dropped", 1);
        }
    }
}

/// Counts what is queued, one batch at a time, until the watch is dropped
/// (a reload builds another); counts the holds in force now and then.
async fn write_loop(
    anomaly: Arc<Anomaly>,
    mut rx: mpsc::Receiver<Observation>,
    announce: Arc<dyn Announce>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut gauge = tokio::time::interval(GAUGE_EVERY);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
            }
            _ = gauge.tick() => {
                let _ = anomaly.holds(100_000).await;
                continue;
            }
        }
        match anomaly.count(&batch).await {
            Ok(placed) => {
                crate::metrics::anomaly_counted("counted", batch.len());
                if !placed.is_empty() {
                    let _ = anomaly.holds(100_000).await;
                }
                for hold in placed {
                    let announce = Arc::clone(&announce);
                    tokio::spawn(async move { announce.announce(hold).await });
                }
            }
            Err(e) => {
                crate::metrics::anomaly_counted("failed", batch.len());
                tracing::warn!(error = %e, transactions = batch.len(), "anomaly baseline not counted");
            }
        }
        batch.clear();
    }
}
