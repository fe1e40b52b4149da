//! `[anomaly]`: the anomaly hold. Per identity (the AUTH login, else the
//! client IP) a baseline is kept in the store; an identity far above its
//! own baseline, or refused or stopped far too often, is held for review.

use super::Span;
use serde::Deserialize;
use std::time::Duration;

/// The longest hold (the hold index is read this many days back).
pub const MAX_HOLD: Duration = Duration::from_secs(30 * 86_400);

/// `[anomaly]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyConfig {
    /// Watch identities and hold the anomalous ones (off by default; the
    /// shipped gateway.toml turns it on).
    #[serde(default)]
    pub enabled: bool,
    /// The counting window: messages, recipients, domains per window.
    #[serde(default = "default_window")]
    pub window: Span,
    /// How many days of traffic make an identity's baseline.
    #[serde(default = "default_baseline_days")]
    pub baseline_days: u64,
    /// Messages in one window below which nothing is ever held.
    #[serde(default = "default_min_messages")]
    pub min_messages: u64,
    /// Held above this many times the identity's usual messages per window.
    #[serde(default = "default_factor")]
    pub factor: f64,
    /// Held when more recipient domains than this, never used by the
    /// identity within `baseline_days`, appear in one window (0 = no limit).
    #[serde(default = "default_max_new_recipient_domains")]
    pub max_new_recipient_domains: u64,
    /// Held when more than this share of recipients in one window were
    /// refused as unknown (5.1.x), by the upstream or as known-bad.
    #[serde(default = "default_max_refused_ratio")]
    pub max_refused_ratio: f64,
    /// Held when more than this share of messages in one window were
    /// stopped as spam (or blocked).
    #[serde(default = "default_max_spam_ratio")]
    pub max_spam_ratio: f64,
    /// How long a hold lasts unless released.
    #[serde(default = "default_hold_for")]
    pub hold_for: Span,
    /// The abuse desk: who gets the report of each hold.
    #[serde(default)]
    pub notify: Vec<String>,
    /// Logins, client IPs or networks that are never held (nor counted).
    #[serde(default)]
    pub trusted_identities: Vec<String>,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            enabled: false,
            window: default_window(),
            baseline_days: default_baseline_days(),
            min_messages: default_min_messages(),
            factor: default_factor(),
            max_new_recipient_domains: default_max_new_recipient_domains(),
            max_refused_ratio: default_max_refused_ratio(),
            max_spam_ratio: default_max_spam_ratio(),
            hold_for: default_hold_for(),
            notify: Vec::new(),
            trusted_identities: Vec::new(),
        }
    }
}

impl AnomalyConfig {
    /// What is wrong with these settings, as `(key, message)`, if anything.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let window = self.window.0;
        if window < Duration::from_secs(1) || window > Duration::from_secs(86_400) {
            return Some((
                "window",
                "anomaly.window: expected from \"1s\" to \"1d\"".into(),
            ));
        }
        if !(1..=366).contains(&self.baseline_days) {
            return Some((
                "baseline_days",
                "anomaly.baseline_days: expected a number of days from 1 to 366".into(),
            ));
        }
        if self.min_messages == 0 {
            return Some((
                "min_messages",
                "anomaly.min_messages: expected a number greater than 0".into(),
            ));
        }
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return Some((
                "factor",
                "anomaly.factor: expected a number of at least 1.0, like 10".into(),
            ));
        }
        for (key, value) in [
            ("max_refused_ratio", self.max_refused_ratio),
            ("max_spam_ratio", self.max_spam_ratio),
        ] {
            if !(value > 0.0 && value <= 1.0) {
                return Some((
                    key,
                    format!("anomaly.{key}: expected a share above 0 and at most 1.0, like 0.3"),
                ));
            }
        }
        if self.hold_for.0 < Duration::from_secs(1) || self.hold_for.0 > MAX_HOLD {
            return Some((
                "hold_for",
                "anomaly.hold_for: expected from \"1s\" to \"30d\"".into(),
            ));
        }
        if let Some(bad) = self
            .notify
            .iter()
            .find(|a| crate::address::parse_typed(a, false).is_err())
        {
            return Some((
                "notify",
                format!(
                    "anomaly.notify: `{bad}` is not a mail address like \"abuse@example.test\""
                ),
            ));
        }
        if self.trusted_identities.iter().any(|i| i.trim().is_empty()) {
            return Some((
                "trusted_identities",
                "anomaly.trusted_identities: expected logins, IP addresses or networks, not an empty string".into(),
            ));
        }
        None
    }
}

fn default_window() -> Span {
    Span(Duration::from_secs(3600))
}
fn default_baseline_days() -> u64 {
    14
}
fn default_min_messages() -> u64 {
    50
}
fn default_factor() -> f64 {
    10.0
}
fn default_max_new_recipient_domains() -> u64 {
    200
}
fn default_max_refused_ratio() -> f64 {
    0.3
}
fn default_max_spam_ratio() -> f64 {
    0.5
}
fn default_hold_for() -> Span {
    Span(Duration::from_secs(86_400))
}
