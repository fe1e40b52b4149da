//! `smtpgate check` and `POST /api/check`: one message run offline through
//! the same pipeline as `serve` (`pipeline::judge`), reported as the text
//! `check` prints or as the JSON that `check --json` prints and the API
//! returns — built here, once, for both.

use crate::action::Action;
use crate::address::parse_typed;
use crate::app::App;
use crate::bounce::{breakdown_text, explain_all};
use crate::config::SpamAction;
use crate::message::Parsed;
use crate::pipeline::{self, into_crlf, Envelope, Judgement, Stop};
use crate::smtp::reply;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The client address assumed when none is given.
pub const DEFAULT_IP: &str = "127.0.0.1";
/// The HELO name assumed when none is given.
pub const DEFAULT_HELO: &str = "localhost.localdomain";

/// The envelope as given on the command line or in the API's query; what
/// is missing comes from the message's headers.
#[derive(Debug, Clone)]
pub struct Given {
    /// Envelope sender (default: the From header's address).
    pub from: Option<String>,
    /// Envelope recipients (default: the To and Cc addresses).
    pub rcpts: Vec<String>,
    /// The client's address.
    pub ip: IpAddr,
    /// The HELO name.
    pub helo: String,
    /// The SMTP AUTH login.
    pub login: Option<String>,
}

/// Why a given envelope cannot be judged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GivenError {
    /// `from` or a `rcpt` is not an address.
    #[error("{field}={value}: {why}")]
    Address {
        /// `from` or `rcpt`.
        field: &'static str,
        /// What was given.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// No recipient given and none in the headers.
    #[error("no recipient: give rcpt=ADDR or a To header")]
    NoRecipient,
}

impl GivenError {
    /// The message in the command line's words (`--from ADDR`).
    pub fn cli_message(&self) -> String {
        match self {
            GivenError::Address { field, value, why } => format!("--{field} {value}: {why}"),
            GivenError::NoRecipient => "no recipient: give --rcpt ADDR or a To header".into(),
        }
    }
}

/// The envelope of `given`, completed from the message's headers.
pub fn envelope(given: &Given, parsed: &Parsed) -> Result<Envelope, GivenError> {
    let address = |value: &str, field: &'static str| {
        parse_typed(value, field == "from").map_err(|e| GivenError::Address {
            field,
            value: value.to_string(),
            why: e.to_string(),
        })
    };
    let from = given
        .from
        .clone()
        .or_else(|| parsed.from.as_ref().and_then(|(_, a)| a.clone()))
        .unwrap_or_default();
    let rcpts = if given.rcpts.is_empty() {
        parsed.to.clone()
    } else {
        given.rcpts.clone()
    };
    let envelope = Envelope {
        client_ip: given.ip,
        helo: given.helo.clone(),
        sender: address(&from, "from")?,
        recipients: rcpts
            .iter()
            .map(|r| address(r, "rcpt"))
            .collect::<Result<_, _>>()?,
        login: given.login.clone(),
    };
    if envelope.recipients.is_empty() {
        return Err(GivenError::NoRecipient);
    }
    Ok(envelope)
}

/// What one check found, in both shapes.
#[derive(Debug, Clone)]
pub struct Report {
    /// `check --json`'s object (the API's answer): stable field names.
    pub json: serde_json::Value,
    /// `check`'s text.
    pub text: String,
    /// The exit status, as `spamc -c`: 0 pass, 1 stopped, 75 tempfail.
    pub exit: u8,
}

/// Judges `raw` (CRLF line ends) under `envelope` and reports it.
pub async fn report(app: &App, envelope: &Envelope, raw: &[u8]) -> Report {
    let judged = match pipeline::judge(app, envelope, raw).await {
        Ok(judged) => judged,
        Err(e) => {
            return Report {
                json: serde_json::json!({"action": "tempfail", "error": e.to_string()}),
                text: format!(
                    "Action: tempfail ({e}; a session would answer {})\n",
                    reply::check_tempfail()
                ),
                exit: 75,
            }
        }
    };
    let trusted = app.config.relay.is_trusted(envelope.client_ip);
    let (action, exit) = describe(&judged);
    let reply = judged.reply.as_ref().map(ToString::to_string);
    let refused: Vec<serde_json::Value> = judged
        .refused
        .iter()
        .map(|(a, r)| serde_json::json!({"rcpt": a.to_string(), "reply": r.to_string()}))
        .collect();
    let json = serde_json::json!({
        "client": {
            "ip": envelope.client_ip.to_string(),
            "helo": envelope.helo,
            "login": envelope.login,
            "trusted": trusted,
        },
        "from": envelope.sender.to_string(),
        "rcpts": envelope.recipients.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "score": judged.breakdown.total().0 as f64 / 100.0,
        "threshold": app.policy.threshold.0 as f64 / 100.0,
        "action": action,
        "reply": reply,
        "refused": refused,
        "alert_to": judged.alert_to,
        "reference": judged.reference,
        "symbols": explain_all(&judged.breakdown, &app.symbols),
    });
    let text = text(app, envelope, &judged, trusted, &action, reply.as_deref());
    Report { json, text, exit }
}

