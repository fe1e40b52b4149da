//! `[store]`: where shared state lives, and what a check does when it fails.

use super::Span;
use serde::Deserialize;
use std::time::Duration;

/// Which `Store` backend holds shared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// In this process only (lost on restart; not shared between nodes).
    Memory,
    /// A Redis (or Valkey) server shared by every node.
    Redis,
}

/// What a check does when the store fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// 451 4.3.0 for that phase (the default).
    Tempfail,
    /// Skip the check.
    Accept,
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `memory` or `redis`.
    #[serde(default = "default_store_backend")]
    pub backend: StoreBackend,
    /// Redis URL (`redis://host:port/db`).
    #[serde(default = "default_redis_url")]
    pub redis_url: String,
    /// Prefix of every key, so several deployments can share a server.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Longest wait for one store operation.
    #[serde(default = "default_store_timeout")]
    pub timeout: Span,
    /// `tempfail` or `accept` when the store fails.
    #[serde(default = "default_on_error")]
    pub on_error: OnError,
    /// Most keys the memory store holds (0 = no bound); beyond it the key
    /// that would expire first is evicted.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
    /// How long a node answers from what it read of the Redis store: a
    /// rate-limit counter in the lower half of its limit, a recipient not
    /// known bad (`checks::recent`). Zero reads the store every time.
    #[serde(default = "default_memo")]
    pub memo: Span,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: default_store_backend(),
            redis_url: default_redis_url(),
            key_prefix: default_key_prefix(),
            timeout: default_store_timeout(),
            on_error: default_on_error(),
            max_entries: default_max_entries(),
            memo: default_memo(),
        }
    }
}

fn default_memo() -> Span {
    Span(Duration::from_secs(1))
}
fn default_max_entries() -> usize {
    1_000_000
}
fn default_store_backend() -> StoreBackend {
    StoreBackend::Memory
}
fn default_redis_url() -> String {
    "redis://127.0.0.1:6379".into()
}
fn default_key_prefix() -> String {
    "smtpgate:".into()
}
fn default_store_timeout() -> Span {
    Span(Duration::from_millis(500))
}
fn default_on_error() -> OnError {
    OnError::Tempfail
}
