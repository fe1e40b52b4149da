//! The message history: every transaction (delivered, stopped, tempfailed,
//! refused) summarised once, kept for `[history] keep` in the Store, for
//! `smtpgate history`, `smtpgate why`, the HTTP API and the console.
//!
//! Written off the hot path: [`History::record`] puts the summary on a
//! bounded queue ([`Ticked`]) and returns at once; every [`FLUSH_EVERY`] a
//! writer task takes what is queued and writes it in one [`Store::batch`]
//! (index entries and counters merged by key). A full queue drops the summary and
//! counts it (`smtpgate_history_dropped_total`): history never slows or
//! fails mail.
//!
//! Store keys (all under `hist:`):
//! * `hist:r:REF` — the record, as JSON;
//! * `hist:i:KIND:VALUE:HOUR` — the references of one index in one hour
//!   (Unix time / 3600), each followed by `\n`. Kinds: `all`, `ip`,
//!   `login`, `from` (the sender's domain), `rcpt` (each recipient's
//!   domain), `mid` (the Message-ID), `action`. A query reads the most
//!   selective index it has, newest hour first, so it never scans all;
//! * `hist:n:MINUTE:ACTION` and `hist:s:HOUR:SYMBOL` — counters for the
//!   statistics.
//!
//! With the memory store, history has a memory store of its own, bounded by
//! `[history] memory_records` (the oldest go first), so a busy day can never
//! evict greylisting or rate-limit state.

mod query;
mod stats;

pub use query::Query;
pub use stats::{Minute, Stats};

use crate::config::{Config, HistoryConfig, StoreBackend};
use crate::score::{Breakdown, Score};
use crate::store::ticked::{TickWork, Ticked};
use crate::store::{memory::MemoryStore, Store, StoreError, WriteOp};
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Summaries written per store batch at most.
pub const BATCH: usize = 256;

/// How often the writer takes what is queued.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Index buckets are this long.
pub(crate) const HOUR: u64 = 3600;

/// One transaction, as history keeps it (JSON field names are stable:
/// docs/api.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When it ended, Unix seconds.
    pub time: u64,
    /// The reference of logs, replies and alerts.
    pub reference: String,
    /// The client's address (the forwarded client behind XFORWARD/PROXY).
    pub client_ip: String,
    /// The client's verified name, if any.
    pub client_name: Option<String>,
    /// The HELO/EHLO name.
    pub helo: String,
    /// The SMTP AUTH login.
    pub login: Option<String>,
    /// MAIL FROM (empty for the null sender).
    pub from: String,
    /// The recipients accepted.
    pub rcpts: Vec<String>,
    /// The Message-ID, without angle brackets.
    pub message_id: Option<String>,
    /// The Subject.
    pub subject: Option<String>,
    /// The message's size in bytes (0 when no DATA).
    pub size: u64,
    /// What happened: `delivered`, `spam (alert)`, `blocked`, `refused`,
    /// `tempfail`, `upstream refused`, …
    pub action: String,
    /// The reply the client got.
    pub reply: String,
    /// The total score.
    pub score: f64,
    /// The threshold it was judged against.
    pub threshold: f64,
    /// Every symbol, in report order.
    pub symbols: Vec<SymbolEntry>,
}

/// One symbol of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolEntry {
    /// The symbol.
    pub name: String,
    /// Its score.
    pub score: f64,
    /// What it is about.
    pub options: Vec<String>,
    /// Recorded but not counted (a shadow rule).
    #[serde(default)]
    pub shadow: bool,
}

impl SymbolEntry {
    /// The symbol as a check found it (its name and options), to be
    /// weighed again: as recorded (`why`) or by other rules (`replay`).
    pub fn hit(&self) -> crate::score::Hit {
        crate::score::Hit {
            name: self.name.clone(),
            options: self.options.clone(),
            why: Default::default(),
        }
    }
}

impl Record {
    /// The symbols of `breakdown`, in report order.
    pub fn symbols_of(breakdown: &Breakdown) -> Vec<SymbolEntry> {
        breakdown
            .sorted_all()
            .into_iter()
            .map(|s| SymbolEntry {
                name: s.hit.name.clone(),
                score: score_f64(s.score),
                options: s.hit.options.clone(),
                shadow: s.shadow,
            })
            .collect()
    }

    /// The sender's domain, lowercase ("" for the null sender).
    pub fn from_domain(&self) -> String {
        domain_of(&self.from)
    }

