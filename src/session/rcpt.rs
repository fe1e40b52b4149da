//! RCPT TO: limits, the RCPT-phase checks, then the upstream's verdict,
//! which is the client's reply (before-queue semantics).

use crate::address::Address;
use crate::checks::Phase;
use crate::pipeline::{self, phase_reply};
use crate::session::{Flow, Session};
use crate::smtp::reply::{self, Reply};

impl Session {
    /// RCPT TO.
    pub(crate) async fn rcpt(&mut self, recipient: Address) -> Flow {
        let Some(txn) = self.txn.as_mut() else {
            return self.protocol_error(reply::bad_sequence("need MAIL command"));
        };
        if txn.recipients.len() >= self.app.config.server.max_recipients {
            return self.reply_ok(reply::too_many_recipients());
        }
        txn.rcpt_attempts += 1;
        let view = self.view().with_recipient(&recipient);
        let Some(result) = self.run_phase(Phase::Rcpt, &view).await else {
            self.log_refusal("RCPT", &reply::check_tempfail(), Some(&recipient));
            return self.reply_ok(reply::check_tempfail());
        };
        if let Some(r) = phase_reply(&result, Some(&recipient)) {
            self.log_refusal("RCPT", &r, Some(&recipient));
            if let Some(txn) = self.txn.as_mut() {
                txn.refused_addresses += u64::from(r.refuses_address());
            }
            return self.reply_ok(r);
        }
        let (reply, from_rcpt) = self.relay_rcpt(&recipient).await;
        if from_rcpt {
            pipeline::upstream_answered_rcpt(&self.app, &recipient, &reply).await;
        }
        self.log_refusal("RCPT", &reply, Some(&recipient));
        if let Some(txn) = self.txn.as_mut() {
            txn.refused_addresses += u64::from(reply.refuses_address());
            if reply.is_positive() {
                txn.recipients.push(recipient);
                for symbol in result.found {
                    txn.breakdown.push(symbol);
                }
            }
        }
        self.reply_ok(reply)
    }

    /// Sends the recipient upstream, opening the upstream transaction at the
    /// first one. Any upstream failure is a 4xx.
    async fn relay_rcpt(&mut self, recipient: &Address) -> (Reply, bool) {
        let upstream = self.app.upstream.clone();
        let origin = self.txn.as_ref().map(|t| self.origin(&t.reference));
        let Some(txn) = self.txn.as_mut() else {
            return (reply::bad_sequence("need MAIL command"), false);
        };
        if txn.upstream_lost {
            return (reply::upstream_lost(), false);
        }
        if txn.upstream.is_none() {
            return match upstream
                .begin(&txn.sender, &txn.params, recipient, origin.as_ref())
                .await
            {
                Ok((open, reply)) => {
                    // Without an open transaction the reply is MAIL's.
                    let from_rcpt = open.is_some();
                    txn.upstream = open;
                    (reply, from_rcpt)
                }
                Err(e) => {
                    tracing::warn!(reference = %txn.reference, error = %e, "upstream MAIL failed");
                    (e.reply(), false)
                }
            };
        }
        let Some(open) = txn.upstream.as_mut() else {
            return (reply::upstream_protocol_error(), false);
        };
        match open.rcpt(recipient).await {
            Ok(reply) => (reply, true),
            Err(e) => {
                tracing::warn!(reference = %txn.reference, error = %e, "upstream RCPT failed");
                // The recipients accepted so far lived on that connection.
                txn.upstream = None;
                txn.upstream_lost = !txn.recipients.is_empty();
                (e.reply(), false)
            }
        }
    }
}
