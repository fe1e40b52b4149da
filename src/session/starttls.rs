//! RSET and STARTTLS.

use crate::session::stream::Stream;
use crate::session::{Flow, Session};
use crate::smtp::reply;

impl Session {
    /// RSET: abort the transaction, keep the HELO.
    pub(crate) fn rset(&mut self) -> Flow {
        self.abort_transaction("rset");
        self.reply_ok(reply::ok())
    }

    /// STARTTLS (RFC 3207). Anything the client pipelined after the command
    /// is discarded before the handshake, and the session forgets its HELO.
    pub(crate) async fn starttls(&mut self) -> Flow {
        let Some(acceptor) = self.app.tls.clone() else {
            return self.reply_ok(reply::tls_unavailable());
        };
        if matches!(self.stream, Stream::Tls(_)) {
            return self.protocol_error(reply::tls_active());
        }
        if self.txn.is_some() {
            return self.protocol_error(reply::tls_in_transaction());
        }
        self.queue(&reply::tls_ready());
        if self.flush().await.is_err() {
            return Flow::Close;
        }
        // CVE-2011-0411: plaintext pipelined after STARTTLS must not be
        // processed as if it had arrived encrypted.
        self.framer.clear();
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Flow::Close;
        };
        let deadline = self.app.config.server.idle_timeout.0;
        match tokio::time::timeout(deadline, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => {
                self.stream = Stream::Tls(Box::new(tls));
                self.helo = None;
                self.esmtp = false;
                self.helo_symbols.clear();
                self.login = None;
                Flow::Continue
            }
            Ok(Err(e)) => {
                tracing::info!(client = %self.peer, error = %e, "TLS handshake failed");
                Flow::Close
            }
            Err(_) => {
                tracing::info!(client = %self.peer, "TLS handshake timed out");
                Flow::Close
            }
        }
    }
}
