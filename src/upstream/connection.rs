//! One SMTP connection to the upstream MTA: greeting, EHLO and what it
//! offers, XCLIENT, bounded reads and writes, and reading its replies.

use super::UpstreamError;
use crate::config::UpstreamConfig;
use crate::smtp::codec::LineFramer;
use crate::smtp::reply::{default_enhanced, Reply};
use crate::smtp::xforward::Origin;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Longest reply line we accept from the MTA.
const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one reply.
const MAX_REPLY_LINES: usize = 100;

/// What the MTA announced in its EHLO reply.
#[derive(Debug, Clone, Default)]
pub(super) struct Capabilities {
    pub(super) pipelining: bool,
    pub(super) size: bool,
    pub(super) eightbit: bool,
    pub(super) chunking: bool,
    pub(super) smtputf8: bool,
    /// The attribute names after `XFORWARD`, when offered.
    pub(super) xforward: Option<Vec<String>>,
    /// The attribute names after `XCLIENT`, when offered.
    pub(super) xclient: Option<Vec<String>>,
}

impl Capabilities {
    pub(super) fn from_ehlo(ehlo: &Reply) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in ehlo.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            let keyword = words.next().unwrap_or("").to_ascii_uppercase();
            let rest = || words.clone().map(str::to_string).collect::<Vec<_>>();
            match keyword.as_str() {
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => caps.size = true,
                "8BITMIME" => caps.eightbit = true,
                "CHUNKING" => caps.chunking = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "XFORWARD" => caps.xforward = Some(rest()),
                "XCLIENT" => caps.xclient = Some(rest()),
                _ => {}
            }
        }
        caps
    }
}

/// One SMTP connection to the MTA, past its greeting and EHLO.
pub(super) struct Connection {
    pub(super) stream: TcpStream,
    pub(super) framer: LineFramer,
    pub(super) caps: Capabilities,
    pub(super) idle_since: Instant,
    /// `upstream.timeout`: the longest a read or a write may make no
    /// progress.
    pub(super) io_timeout: Duration,
    /// A MAIL was sent and its transaction not ended by the message's final
    /// reply: the next use starts with RSET.
    pub(super) open: bool,
}