    /// The identity rate limits and anomaly baselines count: the login,
    /// else the client's address.
    pub fn identity(&self) -> &str {
        self.login.as_deref().unwrap_or(&self.client_ip)
    }
}

/// `user@Domain` → `domain`; "" when there is no `@`.
pub(crate) fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map_or_else(String::new, |(_, d)| d.to_ascii_lowercase())
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A score in hundredths as a number.
pub fn score_f64(score: Score) -> f64 {
    score.0 as f64 / 100.0
}

/// The message history of one gateway (or of every node sharing a Redis).
pub struct History {
    store: Arc<dyn Store>,
    config: HistoryConfig,
    queue: Ticked<Record>,
    symbols: ArcSwap<Vec<String>>,
}

impl History {
    /// The history of `config`: in `store` when it is Redis, else in a
    /// bounded memory store of its own.
    pub fn new(config: &Config, store: Arc<dyn Store>) -> History {
        let store: Arc<dyn Store> = match config.store.backend {
            StoreBackend::Redis => store,
            // (not metered: the store metrics are the shared state's)
            StoreBackend::Memory => Arc::new(MemoryStore::with_max_entries(
                config.history.memory_records.saturating_mul(3),
            )),
        };
        History::on(store, config.history.clone())
    }

    /// A history in `store`, exactly.
    pub fn on(store: Arc<dyn Store>, config: HistoryConfig) -> History {
        History {
            store,
            queue: Ticked::new(config.queue, FLUSH_EVERY),
            config,
            symbols: ArcSwap::from_pointee(Vec::new()),
        }
    }

    /// True when transactions are recorded.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The symbol names the statistics count (the rules' table, set on
    /// every (re)load).
    pub fn set_symbols(&self, names: Vec<String>) {
        self.symbols.store(Arc::new(names));
    }

    /// The store history lives in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// How long records are kept.
    pub fn keep(&self) -> Duration {
        self.config.keep.0
    }

    /// Queues `record` for writing and returns at once; a full queue (or
    /// no runtime to write from) drops it, counted.
    pub fn record(&self, record: Record) {
        if !self.config.enabled {
            return;
        }
        let (store, keep) = (&self.store, self.config.keep.0);
        if !self.queue.push(record, || writer(Arc::clone(store), keep)) {
            crate::metrics::history_dropped();
        }
    }

    /// Writes `record` now (tests and imports; the gateway uses `record`).
    pub async fn write_now(&self, record: &Record) -> Result<(), StoreError> {
        self.store
            .batch(&ops(std::slice::from_ref(record), self.config.keep.0))
            .await
    }

    /// The record of `reference`.
    pub async fn get(&self, reference: &str) -> Result<Option<Record>, StoreError> {
        let key = record_key(reference);
        Ok(self
            .store
            .get(&key)
            .await?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// The records matching `query`, newest first.
    pub async fn query(&self, query: &Query) -> Result<Vec<Record>, StoreError> {
        query::run(self, query).await
    }

    /// Calls `f` with every record of the last `since`, newest first
    /// (replay reads the whole period this way, in bounded steps).
    pub async fn each(&self, since: Duration, f: impl FnMut(Record)) -> Result<(), StoreError> {
        query::each(self, since, f).await
    }

    /// Counts by action per minute and the top symbols since `since` ago.
    pub async fn stats(&self, since: Duration) -> Result<Stats, StoreError> {
        stats::run(self, since, &self.symbols.load()).await
    }
}

/// The key of a record.
pub(crate) fn record_key(reference: &str) -> String {
    format!("hist:r:{}", reference.trim().to_ascii_uppercase())
}

/// The key of one index bucket.
pub(crate) fn index_key(kind: &str, value: &str, hour: u64) -> String {
    format!("hist:i:{kind}:{value}:{hour}")
}

/// The index entries (kind, value) of `r`.
pub(crate) fn indexes(r: &Record) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("all", String::new()),
        ("ip", r.client_ip.to_ascii_lowercase()),
        ("from", r.from_domain()),
        ("action", stats::action_key(&r.action).to_string()),
    ];
    if let Some(login) = &r.login {
        out.push(("login", login.to_ascii_lowercase()));
    }
    if let Some(id) = &r.message_id {
        out.push(("mid", id.trim_matches(['<', '>']).to_string()));
    }
    let mut domains: Vec<String> = r.rcpts.iter().map(|a| domain_of(a)).collect();
    domains.sort();
    domains.dedup();
    out.extend(domains.into_iter().map(|d| ("rcpt", d)));
    out
}

