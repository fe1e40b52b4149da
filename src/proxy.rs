//! PROXY protocol v1 and v2 (HAProxy), on listeners with
//! `proxy_protocol = true`: the header's source address is the client.
//! The header is peeked, parsed with `ppp`, then consumed exactly, so no
//! byte of the SMTP stream that follows is lost.

use ppp::v2::{Addresses as V2Addresses, Command};
use ppp::{v1, HeaderResult, PartialResult};
use std::io;
use std::net::SocketAddr;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// v1 lines are at most 107 octets; v2 headers here at most this many.
const MAX_HEADER: usize = 4096;

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Reads the PROXY header and returns the client's address. A LOCAL (v2)
/// or UNKNOWN (v1) header — a health check — is refused like a missing one.
pub async fn read_header(tcp: &mut TcpStream) -> io::Result<SocketAddr> {
    let mut buf = vec![0u8; MAX_HEADER];
    loop {
        let n = tcp.peek(&mut buf).await?;
        if n == 0 {
            return Err(invalid("connection closed before the PROXY header"));
        }
        let result = HeaderResult::parse(&buf[..n]);
        if result.is_incomplete() {
            if n == MAX_HEADER {
                return Err(invalid("PROXY header too long"));
            }
            // Wait for more bytes without consuming what is there.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            continue;
        }
        let (len, source) = match result {
            HeaderResult::V1(Ok(h)) => {
                let source = match h.addresses {
                    v1::Addresses::Tcp4(a) => SocketAddr::from((a.source_address, a.source_port)),
                    v1::Addresses::Tcp6(a) => SocketAddr::from((a.source_address, a.source_port)),
                    v1::Addresses::Unknown => {
                        return Err(invalid("PROXY UNKNOWN: no client address"))
                    }
                };
                (h.header.len(), source)
            }
            HeaderResult::V2(Ok(h)) => {
                if h.command == Command::Local {
                    return Err(invalid("PROXY v2 LOCAL: no client address"));
                }
                let source = match h.addresses {
                    V2Addresses::IPv4(a) => SocketAddr::from((a.source_address, a.source_port)),
                    V2Addresses::IPv6(a) => SocketAddr::from((a.source_address, a.source_port)),
                    _ => return Err(invalid("PROXY v2 without an IP source address")),
                };
                (h.len(), source)
            }
            HeaderResult::V1(Err(e)) => return Err(invalid(format!("bad PROXY v1 header: {e}"))),
            HeaderResult::V2(Err(e)) => return Err(invalid(format!("bad PROXY v2 header: {e}"))),
        };
        let mut consumed = vec![0u8; len];
        tcp.read_exact(&mut consumed).await?;
        return Ok(source);
    }
}
