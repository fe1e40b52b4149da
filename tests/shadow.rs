//! Shadow rules (issue 20): the same message with a rule counted, shadowed
//! and absent — through `smtpgate check` (the real binary) and through
//! `serve` over SMTP. Shadowed, the action is exactly the one without the
//! rule; the symbol is visible and marked in `check` (text and JSON) and in
//! the transaction log line, counted in `smtpgate_shadow_hits_total`, and
//! never shown to the sender (SPAM alert). A shadowed forced symbol forces
//! nothing, a shadowed composite removes nothing, and a bad override is a
//! file:line:col error.

mod common;

use common::dns::{DnsServer, Zone};
use common::http::{sample, scrape};
use common::sink::{Sink, SinkConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_smtpgate");

/// All capitals in the subject: SUBJ_ALL_CAPS (0.30 in the rules).
const CAPS: &str =
    "From: <shop@example.test>\r\nTo: <buyer@example.net>\r\nSubject: INVOICE DUE\r\n\
     Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <s1@example.test>\r\n\r\nHello.\r\n";

/// Bulk mail without List-Unsubscribe: PRECEDENCE_BULK, replaced by the
/// composite BULK_NO_UNSUBSCRIBE (2.00).
const BULK: &str = "From: <shop@example.test>\r\nTo: <buyer@example.net>\r\nSubject: Our news\r\n\
     Precedence: bulk\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <s2@example.test>\r\n\r\nHello.\r\n";

/// A directory of its own for each test.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("smtpgate-shadow-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A copy of the shipped rules directory with each `(from, to)` replaced
/// exactly once.
fn rules_copy(dir: &Path, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    let mut applied = vec![0; edits.len()];
    for entry in std::fs::read_dir(common::root().join("rules")).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        for (i, (from, to)) in edits.iter().enumerate() {
            applied[i] += text.matches(from).count();
            text = text.replace(from, to);
        }
        std::fs::write(out.join(path.file_name().unwrap()), text).unwrap();
    }
    assert_eq!(applied, vec![1; edits.len()], "{edits:?}");
    out
}

/// The `[symbol.NAME]` section of a shipped rules file, with the blank line
/// after it (or to the end of the file).
fn block(file: &str, symbol: &str) -> String {
    let text = std::fs::read_to_string(common::root().join("rules").join(file)).unwrap();
    let start = text.find(&format!("[symbol.{symbol}]\n")).unwrap();
    let end = text[start..]
        .find("\n\n")
        .map_or(text.len(), |e| start + e + 2);
    text[start..end].to_string()
}

