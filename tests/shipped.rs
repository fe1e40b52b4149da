//! The product as shipped: `serve` with `config/gateway.toml` (only the
//! listener, the upstream and the nameservers replaced) over SMTP, and
//! `smtpgate check` with the same file, judge the same table of envelopes
//! on the in-process DNS — the same symbols, scores, action and reply.

mod common;

use common::client::Client;
use common::dns::{DnsServer, Zone};
use common::sink::{Sink, SinkConfig};
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_smtpgate");

const ZONE: &str = "\
mail.good.test           A     127.0.0.1
good.test                MX    10 mail.good.test
good.test                TXT   \"v=spf1 ip4:127.0.0.0/8 -all\"
fail.test                MX    10 mail.good.test
fail.test                TXT   \"v=spf1 ip4:192.0.2.1 -all\"
soft.test                MX    10 mail.good.test
soft.test                TXT   \"v=spf1 ip4:192.0.2.1 ~all\"
strict.test              MX    10 mail.good.test
strict.test              TXT   \"v=spf1 ip4:192.0.2.1 -all\"
_dmarc.strict.test       TXT   \"v=DMARC1; p=reject\"
nullmx.test              MX    0 .
2.0.0.127.zen.spamhaus.org A   127.0.0.2
";

/// One envelope of the table.
struct Case {
    name: &'static str,
    client: &'static str,
    helo: &'static str,
    from: &'static str,
    /// Where serve refuses it, and the reply code there; "DATA" = judged.
    refused_at: &'static str,
    code: u16,
    /// Symbols that must be in the breakdown (judged cases).
    expect: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "clean",
        client: "127.0.0.1",
        helo: "mail.good.test",
        from: "shop@good.test",
        refused_at: "DATA",
        code: 250,
        expect: &["R_SPF_ALLOW(-0.20)"],
    },
    Case {
        name: "spf fail",
        client: "127.0.0.1",
        helo: "mail.good.test",
        from: "shop@fail.test",
        refused_at: "DATA",
        code: 250,
        expect: &["R_SPF_FAIL(1.00)"],
    },
    Case {
        name: "spf softfail",
        client: "127.0.0.1",
        helo: "mail.good.test",
        from: "shop@soft.test",
        refused_at: "DATA",
        code: 250,
        expect: &["R_SPF_SOFTFAIL(0.00)"],
    },
    Case {
        name: "dmarc p=reject via a foreign egress",
        client: "127.0.0.1",
        helo: "mail.good.test",
        from: "shop@strict.test",
        refused_at: "DATA",
        code: 550,
        expect: &["DMARC_POLICY_REJECT(5.00)", "R_SPF_FAIL(1.00)"],
    },
    Case {
        name: "null MX sender",
        client: "127.0.0.1",
        helo: "mail.good.test",
        from: "shop@nullmx.test",
        refused_at: "MAIL",
        code: 550,
        expect: &[],
    },
    Case {
        name: "non-FQDN sender",
        client: "127.0.0.1",
        helo: "mail.good.test",
        from: "shop@localhost",
        refused_at: "MAIL",
        code: 504,
        expect: &[],
    },
    Case {
        name: "non-FQDN HELO",
        client: "127.0.0.1",
        helo: "localhost",
        from: "shop@good.test",
        refused_at: "HELO",
        code: 504,
        expect: &[],
    },
    Case {
        name: "DNSBL-listed client",
        client: "127.0.0.2",
        helo: "mail.good.test",
        from: "shop@good.test",
        refused_at: "DATA",
        code: 250,
        expect: &["RBL_SPAMHAUS_ZEN(1.50)", "R_SPF_ALLOW(-0.20)"],
    },
];

