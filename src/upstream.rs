//! The pooled ESMTP client to the upstream MTA (DESIGN §1, before-queue).
//!
//! A [`Transaction`] holds one connection from MAIL to the end of DATA. Idle
//! connections are pooled; a reused one gets `RSET` pipelined with the next
//! `MAIL`, which both resets it and proves it alive (a dead one is replaced
//! once, transparently). Every read is bounded by `upstream.timeout`; any
//! failure is an [`UpstreamError`] that the session turns into a 4xx.

use crate::address::Address;
use crate::config::UpstreamConfig;
use crate::smtp::codec::{stuff_into, LineFramer};
use crate::smtp::command::MailParams;
use crate::smtp::reply::{self, default_enhanced, Reply};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;

/// Longest reply line we accept from the MTA.
const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one reply.
const MAX_REPLY_LINES: usize = 100;

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

/// What the MTA announced in its EHLO reply.
#[derive(Debug, Clone, Copy, Default)]
struct Capabilities {
    pipelining: bool,
    size: bool,
    eightbit: bool,
    chunking: bool,
}

/// One SMTP connection to the MTA, past its greeting and EHLO.
struct Connection {
    stream: TcpStream,
    framer: LineFramer,
    caps: Capabilities,
    idle_since: Instant,
    /// `upstream.timeout`: the longest a read or a write may make no
    /// progress.
    io_timeout: Duration,
}

impl Connection {
    async fn open(config: &UpstreamConfig, helo: &str) -> Result<Connection, UpstreamError> {
        let stream = timeout(config.connect_timeout.0, TcpStream::connect(config.address))
            .await
            .map_err(|_| UpstreamError::Timeout("connecting"))?
            .map_err(|e| UpstreamError::Connect(config.address, e))?;
        stream.set_nodelay(true)?;
        let mut conn = Connection {
            stream,
            framer: LineFramer::default(),
            caps: Capabilities::default(),
            idle_since: Instant::now(),
            io_timeout: config.timeout.0,
        };
        let greeting = conn.read_reply().await?;
        if greeting.code != 220 {
            return Err(UpstreamError::Protocol(format!("greeting: {greeting}")));
        }
        conn.send(format!("EHLO {helo}\r\n").as_bytes()).await?;
        let ehlo = conn.read_reply().await?;
        if ehlo.code == 250 {
            for line in ehlo.lines.iter().skip(1) {
                let keyword = line
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                match keyword.as_str() {
                    "PIPELINING" => conn.caps.pipelining = true,
                    "SIZE" => conn.caps.size = true,
                    "8BITMIME" => conn.caps.eightbit = true,
                    "CHUNKING" => conn.caps.chunking = true,
                    _ => {}
                }
            }
        } else {
            conn.send(format!("HELO {helo}\r\n").as_bytes()).await?;
            let reply = conn.read_reply().await?;
            if reply.code != 250 {
                return Err(UpstreamError::Protocol(format!("HELO: {reply}")));
            }
        }
        Ok(conn)
    }

    /// Writes `bytes`; an MTA that accepts none of a 64 KB piece within
    /// `upstream.timeout` (it stopped reading) is a timeout, so the client
    /// gets its 451 and the slot is freed.
    async fn send(&mut self, bytes: &[u8]) -> Result<(), UpstreamError> {
        for piece in bytes.chunks(64 * 1024) {
            timeout(self.io_timeout, self.stream.write_all(piece))
                .await
                .map_err(|_| UpstreamError::Timeout("sending to the MTA"))??;
        }
        Ok(())
    }

