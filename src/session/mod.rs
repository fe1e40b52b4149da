//! One client connection: the ESMTP state machine (RFC 5321 §4.1.4). This
//! file holds the session's state, its input loop and its output; what each
//! command does lives in the files beside it, one per phase.
//!
//! Replies are queued in `out` and written in one flush when no complete
//! command is left in the input buffer, so a pipelined batch of commands
//! gets its replies in one segment (RFC 2920).

mod data;
mod helo;
mod log;
mod mail;
mod rcpt;
mod sasl;
mod starttls;
pub mod stream;
mod xforward;

use crate::address::Address;
use crate::app::App;
use crate::checks::{Phase, View};
use crate::pipeline::{self, PhaseResult};
use crate::score::{Breakdown, ScoredSymbol};
use crate::session::stream::Stream;
use crate::smtp::codec::{LineError, LineFramer, MAX_LINE};
use crate::smtp::command::{self, Command, CommandError, MailParams};
use crate::smtp::reply::{self, Reply};
use crate::smtp::xforward::Forwarded;
use crate::upstream::Transaction;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::timeout_at;

/// Whether the session goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next command.
    Continue,
    /// Flush and close the connection.
    Close,
}

/// One mail transaction, from MAIL to the end of DATA (or RSET).
pub struct Txn {
    /// Ties logs, headers and replies together.
    pub reference: String,
    /// MAIL FROM.
    pub sender: Address,
    /// MAIL FROM parameters.
    pub params: MailParams,
    /// Recipients the upstream accepted.
    pub recipients: Vec<Address>,
    /// RCPT commands seen, accepted or not.
    pub rcpt_attempts: usize,
    /// Recipients refused as unknown (5.1.x), by the upstream or by us.
    pub refused_addresses: u64,
    /// The open upstream transaction (from the first accepted RCPT).
    pub upstream: Option<Transaction>,
    /// The upstream connection failed after recipients were accepted: the
    /// transaction can only be tempfailed now.
    pub upstream_lost: bool,
    /// Symbols found so far, weighed.
    pub breakdown: Breakdown,
    /// When MAIL was received.
    pub started: Instant,
    /// The message's Message-ID, once DATA was parsed (for the logs).
    pub message_id: Option<String>,
    /// The message's Subject, once DATA was parsed (for the history).
    pub subject: Option<String>,
}

/// What reading the next command produced.
enum Input {
    Line(Vec<u8>),
    Invalid(Reply),
    Eof,
    Timeout,
    Shutdown,
}

/// A client session.
pub struct Session {
    /// The configuration snapshot this session runs with.
    pub app: Arc<App>,
    pub(crate) stream: Stream,
    pub(crate) framer: LineFramer,
    out: Vec<u8>,
    /// The client's address (after PROXY, the real one).
    pub peer: SocketAddr,
    /// The HELO/EHLO name, once given.
    pub helo: Option<String>,
    /// True after EHLO.
    pub esmtp: bool,
    /// HELO-phase symbols, copied into every transaction's breakdown.
    pub helo_symbols: Vec<ScoredSymbol>,
    /// The current mail transaction.
    pub txn: Option<Txn>,
    errors: u32,
    shutdown: watch::Receiver<bool>,
    /// The listener this client came in on offers AUTH without TLS.
    pub trusted_cleartext: bool,
    /// The SMTP AUTH login, once authenticated.
    pub login: Option<String>,
    /// The listener's `xforward_from` holds this client: XFORWARD is
    /// offered, and the HELO-phase checks wait for MAIL (they judge the
    /// client forwarded by then, not the forwarder).
    pub xforward_allowed: bool,
    /// What XFORWARD said for the next transaction.
    pub forwarded: Forwarded,
}

