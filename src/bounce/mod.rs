//! Bounce mode: a stopped message is not relayed; the SPAM alert goes to
//! its originator through the upstream (`MAIL FROM:<>`), and only once the
//! upstream accepted it does the client get 250. Alerts with the same
//! symbols to the same originator are merged for 10 minutes. Never to a
//! third party: without an originator we may write to, the message is
//! rejected instead.

mod alert;
pub mod hold;
mod hold_alert;

pub use alert::{breakdown_text, explain, explain_all, quoted_printable, Alert, Explained};

use crate::action::Action;
use crate::address::{parse_address, Address};
use crate::app::App;
use crate::message::Parsed;
use crate::pipeline::{alert_recipient, stopped_reply};
use crate::score::Breakdown;
use crate::smtp::command::MailParams;
use crate::smtp::reply::{self, Reply};
use crate::store::WriteOp;
use crate::upstream::Upstream;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Identical alerts are merged within this window.
const ALERT_WINDOW: Duration = Duration::from_secs(600);

/// A stopped message, as the alert path needs it.
pub struct Stopped<'a> {
    /// The decision (block or spam).
    pub action: &'a Action,
    /// Every symbol, weighed.
    pub breakdown: &'a Breakdown,
    /// The transaction's reference.
    pub reference: &'a str,
    /// The SMTP AUTH login, if any.
    pub login: Option<&'a str>,
    /// MAIL FROM.
    pub sender: &'a Address,
    /// The accepted recipients.
    pub recipients: &'a [Address],
    /// The message as received, and parsed.
    pub message: &'a [u8],
    /// The parsed message.
    pub parsed: &'a Parsed,
}

/// Sends (or merges) the alert for a stopped message; returns the
/// transaction's log label and the client's reply.
pub async fn stop(app: &App, m: Stopped<'_>) -> (&'static str, Reply) {
    let Some(originator) = alert_recipient(app, m.login, m.sender, m.parsed) else {
        let r = stopped_reply(app, m.action, m.breakdown, m.reference);
        return ("spam (no alert recipient)", r);
    };
    let key = alert_key(m.breakdown, &originator);
    let (send, merged) = alert_merge(app, &key).await;
    if !send {
        return (
            "spam (alert merged)",
            reply::alert_merged(&originator, m.reference),
        );
    }
    let recipients: Vec<String> = m.recipients.iter().map(ToString::to_string).collect();
    let alert = Alert {
        hostname: &app.config.server.hostname,
        reference: m.reference,
        originator: &originator,
        recipients: &recipients,
        original_headers: &m.message[..m.parsed.body_offset.min(m.message.len())],
        message_id: m.parsed.message_id.as_deref(),
        subject: m.parsed.subject.as_deref(),
        breakdown: m.breakdown,
        symbols: &app.symbols,
        threshold: app.policy.threshold,
        merged,
        arrival: SystemTime::now(),
    }
    .message();
    let r = match send_alert(app, &originator, &alert).await {
        Ok(()) => {
            alert_sent(app, &key, merged);
            reply::alert_sent(&originator, m.reference)
        }
        Err(why) => {
            tracing::warn!(reference = %m.reference, %originator, error = %why, "SPAM alert not delivered");
            reply::alert_failed()
        }
    };
    ("spam (alert)", r)
}

