//! Replay: the stored breakdown of every transaction of a period re-decided
//! under other scores, a threshold or other rules (`smtpgate replay`), to
//! see what a change would have done before it counts.
//!
//! Each transaction that reached a verdict at the end of DATA (delivered,
//! spam, blocked, or refused by the MTA after our verdict) is decided twice
//! from its recorded symbols: with the running rules and with the proposed
//! ones — so with no change nothing flips, whatever happened since. A
//! recorded symbol is re-weighed by its definition in each table (score,
//! forced action, group cap, shadow); composites are taken as recorded.
//! Message bodies are not kept, so a content rule that did not fire when the
//! message passed cannot be evaluated: the report says so.

use crate::action::{decide, Action, Policy};
use crate::history::{History, Record};
use crate::score::{Breakdown, Score, ScoredSymbol, SymbolTable};
use crate::store::StoreError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Flipped transactions listed per direction at most.
const EXAMPLES: usize = 10;

/// One set of rules a transaction is decided with.
pub struct Judge<'a> {
    /// Symbol definitions.
    pub symbols: &'a SymbolTable,
    /// Per-group caps.
    pub caps: Arc<BTreeMap<String, Score>>,
    /// Threshold and spam action.
    pub policy: Policy,
}

impl Judge<'_> {
    /// The breakdown of `record` weighed by these rules.
    pub fn breakdown(&self, record: &Record) -> Breakdown {
        let mut b = Breakdown::with_caps(Arc::clone(&self.caps));
        for s in &record.symbols {
            // A symbol the rules no longer know keeps its recorded score.
            let mut weighed = ScoredSymbol::weigh(self.symbols, s.hit());
            if self.symbols.get(&s.name).is_none() {
                weighed.score = Score::from_f64(s.score);
            }
            b.push(weighed);
        }
        b
    }

    /// The verdict these rules give `record`'s recorded symbols at the end
    /// of DATA (pure: the same record and rules give the same action; a
    /// symbol shadowed in these rules adds nothing and forces nothing).
    pub fn decide(&self, record: &Record) -> Action {
        decide(&self.breakdown(record), &self.policy)
    }

    /// True when these rules stop `record` (spam or blocked).
    pub fn stops(&self, record: &Record) -> (bool, Score) {
        let b = self.breakdown(record);
        (decide(&b, &self.policy) != Action::Pass, b.total())
    }
}

/// True for a transaction that reached a verdict at the end of DATA.
pub fn judged(record: &Record) -> bool {
    let label = crate::metrics::action_label(&record.action);
    matches!(
        label.as_str(),
        "delivered" | "spam" | "blocked" | "upstream_refused"
    )
}

/// One flipped transaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flip {
    /// Its reference.
    pub reference: String,
    /// The login, else the client's address.
    pub identity: String,
    /// The sender.
    pub from: String,
    /// The total with the running rules.
    pub score_before: f64,
    /// The total with the proposed rules.
    pub score_after: f64,
    /// Its symbols whose weight or action differs between the two.
    pub changed_symbols: Vec<String>,
}

/// Flips of one identity or one symbol.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Passed before, stopped now.
    pub now_stopped: u64,
    /// Stopped before, passed now.
    pub now_passed: u64,
}

/// What a replay found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// The period replayed, seconds.
    pub since: u64,
    /// Transactions in the period.
    pub transactions: u64,
    /// Of them, those with a verdict at the end of DATA (the ones replayed).
    pub judged: u64,
    /// Passed with the running rules, stopped with the proposed ones.
    pub now_stopped: u64,
    /// Stopped with the running rules, passed with the proposed ones.
    pub now_passed: u64,
    /// Flips by identity (login, else client IP).
    pub by_identity: BTreeMap<String, Counts>,
    /// Flips by changed symbol carried by the flipped transaction.
    pub by_symbol: BTreeMap<String, Counts>,
    /// Examples of each direction (the newest first).
    pub examples_now_stopped: Vec<Flip>,
    /// Examples of the other direction.
    pub examples_now_passed: Vec<Flip>,
    /// What could not be re-scored.
    pub not_rescored: String,
}

