//! EHLO and HELO: greet, advertise extensions, run the HELO checks.

use crate::action::Action;
use crate::checks::Phase;
use crate::pipeline::phase_reply;
use crate::session::stream::Stream;
use crate::session::{Flow, Session};
use crate::smtp::reply;

impl Session {
    /// EHLO (`esmtp`) or HELO: resets any transaction (RFC 5321 §4.1.4).
    pub(crate) async fn helo_command(&mut self, name: String, esmtp: bool) -> Flow {
        self.abort_transaction("helo");
        self.helo = Some(name);
        let view = self.view();
        let Some(result) = self.run_phase(Phase::Helo, &view).await else {
            self.helo = None;
            return self.reply_ok(reply::check_tempfail());
        };
        if let Some(r) = phase_reply(&result, None).filter(|_| result.action != Action::Block) {
            self.helo = None;
            return self.reply_ok(r);
        }
        self.helo_symbols = result.found;
        self.esmtp = esmtp;
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
        extensions.extend(["ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8"].map(String::from));
        self.reply_ok(reply::ehlo(&hostname, extensions))
    }
}
