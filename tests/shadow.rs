//! Shadow rules: the same message with SUBJ_ALL_CAPS at 5.00 counted and
//! shadowed — through `smtpgate check` and through `serve` over SMTP. Shadowed,
//! the action is the one the message gets without the rule; the symbol is
//! visible and marked in `check` (text and JSON), in the log line and the
//! history, and counted in `smtpgate_shadow_hits_total`.

mod common;

use common::sink::{Sink, SinkConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_smtpgate");
const MESSAGE: &str = "From: <shop@example.test>\r\nTo: <buyer@example.net>\r\nSubject: INVOICE DUE\r\n\
     Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <s1@example.test>\r\n\r\nHello.\r\n";

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("smtpgate-shadow-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(name: &str, text: &str) -> PathBuf {
    let p = dir().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `[scores]` for each case: counted, shadowed, and the rule worth nothing.
const COUNTED: &str = "[scores]\nSUBJ_ALL_CAPS = 5.0\n";
const SHADOWED: &str = "[scores]\nSUBJ_ALL_CAPS = { score = 5.0, shadow = true }\n";
const WITHOUT: &str = "[scores]\nSUBJ_ALL_CAPS = 0.0\n";

fn check(config: &Path, json: bool) -> (Option<i32>, String) {
    let message = write("m.eml", MESSAGE);
    let mut args = vec![
        "check".to_string(),
        "--config".into(),
        config.display().to_string(),
        "--from".into(),
        "shop@example.test".into(),
        "--rcpt".into(),
        "buyer@example.net".into(),
        "--helo".into(),
        "web.example.test".into(),
    ];
    if json {
        args.push("--json".into());
    }
    args.push(message.display().to_string());
    let out = Command::new(BIN).args(&args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_marks_a_shadow_rule_and_it_changes_nothing() {
    let upstream = free_port();
    let config = |name: &str, scores: &str| {
        write(name, &common::config_text(upstream, "", scores))
    };
    let (counted, _) = check(&config("counted.toml", COUNTED), false);
    assert_eq!(counted, Some(1), "counted: spam");
    let (without, without_out) = check(&config("without.toml", WITHOUT), false);
    let (shadowed, text) = check(&config("shadowed.toml", SHADOWED), false);
    assert_eq!(without, Some(0), "{without_out}");
    assert_eq!(shadowed, without, "shadowed: the action without the rule\n{text}");
    assert!(text.contains("Score: 0.00 (must be lower 2.00)\n"), "{text}");
    assert!(
        text.contains("Shadow rules (recorded, not counted):\n  SUBJ_ALL_CAPS (shadow 5.00)\n"),
        "{text}"
    );
    let action = |out: &str| out.lines().find(|l| l.starts_with("Action: ")).map(str::to_string);
    assert_eq!(action(&text), action(&without_out));
    let (_, json) = check(&config("shadowed.toml", SHADOWED), true);
    let v: serde_json::Value = serde_json::from_str(&json).expect(&json);
    let symbols = v["symbols"].as_array().unwrap();
    let caps = symbols
        .iter()
        .find(|s| s["name"] == "SUBJ_ALL_CAPS")
        .expect("the shadow symbol is listed");
    assert_eq!(caps["shadow"], true);
    assert_eq!(caps["score"], 5.0);
    assert_eq!(v["score"], 0.0);
    // A shadow rule in a rules file works the same.
    let rules = dir().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    for entry in std::fs::read_dir(common::root().join("rules")).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if text.contains("[symbol.SUBJ_ALL_CAPS]\n") {
            text = text.replace(
                "[symbol.SUBJ_ALL_CAPS]\nscore = 0.3\n",
                "[symbol.SUBJ_ALL_CAPS]\nscore = 5.0\nshadow = true\n",
            );
            assert!(text.contains("shadow = true"));
        }
        std::fs::write(rules.join(path.file_name().unwrap()), text).unwrap();
    }
    let in_rules = common::config_text(upstream, "", "")
        .replace(&common::root().join("rules").display().to_string(), &rules.display().to_string());
    let (code, text) = check(&write("in-rules.toml", &in_rules), false);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("  SUBJ_ALL_CAPS (shadow 5.00)\n"), "{text}");
}

struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn scrape(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves with `scores`, sends the message; returns the reply code and the
/// metrics scrape.
async fn serve(scores: &str) -> (u16, String) {
    let sink = Sink::start(SinkConfig::default()).await;
    let smtp = free_port();
    let metrics = free_port();
    let text = common::config_text(sink.addr, "", &format!("[metrics]\nlisten = \"{metrics}\"\n{scores}"))
        .replace("127.0.0.1:0", &smtp.to_string());
    let path = write(&format!("serve-{}.toml", smtp.port()), &text);
    let _gw = Running(
        Command::new(BIN)
            .args(["serve", "--config", path.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while tokio::net::TcpStream::connect(smtp).await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let data = format!("{MESSAGE}.\r\n");
    let r = common::client::send_message(smtp, "shop@example.test", &["buyer@example.net"], data.as_bytes()).await;
    (r.code, scrape(metrics).await)
}

fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l[series.len()..].trim().parse().ok())
}

#[tokio::test]
async fn serve_records_a_shadow_rule_without_counting_it() {
    let (counted, scrape_counted) = serve(COUNTED).await;
    assert_eq!(counted, 550, "counted: refused as spam");
    assert_eq!(
        sample(&scrape_counted, "smtpgate_symbol_hits_total{symbol=\"SUBJ_ALL_CAPS\"}"),
        Some(1.0)
    );
    let (without, _) = serve(WITHOUT).await;
    let (shadowed, scrape) = serve(SHADOWED).await;
    assert_eq!(without, 250);
    assert_eq!(shadowed, without, "shadowed: delivered as without the rule");
    assert_eq!(
        sample(&scrape, "smtpgate_shadow_hits_total{symbol=\"SUBJ_ALL_CAPS\"}"),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, "smtpgate_symbol_hits_total{symbol=\"SUBJ_ALL_CAPS\"}"),
        Some(0.0),
        "not counted as a hit"
    );
    assert_eq!(
        sample(&scrape, "smtpgate_transactions_total{action=\"delivered\"}"),
        Some(1.0)
    );
}
