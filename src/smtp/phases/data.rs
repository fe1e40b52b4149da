//! DATA: receive the message (bounded, strict CRLF), run the DATA checks,
//! decide once, then relay upstream; the client gets 250 only after the
//! upstream's 250.

use crate::action::{decide, Action};
use crate::checks::Phase;
use crate::config::SpamAction;
use crate::smtp::codec::{DataDecoder, DataError, DataStatus};
use crate::smtp::received::Trace;
use crate::smtp::reply::{self, Reply};
use crate::smtp::session::{Flow, Session, Txn};
use std::time::SystemTime;
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
    /// `data_timeout`; a shutdown does not interrupt it.
    async fn receive(&mut self) -> Received {
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
            let read = tokio::time::timeout(
                self.app.config.server.data_timeout.0,
                self.stream.read_buf(&mut chunk),
            );
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
        let view = self.view(None, Some(&message));
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
        match decide(&txn.breakdown, &self.app.policy) {
            Action::Pass => self.deliver(&message, size).await,
            Action::Refuse(r) => self.end_transaction("refused", size, r),
            Action::Block => {
                let r = blocked_reply(txn);
                self.end_transaction("blocked", size, r)
            }
            Action::Spam(SpamAction::Reject | SpamAction::Bounce) => {
                let r = spam_reply(txn, &self.app.policy.threshold.to_string());
                self.end_transaction("spam", size, r)
            }
        }
    }

    /// Relays the message upstream with our Received header.
    async fn deliver(&mut self, message: &[u8], size: usize) -> Reply {
        let header = self.trace_header();
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
            login: None,
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
        }
        reply
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
