//! Every SMTP reply smtpgate sends: code, RFC 3463 enhanced code and text.
//! Texts and codes live here only, so operators and tests find them in one place.

mod symbol;

use std::fmt;
pub use symbol::{for_hit, for_symbol};

/// One SMTP reply: a three-digit code, an enhanced status code and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The basic reply code, e.g. 250.
    pub code: u16,
    /// The RFC 3463 enhanced status code, e.g. "2.0.0".
    pub enhanced: String,
    /// Text lines; more than one makes a multi-line reply.
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: enhanced.to_string(),
            lines: vec![text.into()],
        }
    }

    /// The reply's class: 2, 3, 4 or 5.
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    /// True for a 2xx reply.
    pub fn is_positive(&self) -> bool {
        self.class() == 2
    }

    /// True for a 4xx reply.
    pub fn is_transient(&self) -> bool {
        self.class() == 4
    }

    /// True for a permanent refusal of the address itself (5.1.x: no such
    /// mailbox, bad domain), as opposed to a policy refusal.
    pub fn refuses_address(&self) -> bool {
        self.class() == 5 && self.enhanced.starts_with("5.1.")
    }

    /// The text of all lines joined with a space (for logs).
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// Appends the wire form (CRLF-terminated lines) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            // RFC 2034 §3 exempts the greeting and the HELO/EHLO replies.
            if self.enhanced.is_empty() {
                out.extend_from_slice(format!("{}{}{}\r\n", self.code, sep, line).as_bytes());
            } else {
                out.extend_from_slice(
                    format!("{}{}{} {}\r\n", self.code, sep, self.enhanced, line).as_bytes(),
                );
            }
        }
        if self.lines.is_empty() {
            out.extend_from_slice(format!("{} {}\r\n", self.code, self.enhanced).as_bytes());
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.enhanced.is_empty() {
            write!(f, "{} {}", self.code, self.text())
        } else {
            write!(f, "{} {} {}", self.code, self.enhanced, self.text())
        }
    }
}

/// The enhanced code to use when a peer's reply carries none (RFC 3463 §3).
pub fn default_enhanced(code: u16) -> &'static str {
    match code / 100 {
        2 => "2.0.0",
        4 => "4.0.0",
        _ => "5.0.0",
    }
}

/// 220 greeting.
pub fn greeting(hostname: &str) -> Reply {
    Reply::new(220, "", format!("{hostname} ESMTP smtpgate"))
}

/// The EHLO reply: hostname, then one extension keyword per line.
pub fn ehlo(hostname: &str, extensions: Vec<String>) -> Reply {
    let mut lines = vec![hostname.to_string()];
    lines.extend(extensions);
    Reply {
        code: 250,
        enhanced: String::new(),
        lines,
    }
}

/// The HELO reply.
pub fn helo(hostname: &str) -> Reply {
    Reply::new(250, "", hostname)
}

/// Generic success (RSET, NOOP, XFORWARD).
pub fn ok() -> Reply {
    Reply::new(250, "2.0.0", "Ok")
}

/// MAIL accepted.
pub fn mail_ok() -> Reply {
    Reply::new(250, "2.1.0", "Ok")
}

/// DATA go-ahead.
pub fn start_data() -> Reply {
    Reply::new(354, "", "End data with <CR><LF>.<CR><LF>")
}

/// QUIT.
pub fn bye() -> Reply {
    Reply::new(221, "2.0.0", "Bye")
}

/// VRFY is never answered truthfully (RFC 5321 §3.5.3).
pub fn vrfy() -> Reply {
    Reply::new(
        252,
        "2.5.0",
        "Cannot VRFY user, but will accept message and attempt delivery",
    )
}

/// HELP.
pub fn help() -> Reply {
    Reply::new(214, "2.0.0", "smtpgate: see RFC 5321; commands EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS")
}

/// STARTTLS accepted: the handshake follows.
pub fn tls_ready() -> Reply {
    Reply::new(220, "2.0.0", "Ready to start TLS")
}

/// STARTTLS without a configured certificate.
pub fn tls_unavailable() -> Reply {
    Reply::new(454, "4.7.0", "TLS not available")
}

/// STARTTLS on a session already encrypted.
pub fn tls_active() -> Reply {
    Reply::new(503, "5.5.1", "Error: TLS already active")
}

