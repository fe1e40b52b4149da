//! The readiness report of a customer domain (`smtpgate readiness`, the
//! API's report) on the in-process DNS: a domain whose SPF lacks the egress
//! IP, one with a DKIM key on disk and no TXT record, one with everything
//! right, the stopped mail of the history by symbol, a resolver that never
//! answers, and the real binary.

mod common;

use common::dns::{DnsServer, Mode, Zone};
use common::{build_app, config_text, root};
use smtpgate::history::{Record, SymbolEntry};
use smtpgate::readiness::{self, Line, Report, Status};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The MTA's public IP (data only: no packet goes there). Not a loopback
/// address: hickory answers `localhost` for any 127.0.0.0/8 PTR itself.
const EGRESS: &str = "203.0.113.10";

/// Every domain's DNS: the egress IP's PTR and A, a mail host, a DNSBL that
/// lists another address, a domain blocklist that lists another domain.
const ZONE: &str = r#"
10.113.0.203.in-addr.arpa    PTR  out.customer.test
out.customer.test            A    203.0.113.10
mail.customer.test           A    127.0.0.6
66.113.0.203.bl.test         A    127.0.0.2
spammer.test.dbl.test        A    127.0.1.2

customer.test                TXT  "v=spf1 ip4:203.0.113.10 -all"
customer.test                MX   10 mail.customer.test
_dmarc.customer.test         TXT  "v=DMARC1; p=reject; rua=mailto:dmarc@customer.test"

partial.test                 TXT  "v=spf1 ip4:192.0.2.1 ~all"
partial.test                 MX   10 mail.customer.test
_dmarc.partial.test          TXT  "v=DMARC1; p=none"

unpub.test                   TXT  "v=spf1 ip4:203.0.113.10 -all"
unpub.test                   MX   10 mail.customer.test
"#;

async fn dns() -> DnsServer {
    let mut zone = Zone::parse(ZONE);
    zone.merge(Zone::load(&root().join("tests/fixtures/dkim/keys.zone")));
    DnsServer::start(zone).await
}

fn keys(dir: &str) -> PathBuf {
    root().join("tests/fixtures/dkim").join(dir)
}

/// A configuration with the egress IP, the DNSBL zones and `keys_dir`.
fn config(dns: &DnsServer, keys_dir: Option<&Path>) -> String {
    let mut extra = format!(
        "[outbound]\negress_ips = [\"{EGRESS}\"]\n\
         [dnsbl]\nclient = [{{ zone = \"bl.test\", name = \"TEST_BL\" }}]\n\
         sender = [{{ zone = \"dbl.test\", name = \"TEST_DBL\" }}]\n"
    );
    if let Some(dir) = keys_dir {
        extra.push_str(&format!("[dkim]\nkeys_dir = \"{}\"\n", dir.display()));
    }
    extra.push_str(&dns.dns_section());
    config_text("127.0.0.1:1".parse().expect("addr"), "", &extra)
}

/// (area, status, what, fix) of every line.
fn lines(report: &Report) -> Vec<(&'static str, Status, String, Option<String>)> {
    report
        .checks
        .iter()
        .map(|l: &Line| (l.area, l.status, l.what.clone(), l.fix.clone()))
        .collect()
}

fn ok(area: &'static str, what: &str) -> (&'static str, Status, String, Option<String>) {
    (area, Status::Ok, what.to_string(), None)
}

