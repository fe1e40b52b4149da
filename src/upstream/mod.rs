//! The pooled ESMTP client to the upstream MTA (DESIGN §1, before-queue).
//!
//! A [`Transaction`] holds one connection from MAIL to the end of DATA. Idle
//! connections are pooled; a reused one whose last transaction did not end
//! with a message gets `RSET` pipelined with the next `MAIL`; that first
//! reply proves it alive (a dead one, or one the MTA closed with 421, is
//! replaced once, transparently). Every read is bounded by `upstream.timeout`; any
//! failure is an [`UpstreamError`] that the session turns into a 4xx.

mod connection;

pub use connection::queue_id;
use connection::{Capabilities, Connection};

use crate::address::Address;
use crate::config::UpstreamConfig;
use crate::smtp::codec::stuff_into;
use crate::smtp::command::MailParams;
use crate::smtp::reply::{self, Reply};
use crate::smtp::xforward::Origin;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;

/// Why the upstream could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Connecting failed.
    #[error("connect to {0} failed: {1}")]
    Connect(std::net::SocketAddr, std::io::Error),
    /// No reply, no connection or no free slot within the timeout.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// Reading or writing failed, or the MTA closed the connection.
    #[error("connection lost: {0}")]
    Io(#[from] std::io::Error),
    /// The MTA said something SMTP does not allow here.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl UpstreamError {
    /// The client's reply for this failure: always a 4xx.
    pub fn reply(&self) -> Reply {
        match self {
            UpstreamError::Connect(..) | UpstreamError::Timeout("connecting") => {
                reply::upstream_unavailable()
            }
            UpstreamError::Timeout(_) | UpstreamError::Io(_) => reply::upstream_lost(),
            UpstreamError::Protocol(_) => reply::upstream_protocol_error(),
        }
    }
}

/// The extensions the MTA offered on its latest new connection that the
/// session passes on to clients (DESIGN §1: advertise only what the MTA
/// can take).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offered {
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// 8BITMIME (RFC 6152).
    pub eightbit: bool,
}

/// The pool of connections to the upstream MTA.
pub struct Upstream {
    config: UpstreamConfig,
    helo: String,
    idle: Mutex<Vec<Connection>>,
    slots: Arc<Semaphore>,
    /// What the latest new connection's EHLO offered (`None`: not yet
    /// connected).
    offered: Mutex<Option<Offered>>,
    /// Held by a probe while it connects: a transaction that finds no idle
    /// connection waits for it and takes the probe's connection.
    probing: tokio::sync::Mutex<()>,
}

impl Upstream {
    /// A pool for `config`; `helo` is the name we give in EHLO.
    pub fn new(config: UpstreamConfig, helo: String) -> Upstream {
        let slots = Arc::new(Semaphore::new(config.max_connections));
        Upstream {
            config,
            helo,
            idle: Mutex::new(Vec::new()),
            slots,
            offered: Mutex::new(None),
            probing: tokio::sync::Mutex::new(()),
        }
    }

    /// What the MTA offered on the latest new connection; `None` before
    /// the first one.
    pub fn offered(&self) -> Option<Offered> {
        self.offered.lock().ok().and_then(|o| *o)
    }

    /// Connects and greets the MTA (at start-up, and when a session needs
    /// to know what it offers before any connection was made); the
    /// connection is pooled for the next transaction.
    pub async fn probe(&self) -> Result<Offered, UpstreamError> {
        let _gate = self.probing.lock().await;
        let conn = self.connect().await?;
        let offered = offered_by(&conn.caps);
        self.put_idle(conn);
        Ok(offered)
    }

    /// A new connection, remembering what its EHLO offered.
    async fn connect(&self) -> Result<Connection, UpstreamError> {
        let conn = Connection::open(&self.config, &self.helo).await?;
        if let Ok(mut o) = self.offered.lock() {
            *o = Some(offered_by(&conn.caps));
        }
        Ok(conn)
    }