/// A gateway configuration relaying to `upstream`, resolving with `dns`,
/// with `rules` (default: the shipped ones) and `extra` sections.
fn config(upstream: SocketAddr, dns: &DnsServer, rules: Option<&Path>, extra: &str) -> String {
    let text = common::config_text(upstream, "", &format!("{}{extra}", dns.dns_section()));
    match rules {
        Some(r) => text.replace(
            &common::root().join("rules").display().to_string(),
            &r.display().to_string(),
        ),
        None => text,
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `smtpgate check` of `message` from `from`: exit status, stdout, stderr.
async fn check(config: PathBuf, message: PathBuf, from: &str, json: bool) -> (i32, String, String) {
    let mut args = vec![
        "check".to_string(),
        "--config".into(),
        config.display().to_string(),
        "--from".into(),
        from.into(),
        "--rcpt".into(),
        "buyer@example.net".into(),
        "--helo".into(),
        "web.example.test".into(),
    ];
    if json {
        args.push("--json".into());
    }
    args.push(message.display().to_string());
    let out = tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The JSON symbols of a `check --json` run as (name, score, shadow,
/// blocking), and its (score, action).
/// A listed symbol: (name, score, shadow, blocking).
type Listed = (String, f64, bool, bool);

fn json_symbols(out: &str) -> (Vec<Listed>, (f64, String)) {
    let v: serde_json::Value = serde_json::from_str(out).expect(out);
    let symbols = v["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["score"].as_f64().unwrap(),
                s["shadow"].as_bool().unwrap(),
                s["blocking"].as_bool().unwrap(),
            )
        })
        .collect();
    let verdict = (
        v["score"].as_f64().unwrap(),
        v["action"].as_str().unwrap().to_string(),
    );
    (symbols, verdict)
}

const ADVICE: &str =
    "\nStart with the symbols with the highest scores: they have the most influence.\n\
     When the score is lower than 2.00, your messages will be sent.\n\n";

const CLIENT: &str = "Client: 127.0.0.1 (trusted: in relay.mynetworks; relay checks depend on it: \
     give --ip and --login as the customer connects)\n";

const CAPS_COUNTED: &str =
    "  SUBJ_ALL_CAPS (5.00)\n      The subject is written in capital letters only.\n      \
     Details: INVOICE DUE\n      Fix: Write the subject in normal sentence case.\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_a_shadowed_score_rule_changes_nothing_and_is_marked() {
    let dns = DnsServer::start(Zone::new()).await;
    let d = dir("score");
    let upstream = free_port();
    let eml = write(&d, "caps.eml", CAPS);
    let at = |name: &str, rules: Option<&Path>, extra: &str| {
        write(&d, name, &config(upstream, &dns, rules, extra))
    };
    let counted = at("counted.toml", None, "[scores]\nSUBJ_ALL_CAPS = 5.0\n");
    let shadowed = at(
        "shadowed.toml",
        None,
        "[scores]\nSUBJ_ALL_CAPS = { score = 5.0, shadow = true }\n",
    );
    // Without: the rule taken out of the rules.
    let no_rule = rules_copy(
        &d,
        "rules-without",
        &[(&block("50-content.toml", "SUBJ_ALL_CAPS"), "")],
    );
    let without = at("without.toml", Some(&no_rule), "");
    // The same shadow rule written in a rules file.
    let in_file = rules_copy(
        &d,
        "rules-shadow",
        &[(
            "[symbol.SUBJ_ALL_CAPS]\nscore = 0.3\n",
            "[symbol.SUBJ_ALL_CAPS]\nscore = 5.0\nshadow = true\n",
        )],
    );
    let in_rules = at("in-rules.toml", Some(&in_file), "");

    let envelope = "Envelope: from <shop@example.test> to <buyer@example.net>\n\n";
    let (code, out, err) = check(counted.clone(), eml.clone(), "shop@example.test", false).await;
    assert_eq!(code, 1, "{err}");
    let (head, action) = out.split_once("Action: ").unwrap();
    assert_eq!(
        head,
        format!(
            "{CLIENT}{envelope}Score: 5.00 (must be lower 2.00)\nSymbols:\n{CAPS_COUNTED}{ADVICE}"
        )
    );
    assert!(
        action.starts_with(
            "spam: reject (550 5.7.1 SPAM alert: score 5.00 (must be lower 2.00): SUBJ_ALL_CAPS(5.00) ref="
        ),
        "{action}"
    );

    let (code, without_out, err) = check(without, eml.clone(), "shop@example.test", false).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        without_out,
        format!(
            "{CLIENT}{envelope}Score: 0.00 (must be lower 2.00)\nSymbols:\n{ADVICE}Action: pass\n"
        )
    );
    let shadow_section =
        "Shadow rules (recorded, not counted):\n  SUBJ_ALL_CAPS (shadow 5.00)\n      Details: INVOICE DUE\n";
    for config in [shadowed.clone(), in_rules] {
        let (code, out, err) = check(config, eml.clone(), "shop@example.test", false).await;
        assert_eq!(code, 0, "the exit status without the rule: {err}");
        assert_eq!(
            out,
            format!(
                "{CLIENT}{envelope}Score: 0.00 (must be lower 2.00)\nSymbols:\n{shadow_section}{ADVICE}Action: pass\n"
            )
        );
        assert_eq!(
            out.replace(shadow_section, ""),
            without_out,
            "the rest as without the rule"
        );
    }

    let (_, json, _) = check(shadowed, eml.clone(), "shop@example.test", true).await;
    assert_eq!(
        json_symbols(&json),
        (
            vec![("SUBJ_ALL_CAPS".to_string(), 5.0, true, false)],
            (0.0, "pass".to_string())
        )
    );
    let (_, json, _) = check(counted, eml, "shop@example.test", true).await;
    assert_eq!(
        json_symbols(&json),
        (
            vec![("SUBJ_ALL_CAPS".to_string(), 5.0, false, false)],
            (5.0, "spam: reject".to_string())
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_a_shadowed_reject_symbol_forces_nothing() {
    let dns = DnsServer::start(Zone::new()).await;
    let d = dir("forced");
    let upstream = free_port();
    let eml = write(&d, "caps.eml", CAPS);
    let counted = write(&d, "counted.toml", &config(upstream, &dns, None, ""));
    let shadowed = write(
        &d,
        "shadowed.toml",
        &config(
            upstream,
            &dns,
            None,
            "[scores]\nreject_non_fqdn_sender = { shadow = true }\n",
        ),
    );
    // Without: the rule forces nothing (a code-emitted symbol is always found).
    let no_action = rules_copy(
        &d,
        "rules-without",
        &[(
            "[symbol.reject_non_fqdn_sender]\nscore = 0.0\naction = \"reject\"\n",
            "[symbol.reject_non_fqdn_sender]\nscore = 0.0\n",
        )],
    );
    let without = write(
        &d,
        "without.toml",
        &config(upstream, &dns, Some(&no_action), ""),
    );

    let (code, out, err) = check(counted, eml.clone(), "shop@web", false).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains("  reject_non_fqdn_sender (0.00) \u{2014} blocks sending on its own\n"),
        "{out}"
    );
    assert!(
        out.ends_with(
            "Action: reject at MAIL (504 5.5.2 <shop@web>: Sender address rejected: need fully-qualified address (reject_non_fqdn_sender))\n"
        ),
        "{out}"
    );
    let (code, without_out, err) = check(without, eml.clone(), "shop@web", false).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = check(shadowed.clone(), eml.clone(), "shop@web", false).await;
    assert_eq!(code, 0, "{err}");
    let verdict = |out: &str| {
        out.lines()
            .filter(|l| l.starts_with("Score: ") || l.starts_with("Action: "))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        verdict(&out),
        ["Score: 0.30 (must be lower 2.00)", "Action: pass"]
    );
    assert_eq!(verdict(&out), verdict(&without_out));
    assert!(
        out.contains(
            "Shadow rules (recorded, not counted):\n  reject_non_fqdn_sender (shadow 0.00)\n      Details: shop@web\n\n"
        ),
        "{out}"
    );
    let (_, json, _) = check(shadowed, eml, "shop@web", true).await;
    assert_eq!(
        json_symbols(&json),
        (
            vec![
                ("SUBJ_ALL_CAPS".to_string(), 0.3, false, false),
                ("reject_non_fqdn_sender".to_string(), 0.0, true, false),
            ],
            (0.3, "pass".to_string())
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_a_shadowed_composite_removes_nothing() {
    let dns = DnsServer::start(Zone::new()).await;
    let d = dir("composite");
    let upstream = free_port();
    let eml = write(&d, "bulk.eml", BULK);
    let bulk = "[scores]\nPRECEDENCE_BULK = 1.0\n";
    let counted = write(&d, "counted.toml", &config(upstream, &dns, None, bulk));
    let shadowed = write(
        &d,
        "shadowed.toml",
        &config(
            upstream,
            &dns,
            None,
            &format!("{bulk}BULK_NO_UNSUBSCRIBE = {{ shadow = true }}\n"),
        ),
    );
    // (HTML_ONLY_BULK_NO_UNSUB is built on it and goes with it.)
    let no_rule = rules_copy(
        &d,
        "rules-without",
        &[
            (&block("50-content.toml", "BULK_NO_UNSUBSCRIBE"), ""),
            (&block("59-composites.toml", "HTML_ONLY_BULK_NO_UNSUB"), ""),
        ],
    );
    let without = write(
        &d,
        "without.toml",
        &config(upstream, &dns, Some(&no_rule), bulk),
    );

    let (code, out, err) = check(counted, eml.clone(), "shop@example.test", true).await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        json_symbols(&out),
        (
            vec![("BULK_NO_UNSUBSCRIBE".to_string(), 2.0, false, false)],
            (2.0, "spam: reject".to_string())
        )
    );
    let (code, out, err) = check(without, eml.clone(), "shop@example.test", true).await;
    assert_eq!(code, 0, "{err}");
    let bulk_counted = ("PRECEDENCE_BULK".to_string(), 1.0, false, false);
    assert_eq!(
        json_symbols(&out),
        (vec![bulk_counted.clone()], (1.0, "pass".to_string()))
    );
    let (code, out, err) = check(shadowed.clone(), eml.clone(), "shop@example.test", true).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        json_symbols(&out),
        (
            vec![
                bulk_counted,
                ("BULK_NO_UNSUBSCRIBE".to_string(), 2.0, true, false)
            ],
            (1.0, "pass".to_string())
        ),
        "PRECEDENCE_BULK keeps counting, as without the composite"
    );
    let (_, out, _) = check(shadowed, eml, "shop@example.test", false).await;
    assert!(
        out.contains("Score: 1.00 (must be lower 2.00)\nSymbols:\n  PRECEDENCE_BULK (1.00)\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "Shadow rules (recorded, not counted):\n  BULK_NO_UNSUBSCRIBE (shadow 2.00)\n      Details: PRECEDENCE_BULK\n\n"
        ),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_shadow_overrides_are_errors_at_their_line() {
    let dns = DnsServer::start(Zone::new()).await;
    let d = dir("bad");
    let upstream = free_port();
    let eml = write(&d, "caps.eml", CAPS);
    for (entry, col, message) in [
        ("SUBJ_ALL_CAPS = { scor = 5.0 }", 17, "unknown field `scor`, expected `score` or `shadow`"),
        ("SUBJ_ALL_CAPS = {}", 17, "an empty override: give score = 3.0 and/or shadow = true"),
        (
            "reject_unauth_destination = { shadow = true }",
            29,
            "[scores]: symbol reject_unauth_destination cannot be a shadow rule: it guards the relay, \
             and shadowed it would relay mail for anyone",
        ),
    ] {
        let text = config(upstream, &dns, None, &format!("[scores]\n{entry}\n"));
        let line = text.lines().position(|l| l == entry).unwrap() + 1;
        let path = write(&d, "bad.toml", &text);
        let (code, out, err) = check(path.clone(), eml.clone(), "shop@example.test", false).await;
        assert_eq!((code, out.as_str()), (2, ""), "{entry}");
        assert_eq!(err, format!("{}:{line}:{col}: {message}\n", path.display()), "{entry}");
    }
}

/// The gateway process; killed when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one `serve` run did with the two messages: the caps message's
/// final reply, the non-FQDN sender's MAIL reply and (when accepted) final
/// reply, the transaction log lines, the metrics scrape, the sink's mail.
struct Served {
    caps: common::client::Reply,
    fqdn_mail: common::client::Reply,
    fqdn_final: Option<common::client::Reply>,
    log: String,
    scrape: String,
    delivered: usize,
}

/// `smtpgate serve` with `scores`; sends the caps message, then a plain
/// message from a non-FQDN sender.
async fn serve(name: &str, scores: &str) -> Served {
    let dns = DnsServer::start(Zone::new()).await;
    let d = dir(name);
    let sink = Sink::start(SinkConfig::default()).await;
    let smtp = free_port();
    let metrics = free_port();
    let text = config(
        sink.addr,
        &dns,
        None,
        &format!("[metrics]\nlisten = \"{metrics}\"\n{scores}"),
    )
    .replace("127.0.0.1:0", &smtp.to_string());
    let path = write(&d, "serve.toml", &text);
    let log = d.join("stderr.log");
    let gw = Running(
        Command::new(BIN)
            .args(["serve", "--config", path.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while tokio::net::TcpStream::connect(smtp).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "serve did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let data = format!("{CAPS}.\r\n");
    let caps = common::client::send_message(
        smtp,
        "shop@example.test",
        &["buyer@example.net"],
        data.as_bytes(),
    )
    .await;
    let mut c = common::client::Client::connect(smtp).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO web.example.test", 250).await;
    let fqdn_mail = c.cmd("MAIL FROM:<shop@web>").await;
    let fqdn_final = if fqdn_mail.code == 250 {
        c.expect("RCPT TO:<buyer@example.net>", 250).await;
        c.expect("DATA", 354).await;
        c.send(b"From: <shop@web>\r\nSubject: Hello\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <s3@web>\r\n\r\nHi.\r\n.\r\n")
            .await;
        Some(c.read_reply().await)
    } else {
        None
    };
    c.expect("QUIT", 221).await;
    // The summary line and the metrics follow the reply: wait for both.
    let want = 1 + usize::from(fqdn_final.is_some());
    let (mut scrape_text, mut lines);
    loop {
        scrape_text = scrape(metrics).await;
        lines = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter(|l| l.contains("smtpgate::transaction"))
            .map(str::to_string)
            .collect::<Vec<_>>();
        let ended = sample(
            &scrape_text,
            "smtpgate_transactions_total{action=\"delivered\"}",
        )
        .unwrap_or(0.0)
            + sample(&scrape_text, "smtpgate_transactions_total{action=\"spam\"}").unwrap_or(0.0);
        if (lines.len() >= want && ended >= want as f64)
            || start.elapsed() > Duration::from_secs(10)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(gw);
    Served {
        caps,
        fqdn_mail,
        fqdn_final,
        log: lines.join("\n"),
        scrape: scrape_text,
        delivered: sink.messages().len(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_counts_a_rule_only_when_it_is_not_shadowed() {
    let counted = serve("serve-counted", "[scores]\nSUBJ_ALL_CAPS = 5.0\n").await;
    assert_eq!(
        (counted.caps.code, counted.caps.enhanced().as_deref()),
        (550, Some("5.7.1")),
        "{:?}",
        counted.caps
    );
    assert!(
        counted.caps.text().starts_with(
            "5.7.1 SPAM alert: score 5.00 (must be lower 2.00): SUBJ_ALL_CAPS(5.00) ref="
        ),
        "{}",
        counted.caps.text()
    );
    assert_eq!(
        (
            counted.fqdn_mail.code,
            counted.fqdn_mail.enhanced().as_deref()
        ),
        (504, Some("5.5.2"))
    );
    assert_eq!(
        counted.fqdn_mail.text(),
        "5.5.2 <shop@web>: Sender address rejected: need fully-qualified address (reject_non_fqdn_sender)"
    );
    assert_eq!(counted.delivered, 0);
    assert_eq!(
        sample(
            &counted.scrape,
            "smtpgate_symbol_hits_total{symbol=\"SUBJ_ALL_CAPS\"}"
        ),
        Some(1.0),
        "{}",
        counted.scrape
    );
    assert_eq!(
        sample(
            &counted.scrape,
            "smtpgate_shadow_hits_total{symbol=\"SUBJ_ALL_CAPS\"}"
        ),
        None
    );
    assert!(
        counted.log.contains(" symbols=SUBJ_ALL_CAPS(5.00)"),
        "{}",
        counted.log
    );

    // Without the rule counting (0.00, no action): delivered, both.
    let without = serve("serve-without", "[scores]\nSUBJ_ALL_CAPS = 0.0\n").await;
    assert_eq!(
        (without.caps.code, without.caps.enhanced().as_deref()),
        (250, Some("2.0.0"))
    );

    let shadowed = serve(
        "serve-shadowed",
        "[scores]\nSUBJ_ALL_CAPS = { score = 5.0, shadow = true }\nreject_non_fqdn_sender = { shadow = true }\n",
    )
    .await;
    assert_eq!(
        (shadowed.caps.code, shadowed.caps.enhanced()),
        (without.caps.code, without.caps.enhanced()),
        "delivered as without the rule: {:?}",
        shadowed.caps
    );
    assert_eq!(shadowed.fqdn_mail.code, 250, "{:?}", shadowed.fqdn_mail);
    let fqdn_final = shadowed.fqdn_final.as_ref().expect("DATA");
    assert_eq!(
        (fqdn_final.code, fqdn_final.enhanced().as_deref()),
        (250, Some("2.0.0"))
    );
    assert_eq!(shadowed.delivered, 2);
    for (series, value) in [
        (
            "smtpgate_shadow_hits_total{symbol=\"SUBJ_ALL_CAPS\"}",
            Some(1.0),
        ),
        (
            "smtpgate_shadow_hits_total{symbol=\"reject_non_fqdn_sender\"}",
            Some(1.0),
        ),
        (
            "smtpgate_transactions_total{action=\"delivered\"}",
            Some(2.0),
        ),
        ("smtpgate_transactions_total{action=\"spam\"}", Some(0.0)),
        (
            "smtpgate_symbol_hits_total{symbol=\"SUBJ_ALL_CAPS\"}",
            Some(0.0),
        ),
        (
            "smtpgate_symbol_hits_total{symbol=\"reject_non_fqdn_sender\"}",
            Some(0.0),
        ),
    ] {
        assert_eq!(
            sample(&shadowed.scrape, series),
            value,
            "{series}\n{}",
            shadowed.scrape
        );
    }
    assert!(
        shadowed
            .log
            .contains(" score=[0.00/2.00] symbols=SUBJ_ALL_CAPS(shadow:5.00)"),
        "{}",
        shadowed.log
    );
    assert!(
        shadowed
            .log
            .contains(" symbols=reject_non_fqdn_sender(shadow:0.00)"),
        "{}",
        shadowed.log
    );
}

/// The sender's SPAM alert lists what counted, never a shadow rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spam_alert_never_shows_a_shadow_rule() {
    let dns = DnsServer::start(Zone::new()).await;
    let sink = Sink::start(SinkConfig::default()).await;
    let extra = "[scores]\nSUBJ_ALL_CAPS = 5.0\nMISSING_MID = { score = 1.0, shadow = true }\n";
    // (The alert goes to the sender: example.test is ours.)
    let extra = format!("[relay]\nlocal_domains = [\"example.test\"]\n{extra}");
    let text = config(sink.addr, &dns, None, &extra)
        .replace("spam_action = \"reject\"", "spam_action = \"bounce\"");
    let gw = common::start(&text).await;
    let no_mid = CAPS.replace("Message-ID: <s1@example.test>\r\n", "");
    let r = common::client::send_message(
        gw.addr,
        "shop@example.test",
        &["buyer@example.net"],
        format!("{no_mid}.\r\n").as_bytes(),
    )
    .await;
    assert_eq!(
        (r.code, r.enhanced().as_deref()),
        (250, Some("2.0.0")),
        "{r:?}"
    );
    let alert = sink.wait_for_messages(1, Duration::from_secs(10)).await;
    assert_eq!(alert.len(), 1);
    assert_eq!(alert[0].rcpts, ["shop@example.test"]);
    let raw = String::from_utf8_lossy(&alert[0].data);
    let parsed = mail_parser::MessageParser::default()
        .parse(&alert[0].data)
        .expect("the alert parses");
    let text = parsed
        .body_text(0)
        .expect("a text part")
        .replace("\r\n", "\n");
    assert!(
        text.contains(&format!(
            "Score: 5.00 (must be lower 2.00)\nSymbols:\n{}\nStart with",
            CAPS_COUNTED
        )),
        "{text}"
    );
    for hidden in ["MISSING_MID", "Shadow", "shadow"] {
        assert!(
            !text.contains(hidden) && !raw.contains(hidden),
            "{hidden} in\n{raw}"
        );
    }
}
