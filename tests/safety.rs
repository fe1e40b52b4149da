//! Bad input gets a clear reply, never a panic and never a smuggled
//! message: line limits, NUL, error counting, size and recipient limits,
//! timeouts, the connection limit, SMTP smuggling and STARTTLS injection.

mod common;

use common::client::Client;
use common::sink::SinkConfig;
use common::start_pair;
use std::time::Duration;

async fn greeted(addr: std::net::SocketAddr) -> Client {
    let mut c = Client::connect(addr).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO client.example.test", 250).await;
    c
}

fn code(r: &common::client::Reply) -> (u16, Option<String>) {
    (r.code, r.enhanced())
}

#[tokio::test]
async fn smuggling_variants_end_the_session_and_nothing_is_delivered() {
    let (sink, gw) = start_pair(SinkConfig::default(), "", "").await;
    let variants: [&[u8]; 6] = [
        b"\n.\n", b"\r.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\n.\r",
    ];
    for variant in variants {
        let mut c = greeted(gw.addr).await;
        c.expect("MAIL FROM:<a@example.test>", 250).await;
        c.expect("RCPT TO:<b@example.net>", 250).await;
        c.expect("DATA", 354).await;
        let mut payload = b"Subject: first\r\n\r\nhello".to_vec();
        payload.extend_from_slice(variant);
        payload.extend_from_slice(b"MAIL FROM:<evil@example.test>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n");
        c.send(&payload).await;
        let r = c.read_reply().await;
        assert_eq!(
            code(&r),
            (521, Some("5.5.2".into())),
            "variant {variant:?}: {r:?}"
        );
        assert!(c.is_closed().await, "variant {variant:?}: session must end");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        sink.messages().is_empty(),
        "nothing may reach the upstream: {:?}",
        sink.messages().len()
    );
    assert!(!sink
        .commands()
        .iter()
        .any(|c| c.contains("evil") || c.contains("victim")));
}

#[tokio::test]
async fn long_lines_get_500_and_the_session_stays_usable() {
    let (_sink, gw) = start_pair(SinkConfig::default(), "", "").await;
    let mut c = greeted(gw.addr).await;
    let r = c.cmd(&format!("NOOP {}", "x".repeat(600))).await;
    assert_eq!(code(&r), (500, Some("5.5.2".into())));
    // MAIL may carry parameters up to 1,000 octets...
    let local = "l".repeat(900);
    c.expect(&format!("MAIL FROM:<{local}@example.test>"), 250)
        .await;
    // ...but not more.
    let r = c
        .cmd(&format!("RCPT TO:<{}@example.net>", "r".repeat(1000)))
        .await;
    assert_eq!(code(&r), (500, Some("5.5.2".into())));
    // A line far past every limit is discarded as it streams in.
    let r = c.cmd(&"z".repeat(100_000)).await;
    assert_eq!(code(&r), (500, Some("5.5.2".into())));
    c.expect("NOOP", 250).await;
}

#[tokio::test]
async fn nul_in_command_gets_500() {
    let (_sink, gw) = start_pair(SinkConfig::default(), "", "").await;
    let mut c = greeted(gw.addr).await;
    c.send(b"NO\0OP\r\n").await;
    assert_eq!(code(&c.read_reply().await), (500, Some("5.5.2".into())));
    c.expect("NOOP", 250).await;
}

