//! History queries: the flags of `smtpgate history` (and the HTTP API's
//! query parameters of the same names), the index a query reads, and the
//! match of each record.

use super::{domain_of, index_key, record_key, History, Record, HOUR};
use crate::config::Span;
use crate::store::StoreError;
use std::time::Duration;

/// Hour buckets read per round trip.
const BUCKETS_PER_READ: usize = 12;

/// Records read per round trip.
const RECORDS_PER_READ: usize = 200;

/// The default and the largest `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` a query may ask for.
pub const MAX_LIMIT: usize = 10_000;

/// What to look for; every criterion given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// The sender: an address, or `@domain` for any sender of the domain.
    pub from: Option<String>,
    /// A recipient: an address, or `@domain`.
    pub rcpt: Option<String>,
    /// The SMTP AUTH login.
    pub login: Option<String>,
    /// The client's address.
    pub ip: Option<String>,
    /// The action's label (`delivered`, `spam`, `blocked`, …).
    pub action: Option<String>,
    /// The Message-ID (with or without angle brackets).
    pub message_id: Option<String>,
    /// Only transactions of the last `since`.
    pub since: Option<Duration>,
    /// At most this many (newest first); 0 = the default, 100.
    pub limit: usize,
}

impl Query {
    /// A query from `name=value` pairs named as the CLI's flags (`from`,
    /// `rcpt`, `login`, `ip`, `action`, `message_id`, `since` like `2h`,
    /// `limit`); an unknown name or a bad value is an error saying which.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Query, String> {
        let mut q = Query::default();
        for (name, value) in pairs {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let text = Some(value.to_string());
            match name.as_str() {
                "from" => q.from = text,
                "rcpt" => q.rcpt = text,
                "login" => q.login = text,
                "ip" => q.ip = text,
                "action" => q.action = text,
                "message_id" | "mid" => q.message_id = text,
                "since" => q.since = Some(parse_since(value)?),
                "limit" => {
                    q.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            format!("limit: expected 1 to {MAX_LIMIT}, got {value:?}")
                        })?;
                }
                other => {
                    return Err(format!(
                        "unknown parameter {other:?} (expected from, rcpt, login, ip, action, \
                         message_id, since, limit)"
                    ))
                }
            }
        }
        Ok(q)
    }

    /// True when `r` meets every criterion (the time bound aside).
    pub fn matches(&self, r: &Record) -> bool {
        let address = |want: &str, have: &str| match want.strip_prefix('@') {
            Some(domain) => domain_of(have).eq_ignore_ascii_case(domain),
            None => want.trim_matches(['<', '>']).eq_ignore_ascii_case(have),
        };
        self.from.as_deref().is_none_or(|f| address(f, &r.from))
            && self
                .rcpt
                .as_deref()
                .is_none_or(|want| r.rcpts.iter().any(|to| address(want, to)))
            && self.login.as_deref().is_none_or(|l| {
                r.login
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(l))
            })
            && self
                .ip
                .as_deref()
                .is_none_or(|ip| ip.eq_ignore_ascii_case(&r.client_ip))
            && self.action.as_deref().is_none_or(|a| {
                crate::metrics::action_label(&r.action) == a.replace(' ', "_") || r.action == a
            })
            && self
                .message_id
                .as_deref()
                .is_none_or(|m| r.message_id.as_deref() == Some(m.trim().trim_matches(['<', '>'])))
    }

    /// The index read: the most selective criterion given.
    fn index(&self) -> (&'static str, String) {
        let lower = |s: &str| s.trim().to_ascii_lowercase();
        if let Some(m) = &self.message_id {
            return ("mid", m.trim().trim_matches(['<', '>']).to_string());
        }
        if let Some(l) = &self.login {
            return ("login", lower(l));
        }
        if let Some(ip) = &self.ip {
            return ("ip", lower(ip));
        }
        if let Some(f) = &self.from {
            return (
                "from",
                lower(f.strip_prefix('@').map_or(&domain_of(f), |d| d)),
            );
        }
        if let Some(r) = &self.rcpt {
            return (
                "rcpt",
                lower(r.strip_prefix('@').map_or(&domain_of(r), |d| d)),
            );
        }
        if let Some(a) = &self.action {
            return ("action", crate::metrics::action_label(a).replace(' ', "_"));
        }
        ("all", String::new())
    }
}

