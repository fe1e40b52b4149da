//! A minimal SMTP client for tests: raw bytes out, parsed replies in, and
//! STARTTLS with a test CA.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// How long a test waits for any single reply.
const REPLY_WAIT: Duration = Duration::from_secs(10);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One SMTP reply.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// Each line's text after `NNN-` / `NNN `.
    pub lines: Vec<String>,
}

impl Reply {
    /// All lines joined with newlines.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The RFC 3463 enhanced status code of the first line, if any.
    pub fn enhanced(&self) -> Option<String> {
        let first = self.lines.first()?.split(' ').next()?;
        let parts: Vec<&str> = first.split('.').collect();
        let ok = parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && matches!(parts[0], "2" | "4" | "5");
        ok.then(|| first.to_string())
    }
}

/// A test client connection.
pub struct Client {
    io: Box<dyn Io>,
    buf: Vec<u8>,
}

impl Client {
    /// Connects (panics on failure).
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Client {
            io: Box::new(stream),
            buf: Vec::new(),
        }
    }

    /// Connects from a chosen local address (e.g. 127.0.0.2, to be
    /// another client IP).
    pub async fn connect_from(addr: SocketAddr, local: std::net::IpAddr) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::new(local, 0))
            .expect("bind local address");
        let stream = socket.connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Client {
            io: Box::new(stream),
            buf: Vec::new(),
        }
    }

    /// Sends raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("send");
        self.io.flush().await.expect("flush");
    }

    /// Sends raw bytes unless that takes longer than `limit` (the peer
    /// stopped reading) or fails; true when they were sent.
    #[allow(dead_code)]
    pub async fn send_within(&mut self, bytes: &[u8], limit: std::time::Duration) -> bool {
        matches!(
            tokio::time::timeout(limit, self.io.write_all(bytes)).await,
            Ok(Ok(()))
        )
    }

    /// Reads one more chunk into the buffer; false at EOF or error.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.io.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Parses one complete reply off the buffer, if there is one.
    fn parse(&mut self) -> Option<Reply> {
        let mut lines = Vec::new();
        let mut pos = 0;
        loop {
            let nl = self.buf[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
            let line = String::from_utf8_lossy(&self.buf[pos..nl]).to_string();
            pos = nl + 2;
            assert!(line.len() >= 3, "short reply line {line:?}");
            let code: u16 = line[..3]
                .parse()
                .unwrap_or_else(|_| panic!("bad reply line {line:?}"));
            let sep = line.as_bytes().get(3).copied();
            lines.push(line.get(4..).unwrap_or("").to_string());
            if sep != Some(b'-') {
                self.buf.drain(..pos);
                return Some(Reply { code, lines });
            }
        }
    }

    /// Reads one reply; `None` if the connection ended first.
    pub async fn try_read_reply(&mut self) -> Option<Reply> {
        let read = async {
            loop {
                if let Some(r) = self.parse() {
                    return Some(r);
                }
                if !self.fill().await {
                    return None;
                }
            }
        };
        tokio::time::timeout(REPLY_WAIT, read)
            .await
            .expect("timed out waiting for a reply")
    }

    /// Reads one reply (panics if the connection ended).
    pub async fn read_reply(&mut self) -> Reply {
        self.try_read_reply()
            .await
            .expect("connection closed before a reply")
    }

    /// Sends `line` + CRLF and reads the reply.
    pub async fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.read_reply().await
    }

    /// Like `cmd`, asserting the reply code.
    pub async fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line).await;
        let shown: String = line.chars().take(80).collect();
        assert_eq!(r.code, code, "{shown}: {r:?}");
        r
    }

    /// True when the server has closed the connection (EOF or reset within
    /// a few seconds) and sent nothing more.
    pub async fn is_closed(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut chunk = [0u8; 512];
        match tokio::time::timeout(Duration::from_secs(5), self.io.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                false
            }
            Err(_) => false,
        }
    }

    /// Upgrades to TLS (after the server's 220 to STARTTLS), trusting
    /// `ca_pem` and checking the certificate for `server_name`.
    pub async fn starttls(self, server_name: &str, ca_pem: &[u8]) -> Client {
        assert!(
            self.buf.is_empty(),
            "server sent bytes after 220 to STARTTLS: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(cert.expect("CA pem")).expect("CA cert");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = ServerName::try_from(server_name.to_string()).expect("server name");
        let tls = tokio::time::timeout(REPLY_WAIT, connector.connect(name, self.io))
            .await
            .expect("TLS handshake timed out")
            .expect("TLS handshake");
        Client {
            io: Box::new(tls),
            buf: Vec::new(),
        }
    }
}

/// Sends one message in one session (EHLO, MAIL, RCPTs, DATA with `data`
/// as the raw wire content including the final `.` line), returning the
/// reply to the end of DATA.
pub async fn send_message(addr: SocketAddr, from: &str, rcpts: &[&str], data: &[u8]) -> Reply {
    let mut c = Client::connect(addr).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO client.example.test", 250).await;
    c.expect(&format!("MAIL FROM:<{from}>"), 250).await;
    for rcpt in rcpts {
        c.expect(&format!("RCPT TO:<{rcpt}>"), 250).await;
    }
    c.expect("DATA", 354).await;
    c.send(data).await;
    let reply = c.read_reply().await;
    c.send(b"QUIT\r\n").await;
    let _ = c.try_read_reply().await;
    reply
}
