//! DATA: receive the message (bounded, strict CRLF), run the DATA phase
//! through the pipeline, then relay upstream (the client gets 250 only
//! after the upstream's 250) or hand a stopped message to the alert path.
//! The headers we add and the alert live in `delivery/` and `bounce/`.

use crate::action::Action;
use crate::checks::Phase;
use crate::message::Parsed;
use crate::pipeline::{decide_message, message_reply};
use crate::session::{Flow, Session};
use crate::smtp::codec::{DataDecoder, DataError, DataStatus};
use crate::smtp::received::Trace;
use crate::smtp::reply::{self, Reply};
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
        let budget = self.app.config.scoring.analysis_timeout.0;
        let parsed =
            crate::checks::off_worker(message.len(), || Parsed::parse_within(&message, budget));
        let view = self.view().with_message(&message, &parsed);
        let Some(result) = self.run_phase(Phase::Data, &view).await else {
            return self.end_transaction("tempfail", size, reply::check_tempfail());
        };
        let app = self.app.clone();
        let login = self.client().login.map(str::to_string);
        let Some(txn) = self.txn.as_mut() else {
            return reply::bad_sequence("need MAIL command");
        };
        txn.message_id = parsed.message_id.clone();
        txn.subject = parsed.subject.clone();
        for symbol in result.found {
            txn.breakdown.push(symbol);
        }
        let action = decide_message(&app, &mut txn.breakdown);
        if let Some(r) = message_reply(&app, &action, &txn.breakdown, &txn.reference) {
            let label = match action {
                Action::Refuse { .. } => "refused",
                Action::Block => "blocked",
                _ => "spam",
            };
            return self.end_transaction(label, size, r);
        }
        if action == Action::Pass {
            return self.deliver(&message, size).await;
        }
        if let Some(open) = txn.upstream.take() {
            open.release();
        }
        let stopped = crate::bounce::Stopped {
            action: &action,
            breakdown: &txn.breakdown,
            reference: &txn.reference,
            login: login.as_deref(),
            sender: &txn.sender,
            recipients: &txn.recipients,
            message: &message,
            parsed: &parsed,
        };
        let (label, r) = crate::bounce::stop(&app, stopped).await;
        self.end_transaction(label, size, r)
    }

    /// Relays the message upstream with our headers prepended and any
    /// client-supplied copies of them removed.
    async fn deliver(&mut self, message: &[u8], size: usize) -> Reply {
        let received = self.trace_header();
        let app = self.app.clone();
        let Some(txn) = self.txn.as_mut() else {
            return reply::bad_sequence("need MAIL command");
        };
        let prepared = crate::delivery::prepare(&app, received, &txn.breakdown, message);
        if txn.upstream.as_ref().is_some_and(|o| !o.eightbit()) && !message.is_ascii() {
            // RFC 6152 §3: never 8-bit octets to a 7-bit MTA, and no
            // conversion here (it would break DKIM signatures).
            return self.end_transaction("8bit refused", size, reply::eightbit_unsupported());
        }
        let Some(open) = txn.upstream.take() else {
            return self.end_transaction("tempfail", size, reply::upstream_lost());
        };
        let reply = match open
            .data(prepared.header.as_bytes(), &prepared.message)
            .await
        {
            Ok(reply) => reply,
            Err(e) => {
                tracing::warn!(reference = %txn.reference, error = %e, "upstream DATA failed");
                e.reply()
            }
        };
        if !reply.is_positive() {
            return self.end_transaction("upstream refused", size, reply);
        }
        crate::delivery::delivered(&app, &self.view());
        // Our own text, whatever the MTA said (a BDAT chunk count, say),
        // with its queue id.
        let queue_id = crate::upstream::queue_id(&reply);
        let reference = self.txn.as_ref().map_or("", |t| t.reference.as_str());
        tracing::debug!(reference, upstream = %reply, "upstream queued the message");
        let ours = reply::delivered(queue_id.as_deref(), reference);
        self.end_transaction("delivered", size, ours)
    }

    fn trace_header(&self) -> String {
        let tls = self.stream.tls_info();
        let client = self.client();
        let txn = self.txn.as_ref();
        let single = txn
            .filter(|t| t.recipients.len() == 1)
            .map(|t| t.recipients[0].to_string());
        Trace {
            helo: client.helo.unwrap_or("unknown"),
            client_ip: client.ip,
            hostname: &self.app.config.server.hostname,
            esmtp: client.esmtp,
            tls: tls.as_ref().map(|(v, c)| (v.as_str(), c.as_str())),
            login: client.login,
            show_login: self.app.config.server.received_login,
            reference: txn.map_or("", |t| t.reference.as_str()),
            single_recipient: single,
        }
        .header(SystemTime::now())
    }

    /// Logs (and records in the history) and closes the transaction; the
    /// upstream side, if still open, goes back to the pool.
    fn end_transaction(&mut self, action: &str, size: usize, reply: Reply) -> Reply {
        if let Some(mut txn) = self.txn.take() {
            if let Some(open) = txn.upstream.take() {
                open.release();
            }
            self.log_transaction(&txn, action, size, Some(&reply));
        }
        self.forwarded = crate::smtp::xforward::Forwarded::default();
        reply
    }
}