/// The TXT record of a key file, computed by openssl (not by smtpgate).
fn published_rsa(pem: &Path) -> String {
    let out = std::process::Command::new("/usr/bin/openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(pem)
        .output()
        .expect("run /usr/bin/openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "v=DKIM1; k=rsa; p={}",
        smtpgate::base64::encode(&out.stdout)
    )
}

const SPF_FAIL_WHAT: &str =
    "the SPF record of partial.test does not authorise 203.0.113.10 (spf=softfail): v=spf1 ip4:192.0.2.1 ~all";
const SPF_FAIL_FIX: &str = "TXT record at partial.test: v=spf1 ip4:192.0.2.1 ip4:203.0.113.10 ~all";

#[tokio::test]
async fn spf_without_the_egress_ip_fails_with_the_exact_record() {
    let dns = dns().await;
    let app = build_app(&config(&dns, Some(&keys("keys-rsa"))));
    let report = readiness::report(&app, "Partial.TEST.").await;
    assert_eq!(report.domain, "partial.test");
    assert_eq!(report.egress_ips, [EGRESS]);
    let keys_dir = keys("keys-rsa").display().to_string();
    assert_eq!(
        lines(&report),
        [
            (
                "spf",
                Status::Fail,
                SPF_FAIL_WHAT.to_string(),
                Some(SPF_FAIL_FIX.to_string())
            ),
            (
                "dkim",
                Status::Warn,
                format!(
                    "no DKIM key for partial.test in {keys_dir}: mail From it through us is not \
                     signed, so DMARC rests on SPF alone"
                ),
                Some(format!(
                    "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out \
                     {keys_dir}/s1._domainkey.partial.test.pem, reload smtpgate, then publish \
                     the TXT record this report shows"
                ))
            ),
            (
                "dmarc",
                Status::Warn,
                "_dmarc.partial.test: p=none, and mail through us aligns neither SPF nor DKIM: \
                 recipients deliver it, but as unauthenticated"
                    .to_string(),
                Some(
                    "authorise the egress IPs in the SPF record, or publish the DKIM key: the \
                     fixes of the spf and dkim lines"
                        .to_string()
                )
            ),
            ok("mx", "MX 10 mail.customer.test"),
            ok(
                "fcrdns",
                "203.0.113.10 -> out.customer.test -> 203.0.113.10"
            ),
            ok("dnsbl", "203.0.113.10 is not listed in bl.test"),
            ok("dnsbl", "partial.test is not listed in dbl.test"),
        ]
    );
    assert_eq!(report.worst(), Status::Fail);
}

#[tokio::test]
async fn a_dkim_key_on_disk_without_its_txt_record_fails_with_the_exact_txt() {
    let dns = dns().await;
    let dir = keys("keys-unpublished");
    let app = build_app(&config(&dns, Some(&dir)));
    let report = readiness::report(&app, "unpub.test").await;
    let record = published_rsa(&dir.join("s2._domainkey.unpub.test.pem"));
    assert_eq!(
        lines(&report)[1],
        (
            "dkim",
            Status::Fail,
            format!(
                "{} has a key for unpub.test (selector s2) but s2._domainkey.unpub.test \
                 publishes no TXT record: recipients cannot verify our signatures \
                 (dkim=permerror)",
                dir.display()
            ),
            Some(format!("TXT record at s2._domainkey.unpub.test: {record}"))
        )
    );
    // SPF aligns, so DMARC is fine; there is no DMARC record, though.
    assert_eq!(
        lines(&report)[0],
        ok(
            "spf",
            "the SPF record of unpub.test authorises 203.0.113.10: v=spf1 ip4:203.0.113.10 -all"
        )
    );
    assert_eq!(
        lines(&report)[2],
        (
            "dmarc",
            Status::Warn,
            "no DMARC record at _dmarc.unpub.test: recipients apply no policy, and large \
             mailbox providers ask bulk senders for one"
                .to_string(),
            Some(
                "TXT record at _dmarc.unpub.test: v=DMARC1; p=none; rua=mailto:postmaster@unpub.test"
                    .to_string()
            )
        )
    );
    assert_eq!(report.worst(), Status::Fail);
}

#[tokio::test]
async fn everything_right_is_all_ok() {
    let dns = dns().await;
    let app = build_app(&config(&dns, Some(&keys("keys-rsa"))));
    let report = readiness::report(&app, "customer.test").await;
    assert_eq!(
        lines(&report),
        [
            ok(
                "spf",
                "the SPF record of customer.test authorises 203.0.113.10: v=spf1 ip4:203.0.113.10 -all"
            ),
            ok(
                "dkim",
                "s1._domainkey.customer.test publishes the rsa key we sign customer.test with"
            ),
            ok(
                "dmarc",
                "_dmarc.customer.test: p=reject; mail through us aligns (SPF and DKIM)"
            ),
            ok("mx", "MX 10 mail.customer.test"),
            ok("fcrdns", "203.0.113.10 -> out.customer.test -> 203.0.113.10"),
            ok("dnsbl", "203.0.113.10 is not listed in bl.test"),
            ok("dnsbl", "customer.test is not listed in dbl.test"),
        ]
    );
    assert_eq!(report.worst(), Status::Ok);
    assert!(report.stopped.is_empty());
    assert_eq!(report.history, None);
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["checks"][0]["status"], "ok");
    assert_eq!(json["checks"][0]["fix"], serde_json::Value::Null);
    assert_eq!(json["egress_ips"][0], EGRESS);
}

