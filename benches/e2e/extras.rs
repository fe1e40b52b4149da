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