    /// Reads one complete (possibly multi-line) reply.
    async fn read_reply(&mut self) -> Result<Reply, UpstreamError> {
        let mut reader = ReplyReader::default();
        loop {
            if let Some(reply) = reader.take(&mut self.framer)? {
                return Ok(reply);
            }
            let mut buf = [0u8; 4096];
            let n = timeout(self.io_timeout, self.stream.read(&mut buf))
                .await
                .map_err(|_| UpstreamError::Timeout("waiting for a reply"))??;
            if n == 0 {
                return Err(UpstreamError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.framer.extend(&buf[..n]);
        }
    }
}

/// A reply being read line by line. Pure (no I/O): the client feeds it the
/// lines it framed, and the fuzz target feeds it arbitrary bytes.
#[derive(Debug, Default)]
pub struct ReplyReader {
    code: u16,
    lines: Vec<String>,
}

impl ReplyReader {
    /// Takes complete lines from `framer`: `Ok(Some(reply))` once the last
    /// line of a reply came (later lines stay in `framer`), `Ok(None)` when
    /// more bytes are needed, an error for a malformed or over-long reply.
    pub fn take(&mut self, framer: &mut LineFramer) -> Result<Option<Reply>, UpstreamError> {
        while let Some(line) = framer.next_line(MAX_REPLY_LINE) {
            let line =
                line.map_err(|e| UpstreamError::Protocol(format!("bad reply line: {e:?}")))?;
            let text = String::from_utf8_lossy(&line);
            let (this_code, more, rest) = split_reply_line(&text)
                .ok_or_else(|| UpstreamError::Protocol(format!("malformed reply line {text:?}")))?;
            if self.code != 0 && this_code != self.code {
                return Err(UpstreamError::Protocol(format!(
                    "reply code changed within a reply: {text:?}"
                )));
            }
            self.code = this_code;
            self.lines.push(rest.to_string());
            if self.lines.len() > MAX_REPLY_LINES {
                return Err(UpstreamError::Protocol("reply too long".into()));
            }
            if !more {
                let lines = std::mem::take(&mut self.lines);
                return Ok(Some(reply_from_lines(
                    std::mem::take(&mut self.code),
                    lines,
                )));
            }
        }
        Ok(None)
    }
}

/// Splits `"250-text"` into (250, true, "text").
fn split_reply_line(line: &str) -> Option<(u16, bool, &str)> {
    let code: u16 = line.get(..3)?.parse().ok()?;
    if !(200..600).contains(&code) {
        return None;
    }
    match line.as_bytes().get(3) {
        None => Some((code, false, "")),
        Some(b' ') => Some((code, false, &line[4..])),
        Some(b'-') => Some((code, true, &line[4..])),
        _ => None,
    }
}

/// Builds a [`Reply`], taking the enhanced code from the first line when
/// present (RFC 2034), else deriving one from the class.
fn reply_from_lines(code: u16, mut lines: Vec<String>) -> Reply {
    let first = lines[0].clone();
    let candidate = first.split(' ').next().unwrap_or("");
    let looks_enhanced = candidate.split('.').count() == 3
        && candidate
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && candidate.starts_with(char::from(b'0' + (code / 100) as u8));
    let enhanced = if looks_enhanced {
        for line in lines.iter_mut() {
            if let Some(rest) = line.strip_prefix(candidate) {
                *line = rest.trim_start().to_string();
            }
        }
        candidate.to_string()
    } else {
        default_enhanced(code).to_string()
    };
    Reply {
        code,
        enhanced,
        lines,
    }
}

/// The pool of connections to the upstream MTA.
pub struct Upstream {
    config: UpstreamConfig,
    helo: String,
    idle: Mutex<Vec<Connection>>,
    slots: Arc<Semaphore>,
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
        }
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
    /// RCPT: the RCPT reply, or MAIL's refusal.
    pub async fn begin(
        self: &Arc<Self>,
        sender: &Address,
        params: &MailParams,
        recipient: &Address,
    ) -> Result<(Option<Transaction>, Reply), UpstreamError> {
        let started = Instant::now();
        let result = self.begin_inner(sender, params, recipient).await;
        crate::metrics::upstream("begin", started.elapsed(), result.is_err());
        result
    }

    async fn begin_inner(
        self: &Arc<Self>,
        sender: &Address,
        params: &MailParams,
        recipient: &Address,
    ) -> Result<(Option<Transaction>, Reply), UpstreamError> {
        let permit = timeout(self.config.timeout.0, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| UpstreamError::Timeout("waiting for a free upstream connection"))?
            .map_err(|_| UpstreamError::Protocol("pool closed".into()))?;
        if let Some(mut conn) = self.take_idle() {
            if let Ok(replies) = self
                .open_transaction(&mut conn, sender, params, recipient, true)
                .await
            {
                return Ok(self.started(conn, permit, replies));
            }
            // A stale pooled connection: fall through to a fresh one.
        }
        let mut conn = Connection::open(&self.config, &self.helo).await?;
        let replies = self
            .open_transaction(&mut conn, sender, params, recipient, false)
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

    /// Sends (RSET,) MAIL and RCPT; returns MAIL's reply and, when MAIL was
    /// accepted, RCPT's. Without PIPELINING each command waits for its reply.
    async fn open_transaction(
        &self,
        conn: &mut Connection,
        sender: &Address,
        params: &MailParams,
        recipient: &Address,
        reset_first: bool,
    ) -> Result<(Reply, Option<Reply>), UpstreamError> {
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
        if conn.caps.pipelining {
            let reset = if reset_first { "RSET\r\n" } else { "" };
            conn.send(format!("{reset}{mail}{rcpt}").as_bytes()).await?;
            if reset_first {
                expect_rset(conn.read_reply().await?)?;
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
        conn.send(mail.as_bytes()).await?;
        let mail_reply = conn.read_reply().await?;
        if !mail_reply.is_positive() {
            return Ok((mail_reply, None));
        }
        conn.send(rcpt.as_bytes()).await?;
        Ok((mail_reply, Some(conn.read_reply().await?)))
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
                return conn.read_reply().await;
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
            conn.read_reply().await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_split() {
        assert_eq!(
            split_reply_line("250-PIPELINING"),
            Some((250, true, "PIPELINING"))
        );
        assert_eq!(
            split_reply_line("550 5.1.1 no"),
            Some((550, false, "5.1.1 no"))
        );
        assert_eq!(split_reply_line("250"), Some((250, false, "")));
        assert_eq!(split_reply_line("25x ok"), None);
        assert_eq!(split_reply_line("999 x"), None);
    }

    #[test]
    fn reply_reader_takes_one_reply_at_a_time() {
        let mut framer = LineFramer::default();
        let mut reader = ReplyReader::default();
        framer.extend(b"250-mta.test\r\n250 SIZE 10\r\n550 5.1.1 no");
        let r = reader.take(&mut framer).unwrap().unwrap();
        assert_eq!((r.code, r.lines.len()), (250, 2));
        assert!(reader.take(&mut framer).unwrap().is_none());
        framer.extend(b"\r\n250-a\r\n251 b\r\n");
        let r = reader.take(&mut framer).unwrap().unwrap();
        assert_eq!((r.code, r.enhanced.as_str()), (550, "5.1.1"));
        assert!(matches!(
            reader.take(&mut framer),
            Err(UpstreamError::Protocol(_))
        ));
    }

    #[test]
    fn enhanced_code_is_taken_or_derived() {
        let r = reply_from_lines(550, vec!["5.1.1 <a@b>: User unknown".into()]);
        assert_eq!(
            (r.enhanced.as_str(), r.text()),
            ("5.1.1", "<a@b>: User unknown".to_string())
        );
        let r = reply_from_lines(451, vec!["try later".into()]);
        assert_eq!(
            (r.enhanced.as_str(), r.text()),
            ("4.0.0", "try later".to_string())
        );
        let r = reply_from_lines(250, vec!["5.1.1 mismatched class".into()]);
        assert_eq!(r.enhanced, "2.0.0");
    }
}