/// The store key of alerts to `originator` for this symbol set (shadow
/// rules aside: they must not change which alerts merge).
fn alert_key(breakdown: &Breakdown, originator: &str) -> String {
    let mut names: Vec<&str> = breakdown
        .symbols()
        .iter()
        .filter(|s| !s.shadow)
        .map(|s| s.hit.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    format!(
        "alert:{}:{:016x}",
        originator.to_ascii_lowercase(),
        fnv1a(names.join(" ").as_bytes())
    )
}

/// Whether to send an alert now, and how many merged messages it covers:
/// one alert per originator and symbol set per 10 minutes. A message is
/// merged only into an alert the upstream has *accepted* (`{key}:sent`,
/// set by [`alert_sent`]), so a failed alert never leaves a later message
/// answered 250 with nothing sent. Both keys are read in one round trip
/// (with the queued writes, so the last alert's bookkeeping is seen);
/// the merged count goes up off the hot path (the reply does not depend
/// on it). A store failure sends the alert (a duplicate is better than
/// none).
async fn alert_merge(app: &App, key: &str) -> (bool, u64) {
    let (sent, merged) = (format!("{key}:sent"), format!("{key}:merged"));
    match app.writes.get_many(&[sent.as_str(), merged.as_str()]).await {
        Ok(values) => match values.as_slice() {
            [Some(_), _] => {
                app.writes
                    .push([WriteOp::Incr(merged, 1, ALERT_WINDOW * 6 * 24 * 7)]);
                (false, 0)
            }
            [None, Some(v)] => (true, String::from_utf8_lossy(v).parse().unwrap_or(0)),
            _ => (true, 0),
        },
        Err(e) => {
            tracing::warn!(error = %e, "alert merging skipped");
            (true, 0)
        }
    }
}

/// Records an accepted alert, off the hot path: later ones merge into it
/// for 10 minutes; the `merged` messages it reported are no longer
/// pending.
fn alert_sent(app: &App, key: &str, merged: u64) {
    let mut writes = vec![WriteOp::Set(
        format!("{key}:sent"),
        b"1".to_vec(),
        ALERT_WINDOW,
    )];
    if merged > 0 {
        writes.push(WriteOp::Incr(
            format!("{key}:merged"),
            -(merged as i64),
            ALERT_WINDOW,
        ));
    }
    app.writes.push(writes);
}

/// Injects a message into the upstream as `MAIL FROM:<>` to `to`.
pub async fn send_alert(app: &App, to: &str, alert: &[u8]) -> Result<(), String> {
    send_via(&app.upstream, &[to], alert).await
}

/// Injects a message of our own into `upstream` as `MAIL FROM:<>` to
/// every address of `to` (one transaction); an address the MTA refuses is
/// logged and left out, and it is sent when any was accepted.
pub async fn send_via(upstream: &Arc<Upstream>, to: &[&str], message: &[u8]) -> Result<(), String> {
    let mut recipients = Vec::with_capacity(to.len());
    for address in to {
        recipients
            .push(parse_address(address, false).map_err(|_| format!("bad address {address}"))?);
    }
    let Some((first, rest)) = recipients.split_first() else {
        return Err("no recipient".into());
    };
    let (open, reply) = upstream
        .begin(&Address::null(), &MailParams::default(), first, None)
        .await
        .map_err(|e| e.to_string())?;
    let Some(mut open) = open else {
        return Err(format!("upstream refused: {reply}"));
    };
    let mut accepted = usize::from(reply.is_positive());
    if !reply.is_positive() {
        tracing::warn!(recipient = %first, %reply, "upstream refused a recipient of our own message");
    }
    for rcpt in rest {
        match open.rcpt(rcpt).await {
            Ok(r) if r.is_positive() => accepted += 1,
            Ok(r) => {
                tracing::warn!(recipient = %rcpt, reply = %r, "upstream refused a recipient of our own message")
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    if accepted == 0 {
        open.release();
        return Err(format!("upstream refused: {reply}"));
    }
    let r = open.data(b"", message).await.map_err(|e| e.to_string())?;
    if r.is_positive() {
        Ok(())
    } else {
        Err(format!("upstream refused: {r}"))
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::{Hit, Score, SymbolDef, SymbolTable};

    #[test]
    fn a_shadow_rule_does_not_change_which_alerts_merge() {
        let mut table = SymbolTable::default();
        for (name, shadow) in [("SUBJ_ALL_CAPS", false), ("MISSING_MID", true)] {
            let def = SymbolDef {
                score: Score(500),
                action: None,
                description: String::new(),
                fix: String::new(),
                group: String::new(),
                shadow,
            };
            table.insert(name.into(), def);
        }
        let mut counted = Breakdown::default();
        counted.add(&table, Hit::new("SUBJ_ALL_CAPS", "INVOICE DUE"));
        let mut with_shadow = counted.clone();
        with_shadow.add(&table, Hit::new("MISSING_MID", ""));
        let key = alert_key(&counted, "Shop@Example.test");
        assert_eq!(alert_key(&with_shadow, "shop@example.test"), key);
        assert!(key.starts_with("alert:shop@example.test:"), "{key}");
    }
}
