//! Envelope checks over a real DNS server (hickory-server on 127.0.0.1) and
//! the store: unknown HELO, client reverse DNS, unknown sender domain and
//! null MX, DNS failures as 4xx (never 5xx), known-bad recipients learned
//! from the MTA's 5.1.1, DNSBL listings.

mod common;

use common::client::Client;
use common::dns::{DnsServer, Mode, Zone};
use common::sink::{Sink, SinkConfig};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

const ZONE: &str = "\
client.example.test      A     127.0.0.1
example.test             MX    10 mx.example.test
mx.example.test          A     127.0.0.1
aonly.test               A     192.0.2.1
nomail.test              MX    0 .
broken.test              SERVFAIL
slow.test                TIMEOUT
1.0.0.127.in-addr.arpa   PTR   client.example.test
1.0.0.127.zen.test       A     127.0.0.2
1.0.0.127.refused.test   A     127.255.255.254
";

async fn gateway(sink: &Sink, dns: &DnsServer, extra: &str) -> common::Gateway {
    common::start(&common::config_text(
        sink.addr,
        "",
        &format!("{}{extra}", dns.dns_section()),
    ))
    .await
}

fn code(r: &common::client::Reply) -> (u16, String) {
    (r.code, r.enhanced().unwrap_or_default())
}

async fn connect(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr).await;
    assert_eq!(c.read_reply().await.code, 220);
    c
}

#[tokio::test]
async fn unknown_helo_and_sender_domains_with_exact_codes() {
    let dns = DnsServer::start(Zone::parse(ZONE)).await;
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = gateway(
        &sink,
        &dns,
        "[envelope]\nreject_unknown_helo_hostname = true\nreject_unknown_sender_domain = true\n",
    )
    .await;
    let mut c = connect(gw.addr).await;
    let r = c.cmd("EHLO ghost.example.test").await;
    assert_eq!(code(&r), (450, "4.7.1".into()), "{r:?}");
    assert!(r.text().contains("<ghost.example.test>: Helo command rejected: Host not found (reject_unknown_helo_hostname)"), "{r:?}");
    c.expect("EHLO client.example.test", 250).await;
    for (sender, want, enhanced, text) in [
        ("a@nxdomain.test", 550, "5.1.8", "Domain not found"),
        (
            "a@nomail.test",
            550,
            "5.7.27",
            "Domain does not accept mail (null MX)",
        ),
        ("a@broken.test", 451, "4.3.0", ""),
        ("a@slow.test", 451, "4.3.0", ""),
    ] {
        let r = c.cmd(&format!("MAIL FROM:<{sender}>")).await;
        assert_eq!(code(&r), (want, enhanced.to_string()), "{sender}: {r:?}");
        assert!(r.text().contains(text), "{sender}: {r:?}");
    }
    for sender in ["a@example.test", "a@aonly.test", ""] {
        c.expect(&format!("MAIL FROM:<{sender}>"), 250).await;
        c.expect("RSET", 250).await;
    }
}

#[tokio::test]
async fn a_dns_server_that_never_answers_or_servfails_gives_4xx_never_5xx() {
    let dns = DnsServer::start(Zone::parse(ZONE)).await;
    let sink = Sink::start(SinkConfig::default()).await;
    let extra = "[envelope]\nreject_unknown_helo_hostname = true\nreject_unknown_sender_domain = true\nreject_unknown_client_hostname = true\n";
    let gw = gateway(&sink, &dns, extra).await;
    for mode in [Mode::Silent, Mode::ServFail] {
        dns.set_mode(mode);
        let mut c = connect(gw.addr).await;
        let r = c.cmd("EHLO unseen.example.test").await;
        assert_eq!(r.code / 100, 4, "{mode:?}: {r:?}");
        assert_eq!(code(&r), (451, "4.3.0".into()), "{mode:?}: {r:?}");
    }
    dns.set_mode(Mode::Answer);
}