#[tokio::test]
async fn listings_missing_ptr_and_null_mx_fail() {
    let dns = dns().await;
    dns.update(|z| {
        z.txt("spammer.test", "v=spf1 ip4:203.0.113.66 -all");
        z.add("spammer.test", common::dns::Entry::Mx(0, ".".into()));
    });
    let text = config(&dns, None).replace(EGRESS, "203.0.113.66");
    let app = build_app(&text);
    let report = readiness::report(&app, "spammer.test").await;
    let found = lines(&report);
    assert_eq!(found[0].1, Status::Ok, "{found:?}");
    assert_eq!(
        found[3],
        (
            "mx",
            Status::Fail,
            "spammer.test publishes a null MX (RFC 7505): it accepts no mail, so recipients \
             refuse mail from it (and so does this gateway: reject_unknown_sender_domain)"
                .to_string(),
            Some(
                "replace the null MX: publish an MX record at spammer.test: 10 <the host that \
                 receives spammer.test's mail>"
                    .to_string()
            )
        )
    );
    assert_eq!(
        found[4],
        (
            "fcrdns",
            Status::Fail,
            "203.0.113.66 has no PTR record: many recipients refuse mail from an address without \
             reverse DNS"
                .to_string(),
            Some(
                "ask the owner of 203.0.113.66 (its provider) to set its PTR record to the MTA's \
                 host name, and publish an A record of that name: 203.0.113.66"
                    .to_string()
            )
        )
    );
    assert_eq!(
        found[5],
        (
            "dnsbl",
            Status::Fail,
            "203.0.113.66 is listed in bl.test (127.0.0.2)".to_string(),
            Some(
                "find and stop what sent spam as 203.0.113.66, then ask each list's operator to \
                 remove it (their lookup page for 203.0.113.66)"
                    .to_string()
            )
        )
    );
    assert_eq!(found[6].2, "spammer.test is listed in dbl.test (127.0.1.2)");
    assert_eq!(found[6].1, Status::Fail);
}

fn record(reference: &str, from: &str, action: &str, symbols: &[(&str, bool)]) -> Record {
    Record {
        time: smtpgate::history::now(),
        reference: reference.into(),
        client_ip: "127.0.0.1".into(),
        client_name: None,
        helo: "web.customer.test".into(),
        login: None,
        from: from.into(),
        rcpts: vec!["someone@example.net".into()],
        message_id: None,
        subject: None,
        size: 100,
        action: action.into(),
        reply: String::new(),
        score: 0.0,
        threshold: 2.0,
        symbols: symbols
            .iter()
            .map(|(name, shadow)| SymbolEntry {
                name: name.to_string(),
                score: 1.0,
                options: Vec::new(),
                shadow: *shadow,
            })
            .collect(),
    }
}

#[tokio::test]
async fn stopped_mail_of_the_domain_is_counted_by_symbol() {
    let dns = dns().await;
    let app = build_app(&config(&dns, Some(&keys("keys-rsa"))));
    let records = [
        record(
            "R1",
            "a@customer.test",
            "spam (alert)",
            &[("R_SPF_FAIL", false), ("DMARC_POLICY_REJECT", false)],
        ),
        record(
            "R2",
            "b@customer.test",
            "blocked",
            &[("R_SPF_FAIL", false), ("SUBJ_ALL_CAPS", true)],
        ),
        record(
            "R3",
            "c@customer.test",
            "delivered",
            &[("R_SPF_FAIL", false)],
        ),
        record(
            "R4",
            "d@other.test",
            "spam (alert)",
            &[("R_SPF_FAIL", false)],
        ),
        record("R5", "e@customer.test", "upstream refused", &[]),
    ];
    for r in &records {
        app.history.write_now(r).await.expect("history write");
    }
    let report = readiness::report(&app, "customer.test").await;
    let got: Vec<(&str, u64)> = report
        .stopped
        .iter()
        .map(|s| (s.symbol.as_str(), s.count))
        .collect();
    assert_eq!(
        got,
        [
            ("R_SPF_FAIL", 2),
            ("DMARC_POLICY_REJECT", 1),
            ("upstream_refused", 1)
        ]
    );
    let spf = app.symbols.get("R_SPF_FAIL").expect("rule");
    assert_eq!(report.stopped[0].description, spf.description);
    assert_eq!(report.stopped[0].fix, spf.fix);
    assert_eq!(
        report.stopped[2].description,
        "stopped with no symbol (action: upstream refused)"
    );
    let text = readiness::text(&report);
    assert!(
        text.contains(&format!("\n       2  R_SPF_FAIL  {}\n", spf.description)),
        "{text}"
    );
}

