//! MAIL FROM: sequence, size, SMTPUTF8 against the upstream, the HELO
//! phase for a forwarder's client, and the MAIL-phase checks.

use crate::action::Action;
use crate::address::Address;
use crate::checks::Phase;
use crate::pipeline::phase_reply;
use crate::reference::new_reference;
use crate::score::Breakdown;
use crate::session::{Flow, Session, Txn};
use crate::smtp::command::MailParams;
use crate::smtp::reply;
use std::sync::Arc;
use std::time::Instant;

impl Session {
    /// MAIL FROM: opens a transaction (the upstream one opens at RCPT).
    pub(crate) async fn mail(&mut self, sender: Address, params: MailParams) -> Flow {
        if self.helo.is_none() {
            return self.protocol_error(reply::bad_sequence("send HELO/EHLO first"));
        }
        if self.txn.is_some() {
            return self.protocol_error(reply::bad_sequence("nested MAIL command"));
        }
        if params
            .size
            .is_some_and(|size| size > self.app.config.server.max_message_size as u64)
        {
            return self.reply_ok(reply::message_too_big());
        }
        if params.smtputf8 {
            if let Some(refused) = self.upstream_refuses_smtputf8().await {
                return self.reply_ok(refused);
            }
        }
        if self.xforward_allowed {
            // The HELO phase judges the client XFORWARD named (or the
            // forwarder itself when it named none).
            if let Some(flow) = self.helo_checks().await {
                return flow;
            }
        }
        let mut breakdown = Breakdown::with_caps(Arc::clone(&self.app.caps));
        for symbol in &self.helo_symbols {
            breakdown.push(symbol.clone());
        }
        self.txn = Some(Txn {
            reference: new_reference(),
            sender,
            params,
            recipients: Vec::new(),
            rcpt_attempts: 0,
            refused_addresses: 0,
            upstream: None,
            upstream_lost: false,
            breakdown,
            started: Instant::now(),
            message_id: None,
            subject: None,
        });
        let view = self.view();
        let Some(result) = self.run_phase(Phase::Mail, &view).await else {
            self.log_refusal("MAIL", &reply::check_tempfail(), None);
            self.txn = None;
            return self.reply_ok(reply::check_tempfail());
        };
        if let Some(r) = phase_reply(&result, None).filter(|_| result.action != Action::Block) {
            self.log_refusal("MAIL", &r, None);
            self.txn = None;
            return self.reply_ok(r);
        }
        if let Some(txn) = self.txn.as_mut() {
            for symbol in result.found {
                txn.breakdown.push(symbol);
            }
        }
        self.reply_ok(reply::mail_ok())
    }

    /// MAIL ... SMTPUTF8 when the upstream lacks SMTPUTF8: 553 5.6.7 now,
    /// before any recipient is accepted (RFC 6531 §3.6). Before the first
    /// connection to the MTA, one is made to find out (its failure: 4xx).
    async fn upstream_refuses_smtputf8(&self) -> Option<crate::smtp::reply::Reply> {
        let offered = match self.app.upstream.offered() {
            Some(o) => o,
            None => match self.app.upstream.probe().await {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(client = %self.peer, error = %e, "upstream probe failed");
                    return Some(e.reply());
                }
            },
        };
        (!offered.smtputf8).then(reply::smtputf8_unsupported)
    }
}
