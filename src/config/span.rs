//! Durations in configuration files: `"500ms"`, `"30s"`, `"5m"`, `"2h"`, `"35d"`.

use serde::{de, Deserialize, Deserializer};
use std::time::Duration;

/// A duration written as `"500ms"`, `"30s"`, `"5m"`, `"2h"` or `"35d"`, at
/// most [`Span::MAX_DAYS`] days (so that `now + span` can never overflow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl Span {
    /// The longest duration any setting takes: ten years.
    pub const MAX_DAYS: u64 = 3650;

    /// Parses the textual form.
    pub fn parse(text: &str) -> Option<Span> {
        Span::parse_unbounded(text).filter(|s| s.0.as_secs() <= Span::MAX_DAYS * 86_400)
    }

    fn parse_unbounded(text: &str) -> Option<Span> {
        let digits = text.find(|c: char| !c.is_ascii_digit())?;
        let (number, unit) = text.split_at(digits);
        let n: u64 = number.parse().ok()?;
        let secs = match unit {
            "ms" => return Some(Span(Duration::from_millis(n))),
            "s" => n,
            "m" => n.checked_mul(60)?,
            "h" => n.checked_mul(3600)?,
            "d" => n.checked_mul(86_400)?,
            _ => return None,
        };
        Some(Span(Duration::from_secs(secs)))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).ok_or_else(|| {
            de::Error::custom(format!(
                "invalid duration `{text}`: expected a number followed by ms, s, m, h or d, e.g. \"30s\", at most \"{}d\"",
                Span::MAX_DAYS
            ))
        })
    }
}

impl std::fmt::Display for Span {
    /// The shortest textual form that reads back the same: `7d`, `2h`, `90s`, `500ms`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        let secs = self.0.as_secs();
        if !ms.is_multiple_of(1000) {
            write!(f, "{ms}ms")
        } else if secs > 0 && secs.is_multiple_of(86_400) {
            write!(f, "{}d", secs / 86_400)
        } else if secs > 0 && secs.is_multiple_of(3600) {
            write!(f, "{}h", secs / 3600)
        } else if secs > 0 && secs.is_multiple_of(60) {
            write!(f, "{}m", secs / 60)
        } else {
            write!(f, "{secs}s")
        }
    }
}
