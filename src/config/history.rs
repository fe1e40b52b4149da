//! `[history]`: every transaction's summary, kept for support
//! (`smtpgate history`, `smtpgate why`, the HTTP API and the console).

use super::Span;
use serde::Deserialize;
use std::time::Duration;

/// `[history]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Record every transaction (on by default).
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// How long a transaction is kept.
    #[serde(default = "default_keep")]
    pub keep: Span,
    /// Transactions waiting to be written at most; beyond it one is
    /// dropped and counted (history never slows or fails mail).
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// With the memory store: the most transactions kept (the oldest go
    /// first). The Redis store keeps everything for `keep`.
    #[serde(default = "default_memory_records")]
    pub memory_records: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            enabled: default_enabled(),
            keep: default_keep(),
            queue: default_queue(),
            memory_records: default_memory_records(),
        }
    }
}

fn default_enabled() -> bool {
    true
}
fn default_keep() -> Span {
    Span(Duration::from_secs(7 * 86_400))
}
fn default_queue() -> usize {
    10_000
}
fn default_memory_records() -> usize {
    100_000
}
