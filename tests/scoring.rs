//! Scoring as senders and operators see it: the SPAM alert (golden text,
//! RFC 3464 structure), reject replies, the 2.00 boundary, blocking symbols,
//! composites, alert routing (never to a third party), merging, reloads, and
//! `smtpgate check` printing the same breakdown as the alert.

mod common;

use common::client::{send_message, Client};
use common::sink::{Sink, SinkConfig};
use mail_parser::{MessageParser, MimeHeaders};
use smtpgate::bounce::Alert;
use smtpgate::score::{Breakdown, Hit, Score};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// A fresh rules directory: the shipped rules plus `extra` files.
fn rules_dir(extra: &[(&str, &str)]) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("smtpgate-scoring-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(common::root().join("rules")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    for (name, text) in extra {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

/// Gateway config text: `mode` is "reject" or "bounce"; example.test is ours.
fn config(sink: &Sink, mode: &str, rules: Option<&Path>, extra: &str) -> String {
    let mut text = common::config_text(
        sink.addr,
        "",
        &format!("[relay]\nlocal_domains = [\"example.test\"]\n{extra}"),
    );
    text = text.replace(
        "spam_action = \"reject\"",
        &format!("spam_action = \"{mode}\""),
    );
    if let Some(dir) = rules {
        let shipped = format!("rules_dir = \"{}\"", common::root().join("rules").display());
        text = text.replace(&shipped, &format!("rules_dir = \"{}\"", dir.display()));
    }
    text
}

/// A clean message: Date, Message-ID, text; nothing fires.
fn clean(subject: &str) -> String {
    format!(
        "From: Shop <info@example.test>\r\nTo: <a@example.net>\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.test>\r\n\r\nHello, your order has shipped.\r\n.\r\n"
    )
}

/// PHISHING(4.00) + BULK_NO_UNSUBSCRIBE(2.00) + MISSING_MID(1.00) + SUBJ_ALL_CAPS(0.30) = 7.30.
const SEVEN_THIRTY: &str = "From: Shop <info@example.test>\r\nTo: <a@example.net>, <b@example.net>\r\nSubject: LAST CHANCE SALE\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nPrecedence: bulk\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nLog in to your account today.\r\n--b1\r\nContent-Type: text/html\r\n\r\n<p>Log in to <a href=\"https://login.evil.test/x\">www.bank.test</a> today.</p>\r\n--b1--\r\n.\r\n";

fn alert_text(data: &[u8]) -> String {
    let msg = MessageParser::default().parse(data).expect("alert parses");
    msg.body_text(0).expect("text part").replace("\r\n", "\n")
}

#[tokio::test]
async fn seven_thirty_yields_an_alert_listing_symbols_highest_first() {
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = common::start(&config(&sink, "bounce", None, "")).await;
    let r = send_message(
        gw.addr,
        "info@example.test",
        &["a@example.net", "b@example.net"],
        SEVEN_THIRTY.as_bytes(),
    )
    .await;
    assert_eq!(
        (r.code, r.enhanced().as_deref()),
        (250, Some("2.0.0")),
        "{r:?}"
    );
    assert!(
        r.text().contains("SPAM alert sent to <info@example.test>"),
        "{r:?}"
    );
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(
        msgs.len(),
        1,
        "only the alert reaches the MTA, not the message"
    );
    let alert = &msgs[0];
    assert_eq!(alert.mail_from, "", "alerts use the null sender");
    assert_eq!(alert.rcpts, ["info@example.test"]);
    let text = alert_text(&alert.data);
    assert!(
        text.contains("Score: 7.30 (must be lower 2.00)\nSymbols:\n  PHISHING (4.00)\n"),
        "{text}"
    );
    let order: Vec<&str> = text[text.find("Symbols:").unwrap()..]
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.contains(" ("))
        .map(|l| l.trim().split(' ').next().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "PHISHING",
            "BULK_NO_UNSUBSCRIBE",
            "MISSING_MID",
            "SUBJ_ALL_CAPS"
        ]
    );
    assert!(text.contains("When the score is lower than 2.00, your messages will be sent."));
    let raw = String::from_utf8_lossy(&alert.data);
    assert!(
        raw.contains("Subject: SPAM alert: LAST CHANCE SALE\r\n"),
        "{raw}"
    );
    assert!(raw.contains("Auto-Submitted: auto-replied\r\n"));
    assert!(raw
        .contains("Final-Recipient: rfc822; a@example.net\r\nAction: failed\r\nStatus: 5.7.1\r\n"));
    assert!(raw.contains("Final-Recipient: rfc822; b@example.net\r\n"));
}

