//! At the protocol boundaries (issue 16): XFORWARD from a trusted
//! forwarder and to an upstream that offers it, SMTPUTF8 and 8BITMIME only
//! as far as the upstream takes them, and our own final reply text with
//! the upstream's queue id.

mod common;

use common::client::Client;
use common::dns::{DnsServer, Zone};
use common::sink::{Sink, SinkConfig};
use std::net::SocketAddr;
use std::time::Duration;

const MESSAGE: &str = "Subject: x\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <b@example.test>\r\n\r\nhi\r\n.\r\n";

fn code(r: &common::client::Reply) -> (u16, String) {
    (r.code, r.enhanced().unwrap_or_default())
}

async fn greeted(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO client.example.test", 250).await;
    c
}

/// The reference in our `... ref=XXXX` reply.
fn ref_of(r: &common::client::Reply) -> String {
    r.text().rsplit("ref=").next().unwrap().trim().to_string()
}

/// A gateway whose listener takes XFORWARD from `from`.
async fn forwarding_gateway(sink: &Sink, from: &str, extra: &str) -> common::Gateway {
    let text = common::config_text(sink.addr, "", extra).replace(
        "listen = [\"127.0.0.1:0\"]",
        &format!("listen = [{{ address = \"127.0.0.1:0\", xforward_from = [\"{from}\"] }}]"),
    );
    common::start(&text).await
}

#[tokio::test]
async fn smtputf8_is_refused_at_mail_when_the_upstream_lacks_it() {
    let cfg = SinkConfig {
        without_smtputf8: true,
        ..SinkConfig::default()
    };
    let (sink, gw) = common::start_pair(cfg, "", "").await;
    let mut c = greeted(gw.addr).await;
    let r = c.cmd("MAIL FROM:<a@example.test> SMTPUTF8").await;
    assert_eq!(code(&r), (553, "5.6.7".into()), "{r:?}");
    assert!(r.text().contains("SMTPUTF8 is not supported"), "{r:?}");
    // Known now: no longer advertised, and plain mail still flows.
    let r = c.expect("EHLO client.example.test", 250).await;
    assert!(!r.lines.iter().any(|l| l == "SMTPUTF8"), "{r:?}");
    assert!(r.lines.iter().any(|l| l == "8BITMIME"), "{r:?}");
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(c.cmd(MESSAGE.trim_end_matches("\r\n")).await.code, 250);
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert!(!msgs[0].mail_params.contains("SMTPUTF8"));
    assert!(!sink.commands().iter().any(|l| l.contains("SMTPUTF8")));
}

#[tokio::test]
async fn smtputf8_is_passed_when_the_upstream_has_it() {
    let (sink, gw) = common::start_pair(SinkConfig::default(), "", "").await;
    let mut c = greeted(gw.addr).await;
    c.expect("MAIL FROM:<a@example.test> SMTPUTF8", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(c.cmd(MESSAGE.trim_end_matches("\r\n")).await.code, 250);
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(msgs[0].mail_params, "SMTPUTF8");
}

#[tokio::test]
async fn eight_bit_data_never_reaches_a_seven_bit_upstream() {
    let cfg = SinkConfig {
        without_8bitmime: true,
        ..SinkConfig::default()
    };
    let (sink, gw) = common::start_pair(cfg, "", "").await;
    let mut c = greeted(gw.addr).await;
    c.expect("MAIL FROM:<a@example.test> BODY=8BITMIME", 250)
        .await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    let r = c
        .cmd("Subject: caf\u{e9}\r\n\r\nd\u{e9}j\u{e0} vu\r\n.")
        .await;
    assert_eq!(code(&r), (554, "5.6.3".into()), "{r:?}");
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(c.cmd(MESSAGE.trim_end_matches("\r\n")).await.code, 250);
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(msgs.len(), 1, "only the 7-bit message arrived");
    assert!(msgs[0].data.is_ascii());
    assert!(!sink.commands().iter().any(|l| l.contains("BODY=")));
    let r = c.expect("EHLO client.example.test", 250).await;
    assert!(!r.lines.iter().any(|l| l == "8BITMIME"), "{r:?}");
}

#[tokio::test]
async fn clients_see_our_reply_text_with_the_upstream_queue_id() {
    let (_sink, gw) = common::start_pair(SinkConfig::default(), "", "").await;
    let r = common::client::send_message(
        gw.addr,
        "a@example.test",
        &["b@example.net"],
        MESSAGE.as_bytes(),
    )
    .await;
    let reference = ref_of(&r);
    assert_eq!(reference.len(), 8, "{r:?}");
    assert_eq!(
        r.text(),
        format!("2.0.0 Ok: queued as Q000001 ref={reference}")
    );
    let cfg = SinkConfig {
        chunking: true,
        data_reply: Some("250 2.0.0  494 byte chunk, total 494".into()),
        ..SinkConfig::default()
    };
    let (_sink, gw) = common::start_pair(cfg, "", "").await;
    let r = common::client::send_message(
        gw.addr,
        "a@example.test",
        &["b@example.net"],
        MESSAGE.as_bytes(),
    )
    .await;
    let reference = ref_of(&r);
    assert_eq!(r.text(), format!("2.0.0 Ok: queued ref={reference}"));
}

#[tokio::test]
async fn xforward_tells_the_upstream_the_real_client_and_our_reference() {
    let cfg = SinkConfig {
        xforward: true,
        ..SinkConfig::default()
    };
    let (sink, gw) = common::start_pair(cfg, "", "").await;
    let r = common::client::send_message(
        gw.addr,
        "a@example.test",
        &["b@example.net"],
        MESSAGE.as_bytes(),
    )
    .await;
    assert_eq!(r.code, 250, "{r:?}");
    let reference = ref_of(&r);
    let lines = sink.xforward_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("XFORWARD NAME=[UNAVAILABLE] ADDR=127.0.0.1 PORT="),
        "{lines:?}"
    );
    assert!(
        lines[0].ends_with(" PROTO=ESMTP HELO=client.example.test"),
        "{lines:?}"
    );
    assert_eq!(
        lines[1],
        format!("XFORWARD IDENT={reference} SOURCE=LOCAL"),
        "127.0.0.1 is in mynetworks: a customer"
    );
    let commands = sink.commands();
    let mail = commands.iter().position(|l| l.starts_with("MAIL")).unwrap();
    let xf = commands
        .iter()
        .position(|l| l.starts_with("XFORWARD"))
        .unwrap();
    assert!(xf < mail, "XFORWARD comes before MAIL: {commands:?}");
    // Without the offer, nothing is sent.
    let (plain, gw) = common::start_pair(SinkConfig::default(), "", "").await;
    let r = common::client::send_message(
        gw.addr,
        "a@example.test",
        &["b@example.net"],
        MESSAGE.as_bytes(),
    )
    .await;
    assert_eq!(r.code, 250, "{r:?}");
    assert!(plain.xforward_lines().is_empty());
}

