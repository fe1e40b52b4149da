//! Greylisting decisions per second through the real `GreylistCheck` (key
//! building, sender normalisation, the atomic store operation), on the
//! memory store and on a real redis-server that the bench starts on a free
//! port (skipped, with a note, when redis-server is not installed).
//! Each run is bounded: at most `DECISIONS` decisions or `LIMIT` seconds.
//!
//! Run: `cargo bench --bench greylist`

use smtpgate::address::Address;
use smtpgate::checks::greylist::GreylistCheck;
use smtpgate::checks::{Check, View};
use smtpgate::config::Config;
use smtpgate::store::memory::MemoryStore;
use smtpgate::store::redis::RedisStore;
use smtpgate::store::Store;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DECISIONS: u64 = 200_000;
const LIMIT: Duration = Duration::from_secs(5);
const CONCURRENCY: u64 = 64;

const CONFIG: &str = "[server]\nhostname = \"gw.test\"\nlisten = [\"127.0.0.1:2525\"]\n\
                      [upstream]\naddress = \"127.0.0.1:10025\"\n[greylist]\n";

/// A redis-server child, killed and reaped on Drop.
struct RedisChild(Child, u16);

impl Drop for RedisChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Option<RedisChild> {
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let guard = RedisChild(child, port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if let Ok(mut s) = TcpStream::connect(addr) {
            let mut buf = [0u8; 7];
            if s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() {
                return Some(guard);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Decision `i`: 256 networks × 64 senders × many recipients, so most are
/// first-seen triplets and some are retries.
fn inputs(i: u64) -> (IpAddr, Address, Address) {
    let ip = IpAddr::V4(Ipv4Addr::new(10, (i % 256) as u8, (i / 256 % 256) as u8, 7));
    let sender = Address {
        local: format!("user{}", i % 64),
        domain: "example.test".into(),
    };
    let rcpt = Address {
        local: format!("r{}", i % 4096),
        domain: "example.net".into(),
    };
    (ip, sender, rcpt)
}

async fn decide(check: &GreylistCheck, i: u64) -> usize {
    let (ip, sender, rcpt) = inputs(i);
    let view = View {
        client_ip: ip,
        helo: "client.example.test",
        tls: false,
        login: None,
        trusted: false,
        sender: Some(&sender),
        recipient: Some(&rcpt),
        recipients: &[],
        message: None,
        parsed: None,
        fetched: smtpgate::checks::Fetched::none(),
    };
    check.check(&view).await.expect("store answers").len()
}

/// Runs decisions with `tasks` concurrent tasks; prints decisions/s.
async fn run(label: &str, check: Arc<GreylistCheck>, tasks: u64) {
    let started = Instant::now();
    let per_task = DECISIONS / tasks;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let check = Arc::clone(&check);
        handles.push(tokio::spawn(async move {
            let (mut done, mut greylisted) = (0u64, 0u64);
            for n in 0..per_task {
                greylisted += decide(&check, t * per_task + n).await as u64;
                done += 1;
                if done % 256 == 0 && started.elapsed() > LIMIT {
                    break;
                }
            }
            (done, greylisted)
        }));
    }
    let (mut done, mut greylisted) = (0u64, 0u64);
    for h in handles {
        let (d, g) = h.await.expect("task");
        done += d;
        greylisted += g;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "greylist/{label:<24} {done:>7} decisions in {secs:6.2} s = {:>9.0} decisions/s ({greylisted} greylisted)",
        done as f64 / secs
    );
}

fn check_on(store: Arc<dyn Store>) -> Arc<GreylistCheck> {
    let config = Config::from_text(Path::new("bench.toml"), CONFIG).expect("config");
    Arc::new(
        GreylistCheck::from_config(&config, store)
            .expect("valid")
            .expect("enabled"),
    )
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // we need: run once either way, it is bounded.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        run("memory/1 task", check_on(Arc::new(MemoryStore::new())), 1).await;
        run(
            "memory/64 tasks",
            check_on(Arc::new(MemoryStore::new())),
            CONCURRENCY,
        )
        .await;
        let Some(redis) = start_redis() else {
            println!("greylist/redis: skipped (redis-server not installed or did not start)");
            return;
        };
        let url = format!("redis://127.0.0.1:{}/0", redis.1);
        let store = |p: &str| -> Arc<dyn Store> {
            Arc::new(RedisStore::new(&url, p, Duration::from_secs(2)).expect("url"))
        };
        run("redis/1 task", check_on(store("b1:")), 1).await;
        run("redis/64 tasks", check_on(store("b64:")), CONCURRENCY).await;
        drop(redis);
    });
}
