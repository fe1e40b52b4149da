//! The `smtpgate` binary as operators run it: check-config errors and exit
//! status, SIGTERM draining a DATA in flight, SIGHUP reloading, and real
//! clients (swaks) with and without STARTTLS.

mod common;

use common::client::Client;
use common::http::{sample, scrape};
use common::sink::{Sink, SinkConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_smtpgate");

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smtpgate-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A gateway subprocess, killed when dropped.
struct Running {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit; returns its status code.
    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

async fn spawn_gateway(config: &str) -> Running {
    let addr = free_port();
    let text = config.replace("127.0.0.1:0", &addr.to_string());
    let path = temp_file(&format!("gw-{}.toml", addr.port()), &text);
    let child = Command::new(BIN)
        .args(["serve", "--config", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running { child, addr };
    let start = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "gateway did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running
}

#[test]
fn check_config_names_file_line_and_misspelt_key() {
    let text = "[server]\nhostname = \"gw.example.test\"\nlisten = [\"127.0.0.1:2525\"]\nmax_recipents = 10\n[upstream]\naddress = \"127.0.0.1:10025\"\n";
    let path = temp_file("misspelt.toml", text);
    let out = Command::new(BIN)
        .args(["check-config", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:4:1: unknown field `max_recipents`", path.display());
    assert!(stderr.starts_with(&expected), "{stderr}");
}

#[test]
fn check_config_accepts_the_shipped_configs() {
    for config in ["config/gateway.toml", "config/gateway.example.toml"] {
        let out = Command::new(BIN)
            .args(["check-config", "--config", config])
            .current_dir(common::root())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{config}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));
    }
}

#[test]
fn serve_with_a_bad_config_exits_2_without_starting() {
    let path = temp_file("bad-duration.toml", "[server]\nhostname = \"gw.test\"\nlisten = [\"127.0.0.1:0\"]\nidle_timeout = \"soon\"\n[upstream]\naddress = \"127.0.0.1:1\"\n");
    let out = Command::new(BIN)
        .args(["serve", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(":4:16: invalid duration `soon`"));
}

#[tokio::test]
async fn sigterm_lets_the_data_in_flight_finish_then_exits_0() {
    let sink = Sink::start(SinkConfig::default()).await;
    let mut gw = spawn_gateway(&common::config_text(sink.addr, "", "")).await;
    let mut c = Client::connect(gw.addr).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO client.example.test", 250).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    c.expect("RCPT TO:<b@example.net>", 250).await;
    c.expect("DATA", 354).await;
    c.send(b"Subject: in flight\r\n\r\nfirst half\r\n").await;
    gw.signal("-TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // New connections are refused while draining.
    assert!(
        tokio::net::TcpStream::connect(gw.addr).await.is_err(),
        "still accepting after SIGTERM"
    );
    c.send(b"second half\r\n.\r\n").await;
    let r = c.read_reply().await;
    assert_eq!(r.code, 250, "{r:?}");
    let r = c.read_reply().await;
    assert_eq!((r.code, r.enhanced().as_deref()), (421, Some("4.3.2")));
    let exit = tokio::task::spawn_blocking(move || gw.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(exit, Some(0));
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert!(String::from_utf8_lossy(&msgs[0].data).ends_with("first half\r\nsecond half\r\n"));
}

#[tokio::test]
async fn sighup_reloads_and_a_broken_config_keeps_the_running_one() {
    let sink = Sink::start(SinkConfig::default()).await;
    let text = common::config_text(sink.addr, "max_recipients = 1", "");
    let gw = spawn_gateway(&text).await;
    let path = std::env::temp_dir()
        .join(format!("smtpgate-test-{}", std::process::id()))
        .join(format!("gw-{}.toml", gw.addr.port()));
    let rcpt_limit_reply = |addr| async move {
        let mut c = Client::connect(addr).await;
        c.read_reply().await;
        c.expect("EHLO client.example.test", 250).await;
        c.expect("MAIL FROM:<a@example.test>", 250).await;
        c.expect("RCPT TO:<b@example.net>", 250).await;
        c.cmd("RCPT TO:<c@example.net>").await.code
    };
    assert_eq!(rcpt_limit_reply(gw.addr).await, 452);
    // A broken file: the running configuration stays.
    std::fs::write(
        &path,
        text.replace("max_recipients = 1", "max_recipients = \"many\""),
    )
    .unwrap();
    gw.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rcpt_limit_reply(gw.addr).await, 452);
    // A good one is picked up without a restart.
    std::fs::write(
        &path,
        text.replace("max_recipients = 1", "max_recipients = 5")
            .replace("127.0.0.1:0", &gw.addr.to_string()),
    )
    .unwrap();
    gw.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rcpt_limit_reply(gw.addr).await, 250);
}

fn swaks(addr: SocketAddr, tls: bool) -> std::process::Output {
    let mut cmd = Command::new("swaks");
    cmd.args([
        "--server",
        "127.0.0.1",
        "--port",
        &addr.port().to_string(),
        "--helo",
        "client.example.test",
        "--from",
        "sender@example.test",
        "--to",
        "rcpt@example.net",
        "--header",
        "Subject: swaks test",
        "--body",
        "Hello from swaks.",
        "--timeout",
        "10",
    ]);
    if tls {
        cmd.arg("--tls");
    }
    cmd.output()
        .expect("swaks must be installed (.ci/run installs it)")
}

#[tokio::test]
async fn swaks_delivers_with_and_without_starttls() {
    let (sink, gw) = common::start_pair(SinkConfig::default(), "", &common::tls_section()).await;
    for (i, tls) in [false, true].into_iter().enumerate() {
        let addr = gw.addr;
        let out = tokio::task::spawn_blocking(move || swaks(addr, tls))
            .await
            .unwrap();
        let transcript = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "swaks tls={tls} failed:\n{transcript}"
        );
        assert!(
            transcript.contains("<~  250 2.0.0 Ok: queued as")
                || transcript.contains("<-  250 2.0.0 Ok: queued as"),
            "{transcript}"
        );
        let msgs = sink.wait_for_messages(i + 1, Duration::from_secs(5)).await;
        let text = String::from_utf8_lossy(&msgs[i].data).to_string();
        assert!(
            text.contains("Subject: swaks test") && text.contains("Hello from swaks."),
            "{text}"
        );
        assert_eq!(text.contains("with ESMTPS id"), tls, "{text}");
    }
}

#[tokio::test]
async fn sd_notify_ready_reloading_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let sink = Sink::start(SinkConfig::default()).await;
    let addr = free_port();
    let text = common::config_text(sink.addr, "", "").replace("127.0.0.1:0", &addr.to_string());
    let config = temp_file(&format!("notify-{}.toml", addr.port()), &text);
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
    let mut gw = Running { child, addr };
    let recv = |socket: &UnixDatagram| {
        let mut buf = [0u8; 1024];
        let n = socket.recv(&mut buf).expect("a notification within 10s");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    let ready = recv(&socket);
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(
        ready.contains(&format!("STATUS=accepting mail on {addr}")),
        "{ready}"
    );
    assert!(
        ready.contains(&format!("MAINPID={}", gw.child.id())),
        "{ready}"
    );
    // Listeners are bound when READY=1 arrives.
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    gw.signal("-HUP");
    assert!(recv(&socket).starts_with("RELOADING=1\n"));
    let after = recv(&socket);
    assert!(
        after.starts_with("READY=1\nSTATUS=configuration reloaded"),
        "{after}"
    );
    gw.signal("-TERM");
    assert!(recv(&socket).starts_with("STOPPING=1\n"));
    let exit = tokio::task::spawn_blocking(move || gw.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(exit, Some(0));
}

#[tokio::test]
async fn metrics_count_sessions_transactions_symbols_and_latency() {
    let sink = Sink::start(SinkConfig::default()).await;
    let metrics = free_port();
    let extra = format!("[metrics]\nlisten = \"{metrics}\"\n[scores]\nSUBJ_ALL_CAPS = 5.0\n");
    let gw = spawn_gateway(&common::config_text(sink.addr, "", &extra)).await;
    let message = |subject: &str| {
        format!("From: <a@example.test>\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@example.test>\r\n\r\nHello.\r\n.\r\n")
    };
    for subject in ["hello", "again"] {
        let r = common::client::send_message(
            gw.addr,
            "a@example.test",
            &["b@example.net"],
            message(subject).as_bytes(),
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
    }
    let r = common::client::send_message(
        gw.addr,
        "a@example.test",
        &["b@example.net"],
        message("BUY NOW").as_bytes(),
    )
    .await;
    assert_eq!(r.code, 550, "{r:?}");
    gw.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let scrape = scrape(metrics).await;
    assert!(
        scrape.starts_with("HTTP/1.") && scrape.contains(" 200 "),
        "{scrape}"
    );
    let expect = [
        // Three sessions plus spawn_gateway's readiness probe.
        ("smtpgate_sessions_total", 4.0),
        // Every transaction in the history.
        ("smtpgate_history_records_total{result=\"written\"}", 3.0),
        ("smtpgate_sessions_active", 0.0),
        ("smtpgate_transactions_total{action=\"delivered\"}", 2.0),
        ("smtpgate_transactions_total{action=\"spam\"}", 1.0),
        ("smtpgate_symbol_hits_total{symbol=\"SUBJ_ALL_CAPS\"}", 1.0),
        ("smtpgate_replies_total{class=\"5xx\"}", 1.0),
        ("smtpgate_phase_seconds_count{phase=\"data\"}", 3.0),
        ("smtpgate_phase_seconds_count{phase=\"rcpt\"}", 3.0),
        ("smtpgate_upstream_seconds_count{op=\"data\"}", 2.0),
        ("smtpgate_upstream_seconds_count{op=\"begin\"}", 3.0),
        ("smtpgate_upstream_idle_connections", 1.0),
        ("smtpgate_config_reloads_total{result=\"ok\"}", 1.0),
    ];
    for (series, value) in expect {
        assert_eq!(
            sample(&scrape, series),
            Some(value),
            "{series} in\n{scrape}"
        );
    }
    // 2xx: greeting, EHLO, MAIL, RCPT, 250 after DATA, QUIT for each of three
    // sessions (the spam one has a 5xx instead of the DATA 250), plus the
    // probe's greeting; 3xx: one 354 each.
    assert_eq!(
        sample(&scrape, "smtpgate_replies_total{class=\"2xx\"}"),
        Some(18.0),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, "smtpgate_replies_total{class=\"3xx\"}"),
        Some(3.0),
        "{scrape}"
    );
    assert!(
        scrape.contains("smtpgate_phase_seconds_bucket{phase=\"data\",le=\"0.001\"}"),
        "histogram buckets: {scrape}"
    );
}

#[tokio::test]
async fn why_shows_the_breakdown_of_a_stopped_message_from_its_reference() {
    let redis = common::redis::RedisServer::start();
    let sink = Sink::start(SinkConfig::default()).await;
    let extra = format!(
        "[store]\nbackend = \"redis\"\nredis_url = \"{}\"\n[scores]\nSUBJ_ALL_CAPS = 5.0\n",
        redis.url()
    );
    let text = common::config_text(sink.addr, "", &extra);
    let gw = spawn_gateway(&text).await;
    let message = "From: <a@example.test>\r\nSubject: BUY NOW\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <w@example.test>\r\n\r\nHello.\r\n.\r\n";
    let r = common::client::send_message(
        gw.addr,
        "a@example.test",
        &["b@example.net"],
        message.as_bytes(),
    )
    .await;
    assert_eq!(r.code, 550, "{r:?}");
    let reference = r.text().rsplit("ref=").next().unwrap().trim().to_string();
    assert_eq!(reference.len(), 8, "{r:?}");
    let config = temp_file("why.toml", &text);
    let why = |reference: String| {
        let config = config.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(BIN)
                    .args(["why", "--config", config.to_str().unwrap(), &reference])
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    // The verdict is written in the background: allow it a moment.
    let mut out = why(reference.clone()).await;
    for _ in 0..20 {
        if out.status.success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        out = why(reference.clone()).await;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!("Reference: {reference}\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "From: <a@example.test>\nTo: b@example.net\nMessage-ID: <w@example.test>\n\
             Subject: BUY NOW\nAction: spam\nReply: 550 5.7.1 "
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("\nScore: 5.00 (must be lower 2.00)\nSymbols:\n  SUBJ_ALL_CAPS (5.00)\n"),
        "{stdout}"
    );
    // Lower case works too; an unknown reference is an error.
    assert!(why(reference.to_lowercase()).await.status.success());
    let unknown = why("ZZZZZZZZ".into()).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr)
        .contains("no transaction with reference ZZZZZZZZ in the history (kept 7d)"));
}

#[tokio::test]
async fn why_and_history_answer_from_the_memory_store_through_the_running_gateway() {
    let sink = Sink::start(SinkConfig::default()).await;
    let http = free_port();
    let extra = format!("[http]\nlisten = \"{http}\"\n[scores]\nSUBJ_ALL_CAPS = 5.0\n");
    let text = common::config_text(sink.addr, "", &extra);
    let gw = spawn_gateway(&text).await;
    let message = "From: <a@example.test>\r\nSubject: BUY NOW\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <mem@example.test>\r\n\r\nHello.\r\n.\r\n";
    let r = common::client::send_message(
        gw.addr,
        "a@example.test",
        &["b@example.net"],
        message.as_bytes(),
    )
    .await;
    assert_eq!(r.code, 550, "{r:?}");
    let reference = r.text().rsplit("ref=").next().unwrap().trim().to_string();
    // The CLI's config: the same file (its memory store is not the gateway's).
    let config = temp_file(&format!("mem-{}.toml", http.port()), &text);
    let run = |args: Vec<String>| {
        let config = config.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(BIN)
                    .arg(&args[0])
                    .args(["--config", config.to_str().unwrap()])
                    .args(&args[1..])
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let mut out = run(vec!["why".into(), reference.clone()]).await;
    for _ in 0..30 {
        if out.status.success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        out = run(vec!["why".into(), reference.clone()]).await;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!("Reference: {reference}\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains("Action: spam\nReply: 550 5.7.1 "),
        "{stdout}"
    );
    assert!(stdout.contains("  SUBJ_ALL_CAPS (5.00)\n"), "{stdout}");
    let out = run(vec![
        "history".into(),
        "--from".into(),
        "@example.test".into(),
        "--json".into(),
    ])
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 1);
    assert_eq!(records[0]["reference"], reference.as_str());
    assert_eq!(records[0]["message_id"], "mem@example.test");
    let none = run(vec![
        "history".into(),
        "--from".into(),
        "@nowhere.test".into(),
    ])
    .await;
    assert_eq!(none.status.code(), Some(1));
    let unknown = run(vec!["why".into(), "ZZZZZZZZ".into()]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no transaction with reference ZZZZZZZZ")
    );
    drop(gw);
}

/// Runs `command` off the runtime: its exit status, stdout and stderr.
async fn outcome(mut command: Command) -> (Option<i32>, String, String) {
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_from_the_command_line_reaches_the_running_gateways_memory_store() {
    let sink = Sink::start(SinkConfig::default()).await;
    let http = free_port();
    let extra = format!("[http]\nlisten = \"{http}\"\n[anomaly]\nenabled = true\n");
    let text = common::config_text(sink.addr, "", &extra);
    let gw = spawn_gateway(&text).await;
    let config = temp_file(&format!("hold-{}.toml", http.port()), &text);
    let run = |args: &[&str]| {
        let mut command = Command::new(BIN);
        command
            .arg("hold")
            .args(["--config", config.to_str().unwrap()])
            .args(args);
        outcome(command)
    };
    let mail = || async {
        let mut c = Client::connect(gw.addr).await;
        assert_eq!(c.read_reply().await.code, 220);
        c.expect("EHLO client.example.test", 250).await;
        let r = c.cmd("MAIL FROM:<a@example.test>").await;
        format!("{} {}", r.code, r.text())
    };
    assert_eq!(
        run(&["list"]).await,
        (Some(0), "no identity is held\n".into(), String::new())
    );
    let (code, out, err) = run(&["127.0.0.1", "--for", "2h", "--reason", "phishing run"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("127.0.0.1  until "), "{out}");
    let reference = out.split("ref=").nth(1).unwrap().split(' ').next().unwrap();
    assert!(out.ends_with("  phishing run\n"), "{out}");
    assert_eq!(
        mail().await,
        format!(
            "451 4.7.1 <127.0.0.1> held for review: phishing run (ANOMALY_HOLD) ref={reference}"
        )
    );
    // `check` (another process, its own memory store) sees the hold too:
    // it asks the running gateway's API.
    let eml = temp_file(
        &format!("hold-{}.eml", http.port()),
        "From: <a@example.test>\nSubject: hi\n\nhello\n",
    );
    let check = |eml: PathBuf| {
        let mut command = Command::new(BIN);
        command
            .args(["check", "--config", config.to_str().unwrap()])
            .args(["--from", "a@example.test", "--rcpt", "r@example.net"])
            .arg(eml);
        outcome(command)
    };
    let (code, checked, err) = check(eml.clone()).await;
    assert_eq!(code, Some(75), "{checked}{err}");
    assert!(checked.contains("ANOMALY_HOLD (0.00)"), "{checked}");
    assert!(
        checked.contains(&format!(
            "451 4.7.1 <127.0.0.1> held for review: phishing run (ANOMALY_HOLD) ref={reference}"
        )),
        "{checked}"
    );
    assert_eq!(err, "");
    let (code, listed, _) = run(&["list"]).await;
    assert_eq!((code, listed.as_str()), (Some(0), out.as_str()));
    let (code, json, _) = run(&["list", "--json"]).await;
    assert_eq!(code, Some(0));
    let holds: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(holds[0]["by"], "operator");
    assert_eq!(
        run(&["release", "127.0.0.1"]).await,
        (Some(0), "released 127.0.0.1\n".into(), String::new())
    );
    assert!(mail().await.starts_with("250 "));
    let (code, checked, err) = check(eml.clone()).await;
    assert!(!checked.contains("ANOMALY_HOLD"), "{checked}{err}");
    assert_ne!(code, Some(75), "{checked}{err}");
    assert_eq!(
        run(&["release", "127.0.0.1"]).await,
        (Some(1), String::new(), "127.0.0.1 is not held\n".into())
    );
    let (code, _, err) = run(&["127.0.0.1", "--for", "soon"]).await;
    assert_eq!(
        (code, err.trim()),
        (
            Some(2),
            "--for: invalid duration `soon`: expected e.g. 30m, 2h, 3d (at most 30d)"
        )
    );
}