const ZONE: &str = "\
client.example.test      A     127.0.0.1
7.2.0.192.zen.test       A     127.0.0.2
";

#[tokio::test]
async fn a_forwarded_customer_is_the_client_for_checks_received_and_upstream() {
    let cfg = SinkConfig {
        xforward: true,
        ..SinkConfig::default()
    };
    let sink = Sink::start(cfg).await;
    let dns = DnsServer::start(Zone::parse(ZONE)).await;
    let extra = format!(
        "{}[relay]\nmynetworks = [\"127.0.0.0/8\", \"192.0.2.0/24\"]\n\
         [dnsbl]\nclient = [{{ zone = \"zen.test\", name = \"SPAMHAUS_ZEN\" }}]\n\
         [scores]\nRBL_SPAMHAUS_ZEN = 5.0\n",
        dns.dns_section()
    );
    let gw = forwarding_gateway(&sink, "127.0.0.1/32", &extra).await;
    let mut c = Client::connect(gw.addr).await;
    assert_eq!(c.read_reply().await.code, 220);
    let r = c.expect("EHLO proxy.example.test", 250).await;
    assert!(
        r.lines
            .iter()
            .any(|l| l == "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE LOGIN"),
        "{r:?}"
    );
    // The forwarder itself (127.0.0.1) is not listed: nothing scored.
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(c.cmd(MESSAGE.trim_end_matches("\r\n")).await.code, 250);
    // Postfix's proxy sends the attributes in pieces.
    c.expect("XFORWARD NAME=web1.customer.test ADDR=192.0.2.7", 250)
        .await;
    c.expect(
        "XFORWARD PROTO=ESMTP HELO=web1.customer.test IDENT=4XyZ1",
        250,
    )
    .await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    let r = c.cmd("XFORWARD ADDR=192.0.2.8").await;
    assert_eq!(code(&r), (503, "5.5.1".into()), "{r:?}");
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    let r = c.cmd(MESSAGE.trim_end_matches("\r\n")).await;
    assert_eq!(code(&r), (550, "5.7.1".into()), "{r:?}");
    assert!(
        r.text().starts_with(
            "5.7.1 SPAM alert: score 5.00 (must be lower 2.00): RBL_SPAMHAUS_ZEN(5.00) ref="
        ),
        "the customer's IP is judged: {r:?}"
    );
    // Forgotten after that transaction: the forwarder is the client again.
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(c.cmd(MESSAGE.trim_end_matches("\r\n")).await.code, 250);
    // A customer that is not listed: Received and XFORWARD name it.
    c.expect(
        "XFORWARD ADDR=192.0.2.9 HELO=web2.customer.test PROTO=SMTP",
        250,
    )
    .await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(c.cmd(MESSAGE.trim_end_matches("\r\n")).await.code, 250);
    let msgs = sink.wait_for_messages(3, Duration::from_secs(5)).await;
    let received = |i: usize| String::from_utf8_lossy(&msgs[i].data).to_string();
    assert!(
        received(0).starts_with("Received: from proxy.example.test ([127.0.0.1])"),
        "{}",
        received(0)
    );
    assert!(
        received(2).starts_with("Received: from web2.customer.test ([192.0.2.9])"),
        "{}",
        received(2)
    );
    assert!(received(2).contains(" with SMTP id "), "{}", received(2));
    let lines = sink.xforward_lines();
    assert!(
        lines.iter().any(|l| l.starts_with("XFORWARD NAME=[UNAVAILABLE] ADDR=192.0.2.9 PORT=[UNAVAILABLE] PROTO=SMTP HELO=web2.customer.test")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn xforward_from_anyone_else_is_refused_as_postfix_does() {
    let (sink, _) = common::start_pair(SinkConfig::default(), "", "").await;
    let gw = forwarding_gateway(&sink, "127.0.0.2/32", "").await;
    let mut c = Client::connect(gw.addr).await;
    assert_eq!(c.read_reply().await.code, 220);
    let r = c.expect("EHLO client.example.test", 250).await;
    assert!(!r.lines.iter().any(|l| l.starts_with("XFORWARD")), "{r:?}");
    let r = c.cmd("XFORWARD ADDR=192.0.2.7").await;
    assert_eq!(code(&r), (550, "5.7.0".into()), "{r:?}");
    assert_eq!(r.text(), "5.7.0 Error: insufficient authorization");
    let r = c.cmd("XFORWARD COLOR=red").await;
    assert_eq!(code(&r), (550, "5.7.0".into()), "{r:?}");
    // From the allowed address: syntax errors are Postfix's 501s.
    let local: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let mut c = Client::connect_from(gw.addr, local).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO proxy.example.test", 250).await;
    let r = c.cmd("XFORWARD COLOR=red").await;
    assert_eq!(code(&r), (501, "5.5.4".into()), "{r:?}");
    assert_eq!(r.text(), "5.5.4 Bad XFORWARD attribute name: COLOR");
    let r = c.cmd("XFORWARD ADDR=nowhere").await;
    assert_eq!(r.text(), "5.5.4 Bad XFORWARD ADDR syntax");
    c.expect("XFORWARD ADDR=192.0.2.7", 250).await;
}

#[tokio::test]
async fn a_local_domains_file_of_a_million_lines_is_used_and_followed_without_reload() {
    let sink = Sink::start(SinkConfig::default()).await;
    let dir = std::env::temp_dir().join(format!("smtpgate-domains-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("local_domains");
    let mut text = String::with_capacity(24_000_000);
    text.push_str("# our customers' domains\n");
    for i in 0..1_000_000 {
        text.push_str(&format!("customer{i}.example.test\n"));
    }
    std::fs::write(&file, &text).unwrap();
    // 127.0.0.1 is not trusted: it may send only to local domains.
    let extra = format!(
        "[relay]\nmynetworks = [\"192.0.2.0/24\"]\nlocal_domains = [\"example.test\"]\n\
         local_domains_file = \"{}\"\n",
        file.display()
    );
    let gw = common::start(&common::config_text(sink.addr, "", &extra)).await;
    let mut c = greeted(gw.addr).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.test>", 250).await;
    c.expect("RCPT TO:<b@customer999999.example.test>", 250)
        .await;
    c.expect("RCPT TO:<b@Customer7.Example.Test>", 250).await;
    let r = c.cmd("RCPT TO:<b@newcomer.example.test>").await;
    assert_eq!(code(&r), (554, "5.7.1".into()), "{r:?}");
    // The hosting panel appends a domain: it counts within a second or
    // two, with no SIGHUP.
    text.push_str("newcomer.example.test\n");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&file, &text).unwrap();
    let start = std::time::Instant::now();
    loop {
        let r = c.cmd("RCPT TO:<b@newcomer.example.test>").await;
        if r.code == 250 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the appended domain never counted: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_local_domains_file_is_a_configuration_error() {
    let text = common::config_text(
        "127.0.0.1:1".parse().unwrap(),
        "",
        "[relay]\nlocal_domains_file = \"/nonexistent/local_domains\"\n",
    );
    let config = smtpgate::config::Config::from_text(std::path::Path::new("gw.toml"), &text)
        .expect("parses");
    let err = smtpgate::app::App::build(config, None)
        .err()
        .expect("refused");
    assert_eq!(
        err.to_string(),
        "/nonexistent/local_domains: cannot read: No such file or directory (os error 2)"
    );
}
