//! `smtpgate replay`: 1,000 transactions through the gateway into a Redis
//! history, then the real binary re-decides them — a scores file that
//! raises SUBJ_ALL_CAPS above the threshold flips exactly the transactions
//! that carry it, per identity; no change flips nothing.

mod common;

use common::client::Client;
use common::sink::{Sink, SinkConfig};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_smtpgate");
const MESSAGES: usize = 1_000;

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smtpgate-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn replay(config: &std::path::Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(["replay", "--config", config.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raised_score_flips_exactly_the_transactions_that_carry_it() {
    let redis = common::redis::RedisServer::start();
    let sink = Sink::start(SinkConfig::default()).await;
    let text = common::config_text(
        sink.addr,
        "",
        &format!(
            "[relay]\nmynetworks = [\"127.0.0.0/8\"]\n[store]\nbackend = \"redis\"\nredis_url = \"{}\"\n",
            redis.url()
        ),
    );
    let gw = common::start(&text).await;
    let mut a = Client::connect(gw.addr).await;
    let mut b = Client::connect_from(gw.addr, "127.0.0.2".parse().unwrap()).await;
    for c in [&mut a, &mut b] {
        c.read_reply().await;
        c.expect("EHLO web.example.test", 250).await;
    }
    // (reference, client ip) of the capitals-subject messages.
    let mut caps: Vec<(String, &str)> = Vec::new();
    for i in 0..MESSAGES {
        let (c, ip) = if i % 2 == 0 {
            (&mut a, "127.0.0.1")
        } else {
            (&mut b, "127.0.0.2")
        };
        let subject = if i % 4 == 0 || i % 7 == 0 {
            "INVOICE DUE"
        } else {
            "Your invoice"
        };
        c.expect("MAIL FROM:<shop@example.test>", 250).await;
        c.expect("RCPT TO:<buyer@example.net>", 250).await;
        c.expect("DATA", 354).await;
        c.send(
            format!(
                "From: <shop@example.test>\r\nTo: <buyer@example.net>\r\nSubject: {subject}\r\n\
                 Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <r{i}@example.test>\r\n\r\n\
                 Hello {i}.\r\n.\r\n"
            )
            .as_bytes(),
        )
        .await;
        let r = c.read_reply().await;
        assert_eq!(r.code, 250, "SUBJ_ALL_CAPS 0.30 passes: {r:?}");
        if subject == "INVOICE DUE" {
            caps.push((
                r.text().rsplit("ref=").next().unwrap().trim().to_string(),
                ip,
            ));
        }
    }
    let history = gw.handle.app().history.clone();
    for _ in 0..100 {
        let q = smtpgate::history::Query {
            limit: MESSAGES,
            ..Default::default()
        };
        if history.query(&q).await.unwrap().len() == MESSAGES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let config = temp_file("replay.toml", &text);
    let run = |extra: Vec<String>| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            replay(&config, &extra)
        })
    };

    // No change: nothing flips (exit 0).
    let (code, out, err) = run(vec![]).await.unwrap();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with(&format!(
        "Replayed {MESSAGES} transactions of the last 7d ({MESSAGES} with a verdict at the end of DATA).\n\
         Flips: 0 passed before and would be stopped; 0 stopped before and would pass.\n"
    )), "{out}");

    // SUBJ_ALL_CAPS raised to 2.5: exactly the capitals-subject ones flip.
    let scores = temp_file("scores.toml", "# proposed\nSUBJ_ALL_CAPS = 2.5\n");
    let (code, out, err) = run(vec![
        "--scores".into(),
        scores.display().to_string(),
        "--json".into(),
    ])
    .await
    .unwrap();
    assert_eq!(code, Some(1), "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["transactions"], MESSAGES as u64);
    assert_eq!(report["now_stopped"], caps.len() as u64);
    assert_eq!(report["now_passed"], 0);
    for ip in ["127.0.0.1", "127.0.0.2"] {
        let n = caps.iter().filter(|(_, i)| *i == ip).count() as u64;
        assert!(n > 0);
        assert_eq!(report["by_identity"][ip]["now_stopped"], n, "{ip}: {out}");
    }
    assert_eq!(
        report["by_symbol"]["SUBJ_ALL_CAPS"]["now_stopped"],
        caps.len() as u64
    );
    let refs: BTreeSet<&str> = caps.iter().map(|(r, _)| r.as_str()).collect();
    let examples = report["examples_now_stopped"].as_array().unwrap();
    assert_eq!(examples.len(), 10);
    for e in examples {
        assert!(refs.contains(e["reference"].as_str().unwrap()), "{e}");
        assert_eq!(e["score_before"], 0.3);
        assert_eq!(e["score_after"], 2.5);
        assert_eq!(e["changed_symbols"], serde_json::json!(["SUBJ_ALL_CAPS"]));
    }
    // The same as text.
    let (code, out, _) = run(vec!["--scores".into(), scores.display().to_string()])
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    assert!(
        out.contains(&format!(
            "Flips: {} passed before and would be stopped; 0 stopped before and would pass.\n",
            caps.len()
        )),
        "{out}"
    );
    assert!(out.contains("\nBy symbol:\n"), "{out}");
    assert!(
        out.contains("\nNot re-scored: message bodies are not kept"),
        "{out}"
    );

    // A lower threshold instead: every one of them too (0.30 >= 0.25).
    let (_, out, _) = run(vec!["--threshold".into(), "0.25".into(), "--json".into()])
        .await
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["now_stopped"], caps.len() as u64);

    // A typo in the scores file: file:line:col, exit 2.
    let bad = temp_file("bad.toml", "SUBJ_ALL_CAPS = 2.5\nSUBJ_ALL_CAPZ = 1.0\n");
    let (code, _, err) = run(vec!["--scores".into(), bad.display().to_string()])
        .await
        .unwrap();
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("bad.toml:2:17") && err.contains("unknown symbol SUBJ_ALL_CAPZ"),
        "{err}"
    );
    gw.handle.shutdown();
}
