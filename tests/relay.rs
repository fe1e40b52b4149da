//! The before-queue relay: byte-exact delivery, pipelining, several
//! transactions, upstream replies passed through, and every way the
//! upstream can fail giving the client a 4xx and never a 250.

mod common;

use common::client::{send_message, Client};
use common::sink::SinkConfig;
use common::{start_pair, strip_received};
use std::collections::HashMap;
use std::time::Duration;

async fn greeted(addr: std::net::SocketAddr) -> Client {
    let mut c = Client::connect(addr).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO client.example.test", 250).await;
    c
}

/// Messages from s0@ … s{n-1}@example.test to r@example.net on one
/// session, each answered 250.
async fn send_numbered(c: &mut Client, n: usize) {
    for i in 0..n {
        c.expect(&format!("MAIL FROM:<s{i}@example.test>"), 250)
            .await;
        c.expect("RCPT TO:<r@example.net>", 250).await;
        c.expect("DATA", 354).await;
        let r = c.cmd(&format!("Subject: {i}\r\n\r\nhello\r\n.")).await;
        assert_eq!(r.code, 250, "{r:?}");
    }
}

#[tokio::test]
async fn message_is_relayed_byte_exact_with_only_received_prepended() {
    let (sink, gw) = start_pair(SinkConfig::default(), "", "").await;
    // Dot-stuffed lines, 8-bit bytes, an empty line, a lone dot-dot line.
    let wire = b"From: a@example.test\r\nSubject: caf\xc3\xa9\r\n\r\n..starts with a dot\r\n..\r\n\xff\xfe binary-ish\r\n\r\nend\r\n.\r\n";
    let expected = b"From: a@example.test\r\nSubject: caf\xc3\xa9\r\n\r\n.starts with a dot\r\n.\r\n\xff\xfe binary-ish\r\n\r\nend\r\n";
    let reply = send_message(gw.addr, "a@example.test", &["b@example.net"], wire).await;
    assert_eq!(reply.code, 250, "{reply:?}");
    assert_eq!(reply.enhanced().as_deref(), Some("2.0.0"));
    assert!(
        reply.text().contains("queued as"),
        "upstream queue id passed through: {reply:?}"
    );
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].mail_from, "a@example.test");
    assert_eq!(msgs[0].rcpts, ["b@example.net"]);
    assert_eq!(strip_received(&msgs[0].data), expected);
    let received =
        String::from_utf8_lossy(&msgs[0].data[..msgs[0].data.len() - expected.len()]).to_string();
    assert!(
        received.contains("by gw.example.test (smtpgate) with ESMTP id "),
        "{received}"
    );
    assert!(received.contains("for <b@example.net>;"), "{received}");
}

#[tokio::test]
async fn pipelined_transaction_gets_all_replies_in_order() {
    let (sink, gw) = start_pair(SinkConfig::default(), "", "").await;
    let mut c = greeted(gw.addr).await;
    c.send(b"MAIL FROM:<a@example.test> BODY=8BITMIME SIZE=100\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n")
        .await;
    let codes: Vec<u16> = [
        c.read_reply().await,
        c.read_reply().await,
        c.read_reply().await,
        c.read_reply().await,
    ]
    .iter()
    .map(|r| r.code)
    .collect();
    assert_eq!(codes, [250, 250, 250, 354]);
    c.send(b"Subject: p\r\n\r\nbody\r\n.\r\nQUIT\r\n").await;
    assert_eq!(c.read_reply().await.code, 250);
    assert_eq!(c.read_reply().await.code, 221);
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(msgs[0].rcpts, ["b@example.net", "c@example.net"]);
    assert_eq!(msgs[0].mail_params, "SIZE=100 BODY=8BITMIME");
}

