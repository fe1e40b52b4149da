//! Numbers as people read them: "2,400", "0.8", "35%", "the last hour",
//! and the one-line reason a hold gives in its 451 and its reports.

use super::{Rule, Seen};
use crate::config::AnomalyConfig;
use std::fmt::Write as _;

/// `2400` → `2,400`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A usual count: one decimal below 10 ("0.8", "3"), else whole ("1,250").
pub fn amount(x: f64) -> String {
    if x < 9.95 {
        let tenths = (x * 10.0).round() / 10.0;
        if tenths.fract() == 0.0 {
            format!("{tenths:.0}")
        } else {
            format!("{tenths:.1}")
        }
    } else {
        thousands(x.round() as u64)
    }
}

/// `part` of `whole` in whole percent ("35%").
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".into();
    }
    format!("{}%", (part as f64 * 100.0 / whole as f64).round() as u64)
}

/// A share like 0.3 as "30%".
pub fn share(ratio: f64) -> String {
    format!("{}%", (ratio * 100.0).round() as u64)
}

/// The window as a noun phrase after "the last": "hour", "day", "10s".
pub fn window(secs: u64) -> String {
    match secs {
        60 => "minute".into(),
        3600 => "hour".into(),
        86_400 => "day".into(),
        s => crate::config::Span(std::time::Duration::from_secs(s)).to_string(),
    }
}

/// "an hour", "a day", "per 10s": how often, per window.
pub fn per_window(secs: u64) -> String {
    match secs {
        60 => "a minute".into(),
        3600 => "an hour".into(),
        86_400 => "a day".into(),
        s => format!("per {}", window(s)),
    }
}

/// What the identity usually sends: "usually 20 an hour" or "no usual
/// traffic known yet".
pub fn usual(seen: &Seen) -> String {
    match seen.usual_per_window {
        Some(u) => format!("usually {} {}", amount(u), per_window(seen.window_secs)),
        None => "no usual traffic known yet".into(),
    }
}

/// The reason in numbers: the limit crossed first, with the counts that
/// crossed it ("2,400 messages in the last hour to 1,900 domains; usually
/// 20 an hour").
pub fn reason(seen: &Seen, config: &AnomalyConfig) -> String {
    let last = window(seen.window_secs);
    let mut out = String::new();
    let _ = match seen.rule {
        Rule::Volume => write!(
            out,
            "{} messages in the last {last} to {} domains; {}",
            thousands(seen.messages),
            thousands(seen.domains),
            usual(seen)
        ),
        Rule::NewDomains => write!(
            out,
            "{} recipient domains never used before in the last {last} (limit {}); {} messages, {}",
            thousands(seen.new_recipient_domains),
            thousands(config.max_new_recipient_domains),
            thousands(seen.messages),
            usual(seen)
        ),
        Rule::Refused => write!(
            out,
            "{} of {} recipients ({}) refused as unknown in the last {last} (limit {})",
            thousands(seen.refused),
            thousands(seen.recipients),
            percent(seen.refused, seen.recipients),
            share(config.max_refused_ratio)
        ),
        Rule::Spam => write!(
            out,
            "{} of {} messages ({}) stopped as spam in the last {last} (limit {})",
            thousands(seen.spam),
            thousands(seen.messages),
            percent(seen.spam, seen.messages),
            share(config.max_spam_ratio)
        ),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(rule: Rule) -> Seen {
        Seen {
            window_secs: 3600,
            messages: 2400,
            recipients: 2600,
            refused: 910,
            spam: 12,
            domains: 1900,
            new_recipient_domains: 1850,
            new_from_domains: 3,
            usual_per_window: Some(20.0),
            usual_per_day: Some(55.0),
            baseline_windows: 200,
            rule,
            login: Some("shop@example.test".into()),
            from: "shop@example.test".into(),
        }
    }

    #[test]
    fn numbers_read_like_numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(2400), "2,400");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(amount(0.83), "0.8");
        assert_eq!(amount(3.0), "3");
        assert_eq!(amount(1250.4), "1,250");
        assert_eq!(percent(910, 2600), "35%");
        assert_eq!(share(0.3), "30%");
        assert_eq!(window(10), "10s");
        assert_eq!(per_window(3600), "an hour");
        assert_eq!(per_window(7200), "per 2h");
    }

    #[test]
    fn each_rule_says_its_numbers() {
        let c = AnomalyConfig::default();
        let cases = [
            (Rule::Volume, "2,400 messages in the last hour to 1,900 domains; usually 20 an hour"),
            (
                Rule::NewDomains,
                "1,850 recipient domains never used before in the last hour (limit 200); 2,400 messages, usually 20 an hour",
            ),
            (
                Rule::Refused,
                "910 of 2,600 recipients (35%) refused as unknown in the last hour (limit 30%)",
            ),
            (
                Rule::Spam,
                "12 of 2,400 messages (1%) stopped as spam in the last hour (limit 50%)",
            ),
        ];
        for (rule, text) in cases {
            assert_eq!(reason(&seen(rule), &c), text);
        }
    }
}
