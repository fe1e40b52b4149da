//! The end-to-end bench's other measures: added latency per transaction
//! (sequential client, warm caches) and the RSS of 10,000 idle connections.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const LATENCY_SAMPLES: usize = 2000;

fn read_reply(r: &mut BufReader<TcpStream>) -> u16 {
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("reply");
        assert!(line.len() >= 4, "short reply {line:?}");
        if line.as_bytes()[3] != b'-' {
            return line[..3].parse().expect("code");
        }
    }
}

/// Per-transaction latencies (MAIL to the reply after DATA) on one
/// connection, in microseconds, sorted.
fn latencies(addr: SocketAddr, n: usize) -> Vec<u64> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    assert_eq!(read_reply(&mut r), 220);
    w.write_all(b"EHLO web1.customer.test\r\n").unwrap();
    assert_eq!(read_reply(&mut r), 250);
    let body = format!(
        "From: Shop <shop@customer.test>\r\nTo: <client@example.net>\r\nSubject: Your order\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <x@customer.test>\r\n\r\n{}\r\n.\r\n",
        "Your order has shipped and will arrive soon. ".repeat(80)
    );
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        for (cmd, code) in [
            (&b"MAIL FROM:<shop@customer.test>\r\n"[..], 250),
            (b"RCPT TO:<client@example.net>\r\n", 250),
            (b"DATA\r\n", 354),
            (body.as_bytes(), 250),
        ] {
            w.write_all(cmd).unwrap();
            assert_eq!(read_reply(&mut r), code);
        }
        out.push(start.elapsed().as_micros() as u64);
    }
    let _ = w.write_all(b"QUIT\r\n");
    out.sort_unstable();
    out
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// p50/p99 of a transaction through `gateway` against straight to `direct`.
pub fn latency(gateway: SocketAddr, direct: SocketAddr) {
    latencies(gateway, 20); // warm the caches
    let d = latencies(direct, LATENCY_SAMPLES);
    let g = latencies(gateway, LATENCY_SAMPLES);
    println!("\nlatency per transaction, {LATENCY_SAMPLES} sequential transactions on one connection (warm cache, new binary, memory store)");
    println!(
        "{:<10} {:>10} {:>10} {:>10}",
        "", "direct", "smtpgate", "added"
    );
    for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
        let (d, g) = (pct(&d, p), pct(&g, p));
        println!("{name:<10} {d:>8}us {g:>8}us {:>8}us", g.saturating_sub(d));
    }
    println!("(target: p99 added <= 2000us)");
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The gateway's RSS before and with `count` idle, greeted connections.
pub fn idle_rss(addr: SocketAddr, pid: u32, count: usize) {
    let before = rss_kb(pid);
    let mut idle = Vec::with_capacity(count);
    let start = Instant::now();
    for _ in 0..count {
        if start.elapsed() > Duration::from_secs(120) {
            break;
        }
        match TcpStream::connect(addr) {
            Ok(s) => idle.push(s),
            Err(e) => {
                println!("connect failed after {} connections: {e}", idle.len());
                break;
            }
        }
    }
    let mut greeted = 0;
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 256];
        if matches!(s.read(&mut buf), Ok(n) if n > 3 && &buf[..3] == b"220") {
            greeted += 1;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let with_idle = rss_kb(pid);
    println!(
        "\nRSS: {:.1} MB before, {:.1} MB with {greeted} idle greeted connections ({:.1} KB each; target <= 150 MB)",
        before as f64 / 1024.0,
        with_idle as f64 / 1024.0,
        (with_idle.saturating_sub(before)) as f64 / greeted.max(1) as f64
    );
}