#[tokio::test]
async fn reject_mode_gives_one_line_with_score_symbols_and_reference() {
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = common::start(&config(&sink, "reject", None, "")).await;
    let r = send_message(
        gw.addr,
        "info@example.test",
        &["a@example.net"],
        SEVEN_THIRTY.as_bytes(),
    )
    .await;
    assert_eq!((r.code, r.enhanced().as_deref()), (550, Some("5.7.1")));
    let text = r.text();
    let expected = "5.7.1 SPAM alert: score 7.30 (must be lower 2.00): PHISHING(4.00) BULK_NO_UNSUBSCRIBE(2.00) MISSING_MID(1.00) SUBJ_ALL_CAPS(0.30) ref=";
    assert!(text.starts_with(expected), "{text}");
    assert_eq!(
        text.len() - expected.len(),
        8,
        "an 8-character reference: {text}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn exactly_the_threshold_is_spam_and_just_below_passes() {
    let sink = Sink::start(SinkConfig::default()).await;
    for (score, code) in [("2.00", 550), ("1.99", 250)] {
        let gw = common::start(&config(
            &sink,
            "reject",
            None,
            &format!("[scores]\nSUBJ_ALL_CAPS = {score}\n[headers]\nspamd_result = \"full\"\n"),
        ))
        .await;
        let r = send_message(
            gw.addr,
            "info@example.test",
            &["a@example.net"],
            clean("HELLO THERE").as_bytes(),
        )
        .await;
        assert_eq!(r.code, code, "SUBJ_ALL_CAPS = {score}: {r:?}");
        if code == 550 {
            assert!(
                r.text().contains(&format!(
                    "score {score} (must be lower 2.00): SUBJ_ALL_CAPS({score})"
                )),
                "{r:?}"
            );
        }
    }
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(msgs.len(), 1);
    let data = String::from_utf8_lossy(&msgs[0].data);
    assert!(data.contains("X-Spamd-Result: default: False [1.99 / 2.00];\r\n\tSUBJ_ALL_CAPS(1.99)[HELLO THERE]\r\n"), "{data}");
}

#[tokio::test]
async fn x_spamd_result_is_off_by_default_and_symbols_or_full_on_request() {
    let sink = Sink::start(SinkConfig::default()).await;
    for (headers, expected) in [
        ("", None),
        (
            "[headers]\nspamd_result = \"off\"\n",
            None,
        ),
        (
            "[headers]\nspamd_result = \"symbols\"\n",
            Some("X-Spamd-Result: default: False [1.50 / 2.00];\r\n\tSUBJ_ALL_CAPS(1.50)[]\r\n"),
        ),
        (
            "[headers]\nspamd_result = \"full\"\n",
            Some("X-Spamd-Result: default: False [1.50 / 2.00];\r\n\tSUBJ_ALL_CAPS(1.50)[HELLO THERE]\r\n"),
        ),
    ] {
        let before = sink.messages().len();
        let gw = common::start(&config(
            &sink,
            "reject",
            None,
            &format!("[scores]\nSUBJ_ALL_CAPS = 1.50\n{headers}"),
        ))
        .await;
        let r = send_message(
            gw.addr,
            "info@example.test",
            &["a@example.net"],
            clean("HELLO THERE").as_bytes(),
        )
        .await;
        assert_eq!((r.code, r.enhanced().as_deref()), (250, Some("2.0.0")), "{r:?}");
        let msgs = sink.wait_for_messages(before + 1, Duration::from_secs(5)).await;
        let data = String::from_utf8_lossy(&msgs[before].data).to_string();
        match expected {
            None => assert!(!data.contains("X-Spamd-Result"), "{headers}: {data}"),
            Some(h) => assert!(data.contains(h), "{headers}: {data}"),
        }
        // Nothing to report about SPF/DKIM/DMARC: no `; none` line.
        assert!(!data.contains("Authentication-Results"), "{data}");
    }
}

const BLOCK_RULE: &str = "[symbol.TEST_BLOCKED]\nscore = 0.0\naction = \"block\"\ntype = \"header\"\nheader = \"X-Test-Block\"\nexists = true\ndescription = \"Test: a blocking symbol.\"\nfix = \"Remove X-Test-Block.\"\n";

#[tokio::test]
async fn a_zero_score_blocking_symbol_stops_the_message_on_its_own() {
    let rules = rules_dir(&[("90-test.toml", BLOCK_RULE)]);
    let sink = Sink::start(SinkConfig::default()).await;
    let msg = clean("Hello").replace("Subject:", "X-Test-Block: yes\r\nSubject:");
    // Reject mode: the blocked reply names the symbol.
    let gw = common::start(&config(&sink, "reject", Some(&rules), "")).await;
    let r = send_message(
        gw.addr,
        "info@example.test",
        &["a@example.net"],
        msg.as_bytes(),
    )
    .await;
    assert_eq!((r.code, r.enhanced().as_deref()), (550, Some("5.7.1")));
    assert!(
        r.text()
            .contains("Message blocked: TEST_BLOCKED(0.00) blocks sending on its own"),
        "{r:?}"
    );
    // Bounce mode: the alert marks it as blocking on its own.
    let gw = common::start(&config(&sink, "bounce", Some(&rules), "")).await;
    let r = send_message(
        gw.addr,
        "info@example.test",
        &["a@example.net"],
        msg.as_bytes(),
    )
    .await;
    assert_eq!(r.code, 250, "{r:?}");
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    let text = alert_text(&msgs[0].data);
    assert!(text.contains("Score: 0.00 (must be lower 2.00)\nSymbols:\n  TEST_BLOCKED (0.00) \u{2014} blocks sending on its own\n"), "{text}");
    assert_eq!(msgs.len(), 1, "the blocked message itself is not relayed");
}

#[tokio::test]
async fn no_alert_to_a_third_party_sender_the_message_is_rejected_instead() {
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = common::start(&config(&sink, "bounce", None, "")).await;
    // A forged, non-local envelope sender and no login.
    let r = send_message(
        gw.addr,
        "victim@elsewhere.test",
        &["a@example.net"],
        SEVEN_THIRTY.as_bytes(),
    )
    .await;
    assert_eq!(
        (r.code, r.enhanced().as_deref()),
        (550, Some("5.7.1")),
        "{r:?}"
    );
    assert!(r.text().contains("SPAM alert: score 7.30"), "{r:?}");
    // The null sender and auto-submitted mail get no alert either.
    let mut c = Client::connect(gw.addr).await;
    c.read_reply().await;
    c.expect("EHLO client.example.test", 250).await;
    c.expect("MAIL FROM:<>", 250).await;
    c.expect("RCPT TO:<a@example.net>", 250).await;
    c.expect("DATA", 354).await;
    assert_eq!(
        c.cmd(SEVEN_THIRTY.strip_suffix("\r\n").unwrap()).await.code,
        550
    );
    let auto = SEVEN_THIRTY.replace(
        "Precedence: bulk\r\n",
        "Precedence: bulk\r\nAuto-Submitted: auto-generated\r\n",
    );
    let r = send_message(
        gw.addr,
        "info@example.test",
        &["a@example.net"],
        auto.as_bytes(),
    )
    .await;
    assert_eq!(r.code, 550, "{r:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        sink.messages().is_empty(),
        "nothing may be sent: {:?}",
        sink.messages().iter().map(|m| &m.rcpts).collect::<Vec<_>>()
    );
    assert!(!sink
        .commands()
        .iter()
        .any(|c| c.starts_with("RCPT") && c.contains("elsewhere.test")));
}

#[tokio::test]
async fn identical_alerts_within_ten_minutes_are_merged_and_counted() {
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = common::start(&config(&sink, "bounce", None, "")).await;
    for _ in 0..3 {
        let r = send_message(
            gw.addr,
            "info@example.test",
            &["a@example.net"],
            SEVEN_THIRTY.as_bytes(),
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        sink.messages().len(),
        1,
        "one alert for three identical messages"
    );
    // Another symbol set is another alert.
    let r = send_message(
        gw.addr,
        "info@example.test",
        &["a@example.net"],
        SEVEN_THIRTY
            .replace("LAST CHANCE SALE", "Last chance")
            .as_bytes(),
    )
    .await;
    assert_eq!(r.code, 250);
    let msgs = sink.wait_for_messages(2, Duration::from_secs(5)).await;
    assert!(!alert_text(&msgs[1].data).contains("SUBJ_ALL_CAPS"));
    // After the window the next alert counts the merged ones.
    let store = gw.handle.app().store.clone();
    for key in store.keys("alert:", 100).await.unwrap() {
        if !key.ends_with(":merged") {
            store.delete(&key).await.unwrap();
        }
    }
    let r = send_message(
        gw.addr,
        "info@example.test",
        &["a@example.net"],
        SEVEN_THIRTY.as_bytes(),
    )
    .await;
    assert_eq!(r.code, 250);
    let msgs = sink.wait_for_messages(3, Duration::from_secs(5)).await;
    assert!(
        alert_text(&msgs[2].data)
            .contains("2 earlier message(s) from you were stopped for the same reasons"),
        "{}",
        alert_text(&msgs[2].data)
    );
}

#[tokio::test]
async fn an_alert_the_upstream_refuses_gives_the_client_451() {
    let sink = Sink::start(SinkConfig {
        data_reply: Some("452 4.3.1 Insufficient system storage".into()),
        ..Default::default()
    })
    .await;
    let gw = common::start(&config(&sink, "bounce", None, "")).await;
    // The retry is not "merged" into the alert that never went out: it
    // gets 451 again, so the client keeps the message.
    for attempt in 1..=2 {
        let r = send_message(
            gw.addr,
            "info@example.test",
            &["a@example.net"],
            SEVEN_THIRTY.as_bytes(),
        )
        .await;
        assert_eq!(
            (r.code, r.enhanced().as_deref()),
            (451, Some("4.3.0")),
            "attempt {attempt}: {r:?}"
        );
    }
}

#[tokio::test]
async fn client_copies_of_our_headers_are_removed_from_passed_mail() {
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = common::start(&config(&sink, "reject", None, "")).await;
    let msg = clean("Hello").replace(
        "Subject:",
        "X-Spamd-Result: default: False [-100.00 / 2.00]\r\nX-Spam-Status: No\r\nAuthentication-Results: gw.example.test;\r\n\tdmarc=pass\r\nSubject:",
    );
    assert_eq!(
        send_message(
            gw.addr,
            "info@example.test",
            &["a@example.net"],
            msg.as_bytes()
        )
        .await
        .code,
        250
    );
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    let body = common::strip_received(&msgs[0].data);
    let body = String::from_utf8_lossy(body);
    assert!(
        !body.contains("X-Spam")
            && !body.contains("Authentication-Results")
            && !body.contains("dmarc=pass"),
        "{body}"
    );
    assert!(
        body.starts_with(
            "From: Shop <info@example.test>\r\nTo: <a@example.net>\r\nSubject: Hello\r\n"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn reload_changes_the_verdict_and_a_broken_rules_file_keeps_the_old_one() {
    let rules = rules_dir(&[]);
    let sink = Sink::start(SinkConfig::default()).await;
    let text = config(&sink, "reject", Some(&rules), "");
    let path = rules.join("../").join(format!(
        "{}-gw.toml",
        rules.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&path, &text).unwrap();
    let gw = common::start(&text).await;
    let msg = clean("HELLO THERE");
    let verdict = || async {
        send_message(
            gw.addr,
            "info@example.test",
            &["a@example.net"],
            msg.as_bytes(),
        )
        .await
        .code
    };
    assert_eq!(verdict().await, 250, "SUBJ_ALL_CAPS 0.30 passes");
    // Hold a session open across the reload: it keeps the set it started with.
    let mut early = Client::connect(gw.addr).await;
    early.read_reply().await;
    let content = rules.join("50-content.toml");
    let shipped = std::fs::read_to_string(&content).unwrap();
    std::fs::write(
        &content,
        shipped.replace(
            "[symbol.SUBJ_ALL_CAPS]\nscore = 0.3",
            "[symbol.SUBJ_ALL_CAPS]\nscore = 3.0",
        ),
    )
    .unwrap();
    gw.handle.reload_from(&path).expect("reload");
    assert_eq!(
        verdict().await,
        550,
        "the same message is spam after the reload"
    );
    early.expect("EHLO client.example.test", 250).await;
    early.expect("MAIL FROM:<info@example.test>", 250).await;
    early.expect("RCPT TO:<a@example.net>", 250).await;
    early.expect("DATA", 354).await;
    assert_eq!(
        early.cmd(msg.strip_suffix("\r\n").unwrap()).await.code,
        250,
        "in-flight session keeps its rules"
    );
    // A broken rules file: the reload fails, naming file and line; old verdicts stay.
    std::fs::write(rules.join("60-broken.toml"), "[symbol.BROKEN]\nscore = 1.0\ndescription = \"d\"\nfix = \"f\"\ntype = \"body\"\nregex = \"([unclosed\"\n").unwrap();
    let err = gw.handle.reload_from(&path).unwrap_err().to_string();
    assert!(
        err.contains("60-broken.toml:6:1: symbol BROKEN: invalid regex"),
        "{err}"
    );
    assert_eq!(verdict().await, 550);
}

#[tokio::test]
async fn check_command_prints_the_same_breakdown_as_the_alert() {
    let sink = Sink::start(SinkConfig::default()).await;
    let text = config(&sink, "bounce", None, "");
    let gw = common::start(&text).await;
    let r = send_message(
        gw.addr,
        "info@example.test",
        &["a@example.net", "b@example.net"],
        SEVEN_THIRTY.as_bytes(),
    )
    .await;
    assert_eq!(r.code, 250);
    let alert = alert_text(&sink.wait_for_messages(1, Duration::from_secs(5)).await[0].data);
    let from_alert = &alert[alert.find("Score: ").unwrap()..];
    let dir = std::env::temp_dir().join(format!("smtpgate-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cfg, eml) = (dir.join("gw.toml"), dir.join("msg.eml"));
    std::fs::write(&cfg, &text).unwrap();
    // Stored with LF line ends, as files usually are.
    std::fs::write(
        &eml,
        SEVEN_THIRTY.trim_end_matches(".\r\n").replace("\r\n", "\n"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smtpgate"))
        .args([
            "check",
            "--config",
            cfg.to_str().unwrap(),
            "--from",
            "info@example.test",
            "--rcpt",
            "a@example.net",
            "--rcpt",
            "b@example.net",
            "--helo",
            "client.example.test",
            eml.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    // Exit status as spamc -c: 1 for a stopped message.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // First the client it assumed and the envelope, then the breakdown.
    assert!(stdout.starts_with("Client: 127.0.0.1 (trusted"), "{stdout}");
    let (_, stdout) = stdout
        .split_once("\n\n")
        .expect("a blank line after the envelope");
    let (breakdown, action) = stdout.split_once("\nAction: ").expect("an Action line");
    assert_eq!(
        format!("{breakdown}\n"),
        from_alert.trim_end_matches('\n').to_string() + "\n\n"
    );
    assert_eq!(
        action.trim(),
        "spam: SPAM alert to the originator <info@example.test>"
    );
    let json = std::process::Command::new(env!("CARGO_BIN_EXE_smtpgate"))
        .args([
            "check",
            "--json",
            "--config",
            cfg.to_str().unwrap(),
            eml.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["score"], 7.3);
    assert_eq!(v["symbols"][0]["name"], "PHISHING");
    assert_eq!(v["symbols"][0]["score"], 4.0);
}

#[test]
fn alert_text_matches_the_golden_file_and_parses_as_a_report() {
    let app = common::build_app(&common::config_text("127.0.0.1:1".parse().unwrap(), "", ""));
    let mut b = Breakdown::default();
    b.add(&app.symbols, Hit::new("SUBJ_ALL_CAPS", "LAST CHANCE SALE"));
    b.add(
        &app.symbols,
        Hit::new(
            "PHISHING",
            "link text shows www.bank.test, link goes to login.evil.test",
        ),
    );
    b.add(
        &app.symbols,
        Hit {
            why: Default::default(),
            name: "MISSING_MID".into(),
            options: vec![],
        },
    );
    b.add(
        &app.symbols,
        Hit {
            why: Default::default(),
            name: "BULK_NO_UNSUBSCRIBE".into(),
            options: vec!["PRECEDENCE_BULK".into()],
        },
    );
    let recipients = vec!["a@example.net".to_string(), "b@example.net".to_string()];
    let alert = Alert {
        hostname: "gw.example.test",
        reference: "K3F9Q2ZP",
        originator: "info@example.test",
        recipients: &recipients,
        original_headers: b"From: Shop <info@example.test>\r\nSubject: LAST CHANCE SALE\r\n\r\n",
        message_id: Some("m1@example.test"),
        subject: Some("LAST CHANCE SALE"),
        breakdown: &b,
        symbols: &app.symbols,
        threshold: Score(200),
        merged: 0,
        arrival: UNIX_EPOCH + Duration::from_secs(1_795_428_000),
    };
    let golden_path = common::root().join("tests/fixtures/golden/alert.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden_path, alert.text()).unwrap();
    }
    let golden = std::fs::read_to_string(&golden_path).unwrap();
    assert_eq!(alert.text(), golden);
    let wire = alert.message();
    assert!(wire.is_ascii(), "7-bit clean");
    let msg = MessageParser::default().parse(&wire).unwrap();
    let ct = msg.root_part().content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    assert_eq!(msg.subject(), Some("SPAM alert: LAST CHANCE SALE"));
    assert_eq!(msg.body_text(0).unwrap().replace("\r\n", "\n"), golden);
    let types: Vec<String> = msg
        .parts
        .iter()
        .skip(1)
        .map(|p| {
            let c = p.content_type().unwrap();
            format!("{}/{}", c.ctype(), c.subtype().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        types,
        [
            "text/plain",
            "message/delivery-status",
            "text/rfc822-headers"
        ]
    );
    let status = String::from_utf8_lossy(msg.parts[2].contents()).to_string();
    for field in [
        "Reporting-MTA: dns; gw.example.test",
        "Arrival-Date: ",
        "Final-Recipient: rfc822; a@example.net",
        "Action: failed",
        "Status: 5.7.1",
        "Diagnostic-Code: smtp; 550 5.7.1 SPAM alert: score 7.30 (must be lower 2.00) ref=K3F9Q2ZP",
    ] {
        assert!(status.contains(field), "{field} missing in {status}");
    }
    let reply = smtpgate::smtp::reply::spam_rejected(
        "7.30",
        "2.00",
        &[
            ("PHISHING".into(), "4.00".into()),
            ("BULK_NO_UNSUBSCRIBE".into(), "2.00".into()),
        ],
        "K3F9Q2ZP",
    );
    assert_eq!(
        reply.to_string(),
        std::fs::read_to_string(common::root().join("tests/fixtures/golden/reject.txt"))
            .unwrap()
            .trim_end()
    );
}