    /// The configuration this pool was built from.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Idle connections in the pool.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.idle.lock().ok()?;
        crate::metrics::upstream_idle(idle.len().saturating_sub(1));
        while let Some(conn) = idle.pop() {
            if conn.idle_since.elapsed() < self.config.max_idle.0 {
                return Some(conn);
            }
        }
        None
    }

    fn put_idle(&self, mut conn: Connection) {
        conn.idle_since = Instant::now();
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.config.pool_size {
                idle.push(conn);
            }
            crate::metrics::upstream_idle(idle.len());
        }
    }

    /// Opens a mail transaction for its first recipient: a connection from
    /// the pool (or a new one), then `MAIL FROM` and `RCPT TO`, pipelined
    /// (with the `RSET` of a reused connection) when the MTA allows. Returns
    /// the transaction, if MAIL was accepted, and the reply for the client's
    /// RCPT: the RCPT reply, or MAIL's refusal. `origin` is the client, for
    /// XFORWARD (and XCLIENT when configured) before MAIL; `None` for mail
    /// of our own (the SPAM alert).
    pub async fn begin(
        self: &Arc<Self>,
        sender: &Address,
        params: &MailParams,
        recipient: &Address,
        origin: Option<&Origin>,
    ) -> Result<(Option<Transaction>, Reply), UpstreamError> {
        let started = Instant::now();
        let result = self.begin_inner(sender, params, recipient, origin).await;
        crate::metrics::upstream("begin", started.elapsed(), result.is_err());
        result
    }

    async fn begin_inner(
        self: &Arc<Self>,
        sender: &Address,
        params: &MailParams,
        recipient: &Address,
        origin: Option<&Origin>,
    ) -> Result<(Option<Transaction>, Reply), UpstreamError> {
        let permit = timeout(self.config.timeout.0, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| UpstreamError::Timeout("waiting for a free upstream connection"))?
            .map_err(|_| UpstreamError::Protocol("pool closed".into()))?;
        if self.idle_count() == 0 {
            drop(self.probing.lock().await);
        }
        if let Some(mut conn) = self.take_idle() {
            if let Ok(replies) = self
                .open_transaction(&mut conn, (sender, params, recipient), origin, true)
                .await
            {
                return Ok(self.started(conn, permit, replies));
            }
            // A stale pooled connection: fall through to a fresh one.
        }
        let mut conn = self.connect().await?;
        let replies = self
            .open_transaction(&mut conn, (sender, params, recipient), origin, false)
            .await?;
        Ok(self.started(conn, permit, replies))
    }

    fn started(
        self: &Arc<Self>,
        conn: Connection,
        permit: OwnedSemaphorePermit,
        (mail, rcpt): (Reply, Option<Reply>),
    ) -> (Option<Transaction>, Reply) {
        match rcpt {
            Some(rcpt) if mail.is_positive() => (
                Some(Transaction {
                    conn: Some(conn),
                    upstream: Arc::clone(self),
                    _permit: permit,
                }),
                rcpt,
            ),
            _ => {
                self.put_idle(conn);
                (None, mail)
            }
        }
    }

    /// Sends (XCLIENT, or RSET,) XFORWARD, MAIL and RCPT; returns MAIL's
    /// reply and, when MAIL was accepted, RCPT's. Without PIPELINING each
    /// command waits for its reply. A `reused` connection gets RSET only
    /// when its last transaction did not end with a message; a 421 there
    /// means the MTA closed it while idle (an error: the caller opens a
    /// fresh one).
    async fn open_transaction(
        &self,
        conn: &mut Connection,
        (sender, params, recipient): (&Address, &MailParams, &Address),
        origin: Option<&Origin>,
        reused: bool,
    ) -> Result<(Reply, Option<Reply>), UpstreamError> {
        let replies = self
            .open_inner(
                conn,
                (sender, params, recipient),
                origin,
                reused && conn.open,
            )
            .await?;
        match replies {
            (mail, _) if reused && mail.code == 421 => Err(UpstreamError::Protocol(format!(
                "idle connection closed: {mail}"
            ))),
            replies => Ok(replies),
        }
    }

    async fn open_inner(
        &self,
        conn: &mut Connection,
        (sender, params, recipient): (&Address, &MailParams, &Address),
        origin: Option<&Origin>,
        mut reset_first: bool,
    ) -> Result<(Reply, Option<Reply>), UpstreamError> {
        if let (true, Some(origin)) = (self.config.xclient && conn.caps.xclient.is_some(), origin) {
            if reset_first {
                conn.send(b"RSET\r\n").await?;
                expect_rset(conn.read_reply().await?)?;
                reset_first = false;
            }
            conn.xclient(origin, &self.helo).await?;
        }
        if params.smtputf8 && !conn.caps.smtputf8 {
            // The session refuses this at MAIL; the MTA changed since.
            return Ok((reply::smtputf8_unsupported(), None));
        }
        let xforward: String = conn
            .caps
            .xforward
            .as_ref()
            .zip(origin)
            .map(|(offered, origin)| origin.xforward_lines(offered))
            .unwrap_or_default()
            .iter()
            .map(|l| format!("{l}\r\n"))
            .collect();
        let xforward_count = xforward.matches("\r\n").count();
        let mut mail = format!("MAIL FROM:<{sender}>");
        if let (Some(size), true) = (params.size, conn.caps.size) {
            mail.push_str(&format!(" SIZE={size}"));
        }
        if let (Some(body), true) = (&params.body, conn.caps.eightbit) {
            mail.push_str(&format!(" BODY={body}"));
        }
        if params.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        mail.push_str("\r\n");
        let rcpt = format!("RCPT TO:<{recipient}>\r\n");
        conn.open = true;
        if conn.caps.pipelining {
            let reset = if reset_first { "RSET\r\n" } else { "" };
            conn.send(format!("{reset}{xforward}{mail}{rcpt}").as_bytes())
                .await?;
            if reset_first {
                expect_rset(conn.read_reply().await?)?;
            }
            for _ in 0..xforward_count {
                xforward_answered(conn.read_reply().await?);
            }
            let mail_reply = conn.read_reply().await?;
            let rcpt_reply = conn.read_reply().await?;
            return Ok(if mail_reply.is_positive() {
                (mail_reply, Some(rcpt_reply))
            } else {
                (mail_reply, None)
            });
        }
        if reset_first {
            conn.send(b"RSET\r\n").await?;
            expect_rset(conn.read_reply().await?)?;
        }
        for line in xforward.split_inclusive("\r\n") {
            conn.send(line.as_bytes()).await?;
            xforward_answered(conn.read_reply().await?);
        }
        conn.send(mail.as_bytes()).await?;
        let mail_reply = conn.read_reply().await?;
        if !mail_reply.is_positive() {
            return Ok((mail_reply, None));
        }
        conn.send(rcpt.as_bytes()).await?;
        Ok((mail_reply, Some(conn.read_reply().await?)))
    }
}

