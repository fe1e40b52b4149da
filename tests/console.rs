//! The web console in a real browser: Debian's `chromium --headless` loads
//! each page from the gateway's HTTP listener (its state in the URL), runs
//! its script against the API, and the DOM it ends with is asserted — the
//! search finds the sender, the message page lists every symbol, highest
//! first, with its description and fix. A screenshot of each page goes to
//! target/console-shots/. Also: the served files reference no other host,
//! and the basics of keyboard and screen-reader use are there.

mod common;

use common::client::send_message;
use common::http::get;
use common::sink::{Sink, SinkConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// PHISHING(4.00) + BULK_NO_UNSUBSCRIBE(2.00) + MISSING_MID(1.00) + SUBJ_ALL_CAPS(0.30) = 7.30.
const SEVEN_THIRTY: &str = "From: Shop <info@example.test>\r\nTo: <a@example.net>, <b@example.net>\r\nSubject: LAST CHANCE SALE\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nPrecedence: bulk\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nLog in to your account today.\r\n--b1\r\nContent-Type: text/html\r\n\r\n<p>Log in to <a href=\"https://login.evil.test/x\">www.bank.test</a> today.</p>\r\n--b1--\r\n.\r\n";

/// Nothing fires.
const CLEAN: &str = "From: Shop <shop@example.test>\r\nTo: <a@example.net>\r\nSubject: Your order 1234\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.test>\r\n\r\nHello, your order has shipped.\r\n.\r\n";

const CHROMIUM: &str = "/usr/bin/chromium";

fn config(sink: &Sink) -> String {
    common::config_text(
        sink.addr,
        "",
        "[relay]\nlocal_domains = [\"example.test\"]\n[http]\nlisten = \"127.0.0.1:0\"\n",
    )
}

fn shots() -> PathBuf {
    let dir = common::root().join("target/console-shots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One headless chromium run on `url` with `what` (`--dump-dom`, or
/// `--screenshot=FILE`): its standard output. Each run has a profile of its
/// own and is killed after 90 s.
fn chromium(url: &str, what: &[&str]) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: .ci/prereqs installs it (apt-get install chromium)"
    );
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let profile =
        std::env::temp_dir().join(format!("smtpgate-chromium-{}-{n}", std::process::id()));
    let out_path = profile.with_extension("out");
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(what)
        .arg(url)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium on {url}: {status}");
            break;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium on {url} took more than 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_dir_all(&profile);
    out
}

/// The DOM of `url` after its script ran, and a screenshot as `name`.png.
async fn visit(url: String, name: &'static str, height: u32) -> String {
    tokio::task::spawn_blocking(move || {
        let shot = shots().join(format!("{name}.png"));
        let _ = std::fs::remove_file(&shot);
        chromium(
            &url,
            &[
                &format!("--screenshot={}", shot.display()),
                &format!("--window-size=1280,{height}"),
            ],
        );
        let png = std::fs::read(&shot).unwrap_or_default();
        assert!(png.starts_with(b"\x89PNG"), "{name}: no screenshot");
        chromium(&url, &["--dump-dom"])
    })
    .await
    .unwrap()
}

/// Text as the DOM serialiser writes it.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\u{a0}', "&nbsp;")
}

