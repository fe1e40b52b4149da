//! The Postfix-style log lines (target `smtpgate::postfix`) that
//! pflogsumm- and fail2ban-style tools read: a relay refusal before DATA
//! and a delivery, captured from the process's own tracing output.

mod common;

use common::client::{send_message, Client};
use common::sink::{Sink, SinkConfig};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter_map(|l| {
                l.split_once("smtpgate::postfix: ")
                    .map(|(_, t)| t.to_string())
            })
            .collect()
    }
}

#[tokio::test]
async fn refusals_and_deliveries_log_one_postfix_line_each() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_target(true)
        .with_env_filter("smtpgate::postfix=info")
        .init();
    let sink = Sink::start(SinkConfig::default()).await;
    let untrusted = common::config_text(
        sink.addr,
        "",
        "[relay]\nmynetworks = [\"192.0.2.0/24\"]\nlocal_domains = [\"example.test\"]\n",
    );
    let gw = common::start(&untrusted).await;
    let mut c = Client::connect(gw.addr).await;
    c.read_reply().await;
    c.expect("EHLO client.example.test", 250).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    let r = c.expect("RCPT TO:<x@example.net>", 554).await;
    assert_eq!(r.enhanced().as_deref(), Some("5.7.1"), "{r:?}");
    c.expect("QUIT", 221).await;

    let trusted = common::config_text(
        sink.addr,
        "",
        "[relay]\nlocal_domains = [\"example.test\"]\n",
    );
    let gw = common::start(&trusted).await;
    let message = b"From: <a@example.test>\r\nTo: <b@example.net>\r\nSubject: order\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.test>\r\n\r\nHello, your order has shipped.\r\n.\r\n";
    let r = send_message(gw.addr, "a@example.test", &["b@example.net"], message).await;
    assert_eq!(r.code, 250, "{r:?}");
    sink.wait_for_messages(1, Duration::from_secs(5)).await;

    let lines = captured.lines();
    assert!(
        lines.iter().any(|l| l.as_str() == "NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1 <x@example.net>: Relay access denied (reject_unauth_destination); from=<a@example.test> to=<x@example.net> proto=ESMTP helo=<client.example.test>"),
        "{lines:#?}"
    );
    let sent: Vec<&String> = lines.iter().filter(|l| l.contains("status=sent")).collect();
    assert_eq!(sent.len(), 1, "{lines:#?}");
    let (reference, rest) = sent[0].split_once(": ").expect("REF: ...");
    assert_eq!(reference.len(), 8, "{}", sent[0]);
    assert!(
        rest.starts_with("client=unknown[127.0.0.1], from=<a@example.test>, to=<b@example.net>, message-id=<m1@example.test>, size=")
            && rest.ends_with(&format!(
                ", proto=ESMTP, helo=<client.example.test>, status=sent (250 2.0.0 Ok: queued as Q000001 ref={reference})"
            )),
        "{}",
        sent[0]
    );
}