/// Loopback reverse lookups are answered locally (RFC 6761), so the client
/// comes "from" 192.0.2.10 through a PROXY header.
#[tokio::test]
async fn client_reverse_dns_and_forward_confirmation() {
    let sink = Sink::start(SinkConfig::default()).await;
    let extra = "[envelope]\nreject_unknown_reverse_client_hostname = true\nreject_unknown_client_hostname = true\n";
    let zone = "web1.customer.test A 192.0.2.10\n10.2.0.192.in-addr.arpa PTR web1.customer.test\n";
    let ehlo = |zone: String| {
        let sink_addr = sink.addr;
        async move {
            let dns = DnsServer::start(Zone::parse(&zone)).await;
            let text = common::config_text(sink_addr, "", &format!("{}{extra}", dns.dns_section()))
                .replace(
                    "listen = [\"127.0.0.1:0\"]",
                    "listen = [{ address = \"127.0.0.1:0\", proxy_protocol = true }]",
                );
            let gw = common::start(&text).await;
            let mut c = Client::connect(gw.addr).await;
            c.send(b"PROXY TCP4 192.0.2.10 127.0.0.1 40000 25\r\n")
                .await;
            assert_eq!(c.read_reply().await.code, 220);
            c.cmd("EHLO web1.customer.test").await
        }
    };
    // PTR -> web1.customer.test -> 192.0.2.10: confirmed.
    assert_eq!(ehlo(zone.to_string()).await.code, 250);
    // The PTR name resolves elsewhere: not confirmed.
    let r = ehlo(zone.replace("A 192.0.2.10", "A 192.0.2.77")).await;
    assert_eq!(code(&r), (450, "4.7.25".into()), "{r:?}");
    assert!(
        r.text()
            .contains("cannot find your hostname, [192.0.2.10] (reject_unknown_client_hostname)"),
        "{r:?}"
    );
    // No PTR at all.
    let r = ehlo("web1.customer.test A 192.0.2.10\n".to_string()).await;
    assert_eq!(code(&r), (450, "4.7.25".into()), "{r:?}");
    assert!(
        r.text()
            .contains("(reject_unknown_reverse_client_hostname)"),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_hard_bounced_recipient_is_learned_and_blocked_alone() {
    let mut rcpt_replies = HashMap::new();
    rcpt_replies.insert(
        "gone@example.net".to_string(),
        "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown".to_string(),
    );
    rcpt_replies.insert(
        "sender-typo@example.net".to_string(),
        "550 5.1.0 <a@example.test>: Sender address rejected: User unknown in local recipient table".to_string(),
    );
    let sink = Sink::start(SinkConfig {
        rcpt_replies,
        ..Default::default()
    })
    .await;
    let dns = DnsServer::start(Zone::parse(ZONE)).await;
    let gw = gateway(&sink, &dns, "").await;
    let mut c = connect(gw.addr).await;
    c.expect("EHLO client.example.test", 250).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    let r = c.cmd("RCPT TO:<gone@example.net>").await;
    assert_eq!(
        code(&r),
        (550, "5.1.1".into()),
        "the MTA's own reply first: {r:?}"
    );
    assert!(r.text().contains("User unknown"));
    c.expect("RSET", 250).await;
    // Next message: gone@ is refused by us, ok@ goes through.
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    let r = c.cmd("RCPT TO:<gone@example.net>").await;
    assert_eq!(code(&r), (550, "5.1.1".into()), "{r:?}");
    assert!(
        r.text()
            .contains("reject_known_bad_recipient_address (0.00) blocks sending on its own"),
        "{r:?}"
    );
    c.expect("RCPT TO:<ok@example.net>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(c.cmd("Subject: x\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <kb@example.test>\r\n\r\nhi\r\n.").await.code, 250);
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(msgs[0].rcpts, ["ok@example.net"]);
    let asked: Vec<String> = sink
        .commands()
        .into_iter()
        .filter(|l| l.contains("gone@example.net"))
        .collect();
    assert_eq!(
        asked.len(),
        1,
        "the second attempt never reached the MTA: {asked:?}"
    );
    // A refusal about the sender, given at RCPT (Postfix's delayed sender
    // restriction, 5.1.0), teaches nothing about the recipient.
    c.expect("RSET", 250).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    let r = c.cmd("RCPT TO:<sender-typo@example.net>").await;
    assert_eq!(code(&r), (550, "5.1.0".into()), "{r:?}");
    c.expect("RSET", 250).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    let r = c.cmd("RCPT TO:<sender-typo@example.net>").await;
    assert!(
        !r.text().contains("reject_known_bad_recipient_address"),
        "not learned: {r:?}"
    );
    assert_eq!(
        sink.commands()
            .iter()
            .filter(|l| l.contains("sender-typo@example.net"))
            .count(),
        2,
        "both attempts asked the MTA"
    );
}

#[tokio::test]
async fn dnsbl_listing_is_scored_and_refusal_codes_are_ignored() {
    let sink = Sink::start(SinkConfig::default()).await;
    let dns = DnsServer::start(Zone::parse(ZONE)).await;
    let message = "Subject: x\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bl@example.test>\r\n\r\nhi\r\n.\r\n";
    for zone in ["zen.test", "refused.test"] {
        let extra =
            format!("[dnsbl]\nclient = [{{ zone = \"{zone}\", name = \"SPAMHAUS_ZEN\" }}]\n[headers]\nspamd_result = \"full\"\n");
        let gw = gateway(&sink, &dns, &extra).await;
        let r = common::client::send_message(
            gw.addr,
            "a@example.test",
            &["b@example.net"],
            message.as_bytes(),
        )
        .await;
        assert_eq!(r.code, 250, "a listing alone is scored, not forced: {r:?}");
    }
    let msgs = sink.wait_for_messages(2, Duration::from_secs(5)).await;
    let first = String::from_utf8_lossy(&msgs[0].data);
    assert!(
        first.contains("RBL_SPAMHAUS_ZEN(1.50)[127.0.0.1 listed in zen.test (127.0.0.2)]"),
        "{first}"
    );
    let second = String::from_utf8_lossy(&msgs[1].data);
    assert!(
        !second.contains("RBL_SPAMHAUS_ZEN"),
        "127.255.255.254 is not a listing: {second}"
    );
}

#[tokio::test]
async fn a_dnsbl_outage_is_skipped_by_default_and_tempfails_when_configured() {
    let sink = Sink::start(SinkConfig::default()).await;
    let dns = DnsServer::start(Zone::parse(ZONE)).await;
    let message = "Subject: x\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bl2@example.test>\r\n\r\nhi\r\n.\r\n";
    let zone = "[dnsbl]\nclient = [{ zone = \"zen.test\", name = \"SPAMHAUS_ZEN\" }]\n";
    let skip = gateway(&sink, &dns, zone).await;
    let tempfail = gateway(&sink, &dns, &format!("{zone}on_error = \"tempfail\"\n")).await;
    dns.set_mode(Mode::Silent);
    let r = common::client::send_message(
        skip.addr,
        "a@example.test",
        &["b@example.net"],
        message.as_bytes(),
    )
    .await;
    assert_eq!(r.code, 250, "a DNSBL outage does not stop mail: {r:?}");
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert!(!String::from_utf8_lossy(&msgs[0].data).contains("RBL_"));
    let mut c = connect(tempfail.addr).await;
    let r = c.cmd("EHLO client.example.test").await;
    assert_eq!(code(&r), (451, "4.3.0".into()), "{r:?}");
    dns.set_mode(Mode::Answer);
}

#[tokio::test]
async fn bad_recipients_cli_imports_lists_and_removes() {
    let redis = common::redis::RedisServer::start();
    let sink = Sink::start(SinkConfig::default()).await;
    let dns = DnsServer::start(Zone::parse(ZONE)).await;
    let extra = format!(
        "[store]\nbackend = \"redis\"\nredis_url = \"{}\"\n",
        redis.url()
    );
    let text = common::config_text(sink.addr, "", &format!("{}{extra}", dns.dns_section()));
    let dir = std::env::temp_dir().join(format!("smtpgate-badrcpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cfg, list) = (dir.join("gw.toml"), dir.join("bad.txt"));
    std::fs::write(&cfg, &text).unwrap();
    std::fs::write(
        &list,
        "# from the old bounce collector\ngone@example.net\n<old@example.net>\n\n",
    )
    .unwrap();
    let run = |args: Vec<String>| {
        let cfg = cfg.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_smtpgate"))
                    .arg("bad-recipients")
                    .args(["--config", cfg.to_str().unwrap()])
                    .args(args)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let out = run(vec!["import".into(), list.to_str().unwrap().into()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "imported 2 addresses\n"
    );
    let out = run(vec!["list".into()]).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "gone@example.net\timported\nold@example.net\timported\n"
    );
    let gw = common::start(&text).await;
    let mut c = connect(gw.addr).await;
    c.expect("EHLO client.example.test", 250).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    let r = c.cmd("RCPT TO:<gone@example.net>").await;
    assert_eq!(code(&r), (550, "5.1.1".into()), "{r:?}");
    assert!(
        r.text()
            .contains("reject_known_bad_recipient_address (0.00)"),
        "{r:?}"
    );
    let out = run(vec!["remove".into(), "gone@example.net".into()]).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "removed gone@example.net\n"
    );
    c.expect("RCPT TO:<gone@example.net>", 250).await;
    let out = run(vec!["remove".into(), "nobody@example.net".into()]).await;
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn unlisted_local_recipients_are_refused_and_the_list_reloads() {
    let sink = Sink::start(SinkConfig::default()).await;
    let dns = DnsServer::start(Zone::parse(ZONE)).await;
    let dir = std::env::temp_dir().join(format!("smtpgate-unlisted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("recipients.txt");
    std::fs::write(&list, "info@example.test\n@shop.example.test\n").unwrap();
    let extra = format!("[relay]\nlocal_domains = [\"example.test\", \"shop.example.test\"]\nlocal_recipients = \"{}\"\n", list.display());
    let text = common::config_text(sink.addr, "", &format!("{}{extra}", dns.dns_section()));
    let gw = common::start(&text).await;
    let rcpt = |addr: &'static str| {
        let gw_addr = gw.addr;
        async move {
            let mut c = connect(gw_addr).await;
            c.expect("EHLO client.example.test", 250).await;
            c.expect("MAIL FROM:<a@example.test>", 250).await;
            c.cmd(&format!("RCPT TO:<{addr}>")).await
        }
    };
    assert_eq!(rcpt("info@example.test").await.code, 250);
    assert_eq!(rcpt("anyone@shop.example.test").await.code, 250);
    assert_eq!(rcpt("b@example.net").await.code, 250, "not a local domain");
    let r = rcpt("nobody@example.test").await;
    assert_eq!(code(&r), (550, "5.1.1".into()), "{r:?}");
    assert!(r.text().contains("<nobody@example.test>: Recipient address rejected: User unknown (reject_unlisted_recipient)"), "{r:?}");
    std::fs::write(&list, "info@example.test\nnobody@example.test\n").unwrap();
    gw.handle.reload_from_text(&text).unwrap();
    assert_eq!(rcpt("nobody@example.test").await.code, 250, "reloaded");
}

#[tokio::test]
async fn sender_callout_accepts_refuses_and_tempfails_with_caching() {
    let mut rcpt_replies = HashMap::new();
    rcpt_replies.insert(
        "bad@sender.test".to_string(),
        "550 5.1.1 <bad@sender.test>: User unknown".to_string(),
    );
    rcpt_replies.insert(
        "busy@sender.test".to_string(),
        "451 4.3.0 Try again later".to_string(),
    );
    // The sender domain's MX, played by a sink on 127.0.0.1.
    let mx = Sink::start(SinkConfig {
        rcpt_replies,
        ..Default::default()
    })
    .await;
    let upstream = Sink::start(SinkConfig::default()).await;
    let zone = format!("{ZONE}sender.test MX 10 mx.sender.test\nmx.sender.test A 127.0.0.1\n");
    let dns = DnsServer::start(Zone::parse(&zone)).await;
    let extra = format!("[envelope]\nreject_unverified_sender = \"all\"\ncallout_port = {}\ncallout_timeout = \"1s\"\n", mx.addr.port());
    let gw = gateway(&upstream, &dns, &extra).await;
    let mail = |sender: &'static str| {
        let addr = gw.addr;
        async move {
            let mut c = connect(addr).await;
            c.expect("EHLO client.example.test", 250).await;
            c.cmd(&format!("MAIL FROM:<{sender}>")).await
        }
    };
    assert_eq!(mail("ok@sender.test").await.code, 250);
    assert_eq!(mx.connections(), 1);
    assert_eq!(mail("ok@sender.test").await.code, 250, "cached");
    assert_eq!(mx.connections(), 1, "the second message makes no callout");
    let r = mail("bad@sender.test").await;
    assert_eq!(code(&r), (550, "5.1.7".into()), "{r:?}");
    assert!(r.text().contains("(reject_unverified_sender)"), "{r:?}");
    assert_eq!(code(&mail("bad@sender.test").await), (550, "5.1.7".into()));
    assert_eq!(mx.connections(), 2, "the refusal is cached too");
    let r = mail("busy@sender.test").await;
    assert_eq!(code(&r), (450, "4.1.7".into()), "{r:?}");
    assert_eq!(code(&mail("busy@sender.test").await), (450, "4.1.7".into()));
    assert_eq!(mx.connections(), 4, "tempfails are not cached");
    assert!(
        mx.commands().iter().any(|c| c == "MAIL FROM:<>"),
        "callouts use the null sender"
    );
    // A silent MX: 450 4.1.7 after callout_timeout, never a 5xx.
    let silent = Sink::start(SinkConfig {
        silent_greeting: true,
        ..Default::default()
    })
    .await;
    let extra = format!("[envelope]\nreject_unverified_sender = \"all\"\ncallout_port = {}\ncallout_timeout = \"1s\"\n", silent.addr.port());
    let gw = gateway(&upstream, &dns, &extra).await;
    let mut c = connect(gw.addr).await;
    c.expect("EHLO client.example.test", 250).await;
    let r = c.cmd("MAIL FROM:<ok@sender.test>").await;
    assert_eq!(code(&r), (450, "4.1.7".into()), "{r:?}");

    // A babbling MX (no newline, ever): given up on after a line's worth,
    // long before callout_timeout, and still a tempfail.
    let babbler = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = babbler.local_addr().unwrap().port();
    let babble = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (mut s, _) = babbler.accept().await.unwrap();
        let junk = vec![b'x'; 64 * 1024];
        let mut sent = 0usize;
        while sent < 64 << 20 {
            match tokio::time::timeout(Duration::from_secs(5), s.write_all(&junk)).await {
                Ok(Ok(())) => sent += junk.len(),
                _ => break,
            }
        }
        sent
    });
    let extra = format!("[envelope]\nreject_unverified_sender = \"all\"\ncallout_port = {port}\ncallout_timeout = \"10s\"\n");
    let gw = gateway(&upstream, &dns, &extra).await;
    let mut c = connect(gw.addr).await;
    c.expect("EHLO client.example.test", 250).await;
    let started = std::time::Instant::now();
    let r = c.cmd("MAIL FROM:<ok@sender.test>").await;
    assert_eq!(code(&r), (450, "4.1.7".into()), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let sent = babble.await.unwrap();
    assert!(
        sent < 64 << 20,
        "the gateway hung up on the babbler ({sent} bytes)"
    );
}
