//! What operators' tools read from the `smtpgate` binary: the scrape as
//! `promtool check metrics` judges it, JSON log lines, the reload
//! notifications systemd waits on, and the unit's hardening.

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

#[test]
fn reload_sends_reloading_with_monotonic_usec_then_ready() {
    use std::os::unix::net::UnixDatagram;
    let smtp = free_port();
    let dead_upstream: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let text = common::config_text(dead_upstream, "", "").replace("127.0.0.1:0", &smtp.to_string());
    let config = temp_file(&format!("notify-{}.toml", smtp.port()), &text);
    let socket_path = config.with_extension("sock");
    let _ = std::fs::remove_file(&socket_path);
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let gw = Running { child };
    let recv = || {
        let mut buf = [0u8; 1024];
        let n = socket.recv(&mut buf).expect("a notification within 10s");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    assert!(recv().starts_with("READY=1\n"));
    let before = smtpgate::notify::monotonic_usec();
    let status = Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let reloading = recv();
    let after = smtpgate::notify::monotonic_usec();
    let mut lines = reloading.lines();
    assert_eq!(lines.next(), Some("RELOADING=1"), "{reloading}");
    let usec: u64 = lines
        .next()
        .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC: {reloading}"));
    assert!(
        (before..=after).contains(&usec),
        "{before} <= {usec} <= {after}"
    );
    let ready = recv();
    assert!(
        ready.starts_with("READY=1\nSTATUS=configuration reloaded"),
        "{ready}"
    );
    let _ = std::fs::remove_file(&socket_path);
}

/// The unit's `Key=value` lines, comments left out.
fn unit_keys(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect()
}

#[test]
fn the_unit_is_hardened_and_its_user_and_directories_are_declared() {
    let root = common::root().join("systemd");
    let unit = std::fs::read_to_string(root.join("smtpgate.service")).unwrap();
    let keys = unit_keys(&unit);
    let expected = [
        ("Type", "notify"),
        ("User", "smtpgate"),
        ("SystemCallFilter", "@system-service"),
        ("SystemCallArchitectures", "native"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("NoNewPrivileges", "yes"),
        ("UMask", "0077"),
        ("ProcSubset", "pid"),
        ("ProtectProc", "invisible"),
        ("DevicePolicy", "closed"),
        ("KeyringMode", "private"),
        ("RemoveIPC", "yes"),
    ];
    for pair in expected {
        assert!(
            keys.contains(&pair),
            "{}={} missing from the unit",
            pair.0,
            pair.1
        );
    }
    // PrivateUsers= would take port 25 away; IPAddressDeny= the world.
    for absent in ["PrivateUsers", "IPAddressDeny"] {
        assert!(keys.iter().all(|(k, _)| *k != absent), "{absent} set");
    }

    let sysusers = std::fs::read_to_string(root.join("smtpgate.sysusers")).unwrap();
    assert!(
        sysusers.lines().any(|l| l.starts_with("u smtpgate ")),
        "{sysusers}"
    );
    let tmpfiles = std::fs::read_to_string(root.join("smtpgate.tmpfiles")).unwrap();
    for dir in ["/var/lib/smtpgate", "/run/smtpgate"] {
        assert!(
            tmpfiles
                .lines()
                .any(|l| l.split_whitespace().take(2).eq(["d", dir])),
            "{dir} in {tmpfiles}"
        );
    }
}

#[test]
fn systemd_analyze_rates_the_unit_at_most_2_0() {
    let analyze = "/usr/bin/systemd-analyze";
    if !std::path::Path::new(analyze).exists() {
        eprintln!("SKIPPED: {analyze} is missing (Debian package `systemd`)");
        return;
    }
    let unit = common::root().join("systemd/smtpgate.service");
    let out = Command::new(analyze)
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let score: f64 = text
        .split("Overall exposure level for smtpgate.service: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(score <= 2.0, "exposure {score}:\n{text}");
}
