//! Envelope checks with a warm DNS cache: HELO (unknown HELO), MAIL
//! (unknown sender domain, RHSBL) and RCPT (relay, known-bad) checks per
//! transaction, against an in-process DNS server on 127.0.0.1. Prints
//! transactions/s and checks/s on one task.

#[path = "../tests/common/dns.rs"]
mod dns;

use smtpgate::address::parse_address;
use smtpgate::app::App;
use smtpgate::checks::{Phase, View};
use smtpgate::config::Config;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let zone = "client.example.test A 192.0.2.10\nexample.test MX 10 mx.example.test\nmx.example.test A 192.0.2.20\n";
        let server = dns::DnsServer::start(dns::Zone::parse(zone)).await;
        let text = format!(
            "[server]\nhostname = \"gw.example.test\"\nlisten = [\"127.0.0.1:0\"]\n[upstream]\naddress = \"127.0.0.1:1\"\n\
             [scoring]\nrules_dir = \"{}\"\n{}\
             [envelope]\nreject_unknown_helo_hostname = true\nreject_unknown_sender_domain = true\n\
             [dnsbl]\nsender = [{{ zone = \"dbl.test\", name = \"SPAMHAUS_DBL\" }}]\n",
            root().join("rules").display(),
            server.dns_section()
        );
        let app = App::build(Config::from_text(Path::new("bench.toml"), &text).unwrap(), None).unwrap();
        let sender = parse_address("shop@example.test", true).unwrap();
        let rcpt = parse_address("client@example.net", false).unwrap();
        let view = View {
            client_ip: "192.0.2.10".parse().unwrap(),
            helo: "client.example.test",
            tls: false,
            login: None,
            trusted: true,
            sender: Some(&sender),
            recipient: Some(&rcpt),
            recipients: &[],
            message: None,
            parsed: None,
            fetched: smtpgate::checks::Fetched::none(),
        };
        let mut checks_run = 0u64;
        let run = || {
            let app = &app;
            let view = &view;
            let mut n = 0;
            async move {
                for phase in [Phase::Helo, Phase::Mail, Phase::Rcpt] {
                    for check in app.checks.iter().filter(|c| c.phase() == phase) {
                        check.check(view).await.expect("answers");
                        n += 1;
                    }
                }
                n
            }
        };
        checks_run += run().await; // warm the cache
        let queries_warm = server.queries();
        let start = Instant::now();
        let mut transactions = 0u64;
        while transactions < 200_000 && start.elapsed() < Duration::from_secs(10) {
            checks_run += run().await;
            transactions += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "envelope checks, warm cache: {transactions} transactions in {secs:.2}s = {:.0} transactions/s, {:.0} checks/s on one task; DNS queries after warm-up: {}",
            transactions as f64 / secs,
            (checks_run as f64) / secs,
            server.queries() - queries_warm
        );
    });
}
