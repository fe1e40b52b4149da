//! The anomaly hold's side of the flow: each transaction's history record
//! counted into the baselines ([`count`], called once per transaction by
//! the session), and, once per hold, the alert to the customer and the
//! report to the abuse desk, injected into the upstream like the SPAM
//! alert (`MAIL FROM:<>`).

use super::hold_alert::HoldNotice;
use super::send_via;
use crate::anomaly::{self, Announce, AnnounceFuture, Hold, Observation};
use crate::app::App;
use crate::config::AnomalyConfig;
use crate::history::Record;
use crate::maps::Domains;
use crate::score::Hit;
use crate::upstream::Upstream;
use std::sync::Arc;

/// Counts the transaction of `record` into its identity's baseline, off
/// the hot path. `refused` is how many recipients were refused as unknown
/// (5.1.x); a tempfailed transaction (`transient`) is not counted: it
/// comes again.
pub fn count(app: &App, record: &Record, refused: u64, transient: bool) {
    if !app.anomaly.enabled() {
        return;
    }
    if let Some(observation) = observation(record, refused, transient) {
        app.anomaly
            .count(observation, || Arc::new(Notices::of(app)));
    }
}

/// The transaction as the baseline counts it: `None` for one that comes
/// again (tempfailed) or that reached no recipient at all.
pub fn observation(record: &Record, refused: u64, transient: bool) -> Option<Observation> {
    if transient || (record.rcpts.is_empty() && refused == 0) {
        return None;
    }
    let label = crate::metrics::action_label(&record.action);
    Some(Observation {
        time: record.time,
        reference: record.reference.clone(),
        identity: anomaly::identity(record.identity()),
        login: record.login.clone(),
        from: record.from.clone(),
        recipient_domains: anomaly::recipient_domains(record.rcpts.iter().map(String::as_str)),
        recipients: record.rcpts.len() as u64 + refused,
        refused,
        spam: label == "spam" || label == "blocked",
    })
}

/// The 451 a held identity's messages get (the same function as at MAIL).
pub fn held_reply(hold: &Hold) -> String {
    let hit = Hit {
        name: anomaly::ANOMALY_HOLD.to_string(),
        options: vec![
            hold.identity.clone(),
            hold.reason.clone(),
            hold.reference.clone(),
        ],
        why: crate::score::Why::Plain,
    };
    crate::smtp::reply::for_hit(&hit, true).to_string()
}

/// Sends a new hold's alert and report through the upstream.
pub struct Notices {
    upstream: Arc<Upstream>,
    hostname: String,
    local_domains: Arc<Domains>,
    config: AnomalyConfig,
}

impl Notices {
    /// The notices of `app`'s configuration.
    pub fn of(app: &App) -> Notices {
        Notices {
            upstream: Arc::clone(&app.upstream),
            hostname: app.config.server.hostname.clone(),
            local_domains: Arc::clone(&app.local_domains),
            config: app.config.anomaly.clone(),
        }
    }

    /// Who the customer alert goes to: the login when it is an address,
    /// else the sender when its domain is ours; never anyone else.
    fn originator(&self, hold: &Hold) -> Option<String> {
        let seen = hold.seen.as_ref()?;
        if let Some(login) = seen.login.as_deref().filter(|l| l.contains('@')) {
            return Some(login.to_string());
        }
        let domain = anomaly::domain_of(&seen.from);
        (!domain.is_empty() && self.local_domains.contains(&domain)).then(|| seen.from.clone())
    }

    /// The alert to the customer, then the report (which says whether the
    /// alert went out) to the abuse desk.
    async fn send(&self, hold: Hold) {
        let reply = held_reply(&hold);
        let originator = self.originator(&hold);
        let mut notice = HoldNotice {
            hold: &hold,
            config: &self.config,
            hostname: &self.hostname,
            reply: &reply,
            originator: originator.as_deref(),
            alert_error: None,
        };
        let mut alert_error = None;
        if let Some(to) = originator.as_deref() {
            let message = notice.customer_message(to);
            match send_via(&self.upstream, &[to], &message).await {
                Ok(()) => {
                    tracing::info!(target: "smtpgate::anomaly", identity = %hold.identity, reference = %hold.reference, %to, "hold alert sent to the customer")
                }
                Err(e) => {
                    tracing::warn!(target: "smtpgate::anomaly", identity = %hold.identity, reference = %hold.reference, %to, error = %e, "hold alert to the customer not delivered");
                    alert_error = Some(e);
                }
            }
        }
        let Some(first) = self.config.notify.first() else {
            return;
        };
        notice.alert_error = alert_error.as_deref();
        let message = notice.report_message(first);
        let to: Vec<&str> = self.config.notify.iter().map(String::as_str).collect();
        match send_via(&self.upstream, &to, &message).await {
            Ok(()) => {
                tracing::info!(target: "smtpgate::anomaly", identity = %hold.identity, reference = %hold.reference, notify = %to.join(","), "hold report sent to the abuse desk")
            }
            Err(e) => {
                tracing::warn!(target: "smtpgate::anomaly", identity = %hold.identity, reference = %hold.reference, error = %e, "hold report to the abuse desk not delivered")
            }
        }
    }
}

impl Announce for Notices {
    fn announce(&self, hold: Hold) -> AnnounceFuture<'_> {
        Box::pin(self.send(hold))
    }
}
