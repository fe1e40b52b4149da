//! A hold as the store keeps it (`anomaly:hold:IDENTITY`, JSON): who, why
//! in numbers, since and until when, and what was seen.

use super::count::Seen;
use crate::config::{Span, MAX_HOLD};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The reason of a hold placed by hand without one.
pub const OPERATOR_REASON: &str = "by the abuse desk";

/// How long a hold by hand lasts: `text` (`--for`, `?for=`) or, without
/// it, `default` (`[anomaly] hold_for`); the error says what is expected.
pub fn hold_span(text: Option<&str>, default: Span) -> Result<Duration, String> {
    let Some(text) = text else {
        return Ok(default.0);
    };
    Span::parse(text.trim())
        .filter(|s| !s.0.is_zero() && s.0 <= MAX_HOLD)
        .map(|s| s.0)
        .ok_or_else(|| {
            format!("invalid duration `{text}`: expected e.g. 30m, 2h, 3d (at most 30d)")
        })
}

/// One identity held for review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// The login, else the client IP.
    pub identity: String,
    /// The reason in numbers, as the 451 says it ("2,400 messages in the
    /// last 1h to 1,900 domains; usually 20 per 1h").
    pub reason: String,
    /// The reference of the transaction that crossed the limit (of the
    /// operator's command for a manual hold): the 451, the report and the
    /// alert carry it.
    pub reference: String,
    /// When it was placed, Unix seconds.
    pub since: u64,
    /// When it ends by itself, Unix seconds.
    pub until: u64,
    /// [`super::BY_ANOMALY`] or [`super::BY_OPERATOR`].
    pub by: String,
    /// What was seen (detected holds).
    #[serde(default)]
    pub seen: Option<Seen>,
}

impl Hold {
    /// The stored value.
    pub fn json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The hold stored for `identity`. A value that does not read (written
    /// by a newer version, or damaged) is still a hold: the identity stays
    /// held, with a plain reason, until it ends or is released.
    pub fn read(identity: &str, value: &[u8]) -> Hold {
        serde_json::from_slice(value).unwrap_or_else(|_| Hold {
            identity: identity.to_string(),
            reason: OPERATOR_REASON.to_string(),
            reference: "-".to_string(),
            since: 0,
            until: u64::MAX,
            by: super::BY_OPERATOR.to_string(),
            seen: None,
        })
    }

    /// True for a hold detection placed.
    pub fn detected(&self) -> bool {
        self.by == super::BY_ANOMALY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_value_is_still_a_hold() {
        let h = Hold::read("shop@example.test", b"{not json");
        assert_eq!(h.identity, "shop@example.test");
        assert_eq!(h.reason, "by the abuse desk");
        assert!(!h.detected());
        let back = Hold::read("x", &h.json());
        assert_eq!(back, h);
    }
}
