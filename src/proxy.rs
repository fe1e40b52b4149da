//! PROXY protocol v1 and v2 (HAProxy), on listeners with
//! `proxy_protocol = true`: the header's source address is the client.
//! The header is read exactly (v2: its fixed part says its length; v1: up
//! to its CRLF, one byte at a time), so no byte of the SMTP stream that
//! follows is taken, every read waits for readability, and a peer that
//! closes mid-header ends the read at once.

use ppp::v2::{Addresses as V2Addresses, Command};
use ppp::{v1, HeaderResult};
use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt};

/// v2 headers here at most this many octets (addresses and TLVs).
const MAX_HEADER: usize = 4096;
/// v1 lines are at most 107 octets, CRLF included.
const MAX_V1: usize = 107;
/// The 12 octets every v2 header starts with.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Whom the connection speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxied {
    /// A relayed client at this address.
    Client(SocketAddr),
    /// The load balancer speaks for itself (v2 LOCAL, v1 UNKNOWN: a health
    /// check): the connection's own peer address is the client, with only
    /// that address's rights.
    Local,
}

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

async fn fill<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> io::Result<()> {
    match r.read_exact(buf).await {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(invalid(
            "connection closed before the end of the PROXY header",
        )),
        other => other.map(|_| ()),
    }
}

/// Reads the PROXY header, consuming exactly its bytes.
pub async fn read_header<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Proxied> {
    // Five octets tell the versions apart ("PROXY", "\r\n\r\n\0"); the
    // shortest v1 line has 15, so this never reads past a header.
    let mut buf = vec![0u8; 5];
    fill(r, &mut buf).await?;
    if buf[..] == V2_SIGNATURE[..5] {
        buf.resize(16, 0);
        fill(r, &mut buf[5..]).await?;
        if buf[..12] != V2_SIGNATURE[..] {
            return Err(invalid("bad PROXY v2 signature"));
        }
        let len = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if len > MAX_HEADER {
            return Err(invalid("PROXY header too long"));
        }
        buf.resize(len, 0);
        fill(r, &mut buf[16..]).await?;
    } else if buf == b"PROXY" {
        while !buf.ends_with(b"\r\n") {
            if buf.len() == MAX_V1 {
                return Err(invalid("PROXY v1 line too long"));
            }
            let mut byte = [0u8];
            fill(r, &mut byte).await?;
            buf.push(byte[0]);
        }
    } else {
        return Err(invalid("no PROXY header"));
    }
    parse(&buf)
}

/// The meaning of one complete header.
fn parse(header: &[u8]) -> io::Result<Proxied> {
    match HeaderResult::parse(header) {
        HeaderResult::V1(Ok(h)) => Ok(match h.addresses {
            v1::Addresses::Tcp4(a) => {
                Proxied::Client(SocketAddr::from((a.source_address, a.source_port)))
            }
            v1::Addresses::Tcp6(a) => {
                Proxied::Client(SocketAddr::from((a.source_address, a.source_port)))
            }
            v1::Addresses::Unknown => Proxied::Local,
        }),
        HeaderResult::V2(Ok(h)) if h.command == Command::Local => Ok(Proxied::Local),
        HeaderResult::V2(Ok(h)) => match h.addresses {
            V2Addresses::IPv4(a) => Ok(Proxied::Client(SocketAddr::from((
                a.source_address,
                a.source_port,
            )))),
            V2Addresses::IPv6(a) => Ok(Proxied::Client(SocketAddr::from((
                a.source_address,
                a.source_port,
            )))),
            _ => Err(invalid("PROXY v2 without an IP source address")),
        },
        HeaderResult::V1(Err(e)) => Err(invalid(format!("bad PROXY v1 header: {e}"))),
        HeaderResult::V2(Err(e)) => Err(invalid(format!("bad PROXY v2 header: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn reads_exactly_the_header_in_any_chunking() {
        let v1 = b"PROXY TCP4 192.0.2.1 127.0.0.1 40000 25\r\nEHLO x\r\n".to_vec();
        let mut v2 = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | Command::Proxy,
            ppp::v2::Protocol::Stream,
            (
                "192.0.2.1:40000".parse::<SocketAddr>().unwrap(),
                "127.0.0.1:25".parse::<SocketAddr>().unwrap(),
            ),
        )
        .build()
        .unwrap();
        v2.extend_from_slice(b"EHLO x\r\n");
        let want = Proxied::Client("192.0.2.1:40000".parse().unwrap());
        for input in [v1, v2] {
            for chunk in [1, 3, 7, input.len()] {
                let (mut tx, mut rx) = tokio::io::duplex(8192);
                let bytes = input.clone();
                let writer = tokio::spawn(async move {
                    for c in bytes.chunks(chunk) {
                        tx.write_all(c).await.unwrap();
                    }
                    tx
                });
                assert_eq!(
                    read_header(&mut rx).await.unwrap(),
                    want,
                    "chunks of {chunk}"
                );
                let _tx = writer.await.unwrap();
                let mut rest = [0u8; 8];
                rx.read_exact(&mut rest).await.unwrap();
                assert_eq!(&rest, b"EHLO x\r\n", "the SMTP bytes stay");
            }
        }
    }

    #[tokio::test]
    async fn local_unknown_and_errors() {
        let local = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | Command::Local,
            ppp::v2::Protocol::Unspecified,
            ppp::v2::Addresses::Unspecified,
        )
        .build()
        .unwrap();
        assert_eq!(read_header(&mut &local[..]).await.unwrap(), Proxied::Local);
        let unknown = &b"PROXY UNKNOWN\r\n"[..];
        assert_eq!(
            read_header(&mut &unknown[..]).await.unwrap(),
            Proxied::Local
        );
        for (input, why) in [
            (&b"PROXY TCP4 192.0.2.1"[..], "closed before the end"),
            (&local[..10], "closed before the end"),
            (&b"EHLO x\r\n"[..], "no PROXY header"),
            (&b"PROXY "[..], "closed before the end"),
        ] {
            let e = read_header(&mut &input[..]).await.unwrap_err().to_string();
            assert!(e.contains(why), "{input:?}: {e}");
        }
        let long = [b"PROXY ".as_slice(), &[b'1'; 200]].concat();
        let e = read_header(&mut &long[..]).await.unwrap_err().to_string();
        assert!(e.contains("too long"), "{e}");
    }
}