/// A refused XFORWARD only costs the MTA's log the client's details: the
/// mail goes on.
fn xforward_answered(reply: Reply) {
    if !reply.is_positive() {
        tracing::warn!(reply = %reply, "upstream refused XFORWARD");
    }
}

fn offered_by(caps: &Capabilities) -> Offered {
    Offered {
        smtputf8: caps.smtputf8,
        eightbit: caps.eightbit,
    }
}

fn expect_rset(reply: Reply) -> Result<(), UpstreamError> {
    if reply.code == 250 {
        Ok(())
    } else {
        Err(UpstreamError::Protocol(format!("RSET: {reply}")))
    }
}

/// An open mail transaction on one upstream connection.
pub struct Transaction {
    conn: Option<Connection>,
    upstream: Arc<Upstream>,
    _permit: OwnedSemaphorePermit,
}

impl Transaction {
    fn conn(&mut self) -> Result<&mut Connection, UpstreamError> {
        self.conn
            .as_mut()
            .ok_or_else(|| UpstreamError::Protocol("transaction already failed".into()))
    }

    /// Passes `result` through; on failure the connection is dropped, as its
    /// state is unknown.
    fn guarded<T>(&mut self, result: Result<T, UpstreamError>) -> Result<T, UpstreamError> {
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    /// True when this connection's MTA takes 8-bit data (8BITMIME).
    pub fn eightbit(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.caps.eightbit)
    }

    /// Sends `RCPT TO` and returns the MTA's reply.
    pub async fn rcpt(&mut self, recipient: &Address) -> Result<Reply, UpstreamError> {
        let conn = self.conn()?;
        let result = async {
            conn.send(format!("RCPT TO:<{recipient}>\r\n").as_bytes())
                .await?;
            conn.read_reply().await
        }
        .await;
        self.guarded(result)
    }

    /// Sends the message (`header` prepended to `message`) and returns the
    /// MTA's final reply: one `BDAT n LAST` when the MTA offers CHUNKING
    /// (Postfix does), else DATA with dot-stuffing. The connection goes back to the pool afterwards.
    pub async fn data(self, header: &[u8], message: &[u8]) -> Result<Reply, UpstreamError> {
        let started = Instant::now();
        let result = self.data_inner(header, message).await;
        crate::metrics::upstream("data", started.elapsed(), result.is_err());
        result
    }

    async fn data_inner(mut self, header: &[u8], message: &[u8]) -> Result<Reply, UpstreamError> {
        let conn = self.conn()?;
        let result = async {
            if conn.caps.chunking {
                // RFC 3030: one write, one reply, no dot-stuffing.
                let len = header.len() + message.len();
                let mut wire = Vec::with_capacity(len + 32);
                wire.extend_from_slice(format!("BDAT {len} LAST\r\n").as_bytes());
                wire.extend_from_slice(header);
                wire.extend_from_slice(message);
                conn.send(&wire).await?;
                let last = conn.read_reply().await?;
                conn.open = false;
                return Ok(last);
            }
            conn.send(b"DATA\r\n").await?;
            let go = conn.read_reply().await?;
            if go.is_positive() {
                // Passing a 2xx on would tell the client "delivered".
                return Err(UpstreamError::Protocol(format!("DATA: {go}")));
            }
            if go.code != 354 {
                return Ok(go);
            }
            let mut wire = Vec::with_capacity(header.len() + message.len() + 64);
            wire.extend_from_slice(header);
            stuff_into(message, &mut wire);
            conn.send(&wire).await?;
            let last = conn.read_reply().await?;
            // The message's final reply ends the transaction (RFC 5321
            // 4.1.1.4): the next one needs no RSET.
            conn.open = false;
            Ok(last)
        }
        .await;
        let result = self.guarded(result);
        self.release();
        result
    }

    /// Ends the transaction without sending a message; the connection goes
    /// back to the pool (it is reset before its next use).
    pub fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            self.upstream.put_idle(conn);
        }
    }
}