/// STARTTLS in the middle of a mail transaction.
pub fn tls_in_transaction() -> Reply {
    Reply::new(
        503,
        "5.5.1",
        "Error: STARTTLS not allowed during a mail transaction",
    )
}

/// A command line over its limit (RFC 5321 §4.5.3.1.4).
pub fn line_too_long() -> Reply {
    Reply::new(500, "5.5.2", "Error: line too long")
}

/// A NUL octet in a command line.
pub fn nul_in_command() -> Reply {
    Reply::new(500, "5.5.2", "Error: NUL character in command")
}

/// Not a command we know.
pub fn unknown_command() -> Reply {
    Reply::new(502, "5.5.2", "Error: command not recognized")
}

/// A command we know, with arguments we cannot parse.
pub fn syntax(what: &str) -> Reply {
    Reply::new(501, "5.5.4", format!("Syntax: {what}"))
}

/// An address that cannot be parsed.
pub fn bad_address(what: &str) -> Reply {
    Reply::new(501, "5.1.3", format!("Bad address syntax: {what}"))
}

/// An ESMTP parameter we do not support.
pub fn unsupported_parameter(param: &str) -> Reply {
    Reply::new(555, "5.5.4", format!("Unsupported option: {param}"))
}

/// Commands in the wrong order.
pub fn bad_sequence(what: &str) -> Reply {
    Reply::new(503, "5.5.1", format!("Error: {what}"))
}

/// Too many unknown or invalid commands: the session ends.
pub fn too_many_errors(hostname: &str) -> Reply {
    Reply::new(421, "4.7.0", format!("{hostname} Error: too many errors"))
}

/// Over `max_connections`.
pub fn too_many_connections(hostname: &str) -> Reply {
    Reply::new(
        421,
        "4.7.0",
        format!("{hostname} Error: too many connections"),
    )
}

/// One client holds `max_connections_per_client` connections already.
pub fn too_many_connections_from(hostname: &str, client: &str) -> Reply {
    let text = format!("{hostname} Error: too many connections from {client}");
    Reply::new(421, "4.7.0", text)
}

/// One client opened `max_connection_rate_per_client` connections this minute.
pub fn connection_rate_exceeded(hostname: &str, client: &str) -> Reply {
    let text = format!("{hostname} Error: too many connections per minute from {client}");
    Reply::new(421, "4.7.0", text)
}

/// The gateway is stopping.
pub fn shutting_down(hostname: &str) -> Reply {
    Reply::new(
        421,
        "4.3.2",
        format!("{hostname} Service shutting down, closing transmission channel"),
    )
}

/// The client was silent or too slow.
pub fn timeout(hostname: &str) -> Reply {
    Reply::new(421, "4.4.2", format!("{hostname} Error: timeout exceeded"))
}

/// A bug (a panic) while handling a command: the session ends, and the
/// client, told 421, keeps its message and tries again.
pub fn internal_error(hostname: &str) -> Reply {
    Reply::new(
        421,
        "4.3.0",
        format!("{hostname} Error: internal error, closing connection"),
    )
}

/// SIZE= or the DATA itself is over the limit.
pub fn message_too_big() -> Reply {
    Reply::new(552, "5.3.4", "Error: message size exceeds fixed limit")
}

/// Over `max_recipients` (RFC 5321 §4.5.3.1.10: 452, and the client goes on).
pub fn too_many_recipients() -> Reply {
    Reply::new(452, "4.5.3", "Error: too many recipients")
}

/// DATA with no accepted recipient.
pub fn no_valid_recipients() -> Reply {
    Reply::new(554, "5.5.1", "Error: no valid recipients")
}

/// A bare LF or bare CR in DATA (SMTP smuggling): the session ends.
pub fn bare_newline(hostname: &str) -> Reply {
    Reply::new(
        521,
        "5.5.2",
        format!("{hostname} Error: bare <LF> or <CR> received; lines must end with <CR><LF>"),
    )
}

/// NUL octets in the message.
pub fn nul_in_message() -> Reply {
    Reply::new(550, "5.6.0", "Error: message contains NUL characters")
}

/// The upstream MTA cannot be reached.
pub fn upstream_unavailable() -> Reply {
    Reply::new(451, "4.4.1", "Upstream MTA unavailable, try again later")
}

