//! The ONE phase runner. A live session calls [`run_phase`] at HELO, MAIL,
//! each RCPT and DATA, then [`decide_message`]; `smtpgate check` calls
//! [`judge`], which walks the same phases with the same function, stops
//! where a session would stop, and builds the same replies with
//! [`phase_reply`] and [`message_reply`].

use crate::action::{decide, decide_phase, Action};
use crate::address::Address;
use crate::app::App;
use crate::checks::{CheckError, Fetched, Phase, View};
use crate::config::SpamAction;
use crate::message::Parsed;
use crate::reference::new_reference;
use crate::score::{Breakdown, ForcedAction, ScoredSymbol};
use crate::smtp::reply::{self, Reply};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// What one phase's checks found, and the action they force.
#[derive(Debug, Clone)]
pub struct PhaseResult {
    /// The symbols, weighed, in the order found.
    pub found: Vec<ScoredSymbol>,
    /// Pass, refuse (a `reject`/`tempfail` symbol) or block.
    pub action: Action,
}

/// Runs every check of `phase` on `view` and weighs what they find. The
/// store keys the checks read are read first, all in one round trip. A
/// forced refusal ends the phase: later checks (rate limits, greylisting)
/// must not count or record what is refused. At DATA a blocking symbol
/// does not end it: the alert lists every symbol.
pub async fn run_phase(
    app: &App,
    phase: Phase,
    view: &View<'_>,
) -> Result<PhaseResult, CheckError> {
    let started = Instant::now();
    let checks = || app.checks.iter().filter(|c| c.phase() == phase);
    // Every check's store reads in one round trip, before the first runs
    // (with the queued writes: a quota read sees the last delivery).
    let keys: Vec<String> = checks().flat_map(|c| c.reads(view)).collect();
    let fetched = Fetched::read(&app.writes, keys).await;
    let view = &View {
        fetched: &fetched,
        ..*view
    };
    let mut found: Vec<ScoredSymbol> = Vec::new();
    for check in checks() {
        for hit in check.check(view).await? {
            found.push(ScoredSymbol::weigh(&app.symbols, hit));
        }
        if found.iter().any(|s| match s.action {
            Some(ForcedAction::Reject | ForcedAction::Tempfail) => true,
            Some(ForcedAction::Block) => phase != Phase::Data,
            None => false,
        }) {
            break;
        }
    }
    crate::metrics::phase(phase.name(), started.elapsed());
    let action = decide_phase(&found);
    Ok(PhaseResult { found, action })
}

/// The end of DATA: composites, then the one decision on the whole message.
pub fn decide_message(app: &App, breakdown: &mut Breakdown) -> Action {
    app.composites.apply(breakdown, &app.symbols);
    decide(breakdown, &app.policy)
}

/// The client's reply when a phase before DATA stops the command, else
/// `None` (go on). `recipient` is the address of a RCPT.
pub fn phase_reply(result: &PhaseResult, recipient: Option<&Address>) -> Option<Reply> {
    match &result.action {
        Action::Refuse { symbol, temporary } => Some(reply::for_hit(symbol, *temporary)),
        Action::Block => {
            let blocking = result.found.iter().find(|s| s.blocks());
            let (name, score) = blocking.map_or(("", String::new()), |s| {
                (s.hit.name.as_str(), s.score.to_string())
            });
            Some(match recipient {
                Some(r) => reply::recipient_blocked(name, &score, &r.to_string()),
                None => reply::blocked(name, &score, ""),
            })
        }
        Action::Pass | Action::Spam(_) => None,
    }
}

/// The client's reply for a message refused at the end of DATA: `None`
/// when it is delivered, or when the SPAM alert path decides (bounce mode).
pub fn message_reply(
    app: &App,
    action: &Action,
    breakdown: &Breakdown,
    reference: &str,
) -> Option<Reply> {
    match action {
        Action::Pass => None,
        Action::Refuse { symbol, temporary } => Some(reply::for_hit(symbol, *temporary)),
        Action::Block if app.policy.spam_action == SpamAction::Reject => {
            Some(blocked_reply(breakdown, reference))
        }
        Action::Spam(SpamAction::Reject) => Some(spam_reply(app, breakdown, reference)),
        Action::Block | Action::Spam(SpamAction::Bounce) => None,
    }
}