/// The Redis commands of `messages` messages through the gateway on `port`
/// (one session, new connections), as `redis-cli MONITOR` shows them, with
/// the microseconds since the first: commands of one round trip share a
/// timestamp or follow within a few microseconds.
pub fn monitor(label: &str, redis_port: u16, port: u16, messages: usize) {
    use std::process::{Command, Stdio};
    let mut cli = Command::new("redis-cli")
        .args(["-p", &redis_port.to_string(), "monitor"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-cli");
    std::thread::sleep(Duration::from_millis(300));
    super::procs::smtp_source(port, false, 1, super::SIZE, messages);
    // Let the writes queued off the hot path land too.
    std::thread::sleep(Duration::from_millis(500));
    let _ = cli.kill();
    let mut text = String::new();
    if let Some(mut out) = cli.stdout.take() {
        let _ = out.read_to_string(&mut text);
    }
    let _ = cli.wait();
    println!("\nredis-cli MONITOR, {label}, {messages} messages (one session):");
    let mut first = None;
    for line in text.lines().filter(|l| l.contains('[')) {
        let (stamp, rest) = line.split_once(' ').unwrap_or(("0", line));
        let t: f64 = stamp.parse().unwrap_or(0.0);
        let t0 = *first.get_or_insert(t);
        let command = rest.split_once("] ").map_or(rest, |(_, c)| c);
        println!("  +{:>8}us {command}", ((t - t0) * 1e6) as u64);
    }
}

/// Profiles one run of `msgs` messages (new connections) through the
/// gateway `pid` on `port`: `perf record` (call graphs from DWARF) into
/// `dir/perf-LABEL.data` with its report in `perf-LABEL.txt`, then a second
/// run under `strace -c -f` (system calls by kind) into `strace-LABEL.txt`.
pub fn profile(label: &str, pid: u32, port: u16, dir: &std::path::Path, msgs: usize) {
    use std::process::{Command, Stdio};
    let name = label.replace(' ', "-");
    let data = dir.join(format!("perf-{name}.data"));
    let perf = Command::new("perf")
        .args(["record", "-F", "999", "--call-graph", "dwarf,16384", "-o"])
        .arg(&data)
        .args(["-p", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match perf {
        Ok(mut perf) => {
            std::thread::sleep(Duration::from_millis(500));
            // E2E_PROFILE_REUSE=1: one connection per session, as `-d`.
            let reuse = std::env::var("E2E_PROFILE_REUSE").is_ok_and(|v| v == "1");
            super::procs::smtp_source(port, reuse, super::SESSIONS, super::SIZE, msgs);
            // SIGINT: perf writes its file and exits.
            // SAFETY: kill with a valid pid and signal.
            unsafe { libc::kill(perf.id() as i32, libc::SIGINT) };
            let _ = perf.wait();
            let report = Command::new("perf")
                .args([
                    "report",
                    "--no-children",
                    "--percent-limit",
                    "0.5",
                    "--stdio",
                    "-g",
                    "none",
                    "-i",
                ])
                .arg(&data)
                .output();
            if let Ok(out) = report {
                let _ = std::fs::write(dir.join(format!("perf-{name}.txt")), &out.stdout);
            }
            let report = Command::new("perf")
                .args([
                    "report",
                    "--children",
                    "--percent-limit",
                    "2",
                    "--stdio",
                    "-g",
                    "none",
                    "-i",
                ])
                .arg(&data)
                .output();
            if let Ok(out) = report {
                let _ = std::fs::write(dir.join(format!("perf-{name}-children.txt")), &out.stdout);
            }
        }
        Err(e) => println!("perf not run ({e}): apt-get install linux-perf"),
    }
    let out = dir.join(format!("strace-{name}.txt"));
    let strace = Command::new("strace")
        .args(["-c", "-f", "-o"])
        .arg(&out)
        .args(["-p", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match strace {
        Ok(mut strace) => {
            std::thread::sleep(Duration::from_millis(500));
            // E2E_PROFILE_REUSE=1: one connection per session, as `-d`.
            let reuse = std::env::var("E2E_PROFILE_REUSE").is_ok_and(|v| v == "1");
            super::procs::smtp_source(port, reuse, super::SESSIONS, super::SIZE, msgs);
            // SAFETY: kill with a valid pid and signal.
            unsafe { libc::kill(strace.id() as i32, libc::SIGINT) };
            let _ = strace.wait();
        }
        Err(e) => println!("strace not run ({e}): apt-get install strace"),
    }
    println!("profile of {label}: {}", dir.display());
}
