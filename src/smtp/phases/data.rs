//! DATA: receive the message (bounded, strict CRLF), run the DATA checks,
//! decide once, then relay upstream; the client gets 250 only after the
//! upstream's 250.

use crate::action::{decide, Action};
use crate::bounce::{breakdown_text, Alert};
use crate::checks::Phase;
use crate::config::SpamAction;
use crate::message::Parsed;
use crate::smtp::codec::{DataDecoder, DataError, DataStatus};
use crate::smtp::command::{parse_address, Address, MailParams};
use crate::smtp::received::Trace;
use crate::smtp::reply::{self, Reply};
use crate::smtp::session::{Flow, Session, Txn};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncReadExt;

/// How receiving the message ended.
enum Received {
    Message(DataDecoder),
    Closed,
    Smuggling,
    Timeout,
}

impl Session {
    /// DATA.
    pub(crate) async fn data(&mut self) -> Flow {
        let Some(txn) = self.txn.as_ref() else {
            return self.protocol_error(reply::bad_sequence("need MAIL command"));
        };
        if txn.upstream_lost {
            let r = reply::upstream_lost();
            self.abort_transaction("upstream lost");
            return self.reply_ok(r);
        }
        if txn.recipients.is_empty() {
            return if txn.rcpt_attempts == 0 {
                self.protocol_error(reply::bad_sequence("need RCPT command"))
            } else {
                self.reply_ok(reply::no_valid_recipients())
            };
        }
        self.queue(&reply::start_data());
        if self.flush().await.is_err() {
            return Flow::Close;
        }
        match self.receive().await {
            Received::Message(decoder) => {
                let reply = self.finish(decoder).await;
                self.reply_ok(reply)
            }
            Received::Closed => Flow::Close,
            Received::Smuggling => {
                self.abort_transaction("bare newline");
                self.queue(&reply::bare_newline(&self.app.config.server.hostname));
                Flow::Close
            }
            Received::Timeout => {
                self.abort_transaction("data timeout");
                self.queue(&reply::timeout(&self.app.config.server.hostname));
                Flow::Close
            }
        }
    }