/// Who receives the SPAM alert of a stopped message: the login when it is
/// an address, else the envelope sender when its domain is ours; never
/// anyone else, and nobody for auto-submitted mail (no backscatter).
pub fn alert_recipient(
    app: &App,
    login: Option<&str>,
    sender: &Address,
    parsed: &Parsed,
) -> Option<String> {
    if parsed
        .header_values("auto-submitted")
        .any(|v| !v.trim().eq_ignore_ascii_case("no"))
    {
        return None;
    }
    if let Some(login) = login.filter(|l| l.contains('@')) {
        return Some(login.to_string());
    }
    (!sender.domain.is_empty() && app.local_domains.contains(&sender.domain))
        .then(|| sender.to_string())
}

/// The reply to a stopped message that gets no alert: the blocking symbol,
/// or the spam line with every symbol.
pub fn stopped_reply(app: &App, action: &Action, breakdown: &Breakdown, reference: &str) -> Reply {
    if *action == Action::Block {
        blocked_reply(breakdown, reference)
    } else {
        spam_reply(app, breakdown, reference)
    }
}

fn spam_reply(app: &App, breakdown: &Breakdown, reference: &str) -> Reply {
    let symbols: Vec<(String, String)> = breakdown
        .sorted()
        .iter()
        .map(|s| (s.hit.name.clone(), s.score.to_string()))
        .collect();
    reply::spam_rejected(
        &breakdown.total().to_string(),
        &app.policy.threshold.to_string(),
        &symbols,
        reference,
    )
}

fn blocked_reply(breakdown: &Breakdown, reference: &str) -> Reply {
    let sorted = breakdown.sorted();
    let (name, score) = sorted.first().map_or(("", String::new()), |s| {
        (s.hit.name.as_str(), s.score.to_string())
    });
    reply::blocked(name, &score, reference)
}

/// The envelope a message is judged with offline.
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

/// Where an offline run stopped, as a session would have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// HELO refused.
    Helo,
    /// MAIL refused.
    Mail,
    /// Every RCPT refused: no DATA.
    Rcpt,
    /// The message was judged.
    Data,
}

/// What [`judge`] found.
#[derive(Debug, Clone)]
pub struct Judgement {
    /// Every symbol found up to where it stopped, weighed.
    pub breakdown: Breakdown,
    /// Where it stopped.
    pub stop: Stop,
    /// The decision (of the refusing phase, or of the message).
    pub action: Action,
    /// The reply the client would get; `None` for delivery (`250` from the
    /// MTA) and for the SPAM-alert path.
    pub reply: Option<Reply>,
    /// Recipients a RCPT check refused, with their replies.
    pub refused: Vec<(Address, Reply)>,
    /// Bounce mode: who the SPAM alert would go to.
    pub alert_to: Option<String>,
    /// The reference this run got.
    pub reference: String,
}