#[tokio::test]
async fn a_silent_resolver_gives_warn_lines_within_the_budget() {
    let dns = dns().await;
    dns.set_mode(Mode::Silent);
    let app = build_app(&config(&dns, Some(&keys("keys-rsa"))));
    let started = Instant::now();
    let report = readiness::report(&app, "customer.test").await;
    let took = started.elapsed();
    // [dns] timeout 500ms, 1 attempt: one area waits 1.5s at most, and
    // every area waits at once.
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    let mut areas: Vec<&str> = report.checks.iter().map(|l| l.area).collect();
    areas.dedup();
    assert_eq!(areas, ["spf", "dkim", "dmarc", "mx", "fcrdns", "dnsbl"]);
    for line in &report.checks {
        assert_eq!(line.status, Status::Warn, "{line:?}");
        assert!(line.what.starts_with("not checked: "), "{line:?}");
    }
    assert_eq!(report.worst(), Status::Warn);
}

#[tokio::test]
async fn no_egress_ips_warns_instead_of_guessing() {
    let dns = dns().await;
    let text = config(&dns, Some(&keys("keys-rsa")))
        .replace(&format!("egress_ips = [\"{EGRESS}\"]"), "egress_ips = []");
    let app = build_app(&text);
    let report = readiness::report(&app, "customer.test").await;
    let what = "no [outbound] egress_ips configured: set the MTA's public IPs";
    let areas: Vec<(&str, Status)> = report
        .checks
        .iter()
        .filter(|l| l.what == what)
        .map(|l| (l.area, l.status))
        .collect();
    assert_eq!(
        areas,
        [
            ("spf", Status::Warn),
            ("fcrdns", Status::Warn),
            ("dnsbl", Status::Warn)
        ]
    );
    // DKIM still aligns, so DMARC is ok.
    assert_eq!(
        report.checks[2].what,
        "_dmarc.customer.test: p=reject; mail through us aligns (DKIM)"
    );
    assert_eq!(report.worst(), Status::Warn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_1_with_the_text() {
    let dns = dns().await;
    let dir = std::env::temp_dir().join(format!("smtpgate-readiness-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("gateway.toml");
    std::fs::write(&path, config(&dns, Some(&keys("keys-rsa")))).expect("write config");
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_smtpgate"))
                .arg("readiness")
                .args(args)
                .output()
                .expect("run smtpgate")
        })
    };
    let config_arg = path.display().to_string();
    let out = run(vec![
        "--config".into(),
        config_arg.clone(),
        "partial.test".into(),
    ])
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("readiness of partial.test (egress IPs: 203.0.113.10)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "\nfail spf    {SPF_FAIL_WHAT}\n            fix: {SPF_FAIL_FIX}\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("\nok   mx     MX 10 mail.customer.test\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "\nhistory: in the running gateway only (memory store); see the console/API\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("result: fail (1 fail, 2 warn, 4 ok)\n"),
        "{stdout}"
    );

    let out = run(vec![
        "--config".into(),
        config_arg.clone(),
        "--json".into(),
        "customer.test".into(),
    ])
    .await
    .expect("join");
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["domain"], "customer.test");
    assert_eq!(json["checks"].as_array().map(Vec::len), Some(7));
    assert!(json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .all(|c| c["status"] == "ok"));

    let out = run(vec!["--config".into(), config_arg, "not a domain".into()])
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "not a domain name: \"not a domain\" (expected a name like example.com)"
    );
    let out = run(vec![
        "--config".into(),
        "/nonexistent/gateway.toml".into(),
        "customer.test".into(),
    ])
    .await
    .expect("join");
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
