//! Relay control and SMTP AUTH: routing tricks refused whoever the client
//! is, relay only for our networks or after AUTH, AUTH over TLS with every
//! reply code and hash scheme, the brute-force lockout, sender_login_maps,
//! and swaks as a real AUTH client.

mod common;

use common::client::Client;
use common::sink::{Sink, SinkConfig};
use smtpgate::base64;
use std::net::SocketAddr;
use std::time::Duration;

const UNTRUSTED: &str = "mynetworks = [\"192.0.2.0/24\"]";
const TRUSTED: &str = "mynetworks = [\"127.0.0.0/8\"]";

fn config(sink: &Sink, mynetworks: &str, auth_extra: &str) -> String {
    let fixtures = common::root().join("tests/fixtures/auth");
    common::config_text(
        sink.addr,
        "",
        &format!(
            "{}[relay]\n{mynetworks}\nlocal_domains = [\"example.test\"]\n\
             [auth]\npasswd_file = \"{}\"\nsender_login_maps = \"{}\"\n{auth_extra}\n",
            common::tls_section(),
            fixtures.join("passwd").display(),
            fixtures.join("sender_logins").display(),
        ),
    )
}

async fn ehlo(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO client.example.test", 250).await;
    c
}

/// Connected, STARTTLS done, EHLO again; returns the EHLO reply lines too.
async fn tls(addr: SocketAddr) -> (Client, Vec<String>) {
    let mut c = ehlo(addr).await;
    c.expect("STARTTLS", 220).await;
    let ca = std::fs::read(common::tls_dir().join("ca.pem")).unwrap();
    let mut c = c.starttls("gw.example.test", &ca).await;
    let r = c.expect("EHLO client.example.test", 250).await;
    (c, r.lines)
}

fn plain(user: &str, password: &str) -> String {
    base64::encode(format!("\0{user}\0{password}").as_bytes())
}

fn code(r: &common::client::Reply) -> (u16, String) {
    (r.code, r.enhanced().unwrap_or_default())
}

/// (recipient, code, enhanced code, text the reply must contain)
const TRICKS: &[(&str, u16, &str, &str)] = &[
    (
        "<@relay.test:b@example.net>",
        550,
        "5.7.1",
        "source routes are not allowed",
    ),
    (
        "<@a.test,@b.test:b@example.test>",
        550,
        "5.7.1",
        "source routes are not allowed",
    ),
    ("<b%example.net@example.test>", 550, "5.7.1", "the % hack"),
    (
        "<b%example.net%relay.test@example.test>",
        550,
        "5.7.1",
        "the % hack",
    ),
    ("<example.net!b@example.test>", 550, "5.7.1", "bang paths"),
    (
        "<\"b@example.net\"@example.test>",
        550,
        "5.7.1",
        "quoted local part may not hide",
    ),
    (
        "<\"b%example.net\"@example.test>",
        550,
        "5.7.1",
        "quoted local part may not hide",
    ),
    (
        "<\"example.net!b\"@example.test>",
        550,
        "5.7.1",
        "quoted local part may not hide",
    ),
    (
        "<b@example.net@example.test>",
        550,
        "5.7.1",
        "more than one @",
    ),
    (
        "<b@[203.0.113.5]>",
        550,
        "5.7.1",
        "address literals other than ours",
    ),
    (
        "<b@[IPv6:2001:db8::1]>",
        550,
        "5.7.1",
        "address literals other than ours",
    ),
    (
        "<b@[999.1.1.1]>",
        550,
        "5.7.1",
        "a malformed address literal",
    ),
    (
        "<b@example.test.>",
        550,
        "5.7.1",
        "a trailing dot in the domain",
    ),
    (
        "<b.@example.test>",
        550,
        "5.7.1",
        "dots out of place in the local part",
    ),
    (
        "<.b@example.test>",
        550,
        "5.7.1",
        "dots out of place in the local part",
    ),
    (
        "<a..b@example.test>",
        550,
        "5.7.1",
        "dots out of place in the local part",
    ),
    (
        "<b@example..test>",
        504,
        "5.5.2",
        "need fully-qualified address",
    ),
    (
        "<b@.example.test>",
        504,
        "5.5.2",
        "need fully-qualified address",
    ),
    ("<b@exa mple.test>", 501, "5.1.3", "invalid character"),
    ("<b@example.test\t>", 501, "5.1.3", "invalid character"),
    ("<b@intranet>", 504, "5.5.2", "need fully-qualified address"),
];

/// Plain relay attempts an untrusted, unauthenticated client must not make.
const RELAY: &[&str] = &[
    "<b@example.net>",
    "<postmaster@example.org>",
    "<x@sub.example.test.evil.test>",
    "<b@EXAMPLE.NET>",
];