#[tokio::test]
async fn nul_in_message_is_refused() {
    let (sink, gw) = start_pair(SinkConfig::default(), "", "").await;
    let r = common::client::send_message(
        gw.addr,
        "a@example.test",
        &["b@example.net"],
        b"Subject: x\r\n\r\na\0b\r\n.\r\n",
    )
    .await;
    assert_eq!(code(&r), (550, Some("5.6.0".into())));
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn non_ascii_link_text_is_scanned_not_a_panic() {
    let (sink, gw) = start_pair(SinkConfig::default(), "", "").await;
    let message = "From: <a@example.test>\r\nTo: <b@example.net>\r\nSubject: menu\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCafé menu\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<a href=\"https://shop.example.test/\">Café</a> <a href=\"https://shop.example.test/cn\">点击这里</a>\r\n--b--\r\n.\r\n";
    let r = common::client::send_message(
        gw.addr,
        "a@example.test",
        &["b@example.net"],
        message.as_bytes(),
    )
    .await;
    assert_eq!(code(&r), (250, Some("2.0.0".into())), "{r:?}");
    assert_eq!(
        sink.wait_for_messages(1, Duration::from_secs(5))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn twenty_errors_close_with_421() {
    let (_sink, gw) = start_pair(SinkConfig::default(), "", "").await;
    let mut c = greeted(gw.addr).await;
    for _ in 0..19 {
        assert_eq!(code(&c.cmd("BOGUS").await), (502, Some("5.5.2".into())));
    }
    c.send(b"BOGUS\r\n").await;
    assert_eq!(c.read_reply().await.code, 502);
    assert_eq!(code(&c.read_reply().await), (421, Some("4.7.0".into())));
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn commands_out_of_sequence_get_503() {
    let (_sink, gw) = start_pair(SinkConfig::default(), "", "").await;
    let mut c = Client::connect(gw.addr).await;
    c.read_reply().await;
    assert_eq!(
        code(&c.cmd("MAIL FROM:<a@example.test>").await),
        (503, Some("5.5.1".into()))
    );
    c.expect("EHLO client.example.test", 250).await;
    assert_eq!(
        code(&c.cmd("RCPT TO:<b@example.net>").await),
        (503, Some("5.5.1".into()))
    );
    assert_eq!(code(&c.cmd("DATA").await), (503, Some("5.5.1".into())));
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    assert_eq!(
        code(&c.cmd("MAIL FROM:<a@example.test>").await),
        (503, Some("5.5.1".into()))
    );
    assert_eq!(code(&c.cmd("VRFY a").await), (252, Some("2.5.0".into())));
    assert_eq!(c.cmd("HELP").await.code, 214);
}

#[tokio::test]
async fn size_limit_on_size_parameter_and_on_data() {
    let (sink, gw) = start_pair(SinkConfig::default(), "max_message_size = 1000", "").await;
    let mut c = greeted(gw.addr).await;
    let r = c.cmd("MAIL FROM:<a@example.test> SIZE=1001").await;
    assert_eq!(code(&r), (552, Some("5.3.4".into())));
    c.expect("MAIL FROM:<a@example.test> SIZE=500", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    let big = format!("Subject: big\r\n\r\n{}\r\n.", "y".repeat(5000));
    assert_eq!(code(&c.cmd(&big).await), (552, Some("5.3.4".into())));
    // The session goes on.
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(c.cmd("Subject: small\r\n\r\nok\r\n.").await.code, 250);
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(msgs.len(), 1);
    assert!(String::from_utf8_lossy(&msgs[0].data).contains("Subject: small"));
}

#[tokio::test]
async fn too_many_recipients_get_452() {
    let (sink, gw) = start_pair(SinkConfig::default(), "max_recipients = 3", "").await;
    let mut c = greeted(gw.addr).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    for i in 0..3 {
        c.expect(&format!("RCPT TO:<r{i}@example.net>"), 250).await;
    }
    assert_eq!(
        code(&c.cmd("RCPT TO:<r3@example.net>").await),
        (452, Some("4.5.3".into()))
    );
    c.expect("DATA", 354).await;
    assert_eq!(c.cmd("Subject: x\r\n\r\nx\r\n.").await.code, 250);
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(msgs[0].rcpts.len(), 3);
}

#[tokio::test]
async fn idle_client_gets_421_timeout() {
    let (_sink, gw) = start_pair(SinkConfig::default(), "idle_timeout = \"1s\"", "").await;
    let mut c = greeted(gw.addr).await;
    let r = c.read_reply().await;
    assert_eq!(code(&r), (421, Some("4.4.2".into())));
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn slow_data_times_out_and_nothing_is_delivered() {
    let (sink, gw) = start_pair(SinkConfig::default(), "data_timeout = \"1s\"", "").await;
    let mut c = greeted(gw.addr).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    c.send(b"Subject: slow\r\n").await;
    assert_eq!(code(&c.read_reply().await), (421, Some("4.4.2".into())));
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_client_that_does_not_read_its_replies_is_dropped_and_frees_the_upstream() {
    let sink = common::sink::Sink::start(SinkConfig::default()).await;
    let text = common::config_text(sink.addr, "idle_timeout = \"1s\"", "")
        .replace("[upstream]\n", "[upstream]\nmax_connections = 1\n");
    let gw = common::start(&text).await;
    let mut stuck = greeted(gw.addr).await;
    stuck.expect("MAIL FROM:<a@example.test>", 250).await;
    // Holds the only upstream connection.
    stuck.expect("RCPT TO:<b@example.net>", 250).await;
    // Pipelines NOOPs and never reads a reply (bounded: 6 s, 64 MB).
    let writer = tokio::spawn(async move {
        let noops = b"NOOP\r\n".repeat(10_000);
        let start = std::time::Instant::now();
        let mut sent = 0;
        while start.elapsed() < Duration::from_secs(6) && sent < 64 << 20 {
            if !stuck.send_within(&noops, Duration::from_millis(500)).await {
                break;
            }
            sent += noops.len();
        }
        stuck
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut c = greeted(gw.addr).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    let r = c.cmd("RCPT TO:<c@example.net>").await;
    assert_eq!(
        code(&r),
        (250, Some("2.1.5".into())),
        "the stuck session gave its upstream connection back: {r:?}"
    );
    drop(writer.await.unwrap());
}

#[tokio::test]
async fn a_trickling_client_hits_the_data_deadline() {
    let (sink, gw) = start_pair(
        SinkConfig::default(),
        "data_timeout = \"1s\"\ndata_deadline = \"2s\"",
        "",
    )
    .await;
    let mut c = greeted(gw.addr).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    let start = std::time::Instant::now();
    // One byte every 300 ms: each read is quick, the whole is not.
    let mut sent = 0;
    while sent < 20 && c.send_within(b"x", Duration::from_millis(500)).await {
        sent += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if start.elapsed() > Duration::from_millis(2500) {
            break;
        }
    }
    assert_eq!(code(&c.read_reply().await), (421, Some("4.4.2".into())));
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn connections_over_the_limit_get_421() {
    let (_sink, gw) = start_pair(SinkConfig::default(), "max_connections = 2", "").await;
    let _a = greeted(gw.addr).await;
    let _b = greeted(gw.addr).await;
    let mut c = Client::connect(gw.addr).await;
    let r = c.read_reply().await;
    assert_eq!(code(&r), (421, Some("4.7.0".into())), "{r:?}");
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn helo_checks_refuse_non_fqdn_and_invalid_names() {
    let (_sink, gw) = start_pair(SinkConfig::default(), "", "").await;
    let mut c = Client::connect(gw.addr).await;
    c.read_reply().await;
    let r = c.cmd("EHLO localhost").await;
    assert_eq!(code(&r), (504, Some("5.5.2".into())));
    assert!(
        r.text()
            .contains("need fully-qualified hostname (reject_non_fqdn_helo_hostname)"),
        "{r:?}"
    );
    let r = c.cmd("HELO bad..name").await;
    assert_eq!(code(&r), (501, Some("5.5.2".into())));
    assert!(r.text().contains("reject_invalid_helo_hostname"), "{r:?}");
    c.expect("EHLO web1.example.test", 250).await;
    let r = c.cmd("MAIL FROM:<a@localhost>").await;
    assert_eq!(code(&r), (504, Some("5.5.2".into())));
    assert!(r.text().contains("reject_non_fqdn_sender"), "{r:?}");
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    let r = c.cmd("RCPT TO:<b@intranet>").await;
    assert_eq!(code(&r), (504, Some("5.5.2".into())));
    assert!(r.text().contains("reject_non_fqdn_recipient"), "{r:?}");
}

#[tokio::test]
async fn ehlo_advertises_the_extensions() {
    let (_sink, gw) = start_pair(
        SinkConfig::default(),
        "max_message_size = 12345",
        &common::tls_section(),
    )
    .await;
    let mut c = Client::connect(gw.addr).await;
    c.read_reply().await;
    let r = c.expect("EHLO client.example.test", 250).await;
    for ext in [
        "PIPELINING",
        "SIZE 12345",
        "STARTTLS",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "SMTPUTF8",
    ] {
        assert!(r.lines.iter().any(|l| l == ext), "{ext} missing: {r:?}");
    }
}

#[tokio::test]
async fn starttls_delivers_and_records_tls_in_received() {
    let (sink, gw) = start_pair(SinkConfig::default(), "", &common::tls_section()).await;
    let mut c = greeted(gw.addr).await;
    c.expect("STARTTLS", 220).await;
    let ca = std::fs::read(common::tls_dir().join("ca.pem")).unwrap();
    let mut c = c.starttls("gw.example.test", &ca).await;
    let r = c.expect("EHLO client.example.test", 250).await;
    assert!(
        !r.lines.iter().any(|l| l == "STARTTLS"),
        "not offered twice"
    );
    assert_eq!(code(&c.cmd("STARTTLS").await), (503, Some("5.5.1".into())));
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(c.cmd("Subject: tls\r\n\r\nx\r\n.").await.code, 250);
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&msgs[0].data).to_string();
    assert!(text.contains("(using TLSv1.3 with cipher TLS13_"), "{text}");
    assert!(text.contains("with ESMTPS id"), "{text}");
}

#[tokio::test]
async fn plaintext_pipelined_after_starttls_is_discarded() {
    let (sink, gw) = start_pair(SinkConfig::default(), "", &common::tls_section()).await;
    let mut c = greeted(gw.addr).await;
    // CVE-2011-0411: commands injected behind STARTTLS in the same packet.
    c.send(b"STARTTLS\r\nMAIL FROM:<evil@example.test>\r\nRCPT TO:<victim@example.net>\r\n")
        .await;
    assert_eq!(c.read_reply().await.code, 220);
    let ca = std::fs::read(common::tls_dir().join("ca.pem")).unwrap();
    let mut c = c.starttls("gw.example.test", &ca).await;
    // Had the injected MAIL been processed, this would be a nested MAIL (503),
    // and a reply to it would be waiting; EHLO must be the first reply.
    let r = c.cmd("EHLO client.example.test").await;
    assert_eq!(r.code, 250, "{r:?}");
    // After STARTTLS the session starts over: MAIL needs the new EHLO only.
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("QUIT", 221).await;
    assert!(!sink
        .commands()
        .iter()
        .any(|l| l.contains("evil") || l.contains("victim")));
}

#[tokio::test]
async fn starttls_without_certificate_is_454() {
    let (_sink, gw) = start_pair(SinkConfig::default(), "", "").await;
    let mut c = greeted(gw.addr).await;
    assert_eq!(code(&c.cmd("STARTTLS").await), (454, Some("4.7.0".into())));
}

/// A gateway whose listener expects a PROXY header, with a long
/// idle_timeout (so "closed at once" cannot be the timeout) and
/// mynetworks elsewhere (so the balancer itself may not relay).
async fn proxy_gateway() -> (common::sink::Sink, common::Gateway) {
    let sink = common::sink::Sink::start(SinkConfig::default()).await;
    let text = common::config_text(
        sink.addr,
        "idle_timeout = \"60s\"",
        "[relay]\nmynetworks = [\"192.0.2.0/24\"]\n",
    )
    .replace(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [{ address = \"127.0.0.1:0\", proxy_protocol = true }]",
    );
    let gw = common::start(&text).await;
    (sink, gw)
}

fn proxy_v2_local() -> Vec<u8> {
    use ppp::v2::{Addresses, Builder, Command, Protocol, Version};
    Builder::with_addresses(
        Version::Two | Command::Local,
        Protocol::Unspecified,
        Addresses::Unspecified,
    )
    .build()
    .unwrap()
}

/// HAProxy's `check-send-proxy` health check: a v2 LOCAL header. The
/// connection is served as the balancer's own (127.0.0.1: outside
/// mynetworks here, so no relay); v1 UNKNOWN likewise.
#[tokio::test]
async fn proxy_v2_local_health_check_is_served_as_the_balancer() {
    let (_sink, gw) = proxy_gateway().await;
    for header in [proxy_v2_local(), b"PROXY UNKNOWN\r\n".to_vec()] {
        let mut c = Client::connect(gw.addr).await;
        c.send(&header).await;
        assert_eq!(c.read_reply().await.code, 220);
        c.expect("EHLO haproxy.example.test", 250).await;
        c.expect("MAIL FROM:<a@example.test>", 250).await;
        let r = c.cmd("RCPT TO:<b@example.net>").await;
        assert_eq!(code(&r), (554, Some("5.7.1".into())), "{r:?}");
        c.expect("QUIT", 221).await;
    }
}

/// CPU time of this thread (the test's current-thread runtime runs the
/// gateway too), in clock ticks.
fn thread_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// A half-sent PROXY header, then the client leaves: the gateway closes at
/// once (not at idle_timeout), and clients that stop mid-header cost no
/// CPU while they wait (no polling).
#[tokio::test]
async fn half_a_proxy_header_then_close_is_closed_at_once_without_spinning() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_sink, gw) = proxy_gateway().await;
    let v2 = proxy_v2_local();
    for half in [&v2[..10], &b"PROXY TCP4 192.0.2.1 "[..]] {
        let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        tcp.write_all(half).await.unwrap();
        tcp.shutdown().await.unwrap();
        let started = std::time::Instant::now();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "closed without a greeting within 1 s: {read:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    let mut waiting = Vec::new();
    for _ in 0..200 {
        let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        tcp.write_all(&v2[..10]).await.unwrap();
        waiting.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = thread_cpu_ticks();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let spent = thread_cpu_ticks() - before;
    assert!(
        spent <= 3,
        "200 half headers used {spent} ticks of CPU in 1 s"
    );
}
