//! The HTTP API on `[http] listen` as an operator's script meets it: every
//! endpoint with its status codes and JSON field names (docs/api.md), the
//! bearer token off loopback, `POST /api/check` answering exactly what
//! `smtpgate check --json` prints, the limits, and the API nowhere on the
//! SMTP port.

mod common;

use common::client::{send_message, Client};
use common::http::{get, parse, raw, request};
use common::sink::{Sink, SinkConfig};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_smtpgate");

/// PHISHING(4.00) + BULK_NO_UNSUBSCRIBE(2.00) + MISSING_MID(1.00) + SUBJ_ALL_CAPS(0.30) = 7.30.
const SEVEN_THIRTY: &str = "From: Shop <info@example.test>\r\nTo: <a@example.net>, <b@example.net>\r\nSubject: LAST CHANCE SALE\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nPrecedence: bulk\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nLog in to your account today.\r\n--b1\r\nContent-Type: text/html\r\n\r\n<p>Log in to <a href=\"https://login.evil.test/x\">www.bank.test</a> today.</p>\r\n--b1--\r\n";

/// Nothing fires.
const CLEAN: &str = "From: Shop <shop@example.test>\r\nTo: <a@example.net>\r\nSubject: Your order\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.test>\r\n\r\nHello, your order has shipped.\r\n";

/// The gateway's config: reject mode, example.test ours, the API on a
/// free loopback port with `http_extra` in `[http]`.
fn config(sink: &Sink, http_extra: &str) -> String {
    common::config_text(
        sink.addr,
        "",
        &format!(
            "[relay]\nlocal_domains = [\"example.test\"]\n[http]\nlisten = \"127.0.0.1:0\"\nmax_body = 100000\n{http_extra}\n"
        ),
    )
}

fn dotted(message: &str) -> String {
    format!("{message}.\r\n")
}