#[tokio::test]
async fn untrusted_clients_get_exact_refusals_for_relay_and_routing_tricks() {
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = common::start(&config(&sink, UNTRUSTED, "")).await;
    let mut c = ehlo(gw.addr).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    let mut refused = 0;
    for (rcpt, want, enhanced, text) in TRICKS {
        let r = c.cmd(&format!("RCPT TO:{rcpt}")).await;
        assert_eq!(code(&r), (*want, enhanced.to_string()), "{rcpt}: {r:?}");
        assert!(r.text().contains(text), "{rcpt}: {r:?}");
        refused += 1;
    }
    for rcpt in RELAY {
        let r = c.cmd(&format!("RCPT TO:{rcpt}")).await;
        assert_eq!(code(&r), (554, "5.7.1".into()), "{rcpt}: {r:?}");
        assert!(
            r.text()
                .contains("Relay access denied (reject_unauth_destination)"),
            "{r:?}"
        );
        refused += 1;
    }
    assert!(refused >= 20);
    // Our own domain is fine.
    c.expect("RCPT TO:<b@example.test>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(c.cmd("Subject: local\r\n\r\nhi\r\n.").await.code, 250);
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(msgs[0].rcpts, ["b@example.test"]);
}

#[tokio::test]
async fn trusted_clients_relay_but_routing_tricks_are_still_refused() {
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = common::start(&config(&sink, TRUSTED, "")).await;
    let mut c = ehlo(gw.addr).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    for (rcpt, want, enhanced, _) in TRICKS {
        let r = c.cmd(&format!("RCPT TO:{rcpt}")).await;
        assert_eq!(code(&r), (*want, enhanced.to_string()), "{rcpt}: {r:?}");
    }
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(c.cmd("Subject: relay\r\n\r\nhi\r\n.").await.code, 250);
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(msgs[0].rcpts, ["b@example.net"]);
}

#[tokio::test]
async fn auth_is_offered_only_after_tls_and_lets_untrusted_clients_relay() {
    let sink = Sink::start(SinkConfig::default()).await;
    // With received_login the Received header names the login.
    let text = config(&sink, UNTRUSTED, "").replace(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [\"127.0.0.1:0\"]\nreceived_login = true",
    );
    let gw = common::start(&text).await;
    let mut c = Client::connect(gw.addr).await;
    c.read_reply().await;
    let r = c.expect("EHLO client.example.test", 250).await;
    assert!(
        !r.lines.iter().any(|l| l.starts_with("AUTH")),
        "no AUTH before TLS: {r:?}"
    );
    let r = c
        .cmd(&format!(
            "AUTH PLAIN {}",
            plain("plain@example.test", "secret")
        ))
        .await;
    assert_eq!(code(&r), (538, "5.7.11".into()), "{r:?}");
    let (mut c, lines) = tls(gw.addr).await;
    assert!(lines.iter().any(|l| l == "AUTH PLAIN LOGIN"), "{lines:?}");
    // However the client spells the login, the identity is the
    // passwd-file's (one rate-limit budget, one name in Received).
    let r = c
        .cmd(&format!(
            "AUTH PLAIN {}",
            plain("Plain@Example.TEST", "secret")
        ))
        .await;
    assert_eq!(code(&r), (235, "2.7.0".into()), "{r:?}");
    let r = c
        .cmd(&format!(
            "AUTH PLAIN {}",
            plain("plain@example.test", "secret")
        ))
        .await;
    assert_eq!(code(&r), (503, "5.5.1".into()), "{r:?}");
    c.expect("MAIL FROM:<plain@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(
        c.cmd("Subject: authenticated\r\n\r\nhi\r\n.").await.code,
        250
    );
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&msgs[0].data);
    assert!(text.contains("with ESMTPSA id"), "{text}");
    assert!(
        text.contains("(Authenticated sender: plain@example.test)"),
        "{text}"
    );
}

#[tokio::test]
async fn auth_reply_codes_for_plain_and_login() {
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = common::start(&config(&sink, UNTRUSTED, "max_failures = 100\n")).await;
    let (mut c, _) = tls(gw.addr).await;
    // Wrong password, PLAIN with initial response.
    let r = c
        .cmd(&format!(
            "AUTH PLAIN {}",
            plain("plain@example.test", "wrong")
        ))
        .await;
    assert_eq!(code(&r), (535, "5.7.8".into()), "{r:?}");
    // Unknown mechanism, bad base64, cancel.
    assert_eq!(code(&c.cmd("AUTH CRAM-MD5").await), (504, "5.5.4".into()));
    assert_eq!(
        code(&c.cmd("AUTH PLAIN %%%notbase64").await),
        (501, "5.5.2".into())
    );
    let r = c.cmd("AUTH PLAIN").await;
    assert_eq!((r.code, r.lines[0].as_str()), (334, ""), "{r:?}");
    assert_eq!(code(&c.cmd("*").await), (501, "5.7.0".into()));
    // LOGIN without initial response.
    let r = c.cmd("AUTH LOGIN").await;
    assert_eq!((r.code, r.lines[0].as_str()), (334, "VXNlcm5hbWU6"));
    let r = c.cmd(&base64::encode(b"sha512@example.test")).await;
    assert_eq!((r.code, r.lines[0].as_str()), (334, "UGFzc3dvcmQ6"));
    assert_eq!(
        code(&c.cmd(&base64::encode(b"wrong")).await),
        (535, "5.7.8".into())
    );
    // LOGIN with the user as initial response, right password.
    let r = c
        .cmd(&format!(
            "AUTH LOGIN {}",
            base64::encode(b"sha512@example.test")
        ))
        .await;
    assert_eq!(r.code, 334);
    assert_eq!(
        code(&c.cmd(&base64::encode(b"secret")).await),
        (235, "2.7.0".into())
    );
    // PLAIN challenge-response form, every hash scheme.
    for user in ["sha512", "sha256", "blf", "argon", "plain"] {
        let (mut c, _) = tls(gw.addr).await;
        assert_eq!(c.cmd("AUTH PLAIN").await.code, 334);
        let r = c
            .cmd(&plain(&format!("{user}@example.test"), "secret"))
            .await;
        assert_eq!(code(&r), (235, "2.7.0".into()), "{user}: {r:?}");
    }
}

#[tokio::test]
async fn auth_with_the_store_down_is_454() {
    let sink = Sink::start(SinkConfig::default()).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let text = config(&sink, UNTRUSTED, "")
        + &format!(
            "[store]\nbackend = \"redis\"\nredis_url = \"redis://{dead}\"\ntimeout = \"300ms\"\n"
        );
    let gw = common::start(&text).await;
    let (mut c, _) = tls(gw.addr).await;
    let r = c
        .cmd(&format!(
            "AUTH PLAIN {}",
            plain("plain@example.test", "secret")
        ))
        .await;
    assert_eq!(code(&r), (454, "4.7.0".into()), "{r:?}");
}

#[tokio::test]
async fn lockout_refuses_even_the_right_password_until_it_expires() {
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = common::start(&config(
        &sink,
        UNTRUSTED,
        "max_failures = 3\nlockout = \"2s\"\n",
    ))
    .await;
    // A connection that starts AUTH LOGIN now and answers after the
    // lockout has begun (a staged guess) is refused too.
    let (mut staged, _) = tls(gw.addr).await;
    assert_eq!(staged.cmd("AUTH LOGIN").await.code, 334);
    assert_eq!(
        staged
            .cmd(&base64::encode(b"plain@example.test"))
            .await
            .code,
        334
    );
    let (mut c, _) = tls(gw.addr).await;
    for _ in 0..2 {
        let r = c
            .cmd(&format!(
                "AUTH PLAIN {}",
                plain("plain@example.test", "guess")
            ))
            .await;
        assert_eq!(code(&r), (535, "5.7.8".into()));
    }
    c.send(format!("AUTH PLAIN {}\r\n", plain("plain@example.test", "guess")).as_bytes())
        .await;
    assert_eq!(code(&c.read_reply().await), (535, "5.7.8".into()));
    assert_eq!(code(&c.read_reply().await), (421, "4.7.0".into()));
    assert!(c.is_closed().await);
    let r = staged.cmd(&base64::encode(b"secret")).await;
    assert_eq!(code(&r), (421, "4.7.0".into()), "staged guess: {r:?}");
    // Locked: the right password is refused too, and the connection closed.
    let (mut c, _) = tls(gw.addr).await;
    let r = c
        .cmd(&format!(
            "AUTH PLAIN {}",
            plain("plain@example.test", "secret")
        ))
        .await;
    assert_eq!(code(&r), (421, "4.7.0".into()), "{r:?}");
    assert!(c.is_closed().await);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (mut c, _) = tls(gw.addr).await;
    let r = c
        .cmd(&format!(
            "AUTH PLAIN {}",
            plain("plain@example.test", "secret")
        ))
        .await;
    assert_eq!(code(&r), (235, "2.7.0".into()), "after the lockout: {r:?}");
}

#[tokio::test]
async fn sender_login_maps_allow_owned_addresses_and_domains_only() {
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = common::start(&config(&sink, UNTRUSTED, "")).await;
    let (mut c, _) = tls(gw.addr).await;
    c.expect(
        &format!("AUTH PLAIN {}", plain("webshop", "shop-pass")),
        235,
    )
    .await;
    c.expect("MAIL FROM:<orders@shop.test>", 250).await;
    c.expect("RSET", 250).await;
    c.expect("MAIL FROM:<weekly@news.shop.test>", 250).await;
    c.expect("RSET", 250).await;
    let r = c.cmd("MAIL FROM:<ceo@bank.test>").await;
    assert_eq!(code(&r), (553, "5.7.1".into()), "{r:?}");
    assert!(
        r.text()
            .contains("<ceo@bank.test>: Sender address rejected: not owned by user"),
        "{r:?}"
    );
    let r = c.cmd("MAIL FROM:<orders@sub.news.shop.test>").await;
    assert_eq!(code(&r), (553, "5.7.1".into()), "{r:?}");
}

#[tokio::test]
async fn a_trusted_cleartext_listener_offers_auth_without_tls() {
    let sink = Sink::start(SinkConfig::default()).await;
    let text = config(&sink, UNTRUSTED, "").replace(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [{ address = \"127.0.0.1:0\", trusted_cleartext = true }]",
    );
    let gw = common::start(&text).await;
    let mut c = Client::connect(gw.addr).await;
    c.read_reply().await;
    let r = c.expect("EHLO client.example.test", 250).await;
    assert!(r.lines.iter().any(|l| l == "AUTH PLAIN LOGIN"), "{r:?}");
    c.expect(
        &format!("AUTH PLAIN {}", plain("plain@example.test", "secret")),
        235,
    )
    .await;
    // By default the Received header says ESMTPA but not who logged in
    // (Postfix's smtpd_sasl_authenticated_header = no).
    c.expect("MAIL FROM:<plain@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(c.cmd("Subject: cleartext\r\n\r\nhi\r\n.").await.code, 250);
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&msgs[0].data);
    assert!(text.contains("with ESMTPA id"), "{text}");
    assert!(!text.contains("Authenticated sender"), "{text}");
    assert!(!text.contains("plain@example.test)"), "{text}");
}

fn swaks(addr: SocketAddr, mechanism: &str) -> std::process::Output {
    std::process::Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &addr.port().to_string()])
        .args([
            "--helo",
            "client.example.test",
            "--from",
            "plain@example.test",
            "--to",
            "rcpt@example.net",
        ])
        .args([
            "--tls",
            "--auth",
            mechanism,
            "--auth-user",
            "plain@example.test",
            "--auth-password",
            "secret",
        ])
        .args([
            "--header",
            &format!("Subject: swaks {mechanism}"),
            "--body",
            "Authenticated.",
            "--timeout",
            "10",
        ])
        .output()
        .expect("swaks must be installed (.ci/run installs it)")
}

#[tokio::test]
async fn swaks_authenticates_with_plain_and_login_over_tls() {
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = common::start(&config(&sink, UNTRUSTED, "")).await;
    for (i, mechanism) in ["PLAIN", "LOGIN"].into_iter().enumerate() {
        let addr = gw.addr;
        let out = tokio::task::spawn_blocking(move || swaks(addr, mechanism))
            .await
            .unwrap();
        let transcript = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "swaks {mechanism}:\n{transcript}");
        assert!(
            transcript.contains("235 2.7.0 Authentication successful"),
            "{transcript}"
        );
        let msgs = sink.wait_for_messages(i + 1, Duration::from_secs(5)).await;
        let text = String::from_utf8_lossy(&msgs[i].data).to_string();
        assert!(
            text.contains(&format!("Subject: swaks {mechanism}")),
            "{text}"
        );
        assert!(text.contains("with ESMTPSA id"), "{text}");
    }
}