impl Session {
    /// A session on an accepted connection.
    pub fn new(
        app: Arc<App>,
        stream: Stream,
        peer: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> Session {
        Session {
            app,
            stream,
            framer: LineFramer::default(),
            out: Vec::with_capacity(512),
            peer,
            helo: None,
            esmtp: false,
            helo_symbols: Vec::new(),
            txn: None,
            errors: 0,
            shutdown,
            trusted_cleartext: false,
            login: None,
            xforward_allowed: false,
            forwarded: Forwarded::default(),
        }
    }

    /// Runs the session to its end.
    pub async fn run(mut self) {
        tracing::debug!(client = %self.peer, "connect");
        self.queue(&reply::greeting(&self.app.config.server.hostname));
        loop {
            let flow = match self.next_input().await {
                Input::Line(line) => match CatchUnwind(Box::pin(self.dispatch(&line))).await {
                    Ok(flow) => flow,
                    Err(panic) => {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        tracing::error!(client = %self.peer, panic = %what, "bug while handling a command; session closed with 421");
                        // The upstream connection's state is unknown: dropped.
                        self.txn = None;
                        self.queue(&reply::internal_error(&self.app.config.server.hostname));
                        Flow::Close
                    }
                },
                Input::Invalid(r) => self.protocol_error(r),
                Input::Eof => Flow::Close,
                Input::Timeout => {
                    self.queue(&reply::timeout(&self.app.config.server.hostname));
                    Flow::Close
                }
                Input::Shutdown => {
                    self.queue(&reply::shutting_down(&self.app.config.server.hostname));
                    Flow::Close
                }
            };
            if flow == Flow::Close {
                break;
            }
            if self.txn.is_none() && self.shutting_down() {
                self.queue(&reply::shutting_down(&self.app.config.server.hostname));
                break;
            }
        }
        self.abort_transaction("disconnect");
        let _ = self.flush().await;
        // TLS ends with its close_notify; a plain connection's FIN goes
        // with its close (a shutdown first is one more system call).
        if matches!(self.stream, stream::Stream::Tls(_)) {
            let _ = tokio::time::timeout(
                self.app.config.server.idle_timeout.0,
                self.stream.shutdown(),
            )
            .await;
        }
        tracing::debug!(client = %self.peer, "disconnect");
    }

    fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Queues a reply for the next flush.
    pub fn queue(&mut self, reply: &Reply) {
        crate::metrics::reply(reply.code);
        reply.write_to(&mut self.out);
    }

    /// Writes queued replies, waiting at most `idle_timeout` for a client
    /// that does not read them (it would otherwise hold its session, and
    /// any upstream connection, for ever).
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let limit = self.app.config.server.idle_timeout.0;
        let stream = &mut self.stream;
        let out = &self.out;
        let result = tokio::time::timeout(limit, async move {
            stream.write_all(out).await?;
            stream.flush().await
        })
        .await;
        self.out.clear();
        match result {
            Ok(r) => r,
            Err(_) => {
                tracing::info!(client = %self.peer, "client does not read its replies; closing");
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client does not read",
                ))
            }
        }
    }

    /// Counts a protocol error and replies; too many end the session.
    pub fn protocol_error(&mut self, reply: Reply) -> Flow {
        self.queue(&reply);
        self.errors += 1;
        if self.errors >= self.app.config.server.max_errors {
            self.queue(&reply::too_many_errors(&self.app.config.server.hostname));
            return Flow::Close;
        }
        Flow::Continue
    }

    /// The next command line, waiting at most `idle_timeout` for all of it.
    /// A shutdown interrupts the wait unless a transaction is in progress.
    async fn next_input(&mut self) -> Input {
        self.next_line(false).await
    }

    /// The client's next line of an AUTH exchange (up to 12,288 octets,
    /// RFC 4954 §4), after flushing what is queued. `Err` carries how the
    /// session goes on when no line came (closed, timed out, too long).
    pub(crate) async fn auth_line(&mut self) -> Result<Vec<u8>, Flow> {
        match self.next_line(true).await {
            Input::Line(line) => Ok(line),
            Input::Invalid(r) => Err(self.protocol_error(r)),
            Input::Eof | Input::Shutdown => Err(Flow::Close),
            Input::Timeout => {
                self.queue(&reply::timeout(&self.app.config.server.hostname));
                Err(Flow::Close)
            }
        }
    }

    async fn next_line(&mut self, auth: bool) -> Input {
        let deadline = tokio::time::Instant::now() + self.app.config.server.idle_timeout.0;
        loop {
            match self.framer.next_line(MAX_LINE) {
                Some(Ok(line)) if auth && line.len() > command::AUTH_LINE_LIMIT => {
                    return Input::Invalid(reply::line_too_long())
                }
                Some(Ok(line)) if !auth && line.len() > command::line_limit(&line) => {
                    return Input::Invalid(reply::line_too_long())
                }
                Some(Ok(line)) => return Input::Line(line),
                Some(Err(LineError::TooLong)) => return Input::Invalid(reply::line_too_long()),
                Some(Err(LineError::Nul)) => return Input::Invalid(reply::nul_in_command()),
                None => {}
            }
            if self.flush().await.is_err() {
                return Input::Eof;
            }
            let interruptible = self.txn.is_none();
            let read = timeout_at(
                deadline,
                self.stream.read_buf(self.framer.read_buffer(1024)),
            );
            tokio::select! {
                r = read => match r {
                    Err(_) => return Input::Timeout,
                    Ok(Err(_)) | Ok(Ok(0)) => return Input::Eof,
                    Ok(Ok(_)) => {}
                },
                _ = wait_for_shutdown(self.shutdown.clone()), if interruptible => return Input::Shutdown,
            }
        }
    }

    async fn dispatch(&mut self, line: &[u8]) -> Flow {
        let command = match command::parse(line) {
            Ok(c) => c,
            Err(CommandError::Unknown) => return self.protocol_error(reply::unknown_command()),
            Err(CommandError::Syntax(usage)) => return self.protocol_error(reply::syntax(usage)),
            Err(CommandError::Address(what)) => {
                return self.protocol_error(reply::bad_address(&what))
            }
            Err(CommandError::Parameter(p)) => {
                return self.protocol_error(reply::unsupported_parameter(&p))
            }
            Err(e @ CommandError::Xforward(_)) => return self.xforward_error(&e),
        };
        // The phases are boxed so that an idle session's future stays small
        // (10,000 idle connections must fit in 150 MB).
        match command {
            Command::Ehlo(name) => Box::pin(self.helo_command(name, true)).await,
            Command::Helo(name) => Box::pin(self.helo_command(name, false)).await,
            Command::Mail(sender, params) => Box::pin(self.mail(sender, params)).await,
            Command::Rcpt(recipient) => Box::pin(self.rcpt(recipient)).await,
            Command::Data => Box::pin(self.data()).await,
            Command::Rset => self.rset(),
            Command::Noop => self.reply_ok(reply::ok()),
            Command::Vrfy => self.reply_ok(reply::vrfy()),
            Command::Help => self.reply_ok(reply::help()),
            Command::Quit => {
                self.queue(&reply::bye());
                Flow::Close
            }
            Command::StartTls => Box::pin(self.starttls()).await,
            Command::Auth(mechanism, initial) => Box::pin(self.auth(mechanism, initial)).await,
            Command::Xforward(attributes) => self.xforward(attributes),
        }
    }

    /// Queues a reply and goes on.
    pub fn reply_ok(&mut self, reply: Reply) -> Flow {
        self.queue(&reply);
        Flow::Continue
    }

    /// A view of the session for checks (the pipeline's one constructor),
    /// about the client XFORWARD named when it did.
    pub fn view<'a>(&'a self) -> View<'a> {
        let client = self.client();
        let mut view = View::new(
            client.ip,
            client.helo.unwrap_or(""),
            matches!(self.stream, Stream::Tls(_)),
            client.login,
            &self.app.config.relay,
        );
        view.trusted &= !client.addr_unknown;
        match self.txn.as_ref() {
            Some(t) => view.with_transaction(&t.sender, &t.recipients),
            None => view,
        }
    }

    /// Runs the checks of `phase` through the pipeline, logging a failure
    /// (a store outage is logged once by the store itself).
    pub async fn run_phase(&self, phase: Phase, view: &View<'_>) -> Option<PhaseResult> {
        match pipeline::run_phase(&self.app, phase, view).await {
            Ok(result) => Some(result),
            Err(e) if e.store_outage => {
                tracing::debug!(client = %self.peer, phase = phase.name(), error = %e, "check failed");
                None
            }
            Err(e) => {
                tracing::warn!(client = %self.peer, phase = phase.name(), error = %e, "check failed");
                None
            }
        }
    }

    /// Ends the current transaction without delivery (RSET, new EHLO,
    /// disconnect): the upstream connection goes back to the pool, and
    /// what XFORWARD said is forgotten.
    pub fn abort_transaction(&mut self, why: &str) {
        if let Some(mut txn) = self.txn.take() {
            if let Some(upstream) = txn.upstream.take() {
                upstream.release();
            }
            if !txn.recipients.is_empty() || txn.rcpt_attempts > 0 {
                self.log_transaction(&txn, why, 0, None);
            }
        }
        self.forwarded = Forwarded::default();
    }

    /// The client as the Postfix-style lines name it.
    fn log_client(&self) -> log::Client<'_> {
        log::Client {
            name: None,
            ip: self.peer.ip(),
            helo: self.helo.as_deref().unwrap_or(""),
            proto: if self.esmtp { "ESMTP" } else { "SMTP" },
            login: self.login.as_deref(),
        }
    }

    /// The Postfix-style line for a MAIL or RCPT refusal (`stage`).
    pub(crate) fn log_refusal(&self, stage: &str, reply: &Reply, to: Option<&Address>) {
        if reply.is_positive() || !tracing::enabled!(target: log::TARGET, tracing::Level::INFO) {
            return;
        }
        let from = self
            .txn
            .as_ref()
            .map_or_else(Address::null, |t| t.sender.clone());
        let line = log::noqueue_reject(&self.log_client(), stage, reply, &from, to);
        tracing::info!(target: log::TARGET, "{line}");
    }

    /// The Postfix-style lines for the end of a message: one reject line,
    /// or one line per recipient with its status.
    fn log_outcome(&self, txn: &Txn, action: &str, size: usize, reply: &Reply) {
        // The lines are only built when they are logged.
        if !tracing::enabled!(target: log::TARGET, tracing::Level::INFO) {
            return;
        }
        let client = self.log_client();
        let id = txn.message_id.as_deref();
        if !reply.is_positive() {
            let line = log::message_reject(
                &client,
                &txn.reference,
                reply,
                &txn.sender,
                &txn.recipients,
                id,
            );
            tracing::info!(target: log::TARGET, "{line}");
            return;
        }
        let status = if action == "delivered" {
            "sent"
        } else {
            "bounced"
        };
        for to in &txn.recipients {
            let line = log::outcome(
                &client,
                &txn.reference,
                &txn.sender,
                to,
                id,
                size,
                status,
                reply,
            );
            tracing::info!(target: log::TARGET, "{line}");
        }
    }

    /// The one summary line per transaction (DESIGN §7).
    pub fn log_transaction(&self, txn: &Txn, action: &str, size: usize, reply: Option<&Reply>) {
        if let Some(reply) = reply {
            self.log_outcome(txn, action, size, reply);
        }
        let rcpts: Vec<String> = txn.recipients.iter().map(ToString::to_string).collect();
        crate::metrics::transaction(
            action,
            txn.breakdown
                .symbols()
                .iter()
                .map(|s| (s.hit.name.as_str(), s.shadow)),
        );
        let client = self.client();
        let record = crate::history::Record {
            time: crate::history::now(),
            reference: txn.reference.clone(),
            client_ip: client.ip.to_string(),
            client_name: client.name.map(str::to_string),
            helo: client.helo.unwrap_or("").to_string(),
            login: client.login.map(str::to_string),
            from: txn.sender.to_string(),
            rcpts: rcpts.clone(),
            message_id: txn.message_id.clone(),
            subject: txn.subject.clone(),
            size: size as u64,
            action: action.to_string(),
            reply: reply.map(ToString::to_string).unwrap_or_default(),
            score: crate::history::score_f64(txn.breakdown.total()),
            threshold: crate::history::score_f64(self.app.policy.threshold),
            symbols: crate::history::Record::symbols_of(&txn.breakdown),
        };
        let transient = reply.is_some_and(Reply::is_transient);
        crate::bounce::hold::count(&self.app, &record, txn.refused_addresses, transient);
        self.app.history.record(record);
        if tracing::enabled!(target: "smtpgate::transaction", tracing::Level::INFO) {
            let symbols: Vec<String> = txn
                .breakdown
                .sorted_all()
                .iter()
                .map(|s| match s.shadow {
                    false => format!("{}({})", s.hit.name, s.score),
                    true => format!("{}(shadow:{})", s.hit.name, s.score),
                })
                .collect();
            tracing::info!(
                target: "smtpgate::transaction",
                reference = %txn.reference,
                client = %client.ip,
                client_name = client.name.unwrap_or("unknown"),
                forwarded_by = %client.forwarded_by.map(|ip| ip.to_string()).unwrap_or_default(),
                forwarded_ident = crate::smtp::xforward::Forwarded::text(&self.forwarded.ident).unwrap_or(""),
                login = client.login.unwrap_or(""),
                helo = client.helo.unwrap_or(""),
                from = %txn.sender,
                rcpts = %rcpts.join(","),
                size,
                action,
                score = %format!("[{}/{}]", txn.breakdown.total(), self.app.policy.threshold),
                symbols = %symbols.join(" "),
                reply = %reply.map(ToString::to_string).unwrap_or_default(),
                ms = txn.started.elapsed().as_millis() as u64,
            );
        }
    }
}

async fn wait_for_shutdown(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A future whose panic comes back as an `Err` (the session answers 421
/// instead of dropping the connection without a word).
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

#[cfg(test)]
mod catch_unwind_tests {
    use super::CatchUnwind;

    #[tokio::test]
    async fn a_panicking_future_is_an_error_not_a_dead_task() {
        let ok = CatchUnwind(Box::pin(async { 7 })).await;
        assert_eq!(ok.ok(), Some(7));
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let bad = CatchUnwind(Box::pin(async {
            tokio::task::yield_now().await;
            let v: Vec<u8> = Vec::new();
            v[1]
        }))
        .await;
        std::panic::set_hook(hook);
        let panic = bad.expect_err("the panic is caught");
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains("index out of bounds"), "{message}");
    }
}