/// The records of `GET /api/history?{query}`, waiting (the history is
/// written off the hot path) until there are `n`.
async fn history(http: SocketAddr, query: &str, n: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let a = get(http, &format!("/api/history?{query}")).await;
        assert_eq!(a.status, 200, "{}", a.text());
        let records = a.json().as_array().expect("an array").clone();
        if records.len() >= n || started.elapsed() > Duration::from_secs(10) {
            assert_eq!(records.len(), n, "{query}: {records:#?}");
            return records;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The reference a reply names (`... ref=K3F9Q2ZP`).
fn reference_of(text: &str) -> String {
    text.split("ref=")
        .nth(1)
        .expect("a reference")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

const RECORD_FIELDS: &[&str] = &[
    "time",
    "reference",
    "client_ip",
    "client_name",
    "helo",
    "login",
    "from",
    "rcpts",
    "message_id",
    "subject",
    "size",
    "action",
    "reply",
    "score",
    "threshold",
    "symbols",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_messages_and_stats_answer_with_their_documented_fields() {
    let sink = Sink::start(SinkConfig::default()).await;
    let text = config(&sink, "");
    let gw = common::start(&text).await;
    let http = gw.http.expect("the HTTP listener");
    let spam = send_message(
        gw.addr,
        "info@example.test",
        &["a@example.net", "b@example.net"],
        dotted(SEVEN_THIRTY).as_bytes(),
    )
    .await;
    assert_eq!(
        (spam.code, spam.enhanced().as_deref()),
        (550, Some("5.7.1"))
    );
    let reference = reference_of(&spam.text());
    let clean = send_message(
        gw.addr,
        "shop@example.test",
        &["a@example.net"],
        dotted(CLEAN).as_bytes(),
    )
    .await;
    assert_eq!(clean.code, 250, "{}", clean.text());

    // GET /api/history: the records, newest first, every field named.
    let all = history(http, "", 2).await;
    assert_eq!(all[0]["from"], "shop@example.test");
    assert_eq!(all[1]["from"], "info@example.test");
    let r = &history(http, "from=info%40example.test", 1).await[0];
    assert_eq!(keys(r), set(RECORD_FIELDS));
    assert_eq!(r["reference"], reference.as_str());
    assert_eq!(r["action"], "spam");
    assert_eq!(
        (r["score"].as_f64(), r["threshold"].as_f64()),
        (Some(7.3), Some(2.0))
    );
    assert_eq!(
        r["rcpts"],
        serde_json::json!(["a@example.net", "b@example.net"])
    );
    assert_eq!(r["subject"], "LAST CHANCE SALE");
    assert_eq!(r["client_ip"], "127.0.0.1");
    assert!(
        r["reply"]
            .as_str()
            .unwrap()
            .starts_with("550 5.7.1 SPAM alert: score 7.30"),
        "{r}"
    );
    let symbols: Vec<(String, f64)> = r["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(keys(s), set(&["name", "score", "options", "shadow"]));
            (
                s["name"].as_str().unwrap().to_string(),
                s["score"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        symbols,
        [
            ("PHISHING".to_string(), 4.0),
            ("BULK_NO_UNSUBSCRIBE".to_string(), 2.0),
            ("MISSING_MID".to_string(), 1.0),
            ("SUBJ_ALL_CAPS".to_string(), 0.3),
        ]
    );
    for (query, n) in [
        ("from=%40example.test", 2),
        ("action=delivered", 1),
        ("action=spam&since=1h", 1),
        ("rcpt=b%40example.net", 1),
        ("ip=127.0.0.1&limit=1", 1),
        ("login=nobody", 0),
    ] {
        history(http, query, n).await;
    }
    for (query, error) in [
        ("since=soon", "since: expected a duration like 30m, 2h or 7d, got \"soon\""),
        ("limit=0", "limit: expected 1 to 10000, got \"0\""),
        (
            "sender=a",
            "unknown parameter \"sender\" (expected from, rcpt, login, ip, action, message_id, since, limit)",
        ),
    ] {
        let a = get(http, &format!("/api/history?{query}")).await;
        assert_eq!((a.status, a.json()["error"].as_str()), (400, Some(error)), "{query}");
        assert_eq!(a.json()["status"], 400);
    }

    // GET /api/messages/{ref}: the record, its breakdown as the alert
    // explains it (highest first, description and fix from the rules).
    let app = common::build_app(&text);
    for asked in [reference.clone(), reference.to_ascii_lowercase()] {
        let a = get(http, &format!("/api/messages/{asked}")).await;
        assert_eq!(a.status, 200, "{}", a.text());
        assert_eq!(a.field("content-type"), Some("application/json"));
        assert_eq!(a.field("cache-control"), Some("no-store"));
        let m = a.json();
        assert_eq!(keys(&m), set(&["record", "breakdown", "text"]));
        assert_eq!(m["record"]["reference"], reference.as_str());
        let names: Vec<&str> = m["breakdown"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "PHISHING",
                "BULK_NO_UNSUBSCRIBE",
                "MISSING_MID",
                "SUBJ_ALL_CAPS"
            ]
        );
        for s in m["breakdown"].as_array().unwrap() {
            assert_eq!(
                keys(s),
                set(&[
                    "name",
                    "score",
                    "blocking",
                    "shadow",
                    "options",
                    "description",
                    "fix"
                ])
            );
            let def = app.symbols.get(s["name"].as_str().unwrap()).unwrap();
            assert_eq!(s["description"], def.description.as_str());
            assert_eq!(s["fix"], def.fix.as_str());
            assert!(!def.fix.is_empty());
            assert_eq!(
                (&s["blocking"], &s["shadow"]),
                (&Value::Bool(false), &Value::Bool(false))
            );
        }
        assert_eq!(m["breakdown"][0]["score"].as_f64(), Some(4.0));
        let alert = m["text"].as_str().unwrap();
        assert!(
            alert.starts_with("Score: 7.30 (must be lower 2.00)\nSymbols:\n  PHISHING (4.00)\n"),
            "{alert}"
        );
        let phishing = app.symbols.get("PHISHING").unwrap();
        assert!(
            alert.contains(&format!("      Fix: {}\n", phishing.fix)),
            "{alert}"
        );
    }
    let a = get(http, "/api/messages/NOSUCHREF").await;
    assert_eq!(a.status, 404);
    assert_eq!(
        a.json()["error"],
        "no transaction with reference NOSUCHREF in the history (kept 7d)"
    );

    // GET /api/stats: counts by action, per minute, top symbols.
    for target in ["/api/stats", "/api/stats?since=1h", "/api/stats?since=1d"] {
        let a = get(http, target).await;
        assert_eq!(a.status, 200, "{target}: {}", a.text());
        let s = a.json();
        assert_eq!(
            keys(&s),
            set(&["since", "by_action", "top_symbols", "per_minute"])
        );
        assert_eq!(
            s["by_action"],
            serde_json::json!({"delivered": 1, "spam": 1})
        );
        let top: BTreeSet<(String, u64)> = s["top_symbols"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_u64().unwrap()))
            .collect();
        let expected: BTreeSet<(String, u64)> = [
            "PHISHING",
            "BULK_NO_UNSUBSCRIBE",
            "MISSING_MID",
            "SUBJ_ALL_CAPS",
        ]
        .iter()
        .map(|n| (n.to_string(), 1))
        .collect();
        assert_eq!(top, expected);
        let mut summed = 0;
        for m in s["per_minute"].as_array().unwrap() {
            assert_eq!(keys(m), set(&["minute", "by_action"]));
            assert_eq!(m["minute"].as_u64().unwrap() % 60, 0);
            summed += m["by_action"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum::<u64>();
        }
        assert_eq!(summed, 2);
    }
    for target in [
        "/api/stats?since=2d",
        "/api/stats?since=0s",
        "/api/stats?period=1h",
    ] {
        let a = get(http, target).await;
        assert_eq!(a.status, 400, "{target}");
    }
    gw.handle.shutdown();
}

/// `smtpgate check --json` with `config` on `message`.
fn check_cli(config: &std::path::Path, message: &str, args: &[&str]) -> Value {
    let eml = config.with_extension("eml");
    std::fs::write(&eml, message).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config", config.to_str().unwrap(), "--json"])
        .args(args)
        .arg(&eml)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

fn without_reference(mut v: Value) -> Value {
    let r = v["reference"].as_str().unwrap_or("").to_string();
    v.as_object_mut().unwrap().remove("reference");
    let text = v.to_string().replace(&r, "REF");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_check_answers_what_check_json_prints() {
    let sink = Sink::start(SinkConfig::default()).await;
    let text = config(&sink, "");
    let path =
        std::env::temp_dir().join(format!("smtpgate-http-check-{}.toml", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let gw = common::start(&text).await;
    let http = gw.http.unwrap();
    for (message, query, args) in [
        (SEVEN_THIRTY, "", &[][..]),
        (
            SEVEN_THIRTY,
            "?from=info%40example.test&rcpt=a%40example.net&ip=192.0.2.7&helo=mail.example.test",
            &[
                "--from",
                "info@example.test",
                "--rcpt",
                "a@example.net",
                "--ip",
                "192.0.2.7",
                "--helo",
                "mail.example.test",
            ][..],
        ),
        (
            CLEAN,
            "?login=shop%40example.test",
            &["--login", "shop@example.test"][..],
        ),
    ] {
        let a = request(
            http,
            "POST",
            &format!("/api/check{query}"),
            &[],
            message.as_bytes(),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text());
        let api = a.json();
        let cli = check_cli(&path, message, args);
        assert_eq!(
            without_reference(api.clone()),
            without_reference(cli),
            "{query}"
        );
        assert_eq!(
            keys(&api),
            set(&[
                "client",
                "from",
                "rcpts",
                "score",
                "threshold",
                "action",
                "reply",
                "refused",
                "alert_to",
                "reference",
                "symbols"
            ])
        );
        assert_eq!(
            keys(&api["client"]),
            set(&["ip", "helo", "login", "trusted"])
        );
    }
    let a = request(http, "POST", "/api/check", &[], SEVEN_THIRTY.as_bytes())
        .await
        .json();
    assert_eq!(
        (a["action"].as_str(), a["score"].as_f64()),
        (Some("spam: reject"), Some(7.3))
    );
    assert_eq!(a["symbols"][0]["name"], "PHISHING");
    assert_eq!(
        a["symbols"][0]["fix"],
        common::build_app(&text)
            .symbols
            .get("PHISHING")
            .unwrap()
            .fix
            .as_str()
    );
    // The body with bare LF line ends is judged as the CLI judges a file.
    let lf = request(
        http,
        "POST",
        "/api/check",
        &[],
        SEVEN_THIRTY.replace("\r\n", "\n").as_bytes(),
    )
    .await;
    assert_eq!(lf.json()["score"].as_f64(), Some(7.3));
    for (query, body, error) in [
        (
            "",
            "",
            "no message: POST the message (RFC 5322, as a .eml file holds it) as the body",
        ),
        ("?ip=nowhere", CLEAN, "ip=nowhere: expected an IP address"),
        (
            "?sender=a%40b.test",
            CLEAN,
            "unknown parameter `sender`: expected from, rcpt, ip, helo, login",
        ),
        ("?from=not%20an%20address", CLEAN, "from=not an address: "),
        (
            "",
            "Subject: nobody\r\n\r\nhi\r\n",
            "no recipient: give rcpt=ADDR or a To header",
        ),
    ] {
        let a = request(
            http,
            "POST",
            &format!("/api/check{query}"),
            &[],
            body.as_bytes(),
        )
        .await;
        assert_eq!(a.status, 400, "{query}: {}", a.text());
        let e = a.json()["error"].as_str().unwrap().to_string();
        assert!(e.starts_with(error), "{query}: {e}");
    }
    let _ = std::fs::remove_file(&path);
    gw.handle.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_for_what_cannot_be_served_are_json_errors() {
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = common::start(&config(&sink, "")).await;
    let http = gw.http.unwrap();
    for (method, target, status, allow) in [
        ("GET", "/api/check", 405, Some("POST")),
        ("POST", "/api/history", 405, Some("GET, HEAD")),
        ("DELETE", "/api/messages/X", 405, Some("GET, HEAD")),
        ("POST", "/", 405, Some("GET, HEAD")),
        ("GET", "/api/nothing", 404, None),
        ("GET", "/api", 404, None),
        ("GET", "/nothing", 404, None),
        ("GET", "/message/A/B", 404, None),
    ] {
        let a = request(http, method, target, &[], b"").await;
        assert_eq!(
            (a.status, a.field("allow")),
            (status, allow),
            "{method} {target}"
        );
        assert_eq!(
            a.field("content-type"),
            Some("application/json"),
            "{method} {target}"
        );
        assert_eq!(a.json()["status"], status);
    }
    let a = request(http, "HEAD", "/api/stats", &[], b"").await;
    assert_eq!(a.status, 200);
    assert!(a.body.is_empty());
    // Not HTTP, too big, too long, chunked, stalled.
    let a = parse(&raw(http, b"EHLO client.test\r\n\r\n").await);
    assert_eq!(a.status, 400);
    assert_eq!(
        a.json()["error"],
        "expected a request line like `GET /api/history HTTP/1.1`"
    );
    let a = parse(
        &raw(
            http,
            b"POST /api/check HTTP/1.1\r\nContent-Length: 100001\r\n\r\n",
        )
        .await,
    );
    assert_eq!(a.status, 413);
    assert_eq!(
        a.json()["error"],
        "the body is 100001 octets, longer than http.max_body (100000)"
    );
    let long = format!(
        "GET /api/history HTTP/1.1\r\nX-Long: {}\r\n\r\n",
        "a".repeat(17_000)
    );
    assert_eq!(parse(&raw(http, long.as_bytes()).await).status, 431);
    let a = parse(
        &raw(
            http,
            b"POST /api/check HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        )
        .await,
    );
    assert_eq!(a.status, 411);
    // Two requests on one connection, the second closing it.
    let two = raw(
        http,
        b"GET /api/stats HTTP/1.1\r\nHost: x\r\n\r\nGET /console.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&two);
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{text}");
    gw.handle.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_is_answered_408_within_the_read_timeout() {
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = common::start(&config(&sink, "read_timeout = \"1s\"")).await;
    let started = Instant::now();
    let a = parse(&raw(gw.http.unwrap(), b"GET /api/history HTTP/1.1\r\n").await);
    assert_eq!(a.status, 408);
    assert!(started.elapsed() < Duration::from_secs(5));
    gw.handle.shutdown();
}

fn token_file(name: &str, token: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("smtpgate-http-{name}-{}.token", std::process::id()));
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_api_refuses_a_request_without_the_token() {
    let sink = Sink::start(SinkConfig::default()).await;
    let token = token_file("any", "3f9a0c-test-token");
    // Listening on every address (0.0.0.0 is not loopback), reached here
    // through 127.0.0.1: the listener's address decides, not the peer's.
    let text = config(&sink, &format!("token_file = \"{}\"", token.display())).replace(
        "listen = \"127.0.0.1:0\"\nmax_body",
        "listen = \"0.0.0.0:0\"\nmax_body",
    );
    assert!(text.contains("listen = \"0.0.0.0:0\""));
    let gw = common::start(&text).await;
    let port = gw.http.unwrap().port();
    let http: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for target in [
        "/api/history",
        "/api/stats",
        "/api/messages/X",
        "/api/readiness/example.test",
    ] {
        let a = get(http, target).await;
        assert_eq!(a.status, 401, "{target}");
        assert_eq!(
            a.field("www-authenticate"),
            Some("Bearer realm=\"smtpgate\"")
        );
        assert_eq!(
            a.json()["error"],
            "send the token: Authorization: Bearer <token of http.token_file>"
        );
    }
    let a = request(http, "POST", "/api/check", &[], CLEAN.as_bytes()).await;
    assert_eq!(a.status, 401);
    // The path as the router reads it decides, not its spelling.
    for spelt in ["/%61pi/history", "/api/%68istory", "/api/history/", "/api/"] {
        assert_eq!(get(http, spelt).await.status, 401, "{spelt}");
    }
    for wrong in [
        "Bearer 3f9a0c-test-toke",
        "Bearer 3f9a0c-test-token2",
        "Basic 3f9a0c-test-token",
    ] {
        let a = request(
            http,
            "GET",
            "/api/history",
            &[("Authorization", wrong)],
            b"",
        )
        .await;
        assert_eq!(
            (a.status, a.json()["error"].as_str()),
            (401, Some("the bearer token is wrong")),
            "{wrong}"
        );
    }
    let a = request(
        http,
        "GET",
        "/api/history",
        &[("Authorization", "Bearer 3f9a0c-test-token")],
        b"",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json(), serde_json::json!([]));
    // The console's files hold no data: served without the token (the
    // page asks for it and sends it with each API call).
    let a = get(http, "/").await;
    assert_eq!(a.status, 200);
    assert!(a.text().contains("<main id=\"main\""));
    gw.handle.shutdown();
    let _ = std::fs::remove_file(&token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_loopback_a_token_file_is_asked_for_too() {
    let sink = Sink::start(SinkConfig::default()).await;
    let token = token_file("loopback", "loopback-token");
    let gw = common::start(&config(
        &sink,
        &format!("token_file = \"{}\"", token.display()),
    ))
    .await;
    let http = gw.http.unwrap();
    assert_eq!(get(http, "/api/stats").await.status, 401);
    let a = request(
        http,
        "GET",
        "/api/stats",
        &[("Authorization", "Bearer loopback-token")],
        b"",
    )
    .await;
    assert_eq!(a.status, 200);
    gw.handle.shutdown();
    let _ = std::fs::remove_file(&token);
}

#[test]
fn off_loopback_without_a_token_file_the_config_is_refused() {
    let path = std::env::temp_dir().join(format!("smtpgate-http-open-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[server]\nhostname = \"gw.test\"\nlisten = [\"127.0.0.1:0\"]\n[upstream]\naddress = \"127.0.0.1:1\"\n[http]\nlisten = \"0.0.0.0:0\"\n",
    )
    .unwrap();
    for command in ["check-config", "serve"] {
        let out = Command::new(BIN)
            .args([command, "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with(&format!(
                "{}:7:1: http.token_file: expected a bearer token file, as listen 0.0.0.0:0 is not a loopback address",
                path.display()
            )),
            "{command}: {stderr}"
        );
    }
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_not_reachable_from_the_smtp_listener() {
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = common::start(&config(&sink, "")).await;
    let mut c = Client::connect(gw.addr).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.send(b"GET /api/history HTTP/1.1\r\n").await;
    let r = c.read_reply().await;
    assert_eq!(
        (r.code, r.enhanced().as_deref()),
        (502, Some("5.5.2")),
        "{}",
        r.text()
    );
    assert_eq!(r.text(), "5.5.2 Error: command not recognized");
    c.send(b"Host: gw\r\n").await;
    let r = c.read_reply().await;
    assert_eq!(r.code, 502);
    // And the HTTP port speaks no SMTP: no banner, an HTTP 400.
    let a = parse(&raw(gw.http.unwrap(), b"EHLO client.test\r\n\r\n").await);
    assert_eq!(a.status, 400);
    gw.handle.shutdown();
}

/// A customer domain whose DNS is right for the egress IP but for DKIM.
const READY_ZONE: &str = r#"
10.113.0.203.in-addr.arpa    PTR  out.customer.test
out.customer.test            A    203.0.113.10
mail.customer.test           A    127.0.0.6
customer.test                TXT  "v=spf1 ip4:203.0.113.10 -all"
customer.test                MX   10 mail.customer.test
_dmarc.customer.test         TXT  "v=DMARC1; p=none"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_the_report_of_smtpgate_readiness() {
    let dns = common::dns::DnsServer::start(common::dns::Zone::parse(READY_ZONE)).await;
    let sink = Sink::start(SinkConfig::default()).await;
    let text = config(&sink, "").replace(
        "[relay]\nlocal_domains = [\"example.test\"]",
        &format!(
            "[relay]\nlocal_domains = [\"customer.test\"]\n[outbound]\negress_ips = [\"203.0.113.10\"]\n{}",
            dns.dns_section()
        ),
    );
    assert!(text.contains("egress_ips"));
    let gw = common::start(&text).await;
    let http = gw.http.unwrap();
    // One stopped message of the domain, for the report's stopped counts.
    let spam = SEVEN_THIRTY.replace("info@example.test", "info@customer.test");
    let r = send_message(
        gw.addr,
        "info@customer.test",
        &["a@example.net"],
        dotted(&spam).as_bytes(),
    )
    .await;
    assert_eq!(r.code, 550, "{}", r.text());
    history(http, "from=%40customer.test", 1).await;
    let a = get(http, "/api/readiness/Customer.Test.").await;
    assert_eq!(a.status, 200, "{}", a.text());
    let report = a.json();
    assert_eq!(
        keys(&report),
        set(&["domain", "egress_ips", "checks", "stopped"])
    );
    assert_eq!(report["domain"], "customer.test");
    assert_eq!(report["egress_ips"], serde_json::json!(["203.0.113.10"]));
    for line in report["checks"].as_array().unwrap() {
        assert_eq!(keys(line), set(&["area", "status", "what", "fix"]));
    }
    // The same lines as the report the CLI prints, from the same function.
    let app = common::build_app(&text);
    let direct =
        serde_json::to_value(smtpgate::readiness::report(&app, "customer.test").await).unwrap();
    assert_eq!(report["checks"], direct["checks"]);
    let areas: Vec<(&str, &str)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["area"].as_str().unwrap(), l["status"].as_str().unwrap()))
        .collect();
    assert!(areas.contains(&("spf", "ok")), "{areas:?}");
    assert!(areas.contains(&("mx", "ok")), "{areas:?}");
    // What stopped the domain's mail, from this gateway's history.
    let stopped = report["stopped"].as_array().unwrap();
    let phishing = stopped
        .iter()
        .find(|s| s["symbol"] == "PHISHING")
        .unwrap_or_else(|| panic!("{stopped:?}"));
    assert_eq!(
        keys(phishing),
        set(&["symbol", "count", "description", "fix"])
    );
    assert_eq!(phishing["count"], 1);
    assert_eq!(
        phishing["fix"],
        app.symbols.get("PHISHING").unwrap().fix.as_str()
    );
    let a = get(http, "/api/readiness/not_a_domain").await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.json()["error"],
        "not a domain name: \"not_a_domain\" (expected a name like example.com)"
    );
    gw.handle.shutdown();
}

/// `MAIL FROM` from 127.0.0.1 on a new session: its reply.
async fn mail_reply(addr: SocketAddr) -> String {
    let mut c = Client::connect(addr).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO client.example.test", 250).await;
    let r = c.cmd("MAIL FROM:<shop@example.test>").await;
    format!("{} {}", r.code, r.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_are_listed_placed_and_released_through_the_api() {
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = common::start(&config(
        &sink,
        "[anomaly]\nenabled = true\nhold_for = \"24h\"",
    ))
    .await;
    let http = gw.http.unwrap();
    let a = get(http, "/api/holds").await;
    assert_eq!((a.status, a.json()), (200, serde_json::json!([])));
    assert!(mail_reply(gw.addr).await.starts_with("250 "));

    // A page of another site cannot change holds through a browser.
    let evil = [("Origin", "http://evil.test")];
    let a = request(http, "POST", "/api/holds/127.0.0.1", &evil, b"").await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.json()["error"],
        "a change from another site (Origin: http://evil.test) is refused"
    );
    let a = request(http, "POST", "/api/holds/127.0.0.1?for=soon", &[], b"").await;
    assert_eq!(
        (a.status, a.json()["error"].as_str().unwrap()),
        (
            400,
            "for: invalid duration `soon`: expected e.g. 30m, 2h, 3d (at most 30d)"
        )
    );
    let a = request(http, "POST", "/api/holds/127.0.0.1?until=2h", &[], b"").await;
    assert_eq!(
        (a.status, a.json()["error"].as_str().unwrap()),
        (400, "unknown parameter `until`: expected for, reason")
    );
    assert!(get(http, "/api/holds")
        .await
        .json()
        .as_array()
        .unwrap()
        .is_empty());

    // Held by hand (same origin), for 2h with the desk's words.
    let own = format!("http://{http}");
    let a = request(
        http,
        "POST",
        "/api/holds/127.0.0.1?for=2h&reason=phishing%20run%20seen",
        &[("Origin", own.as_str())],
        b"",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let hold = a.json();
    assert_eq!(hold["identity"], "127.0.0.1");
    assert_eq!(hold["by"], "operator");
    assert_eq!(hold["reason"], "phishing run seen");
    assert_eq!(
        hold["until"].as_u64().unwrap() - hold["since"].as_u64().unwrap(),
        7200
    );
    let reference = hold["reference"].as_str().unwrap().to_string();
    assert_eq!(
        mail_reply(gw.addr).await,
        format!(
            "451 4.7.1 <127.0.0.1> held for review: phishing run seen (ANOMALY_HOLD) ref={reference}"
        )
    );
    assert_eq!(
        get(http, "/api/holds").await.json(),
        serde_json::json!([hold])
    );
    assert_eq!(get(http, "/api/holds/127.0.0.1").await.json(), hold);

    // Released: the next message goes through; a second release is a 404.
    let a = request(http, "DELETE", "/api/holds/127.0.0.1", &evil, b"").await;
    assert_eq!(a.status, 403);
    assert!(mail_reply(gw.addr).await.starts_with("451 "));
    let a = request(http, "DELETE", "/api/holds/127.0.0.1", &[], b"").await;
    assert_eq!(
        (a.status, a.json()),
        (200, serde_json::json!({ "released": "127.0.0.1" }))
    );
    assert!(mail_reply(gw.addr).await.starts_with("250 "));
    for (method, status) in [("DELETE", 404), ("GET", 404)] {
        let a = request(http, method, "/api/holds/127.0.0.1", &[], b"").await;
        assert_eq!(
            (a.status, a.json()["error"].as_str().unwrap()),
            (status, "127.0.0.1 is not held"),
            "{method}"
        );
    }
    let a = request(http, "PUT", "/api/holds/127.0.0.1", &[], b"").await;
    assert_eq!(
        (a.status, a.field("allow")),
        (405, Some("GET, HEAD, POST, DELETE"))
    );
    let a = request(http, "POST", "/api/holds", &[], b"").await;
    assert_eq!((a.status, a.field("allow")), (405, Some("GET, HEAD")));
    gw.handle.shutdown();
}