impl Connection {
    pub(super) async fn open(
        config: &UpstreamConfig,
        helo: &str,
    ) -> Result<Connection, UpstreamError> {
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
            open: false,
        };
        let greeting = conn.read_reply().await?;
        if greeting.code != 220 {
            return Err(UpstreamError::Protocol(format!("greeting: {greeting}")));
        }
        conn.greet(helo).await?;
        Ok(conn)
    }

    /// EHLO (HELO when refused), learning the MTA's extensions.
    pub(super) async fn greet(&mut self, helo: &str) -> Result<(), UpstreamError> {
        self.send(format!("EHLO {helo}\r\n").as_bytes()).await?;
        let ehlo = self.read_reply().await?;
        if ehlo.code == 250 {
            self.caps = Capabilities::from_ehlo(&ehlo);
            return Ok(());
        }
        self.caps = Capabilities::default();
        self.send(format!("HELO {helo}\r\n").as_bytes()).await?;
        let reply = self.read_reply().await?;
        if reply.code != 250 {
            return Err(UpstreamError::Protocol(format!("HELO: {reply}")));
        }
        Ok(())
    }

    /// XCLIENT (when configured and offered): the MTA restarts the session
    /// for the client we name and greets again; then EHLO again.
    pub(super) async fn xclient(
        &mut self,
        origin: &Origin,
        helo: &str,
    ) -> Result<(), UpstreamError> {
        let Some(offered) = self.caps.xclient.clone() else {
            return Ok(());
        };
        for line in origin.xclient_lines(&offered) {
            self.send(format!("{line}\r\n").as_bytes()).await?;
            let reply = self.read_reply().await?;
            if reply.code != 220 {
                // Not authorized: the session goes on as it was.
                tracing::warn!(reply = %reply, "upstream refused XCLIENT (is smtpd_authorized_xclient_hosts set?)");
                return Ok(());
            }
        }
        self.greet(helo).await
    }

    /// Writes `bytes`; an MTA that accepts none of a 64 KB piece within
    /// `upstream.timeout` (it stopped reading) is a timeout, so the client
    /// gets its 451 and the slot is freed.
    pub(super) async fn send(&mut self, bytes: &[u8]) -> Result<(), UpstreamError> {
        for piece in bytes.chunks(64 * 1024) {
            timeout(self.io_timeout, self.stream.write_all(piece))
                .await
                .map_err(|_| UpstreamError::Timeout("sending to the MTA"))??;
        }
        Ok(())
    }

    /// Reads one complete (possibly multi-line) reply.
    pub(super) async fn read_reply(&mut self) -> Result<Reply, UpstreamError> {
        let mut lines = Vec::new();
        let mut code = 0;
        loop {
            let line = match self.framer.next_line(MAX_REPLY_LINE) {
                Some(Ok(line)) => line,
                Some(Err(e)) => {
                    return Err(UpstreamError::Protocol(format!("bad reply line: {e:?}")))
                }
                None => {
                    let mut buf = [0u8; 4096];
                    let n = timeout(self.io_timeout, self.stream.read(&mut buf))
                        .await
                        .map_err(|_| UpstreamError::Timeout("waiting for a reply"))??;
                    if n == 0 {
                        return Err(UpstreamError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                    }
                    self.framer.extend(&buf[..n]);
                    continue;
                }
            };
            let text = String::from_utf8_lossy(&line);
            let (this_code, more, rest) = split_reply_line(&text)
                .ok_or_else(|| UpstreamError::Protocol(format!("malformed reply line {text:?}")))?;
            if code != 0 && this_code != code {
                return Err(UpstreamError::Protocol(format!(
                    "reply code changed within a reply: {text:?}"
                )));
            }
            code = this_code;
            lines.push(rest.to_string());
            if lines.len() > MAX_REPLY_LINES {
                return Err(UpstreamError::Protocol("reply too long".into()));
            }
            if !more {
                return Ok(reply_from_lines(code, lines));
            }
        }
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
pub(super) fn reply_from_lines(code: u16, mut lines: Vec<String>) -> Reply {
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

/// The MTA's queue id in its final reply, as the common MTAs word it:
/// Postfix `queued as ID`, Exim `id=ID`, Sendmail `ID Message accepted`,
/// Haraka `Message Queued (ID)`. Only id-like characters are kept.
pub fn queue_id(reply: &Reply) -> Option<String> {
    let text = reply.text();
    let lower = text.to_ascii_lowercase();
    let after = |marker: &str| lower.find(marker).map(|i| &text[i + marker.len()..]);
    let raw = after("queued as ")
        .or_else(|| after("id="))
        .or_else(|| after("message queued ("))
        .or_else(|| {
            let i = lower.find(" message accepted")?;
            text[..i].rsplit(' ').next()
        })?;
    let id: String = raw
        .trim_start_matches(['<', '('])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "._-@".contains(*c))
        .take(64)
        .collect();
    (!id.is_empty()).then_some(id)
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
    fn queue_ids_of_common_mtas() {
        let id = |text: &str| queue_id(&reply_from_lines(250, vec![text.into()]));
        assert_eq!(
            id("2.0.0 Ok: queued as 4Zb3kQ1xyz").as_deref(),
            Some("4Zb3kQ1xyz")
        );
        assert_eq!(
            id("OK id=1tHxYz-000ABC-2x").as_deref(),
            Some("1tHxYz-000ABC-2x")
        );
        assert_eq!(
            id("2.0.0 5B1Hq3x9012345 Message accepted for delivery").as_deref(),
            Some("5B1Hq3x9012345")
        );
        assert_eq!(id("Message Queued (A1B2C3)").as_deref(), Some("A1B2C3"));
        assert_eq!(id("2.0.0  494 byte chunk, total 494"), None);
        assert_eq!(id("Ok: queued as \x1b[31m"), None);
    }

    #[test]
    fn ehlo_keywords_and_their_attributes() {
        let ehlo = reply_from_lines(
            250,
            vec![
                "mx.test".into(),
                "PIPELINING".into(),
                "XFORWARD NAME ADDR PROTO HELO".into(),
                "XCLIENT NAME ADDR".into(),
                "smtputf8".into(),
            ],
        );
        let caps = Capabilities::from_ehlo(&ehlo);
        assert!(caps.pipelining && caps.smtputf8 && !caps.eightbit);
        assert_eq!(caps.xforward.unwrap(), ["NAME", "ADDR", "PROTO", "HELO"]);
        assert_eq!(caps.xclient.unwrap(), ["NAME", "ADDR"]);
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