    /// Reads the message up to `CRLF.CRLF`; bytes after it go back to the
    /// command framer (a pipelined QUIT, say). Each read waits at most
    /// `data_timeout`, all of them together `data_deadline`; a shutdown
    /// does not interrupt it.
    async fn receive(&mut self) -> Received {
        let deadline = tokio::time::Instant::now() + self.app.config.server.data_deadline.0;
        let mut decoder = DataDecoder::new(self.app.config.server.max_message_size);
        let mut chunk = self.framer.take_buffered();
        loop {
            match decoder.feed(&chunk) {
                Ok(DataStatus::Done(used)) => {
                    self.framer.extend(&chunk[used..]);
                    return Received::Message(decoder);
                }
                Ok(DataStatus::More) => {}
                Err(DataError::BareNewline) => return Received::Smuggling,
            }
            chunk.clear();
            chunk.reserve(64 * 1024);
            let limit =
                (tokio::time::Instant::now() + self.app.config.server.data_timeout.0).min(deadline);
            let read = tokio::time::timeout_at(limit, self.stream.read_buf(&mut chunk));
            match read.await {
                Err(_) => return Received::Timeout,
                Ok(Err(_)) | Ok(Ok(0)) => return Received::Closed,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Judges and relays a received message; returns the client's reply.
    async fn finish(&mut self, decoder: DataDecoder) -> Reply {
        let size = decoder.received();
        if decoder.oversized() {
            return self.end_transaction("too big", size, reply::message_too_big());
        }
        if decoder.has_nul() {
            return self.end_transaction("nul", size, reply::nul_in_message());
        }
        let message = decoder.into_message();
        let parsed = Parsed::parse_within(&message, self.app.config.scoring.analysis_timeout.0);
        let mut view = self.view(None, Some(&message));
        view.parsed = Some(&parsed);
        let found = match self.run_checks(Phase::Data, &view).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(client = %self.peer, error = %e, "DATA check failed");
                return self.end_transaction("tempfail", size, reply::check_tempfail());
            }
        };
        let Some(txn) = self.txn.as_mut() else {
            return reply::bad_sequence("need MAIL command");
        };
        for symbol in found {
            txn.breakdown.push(symbol);
        }
        self.app
            .composites
            .apply(&mut txn.breakdown, &self.app.symbols);
        match decide(&txn.breakdown, &self.app.policy) {
            Action::Pass => self.deliver(&message, size).await,
            Action::Refuse(r) => self.end_transaction("refused", size, r),
            Action::Block if self.app.policy.spam_action == SpamAction::Reject => {
                let r = blocked_reply(txn);
                self.end_transaction("blocked", size, r)
            }
            Action::Spam(SpamAction::Reject) => {
                let r = spam_reply(txn, &self.app.policy.threshold.to_string());
                self.end_transaction("spam", size, r)
            }
            Action::Block | Action::Spam(SpamAction::Bounce) => {
                self.bounce(&message, &parsed, size).await
            }
        }
    }

    /// Relays the message upstream with our headers prepended and any
    /// client-supplied copies of them removed.
    async fn deliver(&mut self, message: &[u8], size: usize) -> Reply {
        let mut header = self.trace_header();
        // Client copies of our verdict headers go; ours and our DKIM
        // signature are prepended.
        let message = &*crate::message::as_delivered(&self.app.config.server.hostname, message);
        if let Some(txn) = &self.txn {
            let hostname = &self.app.config.server.hostname;
            match crate::auth::authentication_results(hostname, &txn.breakdown) {
                Some(results) => header.push_str(&results),
                None => header.push_str(&format!("Authentication-Results: {hostname}; none\r\n")),
            }
            header.push_str(&spamd_result(txn, &self.app.policy.threshold.to_string()));
        }
        header.extend(self.app.auth.sign(message));
        let Some(open) = self.txn.as_mut().and_then(|t| t.upstream.take()) else {
            return self.end_transaction("tempfail", size, reply::upstream_lost());
        };
        let reply = match open.data(header.as_bytes(), message).await {
            Ok(reply) => reply,
            Err(e) => {
                if let Some(txn) = &self.txn {
                    tracing::warn!(reference = %txn.reference, error = %e, "upstream DATA failed");
                }
                e.reply()
            }
        };
        if reply.is_positive() {
            self.count_delivery().await;
        }
        let action = if reply.is_positive() {
            "delivered"
        } else {
            "upstream refused"
        };
        self.end_transaction(action, size, reply)
    }

    /// Who receives the SPAM alert: the login when it is an address, else
    /// the envelope sender when its domain is ours; never anyone else.
    fn originator(&self, txn: &Txn) -> Option<String> {
        let view = self.view(None, None);
        if let Some(login) = view.login.filter(|l| l.contains('@')) {
            return Some(login.to_string());
        }
        let sender = &txn.sender;
        (!sender.domain.is_empty() && self.app.config.relay.is_local_domain(&sender.domain))
            .then(|| sender.to_string())
    }

    /// Bounce mode: the message is not relayed; the SPAM alert goes to the
    /// originator through the upstream, and only once the upstream accepted
    /// it does the client get 250. Without an originator we may write to
    /// (or for auto-submitted mail) the message is rejected instead.
    async fn bounce(&mut self, message: &[u8], parsed: &Parsed, size: usize) -> Reply {
        let Some(txn) = self.txn.as_mut() else {
            return reply::bad_sequence("need MAIL command");
        };
        if let Some(open) = txn.upstream.take() {
            open.release();
        }
        let auto_submitted = parsed
            .header_values("auto-submitted")
            .any(|v| !v.trim().eq_ignore_ascii_case("no"));
        let txn = self.txn.as_ref().expect("checked above");
        let originator = self.originator(txn).filter(|_| !auto_submitted);
        let Some(originator) = originator else {
            let r = if decide(&txn.breakdown, &self.app.policy) == Action::Block {
                blocked_reply(txn)
            } else {
                spam_reply(txn, &self.app.policy.threshold.to_string())
            };
            return self.end_transaction("spam (no alert recipient)", size, r);
        };
        let key = Self::alert_key(txn, &originator);
        let (send, merged) = self.alert_merge(&key).await;
        if !send {
            let r = reply::alert_merged(&originator, &txn.reference);
            return self.end_transaction("spam (alert merged)", size, r);
        }
        let recipients: Vec<String> = txn.recipients.iter().map(ToString::to_string).collect();
        let alert = Alert {
            hostname: &self.app.config.server.hostname,
            reference: &txn.reference,
            originator: &originator,
            recipients: &recipients,
            original_headers: &message[..parsed.body_offset.min(message.len())],
            message_id: parsed.message_id.as_deref(),
            subject: parsed.subject.as_deref(),
            breakdown: &txn.breakdown,
            symbols: &self.app.symbols,
            threshold: self.app.policy.threshold,
            merged,
            arrival: SystemTime::now(),
        }
        .message();
        let reference = txn.reference.clone();
        let r = match self.send_alert(&originator, &alert).await {
            Ok(()) => {
                self.alert_sent(&key, merged).await;
                reply::alert_sent(&originator, &reference)
            }
            Err(why) => {
                tracing::warn!(%reference, %originator, error = %why, "SPAM alert not delivered");
                reply::alert_failed()
            }
        };
        self.end_transaction("spam (alert)", size, r)
    }

    /// The store key of alerts to `originator` for this symbol set.
    fn alert_key(txn: &Txn, originator: &str) -> String {
        let mut names: Vec<&str> = txn
            .breakdown
            .symbols()
            .iter()
            .map(|s| s.hit.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        format!(
            "alert:{}:{:016x}",
            originator.to_ascii_lowercase(),
            fnv1a(names.join(" ").as_bytes())
        )
    }

    /// Whether to send an alert now, and how many merged messages it
    /// covers: one alert per originator and symbol set per 10 minutes. A
    /// message is merged only into an alert the upstream has *accepted*
    /// (`{key}:sent`, set by [`Session::alert_sent`]), so a failed alert
    /// never leaves a later message answered 250 with nothing sent. A store
    /// failure sends the alert (a duplicate is better than none).
    async fn alert_merge(&self, key: &str) -> (bool, u64) {
        let store = &self.app.store;
        match store.get(&format!("{key}:sent")).await {
            Ok(Some(_)) => {
                let merged = format!("{key}:merged");
                match store.incr(&merged, 1, ALERT_WINDOW * 6 * 24 * 7).await {
                    Ok(_) => (false, 0),
                    Err(e) => {
                        tracing::warn!(error = %e, "alert merging skipped");
                        (true, 0)
                    }
                }
            }
            Ok(None) => match store.get(&format!("{key}:merged")).await {
                Ok(Some(v)) => (true, String::from_utf8_lossy(&v).parse().unwrap_or(0)),
                _ => (true, 0),
            },
            Err(e) => {
                tracing::warn!(error = %e, "alert merging skipped");
                (true, 0)
            }
        }
    }

    /// Records an accepted alert: later ones merge into it for 10 minutes;
    /// the `merged` messages it reported are no longer pending.
    async fn alert_sent(&self, key: &str, merged: u64) {
        let store = &self.app.store;
        if let Err(e) = store.set(&format!("{key}:sent"), b"1", ALERT_WINDOW).await {
            tracing::warn!(error = %e, "alert merging: not recorded");
        }
        if merged > 0 {
            let _ = store
                .incr(&format!("{key}:merged"), -(merged as i64), ALERT_WINDOW)
                .await;
        }
    }

    /// Injects the alert into the upstream as `MAIL FROM:<>`.
    async fn send_alert(&self, originator: &str, alert: &[u8]) -> Result<(), String> {
        let rcpt = parse_address(&format!("<{originator}>"), false)
            .map_err(|_| format!("bad originator address {originator}"))?;
        let (open, reply) = self
            .app
            .upstream
            .begin(&Address::null(), &MailParams::default(), &rcpt)
            .await
            .map_err(|e| e.to_string())?;
        let Some(open) = open else {
            return Err(format!("upstream refused: {reply}"));
        };
        if !reply.is_positive() {
            open.release();
            return Err(format!("upstream refused: {reply}"));
        }
        let r = open.data(b"", alert).await.map_err(|e| e.to_string())?;
        if r.is_positive() {
            Ok(())
        } else {
            Err(format!("upstream refused: {r}"))
        }
    }

    /// Counts a delivered message against the sender's rate limits.
    async fn count_delivery(&self) {
        let view = self.view(None, None);
        let who = crate::checks::ratelimit::identity(&view);
        let rcpts = view.recipients.len();
        let app = &self.app;
        crate::checks::ratelimit::record_delivery(&app.config, app.store.as_ref(), &who, rcpts)
            .await;
    }

    fn trace_header(&self) -> String {
        let tls = self.stream.tls_info();
        let txn = self.txn.as_ref();
        let single = txn
            .filter(|t| t.recipients.len() == 1)
            .map(|t| t.recipients[0].to_string());
        Trace {
            helo: self.helo.as_deref().unwrap_or("unknown"),
            client_ip: self.peer.ip(),
            hostname: &self.app.config.server.hostname,
            esmtp: self.esmtp,
            tls: tls.as_ref().map(|(v, c)| (v.as_str(), c.as_str())),
            login: self.login.as_deref(),
            reference: txn.map_or("", |t| t.reference.as_str()),
            single_recipient: single,
        }
        .header(SystemTime::now())
    }

    /// Logs and closes the transaction; the upstream side, if still open,
    /// goes back to the pool.
    fn end_transaction(&mut self, action: &str, size: usize, reply: Reply) -> Reply {
        if let Some(mut txn) = self.txn.take() {
            if let Some(open) = txn.upstream.take() {
                open.release();
            }
            self.log_transaction(&txn, action, size, Some(&reply));
            if action.starts_with("spam") || action == "blocked" {
                self.save_verdict(&txn, action, &reply);
            }
        }
        reply
    }

    /// Keeps a stopped message's breakdown for `smtpgate why`.
    fn save_verdict(&self, txn: &Txn, action: &str, reply: &Reply) {
        let rcpts: Vec<String> = txn.recipients.iter().map(ToString::to_string).collect();
        let text = format!(
            "Reference: {}\nDate: {}\nClient: {} ({})\nFrom: <{}>\nTo: {}\nAction: {action}\nReply: {reply}\n\n{}",
            txn.reference,
            crate::smtp::received::rfc5322_date(SystemTime::now()),
            self.peer.ip(),
            self.helo.as_deref().unwrap_or(""),
            txn.sender,
            rcpts.join(", "),
            breakdown_text(&txn.breakdown, &self.app.symbols, self.app.policy.threshold),
        );
        crate::verdict::save(self.app.store.clone(), txn.reference.clone(), text);
    }
}

fn spam_reply(txn: &Txn, threshold: &str) -> Reply {
    let symbols: Vec<(String, String)> = txn
        .breakdown
        .sorted()
        .iter()
        .map(|s| (s.hit.name.clone(), s.score.to_string()))
        .collect();
    reply::spam_rejected(
        &txn.breakdown.total().to_string(),
        threshold,
        &symbols,
        &txn.reference,
    )
}

fn blocked_reply(txn: &Txn) -> Reply {
    let sorted = txn.breakdown.sorted();
    let (name, score) = sorted.first().map_or(("", String::new()), |s| {
        (s.hit.name.as_str(), s.score.to_string())
    });
    reply::blocked(name, &score, &txn.reference)
}

/// Identical alerts are merged within this window.
const ALERT_WINDOW: Duration = Duration::from_secs(600);

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `X-Spamd-Result` (rspamd's format), folded between symbols.
fn spamd_result(txn: &Txn, threshold: &str) -> String {
    let mut out = format!(
        "X-Spamd-Result: default: False [{} / {threshold}]",
        txn.breakdown.total()
    );
    for s in txn.breakdown.sorted() {
        let options: Vec<String> = s
            .hit
            .options
            .iter()
            .map(|o| o.replace(['[', ']', '\r', '\n'], " "))
            .collect();
        out.push_str(&format!(
            ";\r\n\t{}({})[{}]",
            s.hit.name,
            s.score,
            options.join(", ")
        ));
    }
    out.push_str("\r\n");
    out
}
