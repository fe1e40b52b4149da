//! History statistics: transactions per minute by action and the top
//! symbols, from counters written with each record (so a day's figures cost
//! one read, not a scan of a million records).

use super::{History, Record, HOUR};
use crate::store::{StoreError, WriteOp};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The longest period the statistics cover (per-minute counters are kept
/// this long).
pub const MAX_PERIOD: Duration = Duration::from_secs(86_400);

/// Symbols listed at most.
const TOP: usize = 20;

/// What `GET /api/stats` and the console's chart show.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// The start of the period, Unix seconds.
    pub since: u64,
    /// Transactions by action label over the period.
    pub by_action: BTreeMap<String, u64>,
    /// The symbols found most often over the period (hour granularity),
    /// most first.
    pub top_symbols: Vec<(String, u64)>,
    /// Transactions per minute by action label, oldest first (minutes
    /// with none left out).
    pub per_minute: Vec<Minute>,
}

/// One minute of [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Minute {
    /// The minute's start, Unix seconds.
    pub minute: u64,
    /// Transactions by action label.
    pub by_action: BTreeMap<String, u64>,
}

/// The action label a record counts under (`spam (alert)` → `spam`).
pub(crate) fn action_key(action: &str) -> String {
    let label = crate::metrics::action_label(action);
    if crate::metrics::ACTIONS.contains(&label.as_str()) {
        label
    } else {
        "other".into()
    }
}

/// The counter updates of one record.
pub(super) fn counts(r: &Record, keep: Duration) -> Vec<WriteOp> {
    let keep_counts = keep.min(MAX_PERIOD) + Duration::from_secs(HOUR);
    let mut ops = vec![WriteOp::Incr(
        format!("hist:n:{}:{}", r.time / 60, action_key(&r.action)),
        1,
        keep_counts,
    )];
    let hour = r.time / HOUR;
    for s in &r.symbols {
        ops.push(WriteOp::Incr(
            format!("hist:s:{hour}:{}", s.name),
            1,
            keep_counts,
        ));
    }
    ops
}

fn number(value: Option<Vec<u8>>) -> u64 {
    value
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
        .unwrap_or(0)
}

/// The statistics of the last `since` (at most a day), counting `symbols`.
pub(super) async fn run(
    history: &History,
    since: Duration,
    symbols: &[String],
) -> Result<Stats, StoreError> {
    let now = super::now();
    let start = now.saturating_sub(since.min(MAX_PERIOD).as_secs());
    let mut actions: Vec<String> = crate::metrics::ACTIONS
        .iter()
        .map(|a| a.to_string())
        .collect();
    actions.push("other".into());
    let minutes: Vec<u64> = (start / 60..=now / 60).collect();
    let keys: Vec<String> = minutes
        .iter()
        .flat_map(|m| actions.iter().map(move |a| format!("hist:n:{m}:{a}")))
        .collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let values = history.store().get_many(&refs).await?;
    let mut stats = Stats {
        since: start,
        ..Stats::default()
    };
    for (m, row) in minutes.iter().zip(values.chunks(actions.len())) {
        let mut minute = Minute {
            minute: m * 60,
            by_action: BTreeMap::new(),
        };
        for (action, value) in actions.iter().zip(row) {
            let n = number(value.clone());
            if n > 0 {
                minute.by_action.insert(action.clone(), n);
                *stats.by_action.entry(action.clone()).or_default() += n;
            }
        }
        if !minute.by_action.is_empty() {
            stats.per_minute.push(minute);
        }
    }
    let hours: Vec<u64> = (start / HOUR..=now / HOUR).collect();
    let keys: Vec<String> = symbols
        .iter()
        .flat_map(|s| hours.iter().map(move |h| format!("hist:s:{h}:{s}")))
        .collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let values = history.store().get_many(&refs).await?;
    let mut top: Vec<(String, u64)> = symbols
        .iter()
        .zip(values.chunks(hours.len().max(1)))
        .map(|(s, row)| (s.clone(), row.iter().map(|v| number(v.clone())).sum()))
        .filter(|(_, n)| *n > 0)
        .collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(TOP);
    stats.top_symbols = top;
    Ok(stats)
}
