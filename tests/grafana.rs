//! contrib/grafana-smtpgate.json against what the gateway really exports:
//! valid JSON, every panel with a query, every query valid PromQL (promtool)
//! and naming only metric families a running gateway's /metrics has, with
//! the labels it groups by.

mod common;

use common::client::send_message;
use common::sink::{Sink, SinkConfig};
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

/// Each panel: its title and its queries.
fn dashboard() -> Vec<(String, Vec<String>)> {
    let path = common::root().join("contrib/grafana-smtpgate.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(json["uid"], "smtpgate");
    let panels = json["panels"].as_array().expect("panels");
    let mut out = Vec::new();
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().expect("a title").to_string();
        let exprs: Vec<String> = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: no targets"))
            .iter()
            .map(|t| t["expr"].as_str().expect("an expr").to_string())
            .collect();
        assert!(!exprs.is_empty(), "{title}: no query");
        out.push((title, exprs));
    }
    out
}

/// The query with Grafana's variables as Prometheus would get them.
fn as_promql(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__range", "6h")
        .replace("$instance", ".*")
}

#[test]
fn every_query_is_valid_promql() {
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut n = 0;
    for (_, exprs) in dashboard() {
        for e in exprs {
            n += 1;
            let quoted = serde_json::to_string(&as_promql(&e)).unwrap();
            rules.push_str(&format!(
                "      - record: smtpgate:dashboard_{n}\n        expr: {quoted}\n"
            ));
        }
    }
    let path = std::env::temp_dir().join(format!(
        "smtpgate-dashboard-{}.rules.yml",
        std::process::id()
    ));
    std::fs::write(&path, &rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("promtool (Debian's prometheus package; .ci/prereqs installs it)");
    assert!(
        out.status.success(),
        "{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&path);
}

/// `# TYPE` of every family in a scrape, and its sample lines.
fn families(scrape: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                types.insert(name.to_string(), kind.to_string());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            samples.push(line.to_string());
        }
    }
    (types, samples)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_names_metrics_and_labels_the_gateway_exports() {
    let metrics = smtpgate::metrics::install("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let sink = Sink::start(SinkConfig::default()).await;
    let text = common::config_text(
        sink.addr,
        "",
        "[relay]\nlocal_domains = [\"example.test\"]\n",
    );
    smtpgate::metrics::symbols(common::build_app(&text).symbols.names());
    let gw = common::start(&text).await;
    // A message through every phase, so the per-phase and upstream series
    // exist, and one to the history.
    let message = "From: <shop@example.test>\r\nTo: <a@example.net>\r\nSubject: Order\r\nMessage-ID: <m@example.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nShipped.\r\n.\r\n";
    let r = send_message(
        gw.addr,
        "shop@example.test",
        &["a@example.net"],
        message.as_bytes(),
    )
    .await;
    assert_eq!(r.code, 250, "{}", r.text());
    let started = Instant::now();
    let scrape = loop {
        let a = common::http::get(metrics, "/metrics").await;
        assert_eq!(a.status, 200);
        let text = a.text();
        if text.contains("smtpgate_history_records_total{result=\"written\"}") {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no history series:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (types, samples) = families(&scrape);
    let metric = Regex::new(r"\bsmtpgate_[a-z_]+").unwrap();
    let by = Regex::new(r"\bby \(([^)]*)\)").unwrap();
    let mut used = BTreeSet::new();
    for (title, exprs) in dashboard() {
        for e in exprs {
            let mut names = Vec::new();
            for m in metric.find_iter(&e) {
                let name = m.as_str();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .filter(|base| types.get(*base).is_some_and(|k| k == "histogram"))
                    .unwrap_or(name);
                assert!(
                    types.contains_key(family),
                    "{title}: {name} is not exported:\n{e}"
                );
                used.insert(family.to_string());
                names.push(name.to_string());
            }
            assert!(!names.is_empty(), "{title}: names no smtpgate metric: {e}");
            for group in by.captures_iter(&e) {
                for label in group[1].split(',').map(str::trim).filter(|l| *l != "le") {
                    let labelled = samples.iter().any(|s| {
                        names.iter().any(|n| s.starts_with(&format!("{n}{{")))
                            && s.contains(&format!("{label}=\""))
                    });
                    assert!(labelled, "{title}: no {names:?} series has a {label} label");
                }
            }
        }
    }
    // The issue's four concerns each have their panels.
    for family in [
        "smtpgate_transactions_total",
        "smtpgate_phase_seconds",
        "smtpgate_upstream_seconds",
        "smtpgate_symbol_hits_total",
        "smtpgate_store_errors_total",
        "smtpgate_dns_errors_total",
        "smtpgate_upstream_errors_total",
    ] {
        assert!(used.contains(family), "no panel shows {family}");
    }
    gw.handle.shutdown();
}