/// The writes of `records`: one `Set` per record, and the index entries
/// and counters of the whole batch merged by key (a batch of a busy
/// minute shares its hour's "all" and action buckets and its minute's
/// counters, so the store sees one append or increment per key, not one
/// per record).
fn ops(records: &[Record], keep: Duration) -> Vec<WriteOp> {
    let mut ops = Vec::with_capacity(records.len() * 10);
    let index_ttl = keep + Duration::from_secs(HOUR);
    for r in records {
        let Ok(json) = serde_json::to_vec(r) else {
            continue;
        };
        let hour = r.time / HOUR;
        let mut entry = r.reference.to_ascii_uppercase().into_bytes();
        entry.push(b'\n');
        ops.push(WriteOp::Set(record_key(&r.reference), json, keep));
        for (kind, value) in indexes(r) {
            ops.push(WriteOp::Append(
                index_key(kind, &value, hour),
                entry.clone(),
                index_ttl,
            ));
        }
        ops.extend(stats::counts(r, keep));
    }
    crate::store::coalesce(ops)
}

/// What the writer does with the records taken on a tick: writes them,
/// [`BATCH`] to a store batch.
fn writer(
    store: Arc<dyn Store>,
    keep: Duration,
) -> impl FnMut(Vec<Record>) -> TickWork + Send + 'static {
    move |records: Vec<Record>| {
        let store = Arc::clone(&store);
        Box::pin(async move {
            for chunk in records.chunks(BATCH) {
                let batch = ops(chunk, keep);
                if let Err(e) = store.batch(&batch).await {
                    crate::metrics::history_failed(chunk.len());
                    tracing::warn!(error = %e, records = chunk.len(), "history not written");
                } else {
                    crate::metrics::history_written(chunk.len());
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(reference: &str, from: &str, time: u64) -> Record {
        Record {
            time,
            reference: reference.into(),
            client_ip: "192.0.2.1".into(),
            client_name: None,
            helo: "web.example.test".into(),
            login: None,
            from: from.into(),
            rcpts: vec!["r@example.net".into()],
            message_id: None,
            subject: None,
            size: 10,
            action: "delivered".into(),
            reply: "250 2.0.0 ok".into(),
            score: 0.0,
            threshold: 2.0,
            symbols: vec![SymbolEntry {
                name: "MISSING_MID".into(),
                score: 1.0,
                options: Vec::new(),
                shadow: false,
            }],
        }
    }

    #[test]
    fn a_batch_writes_each_record_once_and_each_index_bucket_and_counter_once() {
        let hour = 490_000 * HOUR;
        let records = [
            record("aaa", "a@shop.test", hour + 10),
            record("bbb", "b@shop.test", hour + 20),
            record("ccc", "c@other.test", hour + 30),
        ];
        let ops = ops(&records, Duration::from_secs(86_400));
        let find = |key: &str| {
            let found: Vec<&WriteOp> = ops
                .iter()
                .filter(|op| match op {
                    WriteOp::Set(k, ..) | WriteOp::Append(k, ..) | WriteOp::Incr(k, ..) => k == key,
                })
                .collect();
            assert_eq!(found.len(), 1, "{key}: {found:?}");
            found[0].clone()
        };
        let h = 490_000;
        let append = |key: &str| match find(key) {
            WriteOp::Append(_, v, _) => String::from_utf8(v).unwrap(),
            op => panic!("{op:?}"),
        };
        assert_eq!(append(&format!("hist:i:all::{h}")), "AAA\nBBB\nCCC\n");
        assert_eq!(append(&format!("hist:i:from:shop.test:{h}")), "AAA\nBBB\n");
        assert_eq!(append(&format!("hist:i:from:other.test:{h}")), "CCC\n");
        assert_eq!(
            append(&format!("hist:i:ip:192.0.2.1:{h}")),
            "AAA\nBBB\nCCC\n"
        );
        assert!(matches!(
            find(&format!("hist:s:{h}:MISSING_MID")),
            WriteOp::Incr(_, 3, _)
        ));
        let minute = (hour + 10) / 60;
        assert!(matches!(
            find(&format!("hist:n:{minute}:delivered")),
            WriteOp::Incr(_, 3, _)
        ));
        assert!(matches!(find("hist:r:BBB"), WriteOp::Set(..)));
        // 3 records, 4 index buckets shared or not (all, ip, action, rcpt
        // domain) plus 2 sender domains, 2 counters.
        assert_eq!(ops.len(), 3 + 4 + 2 + 2, "{ops:#?}");
    }
}
