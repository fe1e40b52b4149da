//! `[log]`: the shape of the log lines on standard error.

use serde::Deserialize;

/// `[log]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (the default) or `json` (one object a line), read at start-up.
    #[serde(default)]
    pub format: LogFormat,
}

/// The shape of a log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2026-12-01T21:00:00Z  INFO smtpgate: message key=value`.
    #[default]
    Text,
    /// One JSON object a line: timestamp, level, target, fields.
    Json,
}
