//! End-to-end benchmark, one run, same machine (issue: operations):
//!
//! * Postfix `smtp-source` -> smtpgate (shipped rules, SPF/DKIM/DMARC with a
//!   local DNS server serving the sender's zone, memory store) -> `smtp-sink`,
//!   beside `smtp-source` -> `smtp-sink` directly: msgs/s for 20 sessions,
//!   4 KB messages, with and without connection reuse, and the ratio;
//! * added latency per transaction (p50/p99), measured by a sequential
//!   client, warm DNS cache;
//! * gateway RSS with 10,000 idle connections.
//!
//! Loopback only, every loop bounded. Run: `cargo bench --bench e2e`
//! (needs /usr/sbin/smtp-source and smtp-sink: `apt-get install postfix`).

#[path = "../tests/common/dns.rs"]
mod dns;

/// The repository root (tests/common/dns.rs looks fixtures up from it).
fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MSGS: usize = 4000;
const SESSIONS: usize = 20;
const SIZE: usize = 4096;
const LATENCY_SAMPLES: usize = 2000;
const IDLE: usize = 10_000;

/// A child process killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn wait_port(addr: SocketAddr) {
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{addr} did not open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tool(name: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin"] {
        let p = format!("{dir}/{name}");
        if std::path::Path::new(&p).exists() {
            return p;
        }
    }
    panic!("{name} not found: apt-get install postfix");
}

/// msgs/s of one smtp-source run.
fn rate(port: u16, reuse: bool) -> f64 {
    let mut cmd = Command::new(tool("smtp-source"));
    if reuse {
        cmd.arg("-d");
    }
    cmd.args([
        "-s",
        &SESSIONS.to_string(),
        "-l",
        &SIZE.to_string(),
        "-m",
        &MSGS.to_string(),
    ])
    .args([
        "-M",
        "web1.customer.test",
        "-f",
        "shop@customer.test",
        "-t",
        "client@example.net",
    ])
    .arg(format!("127.0.0.1:{port}"))
    .stdout(Stdio::null());
    let start = Instant::now();
    let status = cmd.status().expect("smtp-source");
    assert!(status.success(), "smtp-source failed");
    MSGS as f64 / start.elapsed().as_secs_f64()
}

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

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes --bench; a plain `cargo test --benches` run passes nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let zone = dns::Zone::parse(
        "customer.test TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
         _dmarc.customer.test TXT \"v=DMARC1; p=reject\"\n\
         customer.test MX 10 mx.customer.test\n\
         mx.customer.test A 127.0.0.1\n",
    );
    let dns_server = runtime.block_on(dns::DnsServer::start(zone));
    let work = std::env::temp_dir().join(format!("smtpgate-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let sink_addr = free_port();
    let _sink = Proc(
        Command::new(tool("smtp-sink"))
            .args(["-u", "nobody", "-m", "300"])
            .arg(sink_addr.to_string())
            .arg("512")
            .stdout(Stdio::null())
            .spawn()
            .expect("smtp-sink"),
    );
    let gw_addr = free_port();
    let config = format!(
        "[server]\nhostname = \"gw.example.test\"\nlisten = [\"{gw_addr}\"]\nmax_connections = {}\n\
         max_connections_per_client = 0\nmax_connection_rate_per_client = 0\n\
         [upstream]\naddress = \"{sink_addr}\"\npool_size = 64\nmax_connections = 256\n\
         {dns}\n[outbound]\negress_ips = [\"127.0.0.1\"]\n\
         [relay]\nlocal_domains = [\"customer.test\"]\n\
         [scoring]\nspam_action = \"reject\"\nrules_dir = \"{}\"\n",
        IDLE + 500,
        root().join("rules").display(),
        dns = dns_server.dns_section(),
    );
    let config_path = work.join("gw.toml");
    std::fs::write(&config_path, config).unwrap();
    let gateway = Proc(
        Command::new(env!("CARGO_BIN_EXE_smtpgate"))
            .args(["serve", "--config", config_path.to_str().unwrap()])
            .env("SMTPGATE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("smtpgate"),
    );
    wait_port(sink_addr);
    wait_port(gw_addr);

    println!("end-to-end, {MSGS} messages of {SIZE} bytes, {SESSIONS} sessions (best of 2)");
    println!(
        "{:<26} {:>12} {:>12} {:>7}",
        "mode", "direct", "smtpgate", "ratio"
    );
    for reuse in [false, true] {
        rate(sink_addr.port(), reuse);
        rate(gw_addr.port(), reuse);
        let direct = rate(sink_addr.port(), reuse).max(rate(sink_addr.port(), reuse));
        let gated = rate(gw_addr.port(), reuse).max(rate(gw_addr.port(), reuse));
        let label = if reuse {
            "connection reuse (-d)"
        } else {
            "new connection per msg"
        };
        println!(
            "{label:<26} {direct:>10.0}/s {gated:>10.0}/s {:>7.2}",
            gated / direct
        );
    }
    println!("(target ratio >= 0.80)");

    // Warm the DNS cache, then measure.
    latencies(gw_addr, 20);
    let direct = latencies(sink_addr, LATENCY_SAMPLES);
    let gated = latencies(gw_addr, LATENCY_SAMPLES);
    println!("\nlatency per transaction, {LATENCY_SAMPLES} sequential transactions on one connection (warm cache)");
    println!(
        "{:<10} {:>10} {:>10} {:>10}",
        "", "direct", "smtpgate", "added"
    );
    for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
        let (d, g) = (pct(&direct, p), pct(&gated, p));
        println!("{name:<10} {d:>8}us {g:>8}us {:>8}us", g.saturating_sub(d));
    }
    println!("(target: p99 added <= 2000us)");

    // 10,000 idle connections, each greeted.
    let before = rss_kb(gateway.0.id());
    let mut idle = Vec::with_capacity(IDLE);
    let start = Instant::now();
    for _ in 0..IDLE {
        if start.elapsed() > Duration::from_secs(120) {
            break;
        }
        match TcpStream::connect(gw_addr) {
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
    let with_idle = rss_kb(gateway.0.id());
    println!(
        "\nRSS: {:.1} MB before, {:.1} MB with {greeted} idle greeted connections ({:.1} KB each; target <= 150 MB)",
        before as f64 / 1024.0,
        with_idle as f64 / 1024.0,
        (with_idle.saturating_sub(before)) as f64 / greeted.max(1) as f64
    );
    drop(idle);
    drop(gateway);
    let _ = std::fs::remove_dir_all(&work);
    drop(dns_server);
}