/// The upstream MTA did not answer in time or dropped the connection.
pub fn upstream_lost() -> Reply {
    Reply::new(
        451,
        "4.4.2",
        "Upstream MTA connection lost, try again later",
    )
}

/// The upstream MTA answered in a way the protocol does not allow.
pub fn upstream_protocol_error() -> Reply {
    Reply::new(451, "4.3.0", "Upstream MTA protocol error, try again later")
}

/// XFORWARD from a client outside the listener's `xforward_from`
/// (Postfix's reply).
pub fn xforward_denied() -> Reply {
    Reply::new(550, "5.7.0", "Error: insufficient authorization")
}

/// XFORWARD that does not parse: `name` is the attribute at fault, or
/// `None` for a line without `attribute=value` pairs (Postfix's texts).
pub fn xforward_syntax(name: Option<&str>, unknown: bool) -> Reply {
    let text = match (name, unknown) {
        (None, _) => "Syntax: XFORWARD attribute=value...".to_string(),
        (Some(n), true) => format!("Bad XFORWARD attribute name: {n}"),
        (Some(n), false) => format!("Bad XFORWARD {n} syntax"),
    };
    Reply::new(501, "5.5.4", text)
}

/// MAIL with SMTPUTF8 while the upstream MTA does not offer it (RFC 6531
/// §3.6: 553 5.6.7), refused at MAIL before any recipient is accepted.
pub fn smtputf8_unsupported() -> Reply {
    Reply::new(
        553,
        "5.6.7",
        "Error: SMTPUTF8 is not supported by the upstream MTA; send with ASCII addresses",
    )
}

/// 8-bit octets in a message for an upstream without 8BITMIME (RFC 6152
/// §3: never pass them on; RFC 3463 5.6.3: conversion required).
pub fn eightbit_unsupported() -> Reply {
    Reply::new(
        554,
        "5.6.3",
        "Error: message has 8-bit content and the upstream MTA takes 7-bit only; encode it as quoted-printable or base64",
    )
}

/// The client's reply when the upstream queued the message: our own text,
/// with the upstream's queue id when it gave one.
pub fn delivered(queue_id: Option<&str>, reference: &str) -> Reply {
    match queue_id {
        Some(id) => Reply::new(250, "2.0.0", format!("Ok: queued as {id} ref={reference}")),
        None => Reply::new(250, "2.0.0", format!("Ok: queued ref={reference}")),
    }
}

/// A check could not complete (dependency failure): always transient.
pub fn check_tempfail() -> Reply {
    Reply::new(
        451,
        "4.3.0",
        "Temporary failure in a quality check, try again later",
    )
}

/// Spam in reject mode: one line with the score, the symbols (highest
/// first) and the reference, at most 510 characters (RFC 5321 §4.5.3.1.5).
pub fn spam_rejected(
    total: &str,
    threshold: &str,
    symbols: &[(String, String)],
    reference: &str,
) -> Reply {
    let mut text = format!("SPAM alert: score {total} (must be lower {threshold}):");
    let tail = format!(" ref={reference}");
    // "550 5.7.1 " takes 10 of the 510.
    let room = 510 - 10 - tail.len();
    for (name, score) in symbols {
        let item = format!(" {name}({score})");
        if text.len() + item.len() > room {
            text.push_str(" ...");
            break;
        }
        text.push_str(&item);
    }
    text.push_str(&tail);
    Reply::new(550, "5.7.1", text)
}

/// Bounce mode: the message was stopped and the SPAM alert delivered.
pub fn alert_sent(originator: &str, reference: &str) -> Reply {
    Reply::new(
        250,
        "2.0.0",
        format!("Ok: not relayed, SPAM alert sent to <{originator}> ref={reference}"),
    )
}

/// Bounce mode: stopped; an alert for the same reasons went out minutes ago.
pub fn alert_merged(originator: &str, reference: &str) -> Reply {
    Reply::new(
        250,
        "2.0.0",
        format!(
            "Ok: not relayed, merged into the last SPAM alert to <{originator}> ref={reference}"
        ),
    )
}

/// Bounce mode: the alert could not be delivered, so nothing was accepted.
pub fn alert_failed() -> Reply {
    Reply::new(
        451,
        "4.3.0",
        "Message stopped and the SPAM alert could not be delivered; try again later",
    )
}

