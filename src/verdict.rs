//! A transaction's story for `smtpgate why REF` (and the console's message
//! page): read from the message history, so it works with either store and
//! for delivered mail as well as stopped mail.

use crate::history::Record;
use crate::score::{Breakdown, Score, ScoredSymbol, SymbolTable};
use std::time::{Duration, UNIX_EPOCH};

/// The breakdown of `record`, weighed as it was (its scores), with the
/// current rules' actions and groups.
pub fn breakdown(record: &Record, symbols: &SymbolTable) -> Breakdown {
    let mut b = Breakdown::default();
    for s in &record.symbols {
        let def = symbols.get(&s.name);
        b.push(ScoredSymbol {
            hit: s.hit(),
            score: Score::from_f64(s.score),
            action: def.and_then(|d| d.action).filter(|_| !s.shadow),
            group: def.map(|d| d.group.clone()).unwrap_or_default(),
            shadow: s.shadow,
        });
    }
    b
}

/// What `smtpgate why` prints.
pub fn story(record: &Record, symbols: &SymbolTable) -> String {
    let date = crate::smtp::received::rfc5322_date(UNIX_EPOCH + Duration::from_secs(record.time));
    let client = match &record.client_name {
        Some(name) => format!("{} [{}]", name, record.client_ip),
        None => record.client_ip.clone(),
    };
    let mut out = format!(
        "Reference: {}\nDate: {date}\nClient: {client} ({})\n",
        record.reference, record.helo
    );
    if let Some(login) = &record.login {
        out.push_str(&format!("Login: {login}\n"));
    }
    out.push_str(&format!(
        "From: <{}>\nTo: {}\n",
        record.from,
        record.rcpts.join(", ")
    ));
    if let Some(id) = &record.message_id {
        out.push_str(&format!("Message-ID: <{id}>\n"));
    }
    if let Some(subject) = &record.subject {
        out.push_str(&format!("Subject: {subject}\n"));
    }
    out.push_str(&format!(
        "Action: {}\nReply: {}\n\n{}",
        record.action,
        record.reply,
        crate::bounce::breakdown_text(
            &breakdown(record, symbols),
            symbols,
            Score::from_f64(record.threshold)
        ),
    ));
    out
}
