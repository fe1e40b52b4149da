//! The SPAM alert message: an RFC 3464 delivery status notification to the
//! originator that lists every symbol with its score, what it means and how
//! to fix it (DESIGN §6). Also the plain breakdown that `smtpgate check`
//! prints: the same text, from the same function.

use crate::base64::encode as base64;
use crate::score::{Breakdown, Score, ScoredSymbol, SymbolTable};
use crate::smtp::received::rfc5322_date;
use std::fmt::Write as _;
use std::time::SystemTime;

/// Everything the alert says.
pub struct Alert<'a> {
    /// Our hostname (Reporting-MTA, Message-ID domain).
    pub hostname: &'a str,
    /// The message reference.
    pub reference: &'a str,
    /// Who receives the alert.
    pub originator: &'a str,
    /// The envelope recipients of the stopped message.
    pub recipients: &'a [String],
    /// The stopped message's header block (as received).
    pub original_headers: &'a [u8],
    /// Its Message-ID (without brackets), if any.
    pub message_id: Option<&'a str>,
    /// Its Subject, if any.
    pub subject: Option<&'a str>,
    /// The verdict.
    pub breakdown: &'a Breakdown,
    /// Descriptions and fixes.
    pub symbols: &'a SymbolTable,
    /// The threshold.
    pub threshold: Score,
    /// Earlier messages with the same symbols not reported separately.
    pub merged: u64,
    /// When the message arrived.
    pub arrival: SystemTime,
}

/// One symbol of a breakdown as the SPAM alert explains it: its weight,
/// whether it stops the message alone, its details, and from the rules
/// what it means and how to fix it (`None` for a symbol the rules do not
/// know). `smtpgate check --json`, `POST /api/check` and the console's
/// message page show these, in [`explain`]'s order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Explained {
    /// The symbol.
    pub name: String,
    /// Its score (hundredths exact; a number like 5.0 in JSON).
    #[serde(serialize_with = "score_number")]
    pub score: Score,
    /// True when it stops the message whatever the total.
    pub blocking: bool,
    /// A shadow rule's hit: recorded, adding nothing (its score is what it
    /// would add).
    pub shadow: bool,
    /// Details: what it is about (an address, a record, a URL).
    pub options: Vec<String>,
    /// One line saying what it means.
    pub description: Option<String>,
    /// Advice for the sender.
    pub fix: Option<String>,
}

fn score_number<S: serde::Serializer>(score: &Score, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(score.0 as f64 / 100.0)
}

/// The symbols that count in `breakdown` in the alert's order (blocking
/// first, then highest score first, then by name), each with its
/// description and fix: what a sender is shown.
pub fn explain(breakdown: &Breakdown, symbols: &SymbolTable) -> Vec<Explained> {
    explained(breakdown.sorted(), symbols)
}

/// [`explain`], then the shadow rules' hits: the operator's view (`check
/// --json`, the API, the console).
pub fn explain_all(breakdown: &Breakdown, symbols: &SymbolTable) -> Vec<Explained> {
    explained(breakdown.sorted_all(), symbols)
}

fn explained(sorted: Vec<&ScoredSymbol>, symbols: &SymbolTable) -> Vec<Explained> {
    sorted
        .into_iter()
        .map(|s| {
            let def = symbols.get(&s.hit.name);
            Explained {
                name: s.hit.name.clone(),
                score: s.score,
                blocking: s.blocks(),
                shadow: s.shadow,
                options: s.hit.options.clone(),
                description: def.map(|d| d.description.clone()),
                fix: def.map(|d| d.fix.clone()),
            }
        })
        .collect()
}

/// The human-readable breakdown: "Score: X (must be lower T)", then every
/// symbol (blocking first, then highest score first) with its description,
/// details and fix, then the advice.
pub fn breakdown_text(breakdown: &Breakdown, symbols: &SymbolTable, threshold: Score) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Score: {} (must be lower {threshold})",
        breakdown.total()
    );
    out.push_str("Symbols:\n");
    for s in explain(breakdown, symbols) {
        let blocking = if s.blocking {
            " \u{2014} blocks sending on its own"
        } else {
            ""
        };
        let _ = writeln!(out, "  {} ({}){blocking}", s.name, s.score);
        if s.description.is_none() {
            continue;
        }
        if let Some(d) = s.description.filter(|d| !d.is_empty()) {
            let _ = writeln!(out, "      {d}");
        }
        if !s.options.is_empty() {
            let _ = writeln!(out, "      Details: {}", s.options.join("; "));
        }
        if let Some(fix) = s.fix.filter(|f| !f.is_empty()) {
            let _ = writeln!(out, "      Fix: {fix}");
        }
    }
    let shadows: Vec<_> = breakdown
        .sorted_all()
        .into_iter()
        .filter(|s| s.shadow)
        .collect();
    if !shadows.is_empty() {
        out.push_str("Shadow rules (recorded, not counted):\n");
        for s in shadows {
            let _ = writeln!(out, "  {} (shadow {})", s.hit.name, s.score);
            if !s.hit.options.is_empty() {
                let _ = writeln!(out, "      Details: {}", s.hit.options.join("; "));
            }
        }
    }
    out.push('\n');
    out.push_str("Start with the symbols with the highest scores: they have the most influence.\n");
    let _ = writeln!(
        out,
        "When the score is lower than {threshold}, your messages will be sent."
    );
    out
}

