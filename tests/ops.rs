//! What operators' tools read from the `smtpgate` binary: the scrape as
//! `promtool check metrics` judges it, JSON log lines, and the systemd
//! unit's hardening.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_smtpgate");
const PROMTOOL: &str = "/usr/bin/promtool";

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smtpgate-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A `serve` subprocess, killed and reaped when dropped.
struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` with `extra` config sections and waits until its SMTP
/// listener (bound after the metrics one) accepts connections.
fn serve(extra: &str, stderr: Stdio) -> (Running, SocketAddr) {
    let smtp = free_port();
    let dead_upstream: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let text =
        common::config_text(dead_upstream, "", extra).replace("127.0.0.1:0", &smtp.to_string());
    let path = temp_file(&format!("gw-{}.toml", smtp.port()), &text);
    let child = Command::new(BIN)
        .args(["serve", "--config", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let running = Running { child };
    let start = Instant::now();
    while TcpStream::connect(smtp).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{smtp} did not open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (running, smtp)
}

/// GET `path`: (response head, body).
fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_string(), body.to_string())
}

#[test]
fn a_scrape_right_after_start_up_passes_promtool() {
    let metrics = free_port();
    let (_gw, _) = serve(
        &format!("[metrics]\nlisten = \"{metrics}\"\n"),
        Stdio::null(),
    );
    let (head, body) = http_get(metrics, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        body.contains(&format!(
            "\nsmtpgate_build_info{{version=\"{version}\"}} 1\n"
        )),
        "{body}"
    );
    // Every family, with HELP text, before any mail was seen.
    let families = [
        "smtpgate_build_info",
        "smtpgate_sessions_total",
        "smtpgate_sessions_active",
        "smtpgate_sessions_refused_total",
        "smtpgate_replies_total",
        "smtpgate_transactions_total",
        "smtpgate_symbol_hits_total",
        "smtpgate_phase_seconds",
        "smtpgate_upstream_seconds",
        "smtpgate_upstream_errors_total",
        "smtpgate_upstream_idle_connections",
        "smtpgate_store_seconds",
        "smtpgate_store_errors_total",
        "smtpgate_dns_seconds",
        "smtpgate_dns_errors_total",
        "smtpgate_dnsbl_errors_total",
        "smtpgate_auth_total",
        "smtpgate_config_reloads_total",
    ];
    for family in families {
        assert!(
            body.contains(&format!("# HELP {family} ")),
            "no HELP for {family}:\n{body}"
        );
    }
    let zero = [
        "smtpgate_transactions_total{action=\"delivered\"} 0",
        "smtpgate_phase_seconds_count{phase=\"rcpt\"} 0",
        "smtpgate_dns_seconds_count{kind=\"spf\"} 0",
        "smtpgate_store_errors_total{op=\"greylist\"} 0",
        "smtpgate_upstream_errors_total{op=\"begin\"} 0",
        "smtpgate_symbol_hits_total{symbol=\"SUBJ_ALL_CAPS\"} 0",
    ];
    for series in zero {
        assert!(body.contains(&format!("\n{series}\n")), "{series}:\n{body}");
    }
    assert_eq!(
        http_get(metrics, "/").0.lines().next(),
        Some("HTTP/1.1 404 Not Found")
    );

    if !std::path::Path::new(PROMTOOL).exists() {
        eprintln!("SKIPPED promtool check: {PROMTOOL} is missing (Debian package `prometheus`)");
        return;
    }
    let mut promtool = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn log_format_json_writes_one_object_a_line_from_start_up() {
    let (mut gw, smtp) = serve("[log]\nformat = \"json\"\n", Stdio::piped());
    let stderr = gw.child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("a `listening` line within 10s");
        let object: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(object["level"], "INFO", "{line}");
        assert!(object["timestamp"].is_string(), "{line}");
        if object["message"] == "listening" {
            assert_eq!(object["addr"], smtp.to_string(), "{line}");
            assert_eq!(object["target"], "smtpgate", "{line}");
            break;
        }
    }
}