/// A connection to a PROXY-protocol listener that first sends `header`.
async fn via_proxy(addr: SocketAddr, header: &[u8]) -> Client {
    let mut c = Client::connect(addr).await;
    c.send(header).await;
    c
}

fn proxy_v2(source: &str) -> Vec<u8> {
    use ppp::v2::{Builder, Command, Protocol, Version};
    let src: SocketAddr = source.parse().unwrap();
    let dst: SocketAddr = if src.is_ipv6() {
        "[::1]:25"
    } else {
        "127.0.0.1:25"
    }
    .parse()
    .unwrap();
    Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, (src, dst))
        .build()
        .unwrap()
}

#[tokio::test]
async fn proxy_protocol_source_address_decides_relay() {
    let sink = Sink::start(SinkConfig::default()).await;
    let text = config(&sink, TRUSTED, "").replace(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [{ address = \"127.0.0.1:0\", proxy_protocol = true }]",
    );
    let gw = common::start(&text).await;
    // v2 "from" 192.0.2.10: not in mynetworks, so no relay.
    let mut c = via_proxy(gw.addr, &proxy_v2("192.0.2.10:40000")).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO client.example.test", 250).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    let r = c.cmd("RCPT TO:<b@example.net>").await;
    assert_eq!(code(&r), (554, "5.7.1".into()), "{r:?}");
    // v1 "from" 127.0.0.9 (mynetworks): relayed, and the Received header names it.
    let mut c = via_proxy(gw.addr, b"PROXY TCP4 127.0.0.9 127.0.0.1 40001 25\r\n").await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO client.example.test", 250).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(c.cmd("Subject: proxied\r\n\r\nhi\r\n.").await.code, 250);
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&msgs[0].data);
    assert!(text.contains("[127.0.0.9]"), "{text}");
    // v2 from a mynetworks address also relays.
    let mut c = via_proxy(gw.addr, &proxy_v2("127.0.0.7:40002")).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO client.example.test", 250).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    // An IPv4 client as a dual-stack socket shows it (::ffff:127.0.0.6) is
    // that IPv4 client: in mynetworks.
    let mut c = via_proxy(gw.addr, &proxy_v2("[::ffff:127.0.0.6]:40003")).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO client.example.test", 250).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    // No header (a plain SMTP client) or a garbage one: closed, no greeting.
    let mut c = via_proxy(gw.addr, b"EHLO client.example.test\r\n").await;
    assert!(c.is_closed().await, "garbage instead of a PROXY header");
    // UNKNOWN (a health check) is the balancer's own connection (127.0.0.1).
    let mut c = via_proxy(gw.addr, b"PROXY UNKNOWN\r\n").await;
    assert_eq!(
        c.read_reply().await.code,
        220,
        "UNKNOWN: the connection's own address"
    );

    // proxy_from: only the load balancers may send the header.
    for (from, allowed) in [("192.0.2.0/24", false), ("127.0.0.0/8", true)] {
        let text = config(&sink, TRUSTED, "").replace(
            "listen = [\"127.0.0.1:0\"]",
            &format!(
                "listen = [{{ address = \"127.0.0.1:0\", proxy_protocol = true, proxy_from = [\"{from}\"] }}]"
            ),
        );
        let gw = common::start(&text).await;
        let mut c = via_proxy(gw.addr, &proxy_v2("127.0.0.9:40004")).await;
        if allowed {
            assert_eq!(c.read_reply().await.code, 220, "{from}");
        } else {
            assert!(c.is_closed().await, "a peer outside proxy_from {from}");
        }
    }
}

#[tokio::test]
async fn implicit_tls_listener_speaks_tls_from_the_first_byte() {
    let sink = Sink::start(SinkConfig::default()).await;
    let text = config(&sink, UNTRUSTED, "").replace(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [{ address = \"127.0.0.1:0\", implicit_tls = true }]",
    );
    let gw = common::start(&text).await;
    let ca = std::fs::read(common::tls_dir().join("ca.pem")).unwrap();
    let mut c = Client::connect(gw.addr)
        .await
        .starttls("gw.example.test", &ca)
        .await;
    assert_eq!(c.read_reply().await.code, 220);
    let r = c.expect("EHLO client.example.test", 250).await;
    assert!(!r.lines.iter().any(|l| l == "STARTTLS"), "{r:?}");
    assert!(r.lines.iter().any(|l| l == "AUTH PLAIN LOGIN"), "{r:?}");
    c.expect(
        &format!("AUTH PLAIN {}", plain("plain@example.test", "secret")),
        235,
    )
    .await;
    c.expect("MAIL FROM:<plain@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(c.cmd("Subject: 465\r\n\r\nhi\r\n.").await.code, 250);
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert!(String::from_utf8_lossy(&msgs[0].data).contains("with ESMTPSA id"));
    // Without [tls], such a listener is a configuration error.
    let no_tls = text.replace(&common::tls_section(), "");
    let config =
        smtpgate::config::Config::from_text(std::path::Path::new("gw.toml"), &no_tls).unwrap();
    let err = smtpgate::app::App::build(config, None)
        .err()
        .expect("implicit_tls without [tls]")
        .to_string();
    assert!(
        err.contains("implicit_tls = true but there is no [tls] section"),
        "{err}"
    );
}