/// AUTH: 334 challenge (base64 text, possibly empty).
pub fn auth_challenge(text: &str) -> Reply {
    Reply::new(334, "", text.to_string())
}

/// AUTH accepted.
pub fn auth_ok() -> Reply {
    Reply::new(235, "2.7.0", "Authentication successful")
}

/// AUTH with wrong credentials.
pub fn auth_failed() -> Reply {
    Reply::new(
        535,
        "5.7.8",
        "Error: authentication failed: credentials invalid",
    )
}

/// AUTH before TLS on a listener that requires it.
pub fn auth_needs_tls() -> Reply {
    Reply::new(
        538,
        "5.7.11",
        "Encryption required for requested authentication mechanism",
    )
}

/// AUTH could not be checked (store down, worker gone).
pub fn auth_tempfail() -> Reply {
    Reply::new(
        454,
        "4.7.0",
        "Temporary authentication failure, try again later",
    )
}

/// AUTH when not offered, or unknown mechanism.
pub fn auth_mechanism(mechanism: &str) -> Reply {
    Reply::new(
        504,
        "5.5.4",
        format!("Unrecognized authentication type {mechanism}"),
    )
}

/// AUTH exchange cancelled by the client with `*`.
pub fn auth_cancelled() -> Reply {
    Reply::new(501, "5.7.0", "Authentication cancelled")
}

/// AUTH response that is not valid base64 or not a valid PLAIN/LOGIN answer.
pub fn auth_malformed() -> Reply {
    Reply::new(501, "5.5.2", "Cannot decode response")
}

/// Too many failed AUTH attempts from this address.
pub fn auth_locked(hostname: &str) -> Reply {
    Reply::new(
        421,
        "4.7.0",
        format!("{hostname} Too many failed authentication attempts, try again later"),
    )
}

/// One recipient stopped by a blocking symbol (the others go on).
pub fn recipient_blocked(symbol: &str, score: &str, recipient: &str) -> Reply {
    let (code, enhanced, why) = match symbol {
        "reject_known_bad_recipient_address" => (550, "5.1.1", "hard-bounced before"),
        _ => (550, "5.7.1", "blocked"),
    };
    Reply::new(
        code,
        enhanced,
        format!("<{recipient}>: Recipient address rejected: {why}: {symbol} ({score}) blocks sending on its own"),
    )
}

/// A message stopped by a blocking symbol.
pub fn blocked(symbol: &str, score: &str, reference: &str) -> Reply {
    Reply::new(
        550,
        "5.7.1",
        format!("Message blocked: {symbol}({score}) blocks sending on its own ref={reference}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: &Reply) -> String {
        let mut v = Vec::new();
        r.write_to(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn one_line_reply_carries_enhanced_code() {
        assert_eq!(wire(&line_too_long()), "500 5.5.2 Error: line too long\r\n");
    }

    #[test]
    fn ehlo_is_multiline_without_enhanced_codes() {
        let r = ehlo("gw.test", vec!["PIPELINING".into(), "8BITMIME".into()]);
        assert_eq!(
            wire(&r),
            "250-gw.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        );
    }

    #[test]
    fn spam_reply_is_truncated_to_510() {
        let symbols: Vec<(String, String)> = (0..60)
            .map(|i| (format!("SYMBOL_NUMBER_{i}"), "1.00".into()))
            .collect();
        let r = spam_rejected("60.00", "2.00", &symbols, "K3F9Q2ZP");
        let line = wire(&r);
        assert!(line.len() - 2 <= 510, "{}", line.len());
        assert!(line.starts_with(
            "550 5.7.1 SPAM alert: score 60.00 (must be lower 2.00): SYMBOL_NUMBER_0(1.00)"
        ));
        assert!(line.ends_with(" ... ref=K3F9Q2ZP\r\n"), "{line}");
    }

    #[test]
    fn tempfail_turns_a_symbol_reply_transient() {
        let r = for_symbol(
            "reject_non_fqdn_sender",
            "a@b",
            crate::score::Why::Plain,
            true,
        );
        assert_eq!((r.code, r.enhanced.as_str()), (450, "4.5.2"));
        assert!(r.text().ends_with("(reject_non_fqdn_sender)"));
    }
}