impl Alert<'_> {
    /// The text/plain part.
    pub fn text(&self) -> String {
        let mut out =
            String::from("Your message was not sent: the outgoing quality gateway stopped it.\n\n");
        let id = self
            .message_id
            .map_or_else(|| "(none)".to_string(), |m| format!("<{m}>"));
        let _ = writeln!(
            out,
            "  Message-ID: {id}     To: {}     Reference: {}",
            self.recipients.join(", "),
            self.reference
        );
        if let Some(subject) = self.subject {
            let _ = writeln!(out, "  Subject: {subject}");
        }
        if self.merged > 0 {
            let _ = writeln!(
                out,
                "\n  {} earlier message(s) from you were stopped for the same reasons in the last\n  10 minutes and were not reported separately.",
                self.merged
            );
        }
        out.push('\n');
        // (a shadow rule is the operator's experiment: never shown to a sender)
        out.push_str(&breakdown_text(
            &self.breakdown.counted_only(),
            self.symbols,
            self.threshold,
        ));
        out
    }

    /// The whole alert message (headers and body, CRLF line ends).
    pub fn message(&self) -> Vec<u8> {
        let boundary = format!("=_smtpgate_{}", self.reference);
        let date = rfc5322_date(self.arrival);
        let subject = format!("SPAM alert: {}", self.subject.unwrap_or("(no subject)"));
        let mut m = String::new();
        let _ = write!(
            m,
            "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
             To: <{to}>\r\n\
             Subject: {subject}\r\n\
             Date: {date}\r\n\
             Message-ID: <alert.{reference}@{host}>\r\n\
             Auto-Submitted: auto-replied\r\n\
             X-Smtpgate-Reference: {reference}\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\
             \r\n\
             This is a MIME-encapsulated message.\r\n\
             \r\n\
             --{boundary}\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\
             Content-Description: Notification\r\n\
             \r\n\
             {text}\r\n\
             --{boundary}\r\n\
             Content-Type: message/delivery-status\r\n\
             Content-Description: Delivery report\r\n\
             \r\n\
             Reporting-MTA: dns; {host}\r\n\
             X-Smtpgate-Reference: {reference}\r\n\
             Arrival-Date: {date}\r\n",
            host = self.hostname,
            to = self.originator,
            subject = encode_header(&subject),
            reference = self.reference,
            text = quoted_printable(&self.text()),
        );
        let diagnostic = format!(
            "smtp; 550 5.7.1 SPAM alert: score {} (must be lower {}) ref={}",
            self.breakdown.total(),
            self.threshold,
            self.reference
        );
        for rcpt in self.recipients {
            let _ = write!(
                m,
                "\r\nFinal-Recipient: rfc822; {rcpt}\r\n\
                 Action: failed\r\n\
                 Status: 5.7.1\r\n\
                 Diagnostic-Code: {diagnostic}\r\n"
            );
        }
        let _ = write!(
            m,
            "\r\n--{boundary}\r\n\
             Content-Type: text/rfc822-headers\r\n\
             Content-Description: Undelivered message headers\r\n\
             \r\n"
        );
        let mut out = m.into_bytes();
        let headers = self.original_headers;
        out.extend_from_slice(headers);
        if !headers.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        out
    }
}

/// A header value: as is when ASCII, else an RFC 2047 B-encoded word.
pub(super) fn encode_header(value: &str) -> String {
    let clean: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.is_ascii() {
        return clean;
    }
    format!("=?UTF-8?B?{}?=", base64(clean.as_bytes()))
}

/// Quoted-printable (RFC 2045 §6.7) with CRLF line ends and soft breaks
/// keeping lines within 76 characters.
pub fn quoted_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for (n, line) in text.split('\n').enumerate() {
        if n > 0 {
            out.push_str("\r\n");
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        let bytes = line.as_bytes();
        let mut width = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let literal =
                (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let piece_len = if literal { 1 } else { 3 };
            if width + piece_len > 75 {
                out.push_str("=\r\n");
                width = 0;
            }
            if literal {
                out.push(b as char);
            } else {
                let _ = write!(out, "={b:02X}");
            }
            width += piece_len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_is_7bit_and_short() {
        let qp = quoted_printable(&format!("a \u{2014} b=c {}\nend ", "x".repeat(100)));
        assert!(qp.is_ascii());
        assert!(qp.split("\r\n").all(|l| l.len() <= 76), "{qp}");
        assert!(qp.starts_with("a =E2=80=94 b=3Dc "));
        assert!(qp.ends_with("end=20"));
    }
}
