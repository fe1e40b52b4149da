//! End-to-end benchmark, one run, same machine (issues: operations, 21):
//!
//! * Postfix `smtp-source` -> smtpgate -> `smtp-sink`, beside `smtp-source`
//!   -> `smtp-sink` directly: msgs/s for 20 sessions, 4 KB messages, with
//!   new connections and with connection reuse, and CPU per message — of
//!   the gateway process (utime + stime from /proc/PID/stat, background
//!   writes included), of sink + source for the direct pair, and of
//!   redis-server beside the Redis store (with the commands it ran per
//!   message); the Redis store's rate over the memory store's, also round
//!   by round (both run one after the other in each round);
//! * the gateway with every check on (HELO, reverse and forward-confirmed
//!   client names, sender domain, callout, known-bad recipients, DNSBL and
//!   RHSBL, SPF/DKIM/DMARC, greylisting, rate limits, the full shipped
//!   rules/ directory) against an in-process DNS on 127.0.0.1 serving
//!   names under .test, with the memory store and with the Redis store (a
//!   redis-server started here on a free port);
//! * the binary built from this tree and, when `SMTPGATE_BASELINE` names
//!   one, an older binary (say the last release) in the same run, so that
//!   the CPU saved is measured, not remembered;
//! * added latency per transaction (p50/p99) and the RSS with 10,000 idle
//!   connections, for this tree's binary with the memory store.
//!
//! Loopback only, every loop bounded. Run:
//! `SMTPGATE_BASELINE=/path/to/old/smtpgate cargo bench --bench e2e`
//! (needs smtp-source, smtp-sink and redis-server: `apt-get install postfix
//! redis-server`). `E2E_MSGS`, `E2E_ROUNDS` (0: no throughput table) and `E2E_EXTRAS=0` (skip the
//! latency and idle parts) shorten it; `E2E_MONITOR=1` prints the Redis
//! commands of two messages through each Redis-store gateway (MONITOR);
//! `E2E_CMDSTATS=1` what redis-server spent on each command per message
//! in every Redis-store run (`INFO commandstats`);
//! `E2E_ANOMALY=1` turns on this tree's anomaly watch (`[anomaly] enabled`,
//! as shipped; the baseline has none);
//! `E2E_BARE=1` adds this tree's binary as a plain relay (optional checks,
//! content rules and history off: the floor a checking gateway sits on);
//! `E2E_PROFILE=DIR` profiles each gateway over one more run (perf record
//! with call graphs, then strace -c) into DIR (`E2E_PROFILE_MATCH=new`:
//! only the gateways whose label has it; `E2E_PROFILE_REUSE=1`: with
//! connection reuse).

#[path = "../tests/common/dns.rs"]
mod dns;
#[path = "e2e/extras.rs"]
mod extras;
#[path = "e2e/procs.rs"]
mod procs;

use procs::{cpu_of, free_port, smtp_source, tool, wait_port, Proc, Redis};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The repository root (tests/common/dns.rs looks fixtures up from it).
fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const SESSIONS: usize = 20;
const SIZE: usize = 4096;
const IDLE: usize = 10_000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The sender's zone, the client's names and nothing listed.
const ZONE: &str = "customer.test TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
     _dmarc.customer.test TXT \"v=DMARC1; p=reject\"\n\
     customer.test MX 10 mx.customer.test\n\
     mx.customer.test A 127.0.0.1\n\
     web1.customer.test A 127.0.0.1\n\
     1.0.0.127.in-addr.arpa PTR web1.customer.test\n";

/// A configuration both binaries read, with every check on.
fn config(gw: SocketAddr, sink: SocketAddr, dns: &str, store: &str) -> String {
    format!(
        "[server]\nhostname = \"gw.example.test\"\nlisten = [\"{gw}\"]\nmax_connections = {}\n\
         max_connections_per_client = 0\nmax_connection_rate_per_client = 0\n\
         [upstream]\naddress = \"{sink}\"\npool_size = 64\nmax_connections = 256\n\
         {dns}\n\
         [relay]\nlocal_domains = [\"customer.test\"]\n\
         [envelope]\nreject_unknown_helo_hostname = true\n\
         reject_unknown_reverse_client_hostname = true\nreject_unknown_client_hostname = true\n\
         reject_unknown_sender_domain = true\nreject_known_bad_recipient_address = true\n\
         reject_unverified_sender = \"local\"\ncallout_port = {}\n\
         [outbound]\negress_ips = [\"127.0.0.1\"]\n\
         [dnsbl]\nclient = [{{ zone = \"zen.test\", name = \"SPAMHAUS_ZEN\" }}]\n\
         sender = [{{ zone = \"dbl.test\", name = \"SPAMHAUS_DBL\" }}]\n\
         [greylist]\nenabled = true\nskip_mynetworks = true\nskip_authenticated = true\n\
         [ratelimit]\nmessages_per_day = 1000000000\nrecipients_per_hour = 1000000000\n\
         [scoring]\nspam_action = \"reject\"\nrules_dir = \"{}\"\n\
         {store}",
        IDLE + 500,
        sink.port(),
        root().join("rules").display(),
    )
}