/// `2h`, `30m`, `7d` (a `[history]`-style span).
pub fn parse_since(text: &str) -> Result<Duration, String> {
    Span::parse(text.trim())
        .map(|s| s.0)
        .ok_or_else(|| format!("since: expected a duration like 30m, 2h or 7d, got {text:?}"))
}

/// Reads the index newest hour first, then the records, until `limit`
/// match or the period is read.
pub(super) async fn run(history: &History, q: &Query) -> Result<Vec<Record>, StoreError> {
    let limit = if q.limit == 0 {
        DEFAULT_LIMIT
    } else {
        q.limit.min(MAX_LIMIT)
    };
    let now = super::now();
    let period = q.since.unwrap_or(history.keep()).min(history.keep());
    let oldest = now.saturating_sub(period.as_secs());
    let (kind, value) = q.index();
    let store = history.store();
    let hours: Vec<u64> = (oldest / HOUR..=now / HOUR).rev().collect();
    let mut found = Vec::new();
    for chunk in hours.chunks(BUCKETS_PER_READ) {
        let keys: Vec<String> = chunk.iter().map(|h| index_key(kind, &value, *h)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let buckets = store.get_many(&refs).await?;
        let mut references: Vec<String> = Vec::new();
        for bucket in buckets.into_iter().flatten() {
            let text = String::from_utf8_lossy(&bucket);
            references.extend(text.lines().rev().map(str::to_string));
        }
        for batch in references.chunks(RECORDS_PER_READ) {
            let keys: Vec<String> = batch.iter().map(|r| record_key(r)).collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            for value in store.get_many(&refs).await?.into_iter().flatten() {
                let Ok(record) = serde_json::from_slice::<Record>(&value) else {
                    continue;
                };
                if record.time >= oldest && q.matches(&record) {
                    found.push(record);
                    if found.len() == limit {
                        return Ok(found);
                    }
                }
            }
        }
    }
    Ok(found)
}

/// Calls `f` with every record of the last `since` (newest first), reading
/// the `all` index one round trip per 12 hours and 200 records at a time.
pub(super) async fn each(
    history: &History,
    since: Duration,
    mut f: impl FnMut(Record),
) -> Result<(), StoreError> {
    let now = super::now();
    let oldest = now.saturating_sub(since.min(history.keep()).as_secs());
    let store = history.store();
    let hours: Vec<u64> = (oldest / HOUR..=now / HOUR).rev().collect();
    for chunk in hours.chunks(BUCKETS_PER_READ) {
        let keys: Vec<String> = chunk.iter().map(|h| index_key("all", "", *h)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut references: Vec<String> = Vec::new();
        for bucket in store.get_many(&refs).await?.into_iter().flatten() {
            references.extend(
                String::from_utf8_lossy(&bucket)
                    .lines()
                    .rev()
                    .map(str::to_string),
            );
        }
        for batch in references.chunks(RECORDS_PER_READ) {
            let keys: Vec<String> = batch.iter().map(|r| record_key(r)).collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            for value in store.get_many(&refs).await?.into_iter().flatten() {
                if let Ok(record) = serde_json::from_slice::<Record>(&value) {
                    if record.time >= oldest {
                        f(record);
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn flags_parse_and_errors_say_which() {
        let q = Query::from_pairs(&pairs(&[
            ("from", "@shop.test"),
            ("since", "2h"),
            ("limit", "5"),
        ]))
        .unwrap();
        assert_eq!(q.from.as_deref(), Some("@shop.test"));
        assert_eq!(q.since, Some(Duration::from_secs(7200)));
        assert_eq!(q.limit, 5);
        assert_eq!(
            Query::from_pairs(&pairs(&[("since", "2 hours")])).unwrap_err(),
            "since: expected a duration like 30m, 2h or 7d, got \"2 hours\""
        );
        assert!(Query::from_pairs(&pairs(&[("limit", "0")]))
            .unwrap_err()
            .starts_with("limit:"));
        assert!(Query::from_pairs(&pairs(&[("sender", "x")]))
            .unwrap_err()
            .contains("\"sender\""));
    }

    #[test]
    fn the_most_selective_index_is_read() {
        let q = Query {
            from: Some("a@Shop.test".into()),
            ip: Some("192.0.2.1".into()),
            ..Query::default()
        };
        assert_eq!(q.index(), ("ip", "192.0.2.1".to_string()));
        let q = Query {
            from: Some("a@Shop.test".into()),
            ..Query::default()
        };
        assert_eq!(q.index(), ("from", "shop.test".to_string()));
        assert_eq!(Query::default().index(), ("all", String::new()));
    }
}
