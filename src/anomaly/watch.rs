//! Counting off the hot path: [`Watch::count`] pushes a transaction on a
//! bounded queue ([`Ticked`]: no task woken per message) and returns at
//! once; every [`COUNT_EVERY`] (or once [`COUNT_AT`] wait) a writer task
//! counts what is queued, in batches, and hands each hold it placed to an
//! [`Announce`] (the alert path's, which this layer may not name), on a
//! task of its own. A full queue drops the
//! transaction, counted: the watch never slows mail.

use super::{Anomaly, Hold, Observation};
use crate::config::Config;
use crate::store::ticked::{TickWork, Ticked};
use crate::store::Store;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Transactions counted per batch at most.
const BATCH: usize = 256;

/// Transactions waiting to be counted at most.
const QUEUE: usize = 10_000;

/// How often the writer takes what is queued: a burst is held within this
/// (and a few store round trips) of crossing a limit.
pub const COUNT_EVERY: Duration = Duration::from_millis(25);
/// Transactions that have the watch count before its tick: a burst is
/// counted (and held) within this many of its messages per node, however
/// fast it comes.
pub const COUNT_AT: usize = 16;

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
    queue: Ticked<Observation>,
}

impl Watch {
    /// The watch of `config` over `store`.
    pub fn new(config: &Config, store: Arc<dyn Store>) -> Watch {
        Watch {
            anomaly: Arc::new(Anomaly::new(&config.anomaly, store)),
            enabled: config.anomaly.enabled,
            queue: Ticked::with_early(QUEUE, COUNT_EVERY, COUNT_AT),
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
        let anomaly = &self.anomaly;
        if !self
            .queue
            .push(observation, || counter(Arc::clone(anomaly), announce()))
        {
            crate::metrics::anomaly_counted("dropped", 1);
        }
    }
}

/// What the writer does with the transactions taken on a tick: counts
/// them, [`BATCH`] at a time, hands each hold placed to `announce`, and
/// counts the holds in force now and then, and after placing one.
fn counter(
    anomaly: Arc<Anomaly>,
    announce: Arc<dyn Announce>,
) -> impl FnMut(Vec<Observation>) -> TickWork + Send + 'static {
    let mut gauge = tokio::time::Instant::now();
    move |observations: Vec<Observation>| {
        let (anomaly, announce) = (Arc::clone(&anomaly), Arc::clone(&announce));
        let gauge_due = gauge.elapsed() >= GAUGE_EVERY;
        if gauge_due {
            gauge = tokio::time::Instant::now();
        }
        Box::pin(async move {
            let mut placed_any = false;
            for batch in observations.chunks(BATCH) {
                match anomaly.count(batch).await {
                    Ok(placed) => {
                        crate::metrics::anomaly_counted("counted", batch.len());
                        placed_any |= !placed.is_empty();
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
            }
            if placed_any || gauge_due {
                let _ = anomaly.holds().await;
            }
        })
    }
}
