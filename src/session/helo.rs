//! EHLO and HELO: greet, advertise extensions (8BITMIME and SMTPUTF8 as far
//! as the upstream offers them, XFORWARD to `xforward_from`), run the HELO
//! checks.

use crate::action::Action;
use crate::checks::Phase;
use crate::pipeline::phase_reply;
use crate::session::stream::Stream;
use crate::session::{Flow, Session};
use crate::smtp::reply;
use crate::smtp::xforward;

impl Session {
    /// EHLO (`esmtp`) or HELO: resets any transaction (RFC 5321 §4.1.4).
    pub(crate) async fn helo_command(&mut self, name: String, esmtp: bool) -> Flow {
        self.abort_transaction("helo");
        self.helo = Some(name);
        self.esmtp = esmtp;
        if !self.xforward_allowed {
            if let Some(flow) = self.helo_checks().await {
                return flow;
            }
        }
        let hostname = self.app.config.server.hostname.clone();
        if !esmtp {
            return self.reply_ok(reply::helo(&hostname));
        }
        let mut extensions = vec![
            "PIPELINING".to_string(),
            format!("SIZE {}", self.app.config.server.max_message_size),
        ];
        if self.app.tls.is_some() && !matches!(self.stream, Stream::Tls(_)) {
            extensions.push("STARTTLS".into());
        }
        if self.auth_offered() && self.login.is_none() {
            extensions.push("AUTH PLAIN LOGIN".into());
        }
        extensions.push("ENHANCEDSTATUSCODES".into());
        // As far as the MTA takes them (before its first connection:
        // offered, and MAIL and DATA check again).
        let offered = self.app.upstream.offered();
        if offered.is_none_or(|o| o.eightbit) {
            extensions.push("8BITMIME".into());
        }
        if offered.is_none_or(|o| o.smtputf8) {
            extensions.push("SMTPUTF8".into());
        }
        if self.xforward_allowed {
            extensions.push(xforward::OFFERED.into());
        }
        self.reply_ok(reply::ehlo(&hostname, extensions))
    }

    /// The HELO-phase checks for the client as it stands now (at EHLO, or
    /// at MAIL for a forwarder's client). `Some`: the command was refused
    /// with that reply queued.
    pub(crate) async fn helo_checks(&mut self) -> Option<Flow> {
        let view = self.view();
        let Some(result) = self.run_phase(Phase::Helo, &view).await else {
            if !self.xforward_allowed {
                self.helo = None;
            }
            return Some(self.reply_ok(reply::check_tempfail()));
        };
        if let Some(r) = phase_reply(&result, None).filter(|_| result.action != Action::Block) {
            if !self.xforward_allowed {
                self.helo = None;
            }
            return Some(self.reply_ok(r));
        }
        self.helo_symbols = result.found;
        None
    }
}
