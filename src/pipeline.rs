//! The check pipeline run offline on one message (`smtpgate check`): the
//! same checks, rules, composites and decision as a live session, phase by
//! phase, without a client or an upstream.

use crate::action::{decide, decide_phase, Action};
use crate::app::App;
use crate::checks::{CheckError, Phase, View};
use crate::message::Parsed;
use crate::reference::new_reference;
use crate::score::{Breakdown, ScoredSymbol};
use crate::smtp::command::Address;
use crate::smtp::reply::Reply;
use std::net::IpAddr;
use std::sync::Arc;

/// The envelope a message is judged with.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The client's address.
    pub client_ip: IpAddr,
    /// The HELO name.
    pub helo: String,
    /// MAIL FROM.
    pub sender: Address,
    /// RCPT TO.
    pub recipients: Vec<Address>,
    /// The SMTP AUTH login.
    pub login: Option<String>,
}

/// What the pipeline decided.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Every symbol found, weighed.
    pub breakdown: Breakdown,
    /// The decision at the end of DATA.
    pub action: Action,
    /// A phase that would have refused the command before DATA.
    pub refused_at: Option<(Phase, Reply)>,
    /// The reference this run got.
    pub reference: String,
}

/// Runs every phase's checks for `envelope` and `raw` (CRLF line ends).
pub async fn run(app: &App, envelope: &Envelope, raw: &[u8]) -> Result<Verdict, CheckError> {
    let parsed = Parsed::parse_within(raw, app.config.scoring.analysis_timeout.0);
    let mut breakdown = Breakdown::with_caps(Arc::clone(&app.caps));
    let mut refused_at = None;
    let base = View {
        client_ip: envelope.client_ip,
        helo: &envelope.helo,
        tls: false,
        login: envelope.login.as_deref(),
        trusted: app.config.relay.is_trusted(envelope.client_ip),
        sender: Some(&envelope.sender),
        recipient: None,
        recipients: &envelope.recipients,
        message: None,
        parsed: None,
    };
    let mut views = vec![(Phase::Helo, base), (Phase::Mail, base)];
    for rcpt in &envelope.recipients {
        views.push((
            Phase::Rcpt,
            View {
                recipient: Some(rcpt),
                ..base
            },
        ));
    }
    views.push((
        Phase::Data,
        View {
            message: Some(raw),
            parsed: Some(&parsed),
            ..base
        },
    ));
    for (phase, view) in &views {
        let mut found: Vec<ScoredSymbol> = Vec::new();
        for check in app.checks.iter().filter(|c| c.phase() == *phase) {
            for hit in check.check(view).await? {
                found.push(ScoredSymbol::weigh(&app.symbols, hit));
            }
        }
        if refused_at.is_none() && *phase != Phase::Data {
            if let Action::Refuse(reply) = decide_phase(&found) {
                refused_at = Some((*phase, reply));
            }
        }
        for symbol in found {
            breakdown.push(symbol);
        }
    }
    app.composites.apply(&mut breakdown, &app.symbols);
    let action = decide(&breakdown, &app.policy);
    Ok(Verdict {
        breakdown,
        action,
        refused_at,
        reference: new_reference(),
    })
}

/// A message file as SMTP carries it: bare LF line ends become CRLF.
pub fn to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 40);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}