/// What is measured: the direct pair, or one gateway.
struct Target {
    label: String,
    port: u16,
    /// The gateway process (None: direct).
    gateway: Option<Proc>,
    /// Flushed before each run (the Redis store's gateways).
    redis: bool,
}

/// One run's figures.
#[derive(Clone, Copy, Default)]
struct Figures {
    rate: f64,
    /// CPU ms per message of the gateway (direct: sink + source).
    cpu: f64,
    /// redis-server's CPU ms per message.
    redis_cpu: f64,
    /// Commands redis-server ran per message (the Redis store's gateways).
    redis_cmds: f64,
}

fn measure(t: &Target, sink: &Proc, redis: &Redis, reuse: bool, msgs: usize) -> Figures {
    if t.redis {
        assert_eq!(redis.command("FLUSHALL"), "+OK", "redis FLUSHALL");
    }
    let pid = t.gateway.as_ref().map_or(sink.pid(), Proc::pid);
    let (before, redis_before) = (cpu_of(pid), cpu_of(redis.proc.pid()));
    let stats = t.redis && env_or("E2E_CMDSTATS", 0) != 0;
    if stats {
        redis.command("CONFIG RESETSTAT");
    }
    let cmds_before = redis.stat("total_commands_processed");
    let run = smtp_source(t.port, reuse, SESSIONS, SIZE, msgs);
    // Writes queued off the hot path (history, counters) are this run's
    // cost too: let them finish before reading the CPU.
    std::thread::sleep(Duration::from_millis(300));
    let mut cpu = cpu_of(pid).saturating_sub(before);
    if t.gateway.is_none() {
        cpu += run.source_cpu;
    }
    let per_msg = |d: Duration| d.as_secs_f64() * 1000.0 / msgs as f64;
    if stats {
        commandstats(&redis.info("commandstats"), msgs);
    }
    Figures {
        rate: msgs as f64 / run.seconds,
        cpu: per_msg(cpu),
        redis_cpu: per_msg(cpu_of(redis.proc.pid()).saturating_sub(redis_before)),
        // Less the first of the two INFO readings (INFO counts itself).
        redis_cmds: redis
            .stat("total_commands_processed")
            .saturating_sub(cmds_before + 1) as f64
            / msgs as f64,
    }
}

