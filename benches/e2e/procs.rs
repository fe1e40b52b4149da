//! The processes of the end-to-end bench: children killed on drop, CPU
//! read from /proc, smtp-source runs bounded in time, redis-server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest one smtp-source run may take.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// A child process killed and reaped on drop.
pub struct Proc(pub Child);

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub fn wait_port(addr: SocketAddr) {
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{addr} did not open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn tool(name: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin"] {
        let p = format!("{dir}/{name}");
        if std::path::Path::new(&p).exists() {
            return p;
        }
    }
    panic!("{name} not found: apt-get install postfix redis-server");
}

/// CPU time (user + system) of process `pid` so far, all its threads, from
/// /proc/PID/stat (utime and stime, in clock ticks).
pub fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name in parentheses: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let total = ticks(11) + ticks(12);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(total * 1_000_000 / hz)
}

/// CPU time of this process's reaped children (smtp-source runs).
pub fn cpu_of_children() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// What one smtp-source run against a port measured.
pub struct Run {
    pub seconds: f64,
    /// CPU of smtp-source itself.
    pub source_cpu: Duration,
}

/// One smtp-source run: `msgs` messages of `size` bytes in `sessions`
/// parallel sessions, new connections or reuse (-d). Panics when
/// smtp-source fails (it stops at the first refused command) or overruns.
pub fn smtp_source(port: u16, reuse: bool, sessions: usize, size: usize, msgs: usize) -> Run {
    let mut cmd = Command::new(tool("smtp-source"));
    if reuse {
        cmd.arg("-d");
    }
    cmd.args(["-s", &sessions.to_string()])
        .args(["-l", &size.to_string()])
        .args(["-m", &msgs.to_string()])
        .args(["-M", "web1.customer.test"])
        .args(["-f", "shop@customer.test"])
        .args(["-t", "client@example.net"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null());
    let children_before = cpu_of_children();
    let start = Instant::now();
    let mut child = cmd.spawn().expect("smtp-source");
    let status = loop {
        if let Some(status) = child.try_wait().expect("smtp-source wait") {
            break status;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("smtp-source against port {port} took over {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let seconds = start.elapsed().as_secs_f64();
    assert!(status.success(), "smtp-source against port {port} failed");
    Run {
        seconds,
        source_cpu: cpu_of_children().saturating_sub(children_before),
    }
}

/// A redis-server on a free port, no persistence.
pub struct Redis {
    pub port: u16,
    pub proc: Proc,
}

impl Redis {
    pub fn start(dir: &std::path::Path) -> Redis {
        let port = free_port().port();
        let child = Command::new(tool("redis-server"))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &dir.display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let redis = Redis {
            port,
            proc: Proc(child),
        };
        let start = Instant::now();
        while redis.command("PING") != "+PONG" {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    /// A number from `INFO stats` (say `total_commands_processed`).
    pub fn stat(&self, field: &str) -> u64 {
        let prefix = format!("{field}:");
        self.info("stats")
            .lines()
            .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The text of `INFO section` ("" when unreachable).
    pub fn info(&self, section: &str) -> String {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if s.write_all(format!("INFO {section}\r\n").as_bytes())
            .is_err()
        {
            return String::new();
        }
        // A bulk reply: "$LEN\r\n" then LEN bytes.
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = s.read(&mut buf) {
            text.extend_from_slice(&buf[..n]);
            let head = text.iter().position(|&b| b == b'\n').unwrap_or(text.len());
            let len: usize = std::str::from_utf8(&text[1..head.min(text.len())])
                .ok()
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or(usize::MAX);
            if text.len() >= head + 1 + len {
                break;
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    }

    /// One inline command's first reply line ("" when unreachable).
    pub fn command(&self, command: &str) -> String {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if s.write_all(format!("{command}\r\n").as_bytes()).is_err() {
            return String::new();
        }
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).trim_end().to_string()
    }
}
