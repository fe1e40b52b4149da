//! Interop with a real MTA: Postfix as the client (relayhost = smtpgate,
//! SASL PLAIN over STARTTLS, not in mynetworks) and Postfix as the upstream, each a private instance on
//! loopback ports (`postfix -c DIR start-fg`, run as root as CI does).
//!
//! * a good message arrives through client Postfix -> smtpgate -> upstream
//!   Postfix -> sink;
//! * reject mode: client Postfix bounces the spam itself, quoting our reply;
//! * bounce mode: the SPAM alert reaches the originator's mailbox (the sink
//!   behind the upstream Postfix);
//! * XFORWARD to the upstream Postfix: its log names the customer
//!   (`orig_client=`) and our reference (`orig_queue_id=`);
//! * Postfix in front with `smtpd_proxy_filter = smtpgate` (SMTPD_PROXY_README):
//!   its XFORWARD makes the customer's address and HELO the client smtpgate
//!   judges (a DNSBL-listed customer is refused through Postfix in real time).

mod common;

use common::client::Client;
use common::sink::{Sink, SinkConfig, SinkMessage};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private Postfix instance, stopped on drop.
struct Postfix {
    dir: PathBuf,
    child: Child,
    port: u16,
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .args(["-c", &self.dir.join("etc").to_string_lossy(), "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("SMTPGATE_KEEP_POSTFIX").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const MASTER: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

/// Starts Postfix named `name` listening on a free loopback port, with
/// `main` appended to a minimal main.cf (no DNS, loopback only).
async fn postfix(name: &str, main: &str) -> Postfix {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("smtpgate-pf-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["etc", "spool", "data"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let chown = Command::new("chown")
        .args(["postfix", &dir.join("data").to_string_lossy()])
        .status();
    assert!(
        chown.is_ok_and(|s| s.success()),
        "chown postfix: the interop tests run as root with Debian's postfix installed"
    );
    let port = free_port();
    let d = dir.display();
    let main_cf = format!(
        "compatibility_level = 3.6\nqueue_directory = {d}/spool\ndata_directory = {d}/data\n\
         mail_owner = postfix\nsetgid_group = postdrop\ninet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n\
         myhostname = {name}.example.test\nmydomain = example.test\nmydestination =\n\
         smtp_dns_support_level = disabled\nmynetworks = 127.0.0.0/8\n\
         smtpd_relay_restrictions = permit_mynetworks, reject\nalias_maps =\nalias_database =\n\
         maillog_file_prefixes = /var, /dev/stdout, /tmp\nmaillog_file = {d}/maillog\nbiff = no\nsmtputf8_enable = no\n\
         queue_run_delay = 1s\nminimal_backoff_time = 1s\nmaximal_backoff_time = 2s\n{main}\n"
    );
    std::fs::write(dir.join("etc/main.cf"), main_cf).unwrap();
    std::fs::write(
        dir.join("etc/master.cf"),
        format!("127.0.0.1:{port} inet n - n - - smtpd\n{MASTER}"),
    )
    .unwrap();
    let etc = dir.join("etc");
    let check = Command::new("postfix")
        .args(["-c", &etc.to_string_lossy(), "check"])
        .status()
        .expect("postfix installed");
    assert!(check.success(), "postfix check failed: see {d}/maillog");
    let child = Command::new("postfix")
        .args(["-c", &etc.to_string_lossy(), "start-fg"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pf = Postfix { dir, child, port };
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "postfix {name} did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pf
}

/// Submits `data` to an SMTP server (the client Postfix).
async fn submit(port: u16, from: &str, to: &str, data: &str) {
    let mut c = Client::connect(SocketAddr::from(([127, 0, 0, 1], port))).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO web1.customer.test", 250).await;
    c.expect(&format!("MAIL FROM:<{from}>"), 250).await;
    c.expect(&format!("RCPT TO:<{to}>"), 250).await;
    c.expect("DATA", 354).await;
    let r = c.cmd(data.strip_suffix("\r\n").unwrap()).await;
    assert_eq!(r.code, 250, "client Postfix queued it: {r:?}");
    c.expect("QUIT", 221).await;
}

async fn wait_for(sink: &Sink, pred: impl Fn(&SinkMessage) -> bool) -> SinkMessage {
    let start = Instant::now();
    loop {
        if let Some(m) = sink.messages().into_iter().find(|m| pred(m)) {
            return m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no such message reached the sink: {:?}",
            sink.messages()
                .iter()
                .map(|m| (&m.mail_from, &m.rcpts))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The chain: sink <- upstream Postfix <- smtpgate (mode) <- client Postfix.
async fn chain(mode: &str) -> (Sink, Postfix, common::Gateway, Postfix) {
    let sink = Sink::start(SinkConfig::default()).await;
    let upstream = postfix(
        "upstream",
        &format!("relayhost = [127.0.0.1]:{}\n", sink.addr.port()),
    )
    .await;
    // The client Postfix is not in mynetworks: it relays only because it
    // authenticates (SASL PLAIN over STARTTLS) as the shop's login.
    let passwd = upstream.dir.join("smtpgate-passwd");
    std::fs::write(&passwd, format!("shop@customer.test:{SHOP_HASH}\n")).unwrap();
    let text = common::config_text(
        SocketAddr::from(([127, 0, 0, 1], upstream.port)),
        "",
        &format!(
            "{}[relay]\nmynetworks = [\"192.0.2.0/24\"]\nlocal_domains = [\"customer.test\"]\n\
             [auth]\npasswd_file = \"{}\"\n",
            common::tls_section(),
            passwd.display()
        ),
    )
    .replace(
        "spam_action = \"reject\"",
        &format!("spam_action = \"{mode}\""),
    );
    let gw = common::start(&text).await;
    let client = postfix(
        "client",
        &format!(
            "relayhost = [127.0.0.1]:{gw}\nsmtp_tls_policy_maps = inline:{{[127.0.0.1]:{gw}=encrypt}}\n\
             smtp_sasl_auth_enable = yes\n\
             smtp_sasl_password_maps = inline:{{[127.0.0.1]:{gw}=shop@customer.test:secret}}\n\
             smtp_sasl_security_options = noanonymous\nsmtp_sasl_tls_security_options = noanonymous\n\
             smtp_helo_name = mta.customer.test\n\
             transport_maps = inline:{{customer.test=smtp:[127.0.0.1]:{sink}}}\n",
            gw = gw.addr.port(),
            sink = sink.addr.port()
        ),
    )
    .await;
    (sink, upstream, gw, client)
}

/// "secret", made by `openssl passwd -6 -salt saltsalt secret` (as in
/// tests/fixtures/auth).
const SHOP_HASH: &str = "{SHA512-CRYPT}$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";

const GOOD: &str = "From: Shop <shop@customer.test>\r\nTo: <client@example.net>\r\nSubject: Your order has shipped\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <order-1@customer.test>\r\n\r\nHello, your order is on its way.\r\n.\r\n";

/// PHISHING(4.00) + BULK_NO_UNSUBSCRIBE(2.00) + SUBJ_ALL_CAPS(0.30): spam.
const SPAM: &str = "From: Shop <shop@customer.test>\r\nTo: <client@example.net>\r\nSubject: LAST CHANCE SALE\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <sale-1@customer.test>\r\nPrecedence: bulk\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nLog in today.\r\n--b1\r\nContent-Type: text/html\r\n\r\n<p>Log in to <a href=\"https://login.evil.test/x\">www.bank.test</a> today.</p>\r\n--b1--\r\n.\r\n";

#[tokio::test]
async fn postfix_to_smtpgate_to_postfix_delivers_and_postfix_bounces_our_reject() {
    let (sink, _upstream, _gw, client) = chain("reject").await;
    submit(
        client.port,
        "shop@customer.test",
        "client@example.net",
        GOOD,
    )
    .await;
    let good = wait_for(&sink, |m| m.rcpts == ["client@example.net"]).await;
    assert_eq!(good.mail_from, "shop@customer.test");
    let text = String::from_utf8_lossy(&good.data);
    assert!(
        text.contains("by gw.example.test (smtpgate) with ESMTPSA id"),
        "client Postfix used STARTTLS and SASL AUTH to us: {text}"
    );
    assert!(
        text.contains("by upstream.example.test (Postfix)"),
        "upstream Postfix relayed it: {text}"
    );
    assert!(!text.contains("X-Spamd-Result"), "off by default: {text}");
    assert!(text.contains("Hello, your order is on its way."));

    // Spam in reject mode: Postfix (the client) writes its own bounce to the
    // sender, quoting our 550 with the breakdown.
    submit(
        client.port,
        "shop@customer.test",
        "client@example.net",
        SPAM,
    )
    .await;
    let bounce = wait_for(&sink, |m| {
        m.mail_from.is_empty() && m.rcpts == ["shop@customer.test"]
    })
    .await;
    let text = String::from_utf8_lossy(&bounce.data).replace("\r\n", "\n");
    assert!(
        text.contains("Undelivered Mail Returned to Sender"),
        "{text}"
    );
    assert!(
        text.contains("550 5.7.1 SPAM alert: score 6.30 (must be lower 2.00):"),
        "our reply is quoted: {text}"
    );
    assert!(text.contains("PHISHING(4.00)"), "{text}");
    assert_eq!(
        sink.messages()
            .iter()
            .filter(|m| m.rcpts == ["client@example.net"])
            .count(),
        1,
        "the spam was not delivered"
    );
}

#[tokio::test]
async fn bounce_mode_alert_reaches_the_originator_through_postfix() {
    let (sink, _upstream, _gw, client) = chain("bounce").await;
    submit(
        client.port,
        "shop@customer.test",
        "client@example.net",
        SPAM,
    )
    .await;
    let alert = wait_for(&sink, |m| {
        m.mail_from.is_empty() && m.rcpts == ["shop@customer.test"]
    })
    .await;
    let text = String::from_utf8_lossy(&alert.data);
    assert!(
        text.contains("Subject: SPAM alert: LAST CHANCE SALE"),
        "{text}"
    );
    assert!(
        text.contains("by upstream.example.test (Postfix)"),
        "delivered through the upstream Postfix: {text}"
    );
    assert!(text.contains("report-type=delivery-status"), "{text}");
    let parsed = mail_parser::MessageParser::default()
        .parse(&alert.data)
        .unwrap();
    let body = parsed.body_text(0).unwrap().replace("\r\n", "\n");
    assert!(
        body.contains("Score: 6.30 (must be lower 2.00)\nSymbols:\n  PHISHING (4.00)\n"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !sink
            .messages()
            .iter()
            .any(|m| m.rcpts == ["client@example.net"]),
        "the spam was not delivered"
    );
}

/// The reference in our final reply (`250 2.0.0 Ok: queued as … ref=REF`).
fn reference_of(reply: &common::client::Reply) -> String {
    let text = reply.text();
    let at = text.find("ref=").expect("a reference in the reply") + 4;
    text[at..]
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap()
        .to_string()
}

/// Waits until `pred` holds for the instance's log; returns the log.
async fn wait_for_log(pf: &Postfix, pred: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(pf.dir.join("maillog")).unwrap_or_default();
        if pred(&log) {
            return log;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not in the Postfix log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn postfix_upstream_logs_the_real_client_and_our_reference() {
    let sink = Sink::start(SinkConfig::default()).await;
    let upstream = postfix(
        "xfwd",
        &format!(
            "relayhost = [127.0.0.1]:{}\nsmtpd_authorized_xforward_hosts = 127.0.0.0/8\n",
            sink.addr.port()
        ),
    )
    .await;
    let text = common::config_text(
        SocketAddr::from(([127, 0, 0, 1], upstream.port)),
        "",
        "[relay]\nmynetworks = [\"127.0.0.0/8\"]\n",
    );
    let gw = common::start(&text).await;
    // The customer's web server is 127.0.0.5; smtpgate reaches Postfix
    // from 127.0.0.1.
    let mut c = Client::connect_from(gw.addr, [127, 0, 0, 5].into()).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO web1.customer.test", 250).await;
    c.expect("MAIL FROM:<shop@customer.test>", 250).await;
    c.expect("RCPT TO:<client@example.net>", 250).await;
    c.expect("DATA", 354).await;
    let r = c.cmd(GOOD.strip_suffix("\r\n").unwrap()).await;
    assert_eq!(r.code, 250, "{r:?}");
    let reference = reference_of(&r);
    c.expect("QUIT", 221).await;
    wait_for(&sink, |m| m.rcpts == ["client@example.net"]).await;
    // Postfix logs the XFORWARD attributes: the customer as orig_client,
    // our reference as orig_queue_id (client= is the connection, smtpgate).
    let log = wait_for_log(&upstream, |l| l.contains("orig_queue_id=")).await;
    let line = log
        .lines()
        .find(|l| l.contains(&format!("orig_queue_id={reference}")))
        .unwrap_or_else(|| panic!("no line with our reference {reference}:\n{log}"));
    assert!(line.contains("orig_client=unknown[127.0.0.5]"), "{line}");
    // XFORWARD overrides logging attributes only: Postfix's Received names
    // the connection (smtpgate), ours below it names the customer.
    let m = sink
        .messages()
        .into_iter()
        .find(|m| m.rcpts == ["client@example.net"])
        .unwrap();
    let text = String::from_utf8_lossy(&m.data);
    assert!(text.starts_with("Received: from gw.example.test"), "{text}");
    assert!(
        text.contains("\r\nReceived: from web1.customer.test ([127.0.0.5])\r\n\tby gw.example.test (smtpgate)"),
        "{text}"
    );
}

#[tokio::test]
async fn postfix_in_front_as_proxy_filter_lets_smtpgate_judge_the_customer() {
    use common::dns::{DnsServer, Zone};
    let sink = Sink::start(SinkConfig::default()).await;
    let dns = DnsServer::start(Zone::parse(
        "5.0.0.127.zen.test A 127.0.0.2\nweb1.listed.test A 127.0.0.5\nweb2.customer.test A 127.0.0.6\n",
    ))
    .await;
    // smtpgate takes XFORWARD from the Postfix in front (127.0.0.1) only.
    let text = common::config_text(
        sink.addr,
        "",
        &format!(
            "{}[relay]\nmynetworks = [\"127.0.0.0/8\"]\n\
             [dnsbl]\nclient = [{{ zone = \"zen.test\", name = \"SPAMHAUS_ZEN\" }}]\n\
             [scores]\nRBL_SPAMHAUS_ZEN = 5.0\n",
            dns.dns_section()
        ),
    )
    .replace(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [{ address = \"127.0.0.1:0\", xforward_from = [\"127.0.0.1/32\"] }]",
    );
    let gw = common::start(&text).await;
    let front = postfix(
        "front",
        &format!(
            "smtpd_proxy_filter = 127.0.0.1:{}\nsmtpd_proxy_timeout = 20s\n",
            gw.addr.port()
        ),
    )
    .await;
    let front_addr = SocketAddr::from(([127, 0, 0, 1], front.port));
    // A listed customer: Postfix passes our real-time refusal on.
    let mut c = Client::connect_from(front_addr, [127, 0, 0, 5].into()).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO web1.listed.test", 250).await;
    c.expect("MAIL FROM:<shop@customer.test>", 250).await;
    c.expect("RCPT TO:<client@example.net>", 250).await;
    c.expect("DATA", 354).await;
    let r = c.cmd(GOOD.strip_suffix("\r\n").unwrap()).await;
    assert_eq!(r.code, 550, "{r:?}");
    assert!(
        r.text().starts_with(
            "5.7.1 SPAM alert: score 5.00 (must be lower 2.00): RBL_SPAMHAUS_ZEN(5.00) ref="
        ),
        "the customer's address was looked up, not Postfix's: {r:?}"
    );
    c.expect("QUIT", 221).await;
    // A customer that is not listed: delivered, and our Received header
    // names the customer's HELO and address.
    let mut c = Client::connect_from(front_addr, [127, 0, 0, 6].into()).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO web2.customer.test", 250).await;
    c.expect("MAIL FROM:<shop@customer.test>", 250).await;
    c.expect("RCPT TO:<client@example.net>", 250).await;
    c.expect("DATA", 354).await;
    let r = c.cmd(GOOD.strip_suffix("\r\n").unwrap()).await;
    assert_eq!(r.code, 250, "{r:?}");
    c.expect("QUIT", 221).await;
    let m = wait_for(&sink, |m| m.rcpts == ["client@example.net"]).await;
    let text = String::from_utf8_lossy(&m.data);
    assert!(
        text.starts_with("Received: from web2.customer.test ([127.0.0.6])"),
        "{text}"
    );
    assert!(
        text.contains("(Postfix)"),
        "Postfix's own Received follows: {text}"
    );
    assert_eq!(
        sink.messages().len(),
        1,
        "the listed customer's mail was not relayed"
    );
}
