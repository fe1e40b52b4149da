//! One message through a gateway on a fresh connection, as the greylisting,
//! rate-limit and store-memo tests send it.

use super::client::{Client, Reply};
use super::sink::Sink;
use super::{config_text, start, Gateway};
use std::net::{IpAddr, SocketAddr};

/// The message every attempt sends.
pub const MESSAGE: &[u8] = b"From: a@example.test\r\nSubject: hi\r\n\r\nhello\r\n.\r\n";

/// One attempt to deliver from `from` to `rcpts` on a fresh connection from
/// `local`: the replies to each RCPT, and to the end of DATA when a
/// recipient was accepted.
pub async fn attempt_from(
    gw: SocketAddr,
    local: IpAddr,
    from: &str,
    rcpts: &[&str],
) -> (Vec<Reply>, Option<Reply>) {
    let mut c = Client::connect_from(gw, local).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO client.example.test", 250).await;
    c.expect(&format!("MAIL FROM:<{from}>"), 250).await;
    let mut replies = Vec::new();
    for rcpt in rcpts {
        replies.push(c.cmd(&format!("RCPT TO:<{rcpt}>")).await);
    }
    let data = if replies.iter().any(|r| r.code == 250) {
        c.expect("DATA", 354).await;
        c.send(MESSAGE).await;
        Some(c.read_reply().await)
    } else {
        None
    };
    c.send(b"QUIT\r\n").await;
    let _ = c.try_read_reply().await;
    (replies, data)
}

/// One message from 127.0.0.1 to one recipient: (RCPT reply, DATA reply).
pub async fn attempt(gw: SocketAddr, from: &str, rcpt: &str) -> (Reply, Option<Reply>) {
    let (mut replies, data) = attempt_from(gw, [127, 0, 0, 1].into(), from, &[rcpt]).await;
    (replies.remove(0), data)
}

#[track_caller]
pub fn assert_delivered(rcpt: &Reply, data: &Option<Reply>) {
    assert_eq!(rcpt.code, 250, "{rcpt:?}");
    let data = data.as_ref().expect("DATA was sent");
    assert_eq!(data.code, 250, "{data:?}");
    assert_eq!(data.enhanced().as_deref(), Some("2.0.0"), "{data:?}");
}

/// A gateway in front of `sink`, with `extra` sections.
pub async fn gateway(sink: &Sink, extra: &str) -> Gateway {
    start(&config_text(sink.addr, "", extra)).await
}