/// The symbols of `record` whose definition differs between the tables.
fn changed(record: &Record, before: &Judge<'_>, after: &Judge<'_>) -> Vec<String> {
    let def = |j: &Judge<'_>, n: &str| j.symbols.get(n).map(|d| (d.score, d.action, d.shadow));
    let mut out: Vec<String> = record
        .symbols
        .iter()
        .filter(|s| def(before, &s.name) != def(after, &s.name))
        .map(|s| s.name.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Adds one record to the report.
pub fn add(report: &mut Report, record: &Record, before: &Judge<'_>, after: &Judge<'_>) {
    report.transactions += 1;
    if !judged(record) {
        return;
    }
    report.judged += 1;
    let (was, score_before) = before.stops(record);
    let (now, score_after) = after.stops(record);
    if was == now {
        return;
    }
    let flip = Flip {
        reference: record.reference.clone(),
        identity: record.identity().to_string(),
        from: record.from.clone(),
        score_before: crate::history::score_f64(score_before),
        score_after: crate::history::score_f64(score_after),
        changed_symbols: changed(record, before, after),
    };
    let bump = |c: &mut Counts| {
        if now {
            c.now_stopped += 1;
        } else {
            c.now_passed += 1;
        }
    };
    bump(report.by_identity.entry(flip.identity.clone()).or_default());
    for s in &flip.changed_symbols {
        bump(report.by_symbol.entry(s.clone()).or_default());
    }
    if now {
        report.now_stopped += 1;
        if report.examples_now_stopped.len() < EXAMPLES {
            report.examples_now_stopped.push(flip);
        }
    } else {
        report.now_passed += 1;
        if report.examples_now_passed.len() < EXAMPLES {
            report.examples_now_passed.push(flip);
        }
    }
}

/// Replays every transaction of the last `since` in `history`.
pub async fn run(
    history: &History,
    since: Duration,
    before: &Judge<'_>,
    after: &Judge<'_>,
) -> Result<Report, StoreError> {
    let mut report = Report {
        since: since.as_secs(),
        not_rescored: "message bodies are not kept: a content rule is re-weighed where it fired, \
                       but a new or changed content pattern cannot be evaluated on past mail; \
                       composites are taken as recorded"
            .into(),
        ..Report::default()
    };
    history
        .each(since, |record| add(&mut report, &record, before, after))
        .await?;
    Ok(report)
}

/// The report as `smtpgate replay` prints it.
pub fn text(r: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Replayed {} transactions of the last {} ({} with a verdict at the end of DATA).",
        r.transactions,
        crate::config::Span(Duration::from_secs(r.since)),
        r.judged
    );
    let _ = writeln!(
        out,
        "Flips: {} passed before and would be stopped; {} stopped before and would pass.",
        r.now_stopped, r.now_passed
    );
    let table = |out: &mut String, title: &str, rows: &BTreeMap<String, Counts>| {
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\n{title}:\n  {:<40} {:>12} {:>12}",
            "", "now stopped", "now passed"
        );
        let mut rows: Vec<_> = rows.iter().collect();
        rows.sort_by(|a, b| {
            (b.1.now_stopped + b.1.now_passed)
                .cmp(&(a.1.now_stopped + a.1.now_passed))
                .then(a.0.cmp(b.0))
        });
        for (name, c) in rows {
            let _ = writeln!(
                out,
                "  {name:<40} {:>12} {:>12}",
                c.now_stopped, c.now_passed
            );
        }
    };
    table(&mut out, "By identity", &r.by_identity);
    table(&mut out, "By symbol", &r.by_symbol);
    for (title, flips) in [
        ("Examples, now stopped", &r.examples_now_stopped),
        ("Examples, now passed", &r.examples_now_passed),
    ] {
        if flips.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}:");
        for f in flips {
            let _ = writeln!(
                out,
                "  {}  {}  <{}>  {:.2} -> {:.2}  {}",
                f.reference,
                f.identity,
                f.from,
                f.score_before,
                f.score_after,
                f.changed_symbols.join(" ")
            );
        }
    }
    let _ = writeln!(out, "\nNot re-scored: {}.", r.not_rescored);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SpamAction;
    use crate::history::SymbolEntry;
    use crate::score::{ForcedAction, SymbolDef};

    fn table(shadow: bool) -> SymbolTable {
        let mut t = SymbolTable::default();
        for (name, score, action) in [
            ("SUBJ_ALL_CAPS", 5.0, None),
            ("R_SPF_ALLOW", -0.2, None),
            ("reject_non_fqdn_sender", 0.0, Some(ForcedAction::Block)),
        ] {
            let def = SymbolDef {
                score: Score::from_f64(score),
                action,
                description: String::new(),
                fix: String::new(),
                group: String::new(),
                shadow: shadow && name != "R_SPF_ALLOW",
            };
            t.insert(name.into(), def);
        }
        t
    }

    fn record(symbols: &[(&str, f64)]) -> Record {
        let json = serde_json::json!({
            "time": 0, "reference": "K3F9Q2ZP", "client_ip": "192.0.2.1", "client_name": null,
            "helo": "web.example.test", "login": null, "from": "shop@example.test",
            "rcpts": ["buyer@example.net"], "message_id": null, "subject": null, "size": 10,
            "action": "delivered", "reply": "250", "score": 0.0, "threshold": 2.0, "symbols": [],
        });
        let mut r: Record = serde_json::from_value(json).unwrap();
        r.symbols = symbols
            .iter()
            .map(|(name, score)| SymbolEntry {
                name: name.to_string(),
                score: *score,
                options: vec![],
                shadow: false,
            })
            .collect();
        r
    }

    fn judge(t: &SymbolTable) -> Judge<'_> {
        Judge {
            symbols: t,
            caps: Arc::default(),
            policy: Policy {
                threshold: Score(200),
                spam_action: SpamAction::Reject,
            },
        }
    }

    #[test]
    fn a_recorded_breakdown_is_re_decided_under_shadow_flags() {
        let (counted, shadowed) = (table(false), table(true));
        let r = record(&[("SUBJ_ALL_CAPS", 5.0), ("R_SPF_ALLOW", -0.2)]);
        assert_eq!(judge(&counted).decide(&r), Action::Spam(SpamAction::Reject));
        assert_eq!(judge(&counted).stops(&r), (true, Score(480)));
        assert_eq!(judge(&shadowed).decide(&r), Action::Pass);
        assert_eq!(judge(&shadowed).stops(&r), (false, Score(-20)));
        // A forced symbol shadowed forces nothing.
        let r = record(&[("reject_non_fqdn_sender", 0.0)]);
        assert_eq!(judge(&counted).decide(&r), Action::Block);
        assert_eq!(judge(&shadowed).decide(&r), Action::Pass);
        // Shadowed in the record, counted in the rules: it counts.
        let mut r = record(&[("SUBJ_ALL_CAPS", 5.0)]);
        r.symbols[0].shadow = true;
        assert_eq!(judge(&counted).decide(&r), Action::Spam(SpamAction::Reject));
    }
}