/// Every visible input, select and textarea has a label naming it.
fn labelled(dom: &str) {
    let control = regex::Regex::new(r#"<(input|select|textarea)\b([^>]*)>"#).unwrap();
    let id = regex::Regex::new(r#"\bid="([^"]+)""#).unwrap();
    let mut seen = 0;
    for c in control.captures_iter(dom) {
        let attrs = &c[2];
        if attrs.contains("type=\"hidden\"") {
            continue;
        }
        let id = id
            .captures(attrs)
            .unwrap_or_else(|| panic!("a control without an id: {}", &c[0]));
        assert!(
            dom.contains(&format!("<label for=\"{}\"", &id[1])),
            "no label for #{}",
            &id[1]
        );
        seen += 1;
    }
    assert!(seen > 0, "no form controls");
}

async fn wait_for_history(http: SocketAddr, n: usize) {
    let started = Instant::now();
    loop {
        let a = get(http, "/api/history").await;
        if a.json().as_array().map_or(0, Vec::len) >= n {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "history: {}",
            a.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_searches_for_a_sender_and_reads_the_symbols_with_their_fixes() {
    let sink = Sink::start(SinkConfig::default()).await;
    let text = config(&sink);
    let gw = common::start(&text).await;
    let http = gw.http.expect("the HTTP listener");
    let spam = send_message(
        gw.addr,
        "info@example.test",
        &["a@example.net", "b@example.net"],
        SEVEN_THIRTY.as_bytes(),
    )
    .await;
    assert_eq!(spam.code, 550, "{}", spam.text());
    let clean = send_message(
        gw.addr,
        "shop@example.test",
        &["a@example.net"],
        CLEAN.as_bytes(),
    )
    .await;
    assert_eq!(clean.code, 250, "{}", clean.text());
    wait_for_history(http, 2).await;
    let reference = spam
        .text()
        .split("ref=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    // 1. The search: what the form submits for a sender.
    let search =
        format!("http://{http}/?from=info%40example.test&rcpt=&login=&ip=&action=&since=&limit=");
    let dom = visit(search, "1-search", 1300).await;
    assert!(dom.contains("<main id=\"main\""), "{dom}");
    assert!(dom.contains("<h1>Messages</h1>"), "{dom}");
    assert!(
        dom.contains("role=\"status\" aria-live=\"polite\">1 message</p>"),
        "{dom}"
    );
    let results = dom
        .split("<table id=\"results\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no results table: {dom}"))
        .split("</table>")
        .next()
        .unwrap();
    assert!(results.contains("<td>info@example.test</td>"), "{results}");
    assert!(
        results.contains("<td>a@example.net, b@example.net</td>"),
        "{results}"
    );
    assert!(results.contains("<td>LAST CHANCE SALE</td>"), "{results}");
    assert!(
        results.contains(&format!("href=\"/message/{reference}\"")),
        "{results}"
    );
    assert!(results.contains(">spam</span>"), "{results}");
    assert!(results.contains(">7.30 / 2.00</td>"), "{results}");
    assert!(
        !results.contains("shop@example.test"),
        "the other sender is not a result"
    );
    // The search box keeps what was asked; every control is labelled.
    assert!(
        dom.contains("id=\"f-from\" name=\"from\" type=\"text\" value=\"info@example.test\""),
        "{dom}"
    );
    labelled(&dom);
    // The content security policy allows no inline style: none is written.
    assert!(!dom.contains(" style=\""), "inline style: {dom}");
    assert!(
        results.contains("<span class=\"action a-spam\">spam</span>"),
        "{results}"
    );
    // The activity of the last hour: the chart and the counts.
    assert!(
        dom.contains("<svg viewBox=\"0 0 960 260\" class=\"chart\" role=\"img\""),
        "{dom}"
    );
    assert_eq!(
        dom.matches("<rect x=").count(),
        2,
        "one bar piece per message: {dom}"
    );
    let by_action = dom.split("<table id=\"by-action\">").nth(1).unwrap();
    assert!(
        by_action.contains(">delivered</span></td><td class=\"num\">1</td>"),
        "{by_action}"
    );
    assert!(
        by_action.contains(">spam</span></td><td class=\"num\">1</td>"),
        "{by_action}"
    );
    let top = dom.split("<table id=\"top-symbols\">").nth(1).unwrap();
    assert!(
        top.contains("<td class=\"mono\">PHISHING</td><td class=\"num\">1</td>"),
        "{top}"
    );

    // 2. The message page: the breakdown as the SPAM alert shows it.
    let dom = visit(
        format!("http://{http}/message/{reference}"),
        "2-message",
        1700,
    )
    .await;
    assert!(
        dom.contains(&format!("<h1>Message {reference}</h1>")),
        "{dom}"
    );
    assert!(dom.contains("Score: 7.30 (must be lower 2.00)"), "{dom}");
    let app = common::build_app(&text);
    let order: Vec<usize> = [
        "PHISHING",
        "BULK_NO_UNSUBSCRIBE",
        "MISSING_MID",
        "SUBJ_ALL_CAPS",
    ]
    .iter()
    .map(|name| {
        let at = dom
            .find(&format!("data-symbol=\"{name}\""))
            .unwrap_or_else(|| panic!("{name} missing: {dom}"));
        let item = &dom[at..];
        let item = &item[..item.find("</li>").unwrap()];
        let def = app.symbols.get(name).unwrap();
        assert!(
            item.contains(&format!(
                "<p class=\"description\">{}</p>",
                escaped(&def.description)
            )),
            "{name}: {item}"
        );
        assert!(
            item.contains(&format!("<p class=\"fix\">Fix: {}</p>", escaped(&def.fix))),
            "{name}: {item}"
        );
        at
    })
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "highest first: {order:?}"
    );
    assert!(dom.contains("<code>PHISHING</code> (4.00)"), "{dom}");
    assert!(dom.contains("<dd>info@example.test</dd>"), "{dom}");
    assert!(dom.contains("href=\"/readiness/example.test\""), "{dom}");

    // 3. A reference the history does not have: said, not a blank page.
    let dom = visit(
        format!("http://{http}/message/NOSUCHREF"),
        "3-unknown-message",
        500,
    )
    .await;
    assert!(
        dom.contains("role=\"alert\">Error: no transaction with reference NOSUCHREF in the history (kept 7d)</p>"),
        "{dom}"
    );
    gw.handle.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_loads_nothing_from_other_hosts_and_has_the_accessibility_basics() {
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = common::start(&config(&sink)).await;
    let http = gw.http.unwrap();
    let page = get(http, "/").await;
    assert_eq!(page.status, 200);
    let csp = page
        .field("content-security-policy")
        .unwrap_or("")
        .to_string();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'self'"),
        "{csp}"
    );
    let html = page.text();
    for (path, kind) in [
        ("/console.js", "text/javascript; charset=utf-8"),
        ("/console.css", "text/css; charset=utf-8"),
    ] {
        let a = get(http, path).await;
        assert_eq!(
            (a.status, a.field("content-type")),
            (200, Some(kind)),
            "{path}"
        );
        let text = a.text();
        for other_host in [
            "http://",
            "https://",
            "url(",
            "@import",
            "src=\"//",
            "href=\"//",
        ] {
            assert!(!text.contains(other_host), "{path} holds {other_host}");
        }
        assert!(
            html.contains(&format!("=\"{path}\"")),
            "the page loads {path}"
        );
    }
    for other_host in ["http://", "https://", "src=\"//", "href=\"//", "<script>"] {
        assert!(!html.contains(other_host), "the page holds {other_host}");
    }
    // Pages of the console are the same document; the script routes.
    for path in ["/message/ABC", "/readiness/", "/readiness/example.test"] {
        assert_eq!(get(http, path).await.text(), html, "{path}");
    }
    assert!(html.starts_with("<!doctype html>\n<html lang=\"en\">"));
    assert!(html.contains("<a class=\"skip\" href=\"#main\">"));
    assert!(html.contains("<nav aria-label=\"Console\">"));
    let css = get(http, "/console.css").await.text();
    assert!(
        css.contains(":focus-visible { outline: 3px solid"),
        "focus is visible"
    );
    gw.handle.shutdown();
}

/// A customer domain right for the egress IP but for DKIM and DMARC's policy.
const READY_ZONE: &str = r#"
10.113.0.203.in-addr.arpa    PTR  out.customer.test
out.customer.test            A    203.0.113.10
mail.customer.test           A    127.0.0.6
customer.test                TXT  "v=spf1 ip4:203.0.113.10 -all"
customer.test                MX   10 mail.customer.test
_dmarc.customer.test         TXT  "v=DMARC1; p=none"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_reads_a_domains_readiness_with_its_fixes() {
    let dns = common::dns::DnsServer::start(common::dns::Zone::parse(READY_ZONE)).await;
    let sink = Sink::start(SinkConfig::default()).await;
    let text = common::config_text(
        sink.addr,
        "",
        &format!(
            "[relay]\nlocal_domains = [\"customer.test\"]\n[outbound]\negress_ips = [\"203.0.113.10\"]\n{}[http]\nlisten = \"127.0.0.1:0\"\n",
            dns.dns_section()
        ),
    );
    let gw = common::start(&text).await;
    let http = gw.http.unwrap();
    let report = get(http, "/api/readiness/customer.test").await.json();
    let dom = visit(
        format!("http://{http}/readiness/customer.test"),
        "4-readiness",
        1000,
    )
    .await;
    assert!(dom.contains("<h1>Readiness of customer.test</h1>"), "{dom}");
    assert!(
        dom.contains("<label for=\"domain\">Domain</label>"),
        "{dom}"
    );
    assert!(dom.contains("<dd>203.0.113.10</dd>"), "{dom}");
    labelled(&dom);
    let checks = report["checks"].as_array().unwrap();
    assert!(!checks.is_empty());
    let table = dom
        .split("<table id=\"checks\">")
        .nth(1)
        .expect("the checks")
        .split("</table>")
        .next()
        .unwrap();
    for line in checks {
        let area = line["area"].as_str().unwrap();
        let status = line["status"].as_str().unwrap();
        assert!(
            table.contains(&format!("<td class=\"mono\">{area}</td>")),
            "{area}: {table}"
        );
        assert!(
            table.contains(&format!(
                ">{status}</span></td><td>{}</td>",
                escaped(line["what"].as_str().unwrap())
            )),
            "{area}: {table}"
        );
        if let Some(fix) = line["fix"].as_str() {
            assert!(
                table.contains(&format!("<td>{}</td>", escaped(fix))),
                "{area}: {table}"
            );
        }
    }
    let worst = ["fail", "warn", "ok"]
        .into_iter()
        .find(|s| checks.iter().any(|l| l["status"] == *s))
        .unwrap();
    assert!(
        table.contains("<caption>Overall: <span class=\"check-"),
        "{table}"
    );
    assert!(
        table.contains(&format!(">{worst}</span></caption>")),
        "{table}"
    );
    assert!(
        dom.contains("Nothing from customer.test was stopped in the last 7 days."),
        "{dom}"
    );
    gw.handle.shutdown();
}