fn message(from: &str) -> String {
    format!(
        "From: Shop <{from}>\r\nTo: <buyer@example.org>\r\nSubject: Your order 1234\r\n\
         Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <order-1234@{}>\r\n\r\n\
         Thank you for your order. It ships tomorrow.\r\n",
        from.split('@').nth(1).unwrap_or("x.test")
    )
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The shipped config with only the listeners (SMTP and HTTP: free ports,
/// so that no two tests meet on 2525 or 8025), upstream and nameservers
/// replaced.
fn shipped_config(listen: SocketAddr, upstream: SocketAddr, dns: SocketAddr) -> PathBuf {
    shipped_with_http(listen, upstream, dns).0
}

/// [`shipped_config`], and where its HTTP API listens.
fn shipped_with_http(
    listen: SocketAddr,
    upstream: SocketAddr,
    dns: SocketAddr,
) -> (PathBuf, SocketAddr) {
    let text = std::fs::read_to_string(common::root().join("config/gateway.toml")).unwrap();
    let http = free_port();
    assert!(text.contains("listen = \"127.0.0.1:8025\""));
    let text = text
        .replace(
            "listen = [\"127.0.0.1:2525\"]",
            &format!("listen = [\"{listen}\"]"),
        )
        .replace(
            "listen = \"127.0.0.1:8025\"",
            &format!("listen = \"{http}\""),
        )
        .replace(
            "address = \"127.0.0.1:10025\"",
            &format!("address = \"{upstream}\""),
        )
        .replace("nameservers = []", &format!("nameservers = [\"{dns}\"]"));
    assert!(text.contains(&dns.to_string()) && text.contains(&upstream.to_string()));
    assert!(text.contains(&http.to_string()) && !text.contains("listen = \"127.0.0.1:8025\""));
    let path = std::env::temp_dir().join(format!("smtpgate-shipped-{}.toml", listen.port()));
    std::fs::write(&path, text).unwrap();
    (path, http)
}

struct Serve {
    child: Child,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

async fn serve(config: &Path, listen: SocketAddr) -> Serve {
    let log = config.with_extension("log");
    let child = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .current_dir(common::root())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while tokio::net::TcpStream::connect(listen).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "serve did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Serve { child, log }
}

/// What serve answered at the phase that decided, and the transaction's
/// logged symbols (for judged messages).
async fn over_smtp(gw: &Serve, listen: SocketAddr, case: &Case) -> (String, u16, String) {
    let mut c = Client::connect_from(listen, case.client.parse::<IpAddr>().unwrap()).await;
    assert_eq!(c.read_reply().await.code, 220);
    let r = c.cmd(&format!("EHLO {}", case.helo)).await;
    if r.code != 250 {
        return ("HELO".into(), r.code, r.text());
    }
    let r = c.cmd(&format!("MAIL FROM:<{}>", case.from)).await;
    if r.code != 250 {
        return ("MAIL".into(), r.code, r.text());
    }
    let r = c.cmd("RCPT TO:<buyer@example.org>").await;
    if r.code != 250 {
        return ("RCPT".into(), r.code, r.text());
    }
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(message(case.from).as_bytes()).await;
    let r = c.cmd(".").await;
    let _ = c.cmd("QUIT").await;
    // The transaction line names the symbols with their scores.
    let started = Instant::now();
    let symbols = loop {
        let log = gw.log();
        if let Some(line) = log
            .lines()
            .rfind(|l| l.contains("smtpgate::transaction") && l.contains(case.from))
        {
            let s = line.split(" symbols=").nth(1).unwrap_or("");
            break s.split(" reply=").next().unwrap_or("").to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no transaction line:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    ("DATA".into(), r.code, symbols)
}

fn check(config: &Path, case: &Case) -> (i32, serde_json::Value) {
    let path = std::env::temp_dir().join(format!("smtpgate-shipped-{}.eml", case.from));
    std::fs::write(&path, message(case.from)).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config", config.to_str().unwrap(), "--json"])
        .args(["--ip", case.client, "--helo", case.helo])
        .args(["--from", case.from, "--rcpt", "<buyer@example.org>"])
        .arg(&path)
        .current_dir(common::root())
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), json)
}

fn check_symbols(json: &serde_json::Value) -> BTreeSet<String> {
    json["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}({:.2})",
                s["name"].as_str().unwrap(),
                s["score"].as_f64().unwrap()
            )
        })
        .collect()
}

fn without_reference(text: &str) -> String {
    text.split(" ref=").next().unwrap_or(text).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_check_judge_the_shipped_table_alike() {
    let dns = DnsServer::start(Zone::parse(ZONE)).await;
    let sink = Sink::start(SinkConfig::default()).await;
    let listen = free_port();
    let config = shipped_config(listen, sink.addr, dns.addr);
    let gw = serve(&config, listen).await;
    for case in CASES {
        let (phase, code, seen) = over_smtp(&gw, listen, case).await;
        assert_eq!(
            (phase.as_str(), code),
            (case.refused_at, case.code),
            "{}: serve said {seen}",
            case.name
        );
        let (status, json) = check(&config, case);
        let action = json["action"].as_str().unwrap_or("").to_string();
        match case.refused_at {
            "DATA" => {
                let served: BTreeSet<String> = seen.split_whitespace().map(String::from).collect();
                let checked = check_symbols(&json);
                assert_eq!(served, checked, "{}: serve and check differ", case.name);
                for s in case.expect {
                    assert!(
                        checked.contains(*s),
                        "{}: {s} missing from {checked:?}",
                        case.name
                    );
                }
                if code == 250 {
                    assert_eq!((action.as_str(), status), ("pass", 0), "{}", case.name);
                } else {
                    // Bounce mode, no originator of ours: refused with the breakdown.
                    let reply = json["reply"].as_str().unwrap_or("");
                    assert!(
                        reply.starts_with("550 5.7.1 SPAM alert: score"),
                        "{}: {reply}",
                        case.name
                    );
                    assert_eq!(status, 1, "{}", case.name);
                }
            }
            phase => {
                let reply = json["reply"].as_str().unwrap_or("");
                assert_eq!(
                    without_reference(reply),
                    without_reference(&format!("{code} {seen}")),
                    "{}: check's reply differs from serve's",
                    case.name
                );
                assert_eq!(action, format!("reject at {phase}"), "{}", case.name);
                assert_eq!(status, 1, "{}", case.name);
            }
        }
    }
    // What the shipped config showed over SMTP: the null-MX sender refused
    // with RFC 7505's code, the clean message delivered.
    let log = gw.log();
    assert!(log.contains("active checks, in order"), "{log}");
    let delivered = sink.messages();
    assert!(delivered.iter().any(|m| m.mail_from == "shop@good.test"));
    assert!(!delivered.iter().any(|m| m.mail_from == "shop@nullmx.test"));
    assert!(!delivered.iter().any(|m| m.mail_from == "shop@strict.test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_config_refuses_a_null_mx_sender_with_the_rfc_7505_code() {
    let dns = DnsServer::start(Zone::parse(ZONE)).await;
    let sink = Sink::start(SinkConfig::default()).await;
    let listen = free_port();
    let config = shipped_config(listen, sink.addr, dns.addr);
    let _gw = serve(&config, listen).await;
    let mut c = Client::connect(listen).await;
    assert_eq!(c.read_reply().await.code, 220);
    assert_eq!(c.cmd("EHLO mail.good.test").await.code, 250);
    let r = c.cmd("MAIL FROM:<shop@nullmx.test>").await;
    assert_eq!(
        (r.code, r.enhanced().as_deref()),
        (550, Some("5.7.27")),
        "{}",
        r.text()
    );
    assert!(
        r.text().contains("reject_unknown_sender_domain"),
        "{}",
        r.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_config_starts_without_an_mta_and_tempfails() {
    let dns = DnsServer::start(Zone::parse(ZONE)).await;
    let listen = free_port();
    let nothing = free_port();
    let config = shipped_config(listen, nothing, dns.addr);
    let gw = serve(&config, listen).await;
    let mut c = Client::connect(listen).await;
    assert_eq!(c.read_reply().await.code, 220);
    assert_eq!(c.cmd("EHLO mail.good.test").await.code, 250);
    assert_eq!(c.cmd("MAIL FROM:<shop@good.test>").await.code, 250);
    let r = c.cmd("RCPT TO:<buyer@example.org>").await;
    assert_eq!(
        (r.code, r.enhanced().as_deref()),
        (451, Some("4.4.1")),
        "{}",
        r.text()
    );
    let started = Instant::now();
    while !gw.log().contains("upstream MTA not reachable") {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no warning:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtube_is_refused_by_serve_and_by_check_alike() {
    let dns = DnsServer::start(Zone::parse(ZONE)).await;
    let sink = Sink::start(SinkConfig::default()).await;
    let listen = free_port();
    let config = shipped_config(listen, sink.addr, dns.addr);
    let _gw = serve(&config, listen).await;
    let gtube = "From: <shop@good.test>\r\nTo: <buyer@example.org>\r\nSubject: test\r\n\r\n\
                 XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n";
    let mut c = Client::connect(listen).await;
    assert_eq!(c.read_reply().await.code, 220);
    assert_eq!(c.cmd("EHLO mail.good.test").await.code, 250);
    assert_eq!(c.cmd("MAIL FROM:<shop@good.test>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<buyer@example.org>").await.code, 250);
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(gtube.as_bytes()).await;
    let served = c.cmd(".").await;
    assert_eq!(
        (served.code, served.enhanced().as_deref()),
        (550, Some("5.7.1")),
        "{}",
        served.text()
    );
    assert!(served.text().contains("(GTUBE)"), "{}", served.text());
    assert!(sink.messages().is_empty(), "GTUBE must not be relayed");

    let path = std::env::temp_dir().join(format!("smtpgate-gtube-{}.eml", listen.port()));
    std::fs::write(&path, gtube).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config", config.to_str().unwrap(), "--json"])
        .args([
            "--ip",
            "127.0.0.1",
            "--helo",
            "mail.good.test",
            "--from",
            "shop@good.test",
        ])
        .arg(&path)
        .current_dir(common::root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["reply"].as_str().unwrap_or(""),
        format!("550 {}", served.text()),
        "check and serve give the same reply"
    );
    assert_eq!(json["action"], "reject");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_config_serves_the_api_and_console_on_loopback() {
    let dns = DnsServer::start(Zone::parse(ZONE)).await;
    let sink = Sink::start(SinkConfig::default()).await;
    let listen = free_port();
    let (config, http) = shipped_with_http(listen, sink.addr, dns.addr);
    assert!(http.ip().is_loopback());
    let _gw = serve(&config, listen).await;
    let clean = &CASES[0];
    let (_, code, _) = over_smtp(&_gw, listen, clean).await;
    assert_eq!(code, 250);
    // The transaction is in the history, on the API, without a token.
    let started = Instant::now();
    let record = loop {
        let a = common::http::get(http, "/api/history?from=shop%40good.test").await;
        assert_eq!(a.status, 200, "{}", a.text());
        if let Some(r) = a.json().as_array().and_then(|a| a.first().cloned()) {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not in the history"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(record["action"], "delivered");
    let symbols = record["symbols"].as_array().unwrap();
    assert!(
        symbols
            .iter()
            .any(|s| s["name"] == "R_SPF_ALLOW" && s["score"].as_f64() == Some(-0.2)),
        "{record}"
    );
    let page = common::http::get(http, "/").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.field("content-type"), Some("text/html; charset=utf-8"));
    // POST /api/check on the running gateway says what `check --json` says.
    let target = "/api/check?ip=127.0.0.1&helo=mail.good.test&from=shop%40good.test&rcpt=buyer%40example.org";
    for case in CASES.iter().filter(|c| c.client == "127.0.0.1") {
        let target = target.replace("shop%40good.test", &case.from.replace('@', "%40"));
        let target = target.replace("mail.good.test", case.helo);
        let a =
            common::http::request(http, "POST", &target, &[], message(case.from).as_bytes()).await;
        assert_eq!(a.status, 200, "{}: {}", case.name, a.text());
        let mut api = a.json();
        let (_, mut cli) = check(&config, case);
        for json in [&mut api, &mut cli] {
            let r = json["reference"].as_str().unwrap_or("").to_string();
            *json = serde_json::from_str(&json.to_string().replace(&r, "REF")).unwrap();
        }
        assert_eq!(api, cli, "{}", case.name);
    }
}