#[tokio::test]
async fn several_transactions_on_one_connection_reuse_the_upstream() {
    let (sink, gw) = start_pair(SinkConfig::default(), "", "").await;
    let mut c = greeted(gw.addr).await;
    send_numbered(&mut c, 3).await;
    // An aborted transaction in between.
    c.expect("MAIL FROM:<x@example.test>", 250).await;
    c.expect("RCPT TO:<r@example.net>", 250).await;
    c.expect("RSET", 250).await;
    c.expect("MAIL FROM:<s3@example.test>", 250).await;
    c.expect("RCPT TO:<r@example.net>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(c.cmd("Subject: 3\r\n\r\nhello\r\n.").await.code, 250);
    c.expect("QUIT", 221).await;
    let msgs = sink.wait_for_messages(4, Duration::from_secs(5)).await;
    let senders: Vec<&str> = msgs.iter().map(|m| m.mail_from.as_str()).collect();
    assert_eq!(
        senders,
        [
            "s0@example.test",
            "s1@example.test",
            "s2@example.test",
            "s3@example.test"
        ]
    );
    assert_eq!(
        sink.connections(),
        1,
        "one pooled upstream connection serves all transactions"
    );
    assert_eq!(
        sink.commands().iter().filter(|c| *c == "RSET").count(),
        1,
        "the pooled connection is reset after the aborted transaction only \
         (a message's final reply ends a transaction): {:?}",
        sink.commands()
    );
}

#[tokio::test]
async fn a_pooled_connection_the_mta_closed_with_421_is_replaced_unseen() {
    let (sink, gw) = start_pair(
        SinkConfig {
            bye_after_message: true,
            ..Default::default()
        },
        "",
        "",
    )
    .await;
    let mut c = greeted(gw.addr).await;
    // The pooled connection's MAIL gets 421: each client RCPT is answered
    // by a fresh connection's, never with the 421.
    send_numbered(&mut c, 3).await;
    c.expect("QUIT", 221).await;
    let msgs = sink.wait_for_messages(3, Duration::from_secs(5)).await;
    assert_eq!(msgs.len(), 3);
    assert_eq!(
        sink.connections(),
        3,
        "each message after the first on a new connection"
    );
}

#[tokio::test]
async fn upstream_rcpt_rejection_is_passed_through_and_others_delivered() {
    let mut rcpt_replies = HashMap::new();
    rcpt_replies.insert(
        "gone@example.net".to_string(),
        "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown".to_string(),
    );
    let (sink, gw) = start_pair(
        SinkConfig {
            rcpt_replies,
            ..Default::default()
        },
        "",
        "",
    )
    .await;
    let mut c = greeted(gw.addr).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    let r = c.cmd("RCPT TO:<gone@example.net>").await;
    assert_eq!(
        (r.code, r.enhanced().as_deref()),
        (550, Some("5.1.1")),
        "{r:?}"
    );
    assert!(r.text().contains("User unknown"));
    c.expect("RCPT TO:<ok@example.net>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(c.cmd("Subject: x\r\n\r\nx\r\n.").await.code, 250);
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(msgs[0].rcpts, ["ok@example.net"]);
}

#[tokio::test]
async fn upstream_down_gives_451_at_rcpt() {
    // Bind and drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = common::start(&common::config_text(port, "", "")).await;
    let mut c = greeted(gw.addr).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    let r = c.cmd("RCPT TO:<b@example.net>").await;
    assert_eq!(
        (r.code, r.enhanced().as_deref()),
        (451, Some("4.4.1")),
        "{r:?}"
    );
    let r = c.cmd("DATA").await;
    assert_eq!(
        (r.code, r.enhanced().as_deref()),
        (554, Some("5.5.1")),
        "no recipient was accepted: {r:?}"
    );
}

#[tokio::test]
async fn upstream_451_at_data_is_passed_to_the_client() {
    let cfg = SinkConfig {
        data_reply: Some("451 4.3.0 Error: queue file write error".into()),
        ..Default::default()
    };
    let (sink, gw) = start_pair(cfg, "", "").await;
    let r = send_message(
        gw.addr,
        "a@example.test",
        &["b@example.net"],
        b"Subject: x\r\n\r\nx\r\n.\r\n",
    )
    .await;
    assert_eq!(
        (r.code, r.enhanced().as_deref()),
        (451, Some("4.3.0")),
        "{r:?}"
    );
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn upstream_dropping_mid_data_gives_4xx() {
    let cfg = SinkConfig {
        drop_after_data_bytes: Some(10),
        ..Default::default()
    };
    let (_sink, gw) = start_pair(cfg, "", "").await;
    let body = format!("Subject: x\r\n\r\n{}\r\n.\r\n", "y".repeat(5000));
    let r = send_message(
        gw.addr,
        "a@example.test",
        &["b@example.net"],
        body.as_bytes(),
    )
    .await;
    assert_eq!(
        (r.code, r.enhanced().as_deref()),
        (451, Some("4.4.2")),
        "{r:?}"
    );
}

#[tokio::test]
async fn silent_upstream_times_out_with_4xx() {
    let cfg = SinkConfig {
        silent_after_data: true,
        ..Default::default()
    };
    let (_sink, gw) = start_pair(cfg, "", "").await;
    let started = std::time::Instant::now();
    let r = send_message(
        gw.addr,
        "a@example.test",
        &["b@example.net"],
        b"Subject: x\r\n\r\nx\r\n.\r\n",
    )
    .await;
    assert_eq!(
        (r.code, r.enhanced().as_deref()),
        (451, Some("4.4.2")),
        "{r:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited for upstream.timeout"
    );
}

#[tokio::test]
async fn an_upstream_that_stops_reading_times_out_with_4xx() {
    let cfg = SinkConfig {
        stall_after_354: true,
        ..Default::default()
    };
    let (_sink, gw) = start_pair(cfg, "max_message_size = 41943040", "").await;
    let started = std::time::Instant::now();
    // 20 MB: far more than the socket buffers hold.
    let body = "x".repeat(998) + "\r\n";
    let message = format!(
        "Subject: big\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <big@example.test>\r\n\r\n{}.\r\n",
        body.repeat(20_000)
    );
    let r = send_message(
        gw.addr,
        "a@example.test",
        &["b@example.net"],
        message.as_bytes(),
    )
    .await;
    assert_eq!(
        (r.code, r.enhanced().as_deref()),
        (451, Some("4.4.2")),
        "{r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "upstream.timeout (2s) bounds each write: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn silent_upstream_greeting_gives_4xx_at_rcpt() {
    let cfg = SinkConfig {
        silent_greeting: true,
        ..Default::default()
    };
    let (_sink, gw) = start_pair(cfg, "", "").await;
    let mut c = greeted(gw.addr).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    let r = c.cmd("RCPT TO:<b@example.net>").await;
    assert_eq!(r.code / 100, 4, "{r:?}");
}

#[tokio::test]
async fn chunking_upstream_gets_one_bdat_with_the_message_unstuffed() {
    let (sink, gw) = start_pair(
        SinkConfig {
            chunking: true,
            ..Default::default()
        },
        "",
        "",
    )
    .await;
    let wire = b"From: a@example.test\r\nSubject: chunk\r\n\r\n..a dot line\r\n\xff 8-bit\r\n.\r\n";
    let expected = b"From: a@example.test\r\nSubject: chunk\r\n\r\n.a dot line\r\n\xff 8-bit\r\n";
    let reply = send_message(gw.addr, "a@example.test", &["b@example.net"], wire).await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(strip_received(&msgs[0].data), expected);
    let commands = sink.commands();
    let bdat: Vec<&String> = commands.iter().filter(|c| c.starts_with("BDAT ")).collect();
    assert_eq!(bdat.len(), 1, "{commands:?}");
    assert_eq!(bdat[0], &format!("BDAT {} LAST", msgs[0].data.len()));
    assert!(
        !commands.iter().any(|c| c == "DATA"),
        "no DATA when CHUNKING is offered: {commands:?}"
    );
}
