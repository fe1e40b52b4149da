//! SPF + DKIM + DMARC per message with warm caches, in messages per second:
//! the DATA check smtpgate runs for every message (egress SPF, DKIM
//! verification of the signatures present, DMARC), with and without our
//! own DKIM signing. Starts its own DNS server on 127.0.0.1 (the test
//! harness's), so nothing leaves the machine.
//!
//! Run: cargo bench --bench authentication

#[path = "../tests/common/dns.rs"]
mod dns;

use dns::{DnsServer, Zone};
use smtpgate::address::Address;
use smtpgate::checks::authentication::AuthenticationCheck;
use smtpgate::checks::{Check, View};
use smtpgate::config::Config;
use smtpgate::mailauth::Authenticator;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The repository root (dns.rs finds its fixtures from here).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn authenticator(dns: &DnsServer, dkim: Option<&str>) -> Arc<Authenticator> {
    let mut text = format!(
        "[server]\nhostname = \"gw.example.test\"\nlisten = [\"127.0.0.1:0\"]\n\
         [upstream]\naddress = \"127.0.0.1:1\"\n[outbound]\negress_ips = [\"203.0.113.10\"]\n{}",
        dns.dns_section()
    );
    if let Some(dir) = dkim {
        let dir = root().join("tests/fixtures/dkim").join(dir);
        text.push_str(&format!("[dkim]\nkeys_dir = \"{}\"\n", dir.display()));
    }
    let config = Config::from_text(Path::new("bench.toml"), &text).expect("config");
    Arc::new(Authenticator::new(&config).expect("authenticator"))
}

/// Runs the check on `message` for up to `limit` iterations or `budget`
/// time, after one warm-up run; returns (messages, elapsed, symbols).
async fn run(
    check: &AuthenticationCheck,
    sender: &Address,
    message: &[u8],
    limit: usize,
    budget: Duration,
) -> (usize, Duration, Vec<String>) {
    let view = View {
        client_ip: "127.0.0.1".parse().expect("ip"),
        helo: "web1.customer.test",
        tls: false,
        login: None,
        trusted: true,
        sender: Some(sender),
        recipient: None,
        recipients: &[],
        message: Some(message),
        parsed: None,
        fetched: smtpgate::checks::Fetched::none(),
    };
    let warm = check.check(&view).await.expect("check");
    let symbols = warm.iter().map(|h| h.name.clone()).collect();
    let start = Instant::now();
    let mut n = 0;
    while n < limit && start.elapsed() < budget {
        std::hint::black_box(check.check(&view).await.expect("check"));
        n += 1;
    }
    (n, start.elapsed(), symbols)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut zone = Zone::load(&root().join("tests/fixtures/auth.zone"));
        zone.merge(Zone::load(&root().join("tests/fixtures/dkim/keys.zone")));
        let dns = DnsServer::start(zone).await;
        let body = "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n".repeat(200);
        let plain = format!(
            "From: User <user@customer.test>\r\nTo: a@example.net\r\nSubject: bench\r\n\
             Date: Mon, 23 Nov 2026 04:00:00 +0000\r\nMessage-ID: <b1@customer.test>\r\n\r\n{body}"
        )
        .into_bytes();
        let signer = authenticator(&dns, Some("keys-rsa"));
        let signed = [signer.sign(&plain).expect("sign").as_bytes(), &plain].concat();
        let pyorg =
            std::fs::read(root().join("tests/fixtures/dkim/pyorg-signed.eml")).expect("fixture");
        let customer = Address {
            local: "user".into(),
            domain: "customer.test".into(),
        };
        let news = Address {
            local: "news".into(),
            domain: "pyorg.test".into(),
        };
        let cases: Vec<(&str, Arc<Authenticator>, &Address, &[u8])> = vec![
            (
                "unsigned, p=reject fails (12 KB)",
                authenticator(&dns, None),
                &customer,
                &plain,
            ),
            (
                "RSA-2048 signature verified (12 KB)",
                authenticator(&dns, None),
                &customer,
                &signed,
            ),
            (
                "python3-dkim signature verified",
                authenticator(&dns, None),
                &news,
                &pyorg,
            ),
            (
                "we sign (RSA-2048) + verify (12 KB)",
                authenticator(&dns, Some("keys-rsa")),
                &customer,
                &plain,
            ),
            (
                "we sign (Ed25519) + verify (12 KB)",
                authenticator(&dns, Some("keys-ed")),
                &customer,
                &plain,
            ),
        ];
        println!("SPF+DKIM+DMARC per message, warm caches, one task:");
        for (name, auth, sender, message) in cases {
            let check = AuthenticationCheck::new(auth);
            let (n, elapsed, symbols) =
                run(&check, sender, message, 200_000, Duration::from_secs(3)).await;
            let rate = n as f64 / elapsed.as_secs_f64();
            println!(
                "  {name:<40} {rate:>9.0} msgs/s  ({n} in {:.2}s) {}",
                elapsed.as_secs_f64(),
                symbols.join(" ")
            );
        }
        println!("DNS queries served in total: {}", dns.queries());
    });
}
