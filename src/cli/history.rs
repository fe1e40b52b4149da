//! `smtpgate history` and `smtpgate why`: the message history from the
//! command line.

use crate::history::{Query, Record};
use std::path::Path;
use std::process::ExitCode;

/// The flags of `smtpgate history`, named as the HTTP API's parameters.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HistoryArgs {
    /// The sender: an address, or @DOMAIN for any sender of the domain.
    #[arg(long)]
    pub from: Option<String>,
    /// A recipient: an address, or @DOMAIN.
    #[arg(long)]
    pub rcpt: Option<String>,
    /// The SMTP AUTH login.
    #[arg(long)]
    pub login: Option<String>,
    /// The client's IP address.
    #[arg(long)]
    pub ip: Option<String>,
    /// The action: delivered, spam, blocked, refused, tempfail, ...
    #[arg(long)]
    pub action: Option<String>,
    /// The Message-ID.
    #[arg(long = "message-id")]
    pub message_id: Option<String>,
    /// Only the last SPAN (30m, 2h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// At most N, newest first (default 100).
    #[arg(long)]
    pub limit: Option<usize>,
    /// One JSON array of records (fields: docs/api.md).
    #[arg(long)]
    pub json: bool,
}

impl HistoryArgs {
    /// The flags as `name=value` pairs (the API's query parameters).
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut put = |name: &str, value: &Option<String>| {
            if let Some(v) = value {
                out.push((name.to_string(), v.clone()));
            }
        };
        put("from", &self.from);
        put("rcpt", &self.rcpt);
        put("login", &self.login);
        put("ip", &self.ip);
        put("action", &self.action);
        put("message_id", &self.message_id);
        put("since", &self.since);
        put("limit", &self.limit.map(|n| n.to_string()));
        out
    }
}

/// One line per record: time, reference, action, score, client, login,
/// sender, recipients, subject.
pub fn line(r: &Record) -> String {
    let time = crate::smtp::received::rfc5322_date(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.time),
    );
    format!(
        "{time}  {}  {:<16} {:>6.2}  {} {} <{}> -> {}  {}",
        r.reference,
        r.action,
        r.score,
        r.client_ip,
        r.login
            .as_deref()
            .map_or(String::new(), |l| format!("login={l}")),
        r.from,
        r.rcpts.join(","),
        r.subject.as_deref().unwrap_or(""),
    )
}

/// `smtpgate history`: 0 with matches, 1 with none, 2 on a usage or
/// configuration error.
pub fn run(path: &Path, args: &HistoryArgs) -> ExitCode {
    let query = match Query::from_pairs(&args.pairs()) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let (app, runtime) = match super::app_and_runtime(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let records = if app.store.backend() == "memory" {
        // The history lives in the running gateway: ask its API.
        let q: Vec<String> = args
            .pairs()
            .iter()
            .map(|(k, v)| format!("{k}={}", super::encode(v)))
            .collect();
        match super::remote_json::<Vec<Record>>(
            &app,
            "GET",
            &format!("/api/history?{}", q.join("&")),
        ) {
            Ok(Some(r)) => r,
            Ok(None) => Vec::new(),
            Err(code) => return code,
        }
    } else {
        match runtime.block_on(app.history.query(&query)) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(75);
            }
        }
    };
    print_records(&records, args.json);
    if records.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints records as lines or as one JSON array.
pub fn print_records(records: &[Record], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(records).unwrap_or_default()
        );
    } else {
        for r in records {
            println!("{}", line(r));
        }
    }
}

/// `smtpgate why REF`: the transaction's story, 0 when found, 1 when not.
pub fn why(path: &Path, reference: &str) -> ExitCode {
    let (app, runtime) = match super::app_and_runtime(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let found = if app.store.backend() == "memory" {
        #[derive(serde::Deserialize)]
        struct Message {
            record: Record,
        }
        let path = format!("/api/messages/{}", super::encode(reference.trim()));
        match super::remote_json::<Message>(&app, "GET", &path) {
            Ok(m) => Ok(m.map(|m| m.record)),
            Err(code) => return code,
        }
    } else {
        runtime.block_on(app.history.get(reference))
    };
    match found {
        Ok(Some(record)) => {
            print!("{}", crate::verdict::story(&record, &app.symbols));
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!(
                "no transaction with reference {reference} in the history (kept {})",
                app.config.history.keep
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(75)
        }
    }
}
