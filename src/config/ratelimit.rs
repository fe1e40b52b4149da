//! `[ratelimit]`: sending quotas per identity (login, else client IP).

use serde::Deserialize;
use std::collections::BTreeMap;

/// `[ratelimit]`. Present = enabled; 0 turns one limit off.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Messages an identity may send per day.
    #[serde(default = "default_messages_per_day")]
    pub messages_per_day: u64,
    /// Recipients an identity may send to per hour (0 = no limit).
    #[serde(default)]
    pub recipients_per_hour: u64,
    /// Per-identity limits: `"login" = { messages_per_day = 5000 }`, or an
    /// IP address for clients that do not authenticate.
    #[serde(default)]
    pub overrides: BTreeMap<String, Limits>,
}

/// One identity's limits; a missing key keeps the section's value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Messages per day.
    pub messages_per_day: Option<u64>,
    /// Recipients per hour.
    pub recipients_per_hour: Option<u64>,
}

fn default_messages_per_day() -> u64 {
    500
}

impl RateLimitConfig {
    /// (messages per day, recipients per hour) for `identity`.
    pub fn limits(&self, identity: &str) -> (u64, u64) {
        // Logins are case-insensitive (the session keeps them lowercase);
        // the operator may have written one either way.
        let o = self.overrides.get(identity).or_else(|| {
            self.overrides
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(identity))
                .map(|(_, v)| v)
        });
        (
            o.and_then(|l| l.messages_per_day)
                .unwrap_or(self.messages_per_day),
            o.and_then(|l| l.recipients_per_hour)
                .unwrap_or(self.recipients_per_hour),
        )
    }
}
