//! The texts of an anomaly hold: the alert to the customer (what we saw,
//! that nothing is lost, what to do) and the report to the abuse desk (the
//! numbers, the limits, and how to release it). Plain text, one part.

use super::alert::{encode_header, quoted_printable};
use crate::anomaly::text::{amount, per_window, percent, share, thousands, usual, window};
use crate::anomaly::{Hold, Rule, Seen};
use crate::config::{AnomalyConfig, Span};
use crate::smtp::received::rfc5322_date;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Everything the two texts say.
pub struct HoldNotice<'a> {
    /// The hold just placed.
    pub hold: &'a Hold,
    /// The limits it was judged by.
    pub config: &'a AnomalyConfig,
    /// Our hostname (From, Message-ID).
    pub hostname: &'a str,
    /// The reply its next messages get.
    pub reply: &'a str,
    /// Who the customer alert goes to, if anyone.
    pub originator: Option<&'a str>,
    /// Why the customer alert could not be delivered, when it could not.
    pub alert_error: Option<&'a str>,
}

fn date(unix: u64) -> String {
    rfc5322_date(UNIX_EPOCH + Duration::from_secs(unix))
}

fn is_address(identity: &str) -> bool {
    crate::anomaly::is_address(identity)
}

impl HoldNotice<'_> {
    fn seen(&self) -> Option<&Seen> {
        self.hold.seen.as_ref()
    }

    /// The customer's alert, as its text.
    pub fn customer_text(&self) -> String {
        let h = self.hold;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Your outgoing mail is on hold: the outgoing quality gateway held\n{} for review, because its mail looked very unusual.\n",
            h.identity
        );
        out.push_str("What we saw\n");
        let _ = writeln!(out, "  {}.", h.reason);
        if let Some(s) = self.seen() {
            let _ = writeln!(
                out,
                "  In the last {}: {} messages to {} recipients; {} of them refused as\n  unknown addresses, {} messages stopped as spam.",
                window(s.window_secs),
                thousands(s.messages),
                thousands(s.recipients),
                thousands(s.refused),
                thousands(s.spam)
            );
        }
        out.push_str("\nNothing is lost\n");
        let _ = writeln!(
            out,
            "  Your messages are now answered with a temporary refusal (\"451 4.7.1 ...\n  held for review\"): your mail server or app keeps them in its own queue\n  and sends them by itself when the hold ends. It ends by itself on\n  {}, unless support releases it sooner.",
            date(h.until)
        );
        out.push_str("\nWhat to do\n");
        if is_address(&h.identity) {
            let _ = writeln!(
                out,
                "  1. Check the server at {}: if a site or mailbox on it was broken into,\n     change its passwords.",
                h.identity
            );
        } else {
            let _ = writeln!(
                out,
                "  1. Change the password of {}: someone else may be using it.",
                h.identity
            );
        }
        out.push_str(
            "  2. Look for a script or app you do not know that sends mail (a contact\n     form, a plugin, a cron job) and stop it.\n",
        );
        let _ = writeln!(
            out,
            "  3. Ask support to release the hold, quoting reference {}. If the mail\n     was yours (a newsletter, say), tell them so.",
            h.reference
        );
        let _ = write!(out, "\nReference: {}\n", h.reference);
        out
    }

    /// The customer's alert, as a message.
    pub fn customer_message(&self, to: &str) -> Vec<u8> {
        let subject = format!(
            "Your outgoing mail is on hold: {} held for review",
            self.hold.identity
        );
        self.message(to, &subject, "alert", &self.customer_text())
    }

    /// The abuse desk's report, as its text.
    pub fn report_text(&self) -> String {
        let h = self.hold;
        let c = self.config;
        let login = !is_address(&h.identity);
        let mut out = String::new();
        let _ = writeln!(out, "smtpgate held {} for review.\n", h.identity);
        let kind = if login {
            "SMTP AUTH login"
        } else {
            "client IP, no AUTH login"
        };
        let _ = writeln!(out, "  Identity:   {} ({kind})", h.identity);
        let _ = writeln!(out, "  Reason:     {}", h.reason);
        if let Some(s) = self.seen() {
            let _ = writeln!(out, "  Rule:       {}", rule_text(s, c));
        }
        let _ = writeln!(
            out,
            "  Held:       {}\n              until {} ({})",
            date(h.since),
            date(h.until),
            Span(Duration::from_secs(h.until.saturating_sub(h.since)))
        );
        let _ = writeln!(
            out,
            "  Reference:  {} (the transaction that crossed the limit: smtpgate why {})",
            h.reference, h.reference
        );
        let _ = writeln!(out, "  Node:       {}", self.hostname);
        if let Some(s) = self.seen() {
            let _ = writeln!(out, "\nSeen in the last {}", window(s.window_secs));
            let rows = [
                ("messages", thousands(s.messages), usual(s)),
                ("recipients", thousands(s.recipients), String::new()),
                (
                    "refused as unknown (5.1.x)",
                    format!(
                        "{} ({})",
                        thousands(s.refused),
                        percent(s.refused, s.recipients)
                    ),
                    format!("limit {}", share(c.max_refused_ratio)),
                ),
                (
                    "stopped as spam",
                    format!("{} ({})", thousands(s.spam), percent(s.spam, s.messages)),
                    format!("limit {}", share(c.max_spam_ratio)),
                ),
                ("recipient domains", thousands(s.domains), String::new()),
                (
                    "  never used before",
                    thousands(s.new_recipient_domains),
                    match c.max_new_recipient_domains {
                        0 => "no limit".into(),
                        n => format!("limit {}", thousands(n)),
                    },
                ),
                (
                    "new From domains",
                    thousands(s.new_from_domains),
                    String::new(),
                ),
            ];
            for (name, value, note) in rows {
                let line = format!("  {name:<28}{value:>12}   {note}");
                let _ = writeln!(out, "{}", line.trim_end());
            }
            let _ = writeln!(out, "  {:<28}{:>12}", "last sender", s.from);
            let _ = writeln!(out, "\nUsually");
            match (s.usual_per_window, s.usual_per_day) {
                (Some(w), day) => {
                    let _ = writeln!(
                        out,
                        "  {} messages {}{} (over {} {} with mail in the last {} days)",
                        amount(w),
                        per_window(s.window_secs),
                        day.map_or_else(String::new, |d| format!(
                            ", {} a day on the days it sends",
                            amount(d)
                        )),
                        thousands(s.baseline_windows),
                        if s.baseline_windows == 1 {
                            "window"
                        } else {
                            "windows"
                        },
                        c.baseline_days
                    );
                }
                (None, _) => {
                    let _ = writeln!(
                        out,
                        "  nothing known yet: first seen in this window (only the refused and spam\n  shares apply until it has a baseline)"
                    );
                }
            }
        }
        out.push_str("\nThe customer\n");
        match (self.originator, self.alert_error) {
            (Some(to), None) => {
                let _ = writeln!(out, "  was alerted at {to} (what we saw, what to do, to ask support).");
            }
            (Some(to), Some(e)) => {
                let _ = writeln!(out, "  could not be alerted at {to}: {e}");
            }
            (None, _) => out.push_str(
                "  was not alerted: no address of theirs to write to (the identity is a\n  client IP and the sender's domain is not one of ours).\n",
            ),
        }
        let _ = writeln!(
            out,
            "  Their next messages get, at MAIL:\n    {}\n  Their mail waits in their own queue: nothing is lost on our side.",
            self.reply
        );
        let since = Span(c.window.0.max(Duration::from_secs(3600)));
        let filter = if login { "--login" } else { "--ip" };
        let _ = write!(
            out,
            "\nTo release it (once the password is changed or the script found):\n  smtpgate hold release {id}\n\
             To extend it:     smtpgate hold {id} --for 48h\n\
             Every hold:       smtpgate hold list\n\
             What was sent:    smtpgate history {filter} {id} --since {since}\n",
            id = h.identity
        );
        out
    }

    /// The abuse desk's report, as a message to `to` (its first address).
    pub fn report_message(&self, to: &str) -> Vec<u8> {
        let subject = format!(
            "Anomaly hold: {} - {}",
            self.hold.identity, self.hold.reason
        );
        self.message(to, &subject, "report", &self.report_text())
    }

    /// `kind` tells the two apart in the Message-ID.
    fn message(&self, to: &str, subject: &str, kind: &str, text: &str) -> Vec<u8> {
        let mut m = String::new();
        let _ = write!(
            m,
            "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
             To: <{to}>\r\n\
             Subject: {subject}\r\n\
             Date: {date}\r\n\
             Message-ID: <hold.{reference}.{kind}@{host}>\r\n\
             Auto-Submitted: auto-generated\r\n\
             X-Smtpgate-Reference: {reference}\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\
             \r\n\
             {body}\r\n",
            host = self.hostname,
            subject = encode_header(subject),
            date = rfc5322_date(SystemTime::now()),
            reference = self.hold.reference,
            body = quoted_printable(text),
        );
        m.into_bytes()
    }
}

/// The limit crossed, with its numbers.
fn rule_text(s: &Seen, c: &AnomalyConfig) -> String {
    match s.rule {
        Rule::Volume => format!(
            "volume: more than {} x its usual {} {} ({}), past the floor of {} messages",
            amount(c.factor),
            s.usual_per_window.map_or_else(|| "0".into(), amount),
            per_window(s.window_secs),
            amount(c.factor * s.usual_per_window.unwrap_or(0.0)),
            thousands(c.min_messages)
        ),
        Rule::NewDomains => format!(
            "new recipient domains: more than {} it had not used in {} days",
            thousands(c.max_new_recipient_domains),
            c.baseline_days
        ),
        Rule::Refused => format!(
            "refused recipients: more than {} of its recipients refused as unknown",
            share(c.max_refused_ratio)
        ),
        Rule::Spam => format!(
            "spam: more than {} of its messages stopped as spam",
            share(c.max_spam_ratio)
        ),
    }
}