/// E2E_CMDSTATS=1: what redis-server spent per message on each command
/// (from `INFO commandstats`, reset before the run).
fn commandstats(text: &str, msgs: usize) {
    for line in text.lines() {
        let Some((name, rest)) = line
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        else {
            continue;
        };
        let field = |f: &str| -> f64 {
            rest.split(',')
                .find_map(|kv| kv.strip_prefix(f)?.strip_prefix('=')?.parse().ok())
                .unwrap_or(0.0)
        };
        let (calls, usec) = (field("calls"), field("usec"));
        println!(
            "    {name:<12} {:>6.2} calls/msg {:>6.2} us/msg {:>5.2} us/call",
            calls / msgs as f64,
            usec / msgs as f64,
            usec / calls.max(1.0)
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; a plain `cargo test --benches` run passes nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let msgs = env_or("E2E_MSGS", 4000);
    let rounds = env_or("E2E_ROUNDS", 3);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dns_server = runtime.block_on(dns::DnsServer::start(dns::Zone::parse(ZONE)));
    let work = std::env::temp_dir().join(format!("smtpgate-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let redis = Redis::start(&work);
    let sink_addr = free_port();
    let sink = Proc(
        Command::new(tool("smtp-sink"))
            .args(["-u", "nobody", "-m", "300"])
            .arg(sink_addr.to_string())
            .arg("512")
            .stdout(Stdio::null())
            .spawn()
            .expect("smtp-sink"),
    );
    wait_port(sink_addr);

    let mut binaries = Vec::new();
    match std::env::var("SMTPGATE_BASELINE") {
        Ok(path) if !path.is_empty() => binaries.push(("baseline", path)),
        _ => println!("(SMTPGATE_BASELINE not set: this tree's binary only)"),
    }
    binaries.push(("new", env!("CARGO_BIN_EXE_smtpgate").to_string()));
    let mut targets = vec![Target {
        label: "direct".into(),
        port: sink_addr.port(),
        gateway: None,
        redis: false,
    }];
    for (name, path) in &binaries {
        for store in ["memory", "redis"] {
            let addr = free_port();
            let store_section = match store {
                "redis" => format!(
                    "[store]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:{}/0\"\nkey_prefix = \"{name}:\"\n",
                    redis.port
                ),
                _ => String::new(),
            };
            // The anomaly watch of the shipped config (the baseline has none).
            let store_section = if *name == "new" && env_or("E2E_ANOMALY", 0) != 0 {
                format!("{store_section}[anomaly]\nenabled = true\n")
            } else {
                store_section
            };
            let text = config(addr, sink_addr, &dns_server.dns_section(), &store_section);
            let path_toml = work.join(format!("{name}-{store}.toml"));
            std::fs::write(&path_toml, text).unwrap();
            let child = Command::new(path)
                .args(["serve", "--config", path_toml.to_str().unwrap()])
                .env("SMTPGATE_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            let gateway = Proc(child);
            wait_port(addr);
            targets.push(Target {
                label: format!("{name} {store}"),
                port: addr.port(),
                gateway: Some(gateway),
                redis: store == "redis",
            });
        }
    }
    if env_or("E2E_BARE", 0) != 0 {
        // The floor: this tree's binary with every optional check, the
        // content rules and the history off (a plain relay).
        let addr = free_port();
        let rules = work.join("no-rules");
        std::fs::create_dir_all(&rules).unwrap();
        let text = format!(
            "[server]\nhostname = \"gw.example.test\"\nlisten = [\"{addr}\"]\n\
             max_connections_per_client = 0\nmax_connection_rate_per_client = 0\n\
             [upstream]\naddress = \"{sink_addr}\"\npool_size = 64\nmax_connections = 256\n\
             {}\n[relay]\nlocal_domains = [\"customer.test\"]\n[history]\nenabled = false\n\
             [scoring]\nrules_dir = \"{}\"\n",
            dns_server.dns_section(),
            rules.display()
        );
        let path_toml = work.join("bare.toml");
        std::fs::write(&path_toml, text).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_smtpgate"))
            .args(["serve", "--config", path_toml.to_str().unwrap()])
            .env("SMTPGATE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("smtpgate");
        let gateway = Proc(child);
        wait_port(addr);
        targets.push(Target {
            label: "new bare".into(),
            port: addr.port(),
            gateway: Some(gateway),
            redis: false,
        });
    }

    println!(
        "end-to-end, {msgs} messages of {SIZE} bytes, {SESSIONS} sessions; rate: best of {rounds}, \
         CPU: median of {rounds}; load before: {}",
        load()
    );
    let mut all: Vec<Mode> = Vec::new();
    for reuse in [false, true].into_iter().filter(|_| rounds > 0) {
        for t in &targets {
            measure(t, &sink, &redis, reuse, (msgs / 4).max(100)); // warm-up
        }
        let mut runs: Vec<Vec<Figures>> = vec![Vec::new(); targets.len()];
        for _ in 0..rounds {
            // Alternating targets within a round, so noise hits them all.
            for (i, t) in targets.iter().enumerate() {
                runs[i].push(measure(t, &sink, &redis, reuse, msgs));
            }
        }
        let paired = paired_ratios(&targets, &runs);
        let figures: Vec<Figures> = runs
            .into_iter()
            .map(|r| Figures {
                rate: r.iter().map(|f| f.rate).fold(0.0, f64::max),
                cpu: median(r.iter().map(|f| f.cpu).collect()),
                redis_cpu: median(r.iter().map(|f| f.redis_cpu).collect()),
                redis_cmds: median(r.iter().map(|f| f.redis_cmds).collect()),
            })
            .collect();
        all.push((reuse, figures, paired));
    }
    if rounds > 0 {
        report(&targets, &all);
    }
    println!("load after: {}", load());
    println!(
        "DNS queries answered by the in-process server: {}",
        dns_server.queries()
    );

    if let Ok(dir) = std::env::var("E2E_PROFILE") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let only = std::env::var("E2E_PROFILE_MATCH").unwrap_or_default();
        for t in targets.iter().filter(|t| t.label.contains(&only)) {
            if let Some(p) = &t.gateway {
                extras::profile(&t.label, p.pid(), t.port, &dir, msgs);
            }
        }
    }
    if env_or("E2E_MONITOR", 0) != 0 {
        for t in targets.iter().filter(|t| t.redis) {
            extras::monitor(&t.label, redis.port, t.port, 2);
        }
    }
    if env_or("E2E_EXTRAS", 1) != 0 {
        if let Some(gw) = targets.iter().find(|t| t.label == "new memory") {
            let addr = SocketAddr::from(([127, 0, 0, 1], gw.port));
            extras::latency(addr, sink_addr);
            if let Some(p) = &gw.gateway {
                extras::idle_rss(addr, p.pid(), IDLE);
            }
        }
    }
    drop(targets);
    drop(sink);
    drop(redis);
    let _ = std::fs::remove_dir_all(&work);
    drop(dns_server);
}

/// A binary's Redis/memory rate ratios, round by round.
type Paired = (String, Vec<f64>);

/// One mode's figures: connection reuse or not, each target's figures,
/// the paired ratios.
type Mode = (bool, Vec<Figures>, Vec<Paired>);

/// For each binary with both stores: the Redis store's rate over the
/// memory store's, round by round (the two ran one after the other in the
/// same round, so a slow spell of this shared machine hits both).
fn paired_ratios(targets: &[Target], runs: &[Vec<Figures>]) -> Vec<Paired> {
    let at = |label: &str| targets.iter().position(|t| t.label == label);
    ["baseline", "new"]
        .into_iter()
        .filter_map(|name| {
            let m = at(&format!("{name} memory"))?;
            let r = at(&format!("{name} redis"))?;
            let ratios = runs[m]
                .iter()
                .zip(&runs[r])
                .map(|(m, r)| r.rate / m.rate)
                .collect();
            Some((name.to_string(), ratios))
        })
        .collect()
}

/// The tables: every target per mode, then the ratios the issue asks for.
fn report(targets: &[Target], all: &[Mode]) {
    let find = |figures: &[Figures], label: &str| {
        targets
            .iter()
            .position(|t| t.label == label)
            .map(|i| figures[i])
    };
    for (reuse, figures, paired) in all {
        let mode = if *reuse {
            "connection reuse (-d)"
        } else {
            "new connection per msg"
        };
        println!("\n{mode}");
        println!(
            "{:<16} {:>10} {:>12} {:>12} {:>10} {:>10} {:>14}",
            "", "msgs/s", "CPU ms/msg", "redis ms/msg", "cmds/msg", "vs direct", "CPU vs base"
        );
        let direct = figures[0];
        for (t, f) in targets.iter().zip(figures) {
            let store = t.label.rsplit(' ').next().unwrap_or("");
            let base = find(figures, &format!("baseline {store}"));
            let cut = match (t.label.starts_with("new"), base) {
                (true, Some(b)) => format!("{:+.0}%", (f.cpu / b.cpu - 1.0) * 100.0),
                _ => String::new(),
            };
            let (redis, cmds) = if t.redis {
                (
                    format!("{:.3}", f.redis_cpu),
                    format!("{:.1}", f.redis_cmds),
                )
            } else {
                (String::new(), String::new())
            };
            let vs = if t.gateway.is_some() {
                format!("{:.2}", f.rate / direct.rate)
            } else {
                String::new()
            };
            println!(
                "{:<16} {:>8.0}/s {:>12.3} {:>12} {:>10} {:>10} {:>14}",
                t.label, f.rate, f.cpu, redis, cmds, vs, cut
            );
        }
        for name in ["baseline", "new"] {
            if let (Some(m), Some(r)) = (
                find(figures, &format!("{name} memory")),
                find(figures, &format!("{name} redis")),
            ) {
                println!(
                    "{name}: redis store rate / memory store rate = {:.2}",
                    r.rate / m.rate
                );
            }
        }
        for (name, ratios) in paired {
            let shown: Vec<String> = ratios.iter().map(|x| format!("{x:.2}")).collect();
            println!(
                "{name}: the same, round by round: {} (median {:.2})",
                shown.join(" "),
                median(ratios.clone())
            );
        }
    }
    println!("\n(targets: redis >= 0.90 of memory; CPU/msg >= 30% below the baseline; new connections >= 0.60 of direct)");
}

/// The 1-, 5- and 15-minute load averages.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