/// Runs one message through the phases exactly as a session does (the
/// upstream assumed to accept every recipient): the same checks, the same
/// early stop after a forced refusal, the same decision and reply.
pub async fn judge(app: &App, envelope: &Envelope, raw: &[u8]) -> Result<Judgement, CheckError> {
    let reference = new_reference();
    let mut breakdown = Breakdown::with_caps(Arc::clone(&app.caps));
    let base = View::new(
        envelope.client_ip,
        &envelope.helo,
        false,
        envelope.login.as_deref(),
        &app.config.relay,
    );
    let stopped = |breakdown, stop, result: PhaseResult, reply, refused| Judgement {
        breakdown,
        stop,
        action: result.action,
        reply,
        refused,
        alert_to: None,
        reference: reference.clone(),
    };
    let phase_into = |breakdown: &mut Breakdown, result: &PhaseResult| {
        for s in &result.found {
            breakdown.push(s.clone());
        }
    };
    let helo = run_phase(app, Phase::Helo, &base).await?;
    phase_into(&mut breakdown, &helo);
    if let Some(r) = phase_reply(&helo, None).filter(|_| helo.action != Action::Block) {
        return Ok(stopped(breakdown, Stop::Helo, helo, Some(r), Vec::new()));
    }
    let mut accepted: Vec<Address> = Vec::new();
    let mail_view = base.with_transaction(&envelope.sender, &accepted);
    let mail = run_phase(app, Phase::Mail, &mail_view).await?;
    if let Some(r) = phase_reply(&mail, None).filter(|_| mail.action != Action::Block) {
        phase_into(&mut breakdown, &mail);
        return Ok(stopped(breakdown, Stop::Mail, mail, Some(r), Vec::new()));
    }
    phase_into(&mut breakdown, &mail);
    let mut refused = Vec::new();
    let mut refused_found: Vec<ScoredSymbol> = Vec::new();
    for rcpt in &envelope.recipients {
        let view = base
            .with_transaction(&envelope.sender, &accepted)
            .with_recipient(rcpt);
        let result = run_phase(app, Phase::Rcpt, &view).await?;
        match phase_reply(&result, Some(rcpt)) {
            Some(r) => {
                // A refused recipient's symbols do not count towards the
                // message (a session drops them too).
                refused_found.extend(result.found);
                refused.push((rcpt.clone(), r));
            }
            None => {
                phase_into(&mut breakdown, &result);
                accepted.push(rcpt.clone());
            }
        }
    }
    if accepted.is_empty() {
        // Nothing reaches DATA: what refused the recipients is the story.
        for s in refused_found {
            breakdown.push(s);
        }
        let last = refused.last().map(|(_, r)| r.clone());
        let action = decide_phase(breakdown.symbols());
        return Ok(Judgement {
            breakdown,
            stop: Stop::Rcpt,
            action,
            reply: last.or_else(|| Some(reply::no_valid_recipients())),
            refused,
            alert_to: None,
            reference,
        });
    }
    let budget = app.config.scoring.analysis_timeout.0;
    let parsed = crate::checks::off_worker(raw.len(), || Parsed::parse_within(raw, budget));
    let view = base
        .with_transaction(&envelope.sender, &accepted)
        .with_message(raw, &parsed);
    let data = run_phase(app, Phase::Data, &view).await?;
    phase_into(&mut breakdown, &data);
    let action = decide_message(app, &mut breakdown);
    let mut reply = message_reply(app, &action, &breakdown, &reference);
    let mut alert_to = None;
    if reply.is_none() && action != Action::Pass {
        // Bounce mode: the alert path decides, as in a session.
        alert_to = alert_recipient(app, envelope.login.as_deref(), &envelope.sender, &parsed);
        if alert_to.is_none() {
            reply = Some(stopped_reply(app, &action, &breakdown, &reference));
        }
    }
    Ok(Judgement {
        breakdown,
        stop: Stop::Data,
        action,
        reply,
        refused,
        alert_to,
        reference,
    })
}

/// `data` with CRLF line ends, reusing it when it has no bare LF.
pub fn into_crlf(data: Vec<u8>) -> Vec<u8> {
    let bare = data
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || data[i - 1] != b'\r'));
    if bare {
        to_crlf(&data)
    } else {
        data
    }
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

/// After the upstream answered a RCPT: a hard bounce about the recipient
/// teaches the known-bad list (the session only reports the reply).
pub async fn upstream_answered_rcpt(app: &App, recipient: &Address, reply: &Reply) {
    if reply.class() == 5 {
        crate::checks::envelope::learn_bad_recipient(
            &app.config,
            app.store.as_ref(),
            &app.recent,
            &recipient.to_string(),
            reply.code,
            &reply.enhanced,
            &reply.text(),
        )
        .await;
    }
}