/// `check`'s text: the client assumed, the envelope, the breakdown, the action.
fn text(
    app: &App,
    envelope: &Envelope,
    judged: &Judgement,
    trusted: bool,
    action: &str,
    reply: Option<&str>,
) -> String {
    let mut out = String::new();
    let how = match (&envelope.login, trusted) {
        (Some(l), _) => format!("authenticated as {l}"),
        (None, true) => "trusted: in relay.mynetworks".to_string(),
        (None, false) => "not trusted: not in relay.mynetworks, no login".to_string(),
    };
    let _ = writeln!(
        out,
        "Client: {} ({how}; relay checks depend on it: give --ip and --login as the customer connects)",
        envelope.client_ip
    );
    let rcpts: Vec<String> = envelope
        .recipients
        .iter()
        .map(|r| format!("<{r}>"))
        .collect();
    let _ = writeln!(
        out,
        "Envelope: from <{}> to {}",
        envelope.sender,
        rcpts.join(", ")
    );
    for (rcpt, r) in &judged.refused {
        let _ = writeln!(out, "Refused: <{rcpt}>: {r}");
    }
    out.push('\n');
    out.push_str(&breakdown_text(
        &judged.breakdown,
        &app.symbols,
        app.policy.threshold,
    ));
    out.push('\n');
    let _ = match (reply, &judged.alert_to) {
        (Some(r), _) => writeln!(out, "Action: {action} ({r})"),
        (None, Some(to)) => writeln!(out, "Action: {action} <{to}>"),
        (None, None) => writeln!(out, "Action: {action}"),
    };
    out
}

/// The action's name and `check`'s exit status, as `spamc -c` has them:
/// 0 delivered, 1 stopped (spam, blocked or refused), 75 a temporary
/// refusal (the client would retry).
fn describe(j: &Judgement) -> (String, u8) {
    let temporary = j.reply.as_ref().is_some_and(|r| r.class() == 4);
    let name = match (j.stop, &j.action) {
        (Stop::Helo, _) => "reject at HELO",
        (Stop::Mail, _) => "reject at MAIL",
        (Stop::Rcpt, _) => "reject at RCPT",
        (Stop::Data, Action::Pass) => "pass",
        (Stop::Data, Action::Refuse { .. }) => "reject",
        (Stop::Data, Action::Block) if j.alert_to.is_some() => {
            "block: SPAM alert to the originator"
        }
        (Stop::Data, Action::Block) => "block",
        (Stop::Data, Action::Spam(SpamAction::Bounce)) if j.alert_to.is_none() => {
            "spam: reject (no alert recipient)"
        }
        (Stop::Data, Action::Spam(SpamAction::Reject)) => "spam: reject",
        (Stop::Data, Action::Spam(SpamAction::Bounce)) => "spam: SPAM alert to the originator",
    };
    let code = match (&j.action, temporary) {
        (_, true) => 75,
        (Action::Pass, false) if j.stop == Stop::Data => 0,
        _ => 1,
    };
    let name = if temporary {
        name.replace("reject", "tempfail")
    } else {
        name.to_string()
    };
    (name, code)
}

/// With the memory store the anomaly holds live inside the running
/// gateway: the hold of the envelope's identity (the login, else the
/// client IP), asked of its API, is kept in this process's store for the
/// one check, so that the MAIL check answers as `serve` would. No gateway
/// listening means no hold (the memory store ends with the process).
fn see_remote_hold(
    app: &App,
    envelope: &Envelope,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), String> {
    if app.store.backend() != "memory" || !app.config.anomaly.enabled {
        return Ok(());
    }
    let who = crate::anomaly::identity(
        &envelope
            .login
            .clone()
            .unwrap_or_else(|| envelope.client_ip.to_string()),
    );
    let unseen = |why: String| format!("a hold of {who} is not seen: {why}");
    let path = format!("/api/holds/{}", super::encode(&who));
    let (status, body) = match super::remote(app, "GET", &path) {
        Ok(answer) => answer,
        Err(e) if e.contains("refused") => return Ok(()),
        Err(e) => return Err(unseen(e)),
    };
    match status {
        200 => {
            let hold: crate::anomaly::Hold = serde_json::from_slice(&body)
                .map_err(|e| unseen(format!("the API's answer is not a hold: {e}")))?;
            runtime
                .block_on(app.anomaly.anomaly().keep(&hold))
                .map_err(|e| unseen(e.to_string()))
        }
        404 => Ok(()),
        status => Err(unseen(format!(
            "the gateway's API answered {path} with {status}"
        ))),
    }
}

/// `smtpgate check`: loads `config`, reads `file` (`-`: standard input),
/// judges it and prints the text or (`json`) the JSON. Exit status 2 for a
/// bad configuration, file or envelope.
pub fn run(config: &Path, given: Given, json: bool, file: PathBuf) -> ExitCode {
    let app = match App::load(config, None) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let raw = if file.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v).map(|_| v)
    } else {
        std::fs::read(&file)
    };
    let raw = match raw {
        Ok(raw) => into_crlf(raw),
        Err(e) => {
            eprintln!("{}: cannot read: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let envelope = match envelope(&given, &Parsed::parse(&raw)) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{}", e.cli_message());
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = super::small_runtime() else {
        return ExitCode::FAILURE;
    };
    if let Err(e) = see_remote_hold(&app, &envelope, &runtime) {
        eprintln!("note: {e}");
    }
    let report = runtime.block_on(report(&app, &envelope, &raw));
    if json {
        println!("{:#}", report.json);
    } else {
        print!("{}", report.text);
    }
    ExitCode::from(report.exit)
}
