//! SPF, DKIM and DMARC predicted for the egress path, against the zone in
//! tests/fixtures/auth.zone served by the in-process DNS server: each result
//! with its exact symbols and fix hints; DKIM interop with python3-dkim; the
//! seed case (a mail.ru-like From sent through our egress) end to end.

mod common;

use common::dns::{DnsServer, Mode, Zone};
use common::sink::SinkConfig;
use common::{client::send_message, config_text, root, start, strip_received};
use smtpgate::address::Address;
use smtpgate::checks::authentication::AuthenticationCheck;
use smtpgate::checks::{Check, View};
use smtpgate::config::Config;
use smtpgate::mailauth::Authenticator;
use smtpgate::score::Hit;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const EGRESS: &str = "203.0.113.10";

async fn dns() -> DnsServer {
    let mut zone = Zone::load(&root().join("tests/fixtures/auth.zone"));
    zone.merge(Zone::load(&root().join("tests/fixtures/dkim/keys.zone")));
    DnsServer::start(zone).await
}

fn keys(dir: &str) -> PathBuf {
    root().join("tests/fixtures/dkim").join(dir)
}

/// `[outbound]` (+ optional `[dkim]`) and `[dns]` sections.
fn auth_sections(dns: &DnsServer, egress: &[&str], dkim: Option<&Path>) -> String {
    let egress: Vec<String> = egress.iter().map(|ip| format!("\"{ip}\"")).collect();
    let mut s = format!("[outbound]\negress_ips = [{}]\n", egress.join(", "));
    if let Some(dir) = dkim {
        s.push_str(&format!("[dkim]\nkeys_dir = \"{}\"\n", dir.display()));
    }
    s + &dns.dns_section()
}

fn authenticator(dns: &DnsServer, egress: &[&str], dkim: Option<&Path>) -> Arc<Authenticator> {
    let text = config_text(
        "127.0.0.1:1".parse().expect("addr"),
        "",
        &auth_sections(dns, egress, dkim),
    );
    let config = Config::from_text(Path::new("test.toml"), &text).expect("config");
    Arc::new(Authenticator::new(&config).expect("authenticator"))
}

fn address(text: &str) -> Address {
    match text.rsplit_once('@') {
        Some((local, domain)) => Address {
            local: local.to_string(),
            domain: domain.to_string(),
        },
        None => Address::null(),
    }
}

/// Runs the DATA check as the session would.
async fn check(auth: &Arc<Authenticator>, helo: &str, sender: &str, message: &[u8]) -> Vec<Hit> {
    let sender = address(sender);
    let view = View {
        client_ip: "127.0.0.1".parse::<IpAddr>().expect("ip"),
        helo,
        tls: false,
        login: None,
        trusted: true,
        sender: Some(&sender),
        recipient: None,
        recipients: &[],
        message: Some(message),
        parsed: None,
        fetched: smtpgate::checks::Fetched::none(),
    };
    AuthenticationCheck::new(Arc::clone(auth))
        .check(&view)
        .await
        .expect("check")
}

fn names(hits: &[Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.name.as_str()).collect()
}

fn hit<'a>(hits: &'a [Hit], name: &str) -> &'a Hit {
    hits.iter()
        .find(|h| h.name == name)
        .unwrap_or_else(|| panic!("no {name} in {hits:?}"))
}

fn message(from: &str) -> Vec<u8> {
    format!(
        "From: Sender <{from}>\r\nTo: someone@example.net\r\nSubject: Monthly report\r\n\
         Date: Mon, 23 Nov 2026 04:00:00 +0000\r\nMessage-ID: <m1@{}>\r\n\r\nHello,\r\nthe report.\r\n",
        from.rsplit_once('@').map_or("x.test", |(_, d)| d)
    )
    .into_bytes()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[tokio::test]
async fn spf_results_for_the_egress_ip() {
    let dns = dns().await;
    let auth = authenticator(&dns, &[EGRESS], None);
    let fix_add = |d: &str| format!("fix: add ip4:203.0.113.10 to the SPF record of {d}");
    let cases: Vec<(&str, &str, Vec<String>, &str)> = vec![
        (
            "pass.test",
            "R_SPF_ALLOW",
            s(&["pass.test", "mailfrom", "ip4:203.0.113.10=pass"]),
            "DMARC_POLICY_ALLOW",
        ),
        (
            "fail.test",
            "R_SPF_FAIL",
            vec![
                "fail.test".into(),
                "mailfrom".into(),
                "ip4:203.0.113.10=fail".into(),
                fix_add("fail.test"),
            ],
            "DMARC_NA",
        ),
        (
            "softfail.test",
            "R_SPF_SOFTFAIL",
            vec![
                "softfail.test".into(),
                "mailfrom".into(),
                "ip4:203.0.113.10=softfail".into(),
                fix_add("softfail.test"),
            ],
            "DMARC_NA",
        ),
        (
            "neutral.test",
            "R_SPF_NEUTRAL",
            vec![
                "neutral.test".into(),
                "mailfrom".into(),
                "ip4:203.0.113.10=neutral".into(),
                fix_add("neutral.test"),
            ],
            "DMARC_NA",
        ),
        (
            "na.test",
            "R_SPF_NA",
            s(&[
                "na.test",
                "mailfrom",
                "ip4:203.0.113.10=none",
                "fix: publish a TXT record at na.test: \"v=spf1 ip4:203.0.113.10 -all\"",
            ]),
            "DMARC_NA",
        ),
        (
            "perm.test",
            "R_SPF_PERMFAIL",
            s(&[
                "perm.test",
                "mailfrom",
                "ip4:203.0.113.10=permerror",
                "include:na.test: na.test publishes no SPF record",
                "fix: repair the SPF record of perm.test: include:na.test: na.test publishes no SPF record",
            ]),
            "DMARC_NA",
        ),
        (
            "cidr.test",
            "R_SPF_PERMFAIL",
            s(&[
                "cidr.test",
                "mailfrom",
                "ip4:203.0.113.10=permerror",
                "ip4:203.0.113.0/33: CIDR length over 32",
                "fix: repair the SPF record of cidr.test: ip4:203.0.113.0/33: CIDR length over 32",
            ]),
            "DMARC_NA",
        ),
        (
            "twice.test",
            "R_SPF_PERMFAIL",
            s(&[
                "twice.test",
                "mailfrom",
                "ip4:203.0.113.10=permerror",
                "ip4:192.0.2.1/64: CIDR length over 32 (in the SPF record of broken.twice.test, reached by include:broken.twice.test)",
                "fix: repair the SPF record of twice.test: ip4:192.0.2.1/64: CIDR length over 32 (in the SPF record of broken.twice.test, reached by include:broken.twice.test)",
            ]),
            "DMARC_NA",
        ),
        (
            "timeout.test",
            "R_SPF_DNSFAIL",
            s(&[
                "timeout.test",
                "mailfrom",
                "ip4:203.0.113.10=temperror",
                "fix: make the nameservers of timeout.test answer: the SPF lookup failed",
            ]),
            "DMARC_NA",
        ),
    ];
    for (domain, symbol, options, dmarc) in cases {
        let sender = format!("user@{domain}");
        let hits = check(&auth, "client.example.test", &sender, &message(&sender)).await;
        assert_eq!(
            names(&hits),
            [symbol, "R_DKIM_NA", dmarc],
            "{domain}: {hits:?}"
        );
        assert_eq!(hit(&hits, symbol).options, options, "{domain}");
    }
}

#[tokio::test]
async fn spf_servfail_is_a_dns_failure() {
    let dns = dns().await;
    let auth = authenticator(&dns, &[EGRESS], None);
    let hits = check(
        &auth,
        "h.test",
        "user@dnsfail.test",
        &message("user@dnsfail.test"),
    )
    .await;
    assert_eq!(hits[0].name, "R_SPF_DNSFAIL", "{hits:?}");
    assert_eq!(hits[0].options[2], "ip4:203.0.113.10=temperror");
}

#[tokio::test]
async fn null_sender_uses_the_helo_identity() {
    let dns = dns().await;
    let auth = authenticator(&dns, &[EGRESS], None);
    let hits = check(&auth, "mta.pass.test", "", &message("bounce@pass.test")).await;
    assert_eq!(
        hit(&hits, "R_SPF_ALLOW").options,
        s(&["mta.pass.test", "helo", "ip4:203.0.113.10=pass"])
    );
}

#[tokio::test]
async fn without_egress_ips_the_client_ip_is_checked() {
    let dns = dns().await;
    let msg = message("user@clientonly.test");
    let own = authenticator(&dns, &[], None);
    let hits = check(&own, "h.test", "user@clientonly.test", &msg).await;
    assert_eq!(hits[0].name, "R_SPF_ALLOW");
    assert_eq!(hits[0].options[2], "ip4:127.0.0.1=pass");
    // Through an egress IP the same sender fails: the worst IP counts and
    // every unauthorised one is named.
    let egress = authenticator(&dns, &["127.0.0.1", EGRESS, "2001:db8::25"], None);
    let hits = check(&egress, "h.test", "user@clientonly.test", &msg).await;
    assert_eq!(hits[0].name, "R_SPF_FAIL");
    assert_eq!(
        hits[0].options,
        s(&[
            "clientonly.test",
            "mailfrom",
            "ip4:127.0.0.1=pass",
            "ip4:203.0.113.10=fail",
            "ip6:2001:db8::25=fail",
            "fix: add ip4:203.0.113.10 ip6:2001:db8::25 to the SPF record of clientonly.test",
        ])
    );
}

#[tokio::test]
async fn dmarc_policies() {
    let dns = dns().await;
    let auth = authenticator(&dns, &[EGRESS], None);
    for (domain, symbol, policy) in [
        ("mailru.test", "DMARC_POLICY_REJECT", Some("p=reject")),
        (
            "quarantine.test",
            "DMARC_POLICY_QUARANTINE",
            Some("p=quarantine"),
        ),
        ("pnone.test", "DMARC_POLICY_SOFTFAIL", Some("p=none")),
        ("pass.test", "DMARC_POLICY_ALLOW", None),
        ("na.test", "DMARC_NA", None),
        ("dmarcfail.test", "DMARC_DNSFAIL", None),
    ] {
        let sender = format!("user@{domain}");
        let hits = check(&auth, "h.test", &sender, &message(&sender)).await;
        let dmarc = hits.last().expect("dmarc hit");
        assert_eq!(dmarc.name, symbol, "{domain}: {hits:?}");
        assert_eq!(dmarc.subject(), domain);
        assert_eq!(dmarc.options.get(1).map(String::as_str), policy, "{domain}");
    }
}

#[tokio::test]
async fn seed_case_mailru_from_through_our_egress_is_rejected_with_a_fix() {
    let dns = dns().await;
    let auth = authenticator(&dns, &[EGRESS], None);
    // The customer's envelope is its own domain; the From is the mailbox
    // provider's, whose SPF does not list our egress.
    let hits = check(
        &auth,
        "web1.customer.test",
        "user@customer.test",
        &message("ivan@mailru.test"),
    )
    .await;
    assert_eq!(
        names(&hits),
        ["R_SPF_FAIL", "R_DKIM_NA", "DMARC_POLICY_REJECT"]
    );
    assert_eq!(
        hit(&hits, "DMARC_POLICY_REJECT").options,
        s(&[
            "mailru.test",
            "p=reject",
            "fix: send From an address of your own domain, or sign with DKIM for mailru.test (a [dkim] key <selector>._domainkey.mailru.test.pem and its TXT record at <selector>._domainkey.mailru.test)",
        ])
    );
    // From its own domain, p=reject, egress not in its SPF: the hint names
    // the exact SPF change.
    let hits = check(
        &auth,
        "web1.customer.test",
        "user@customer.test",
        &message("user@customer.test"),
    )
    .await;
    assert_eq!(
        names(&hits),
        ["R_SPF_FAIL", "R_DKIM_NA", "DMARC_POLICY_REJECT"]
    );
    assert_eq!(
        hit(&hits, "DMARC_POLICY_REJECT").options[2],
        "fix: add ip4:203.0.113.10 to the SPF record of customer.test, or sign with DKIM for customer.test"
    );
    // With smtpgate signing for customer.test the prediction passes.
    let signing = authenticator(&dns, &[EGRESS], Some(&keys("keys-rsa")));
    let hits = check(
        &signing,
        "web1.customer.test",
        "user@customer.test",
        &message("user@customer.test"),
    )
    .await;
    assert_eq!(
        names(&hits),
        ["R_SPF_FAIL", "R_DKIM_ALLOW", "DMARC_POLICY_ALLOW"]
    );
    assert_eq!(hit(&hits, "R_DKIM_ALLOW").options, s(&["customer.test:s1"]));
}

#[tokio::test]
async fn unpublished_selector_hint_gives_the_record() {
    let dns = dns().await;
    let auth = authenticator(&dns, &[EGRESS], Some(&keys("keys-unpublished")));
    let hits = check(
        &auth,
        "h.test",
        "user@unpub.test",
        &message("user@unpub.test"),
    )
    .await;
    assert_eq!(
        names(&hits),
        ["R_SPF_FAIL", "R_DKIM_PERMFAIL", "DMARC_POLICY_REJECT"]
    );
    let dkim = hit(&hits, "R_DKIM_PERMFAIL");
    assert_eq!(dkim.options[0], "unpub.test:s2");
    assert!(
        dkim.options[1].starts_with(
            "fix: publish selector s2 at s2._domainkey.unpub.test: TXT \"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"
        ),
        "{dkim:?}"
    );
    let dmarc = &hit(&hits, "DMARC_POLICY_REJECT").options[2];
    assert!(
        dmarc.starts_with(
            "fix: publish selector s2 at s2._domainkey.unpub.test: TXT \"v=DKIM1; k=rsa; p="
        ) && dmarc.ends_with("\" (smtpgate signs for unpub.test)"),
        "{dmarc}"
    );
}

/// Signs `message` with the keys of `dir` through smtpgate (mail-auth).
fn signed_by_gateway(dns: &DnsServer, dir: &str, message: &[u8]) -> Vec<u8> {
    let signer = authenticator(dns, &[EGRESS], Some(&keys(dir)));
    let header = signer.sign(message).expect("a key for the From domain");
    assert!(header.starts_with("DKIM-Signature: "), "{header}");
    assert!(header.ends_with("\r\n"));
    [header.as_bytes(), message].concat()
}

#[tokio::test]
async fn dkim_signed_with_mail_auth_rsa_and_ed25519_verify() {
    let dns = dns().await;
    let verifier = authenticator(&dns, &[EGRESS], None);
    for (dir, signature) in [
        ("keys-rsa", "customer.test:s1"),
        ("keys-ed", "customer.test:ed1"),
    ] {
        let signed = signed_by_gateway(&dns, dir, &message("user@customer.test"));
        let hits = check(&verifier, "h.test", "user@customer.test", &signed).await;
        assert_eq!(
            names(&hits),
            ["R_SPF_FAIL", "R_DKIM_ALLOW", "DMARC_POLICY_ALLOW"],
            "{dir}"
        );
        assert_eq!(hit(&hits, "R_DKIM_ALLOW").options, s(&[signature]));
    }
}

#[tokio::test]
async fn dkim_signed_by_python3_dkim_verifies_and_a_changed_body_fails() {
    let dns = dns().await;
    let verifier = authenticator(&dns, &[EGRESS], None);
    let fixture =
        std::fs::read(root().join("tests/fixtures/dkim/pyorg-signed.eml")).expect("fixture");
    let hits = check(&verifier, "h.test", "news@pyorg.test", &fixture).await;
    assert_eq!(
        names(&hits),
        ["R_SPF_FAIL", "R_DKIM_ALLOW", "DMARC_POLICY_ALLOW"]
    );
    assert_eq!(hit(&hits, "R_DKIM_ALLOW").options, s(&["pyorg.test:py"]));

    let text = String::from_utf8(fixture).expect("ascii");
    let changed = text.replace("signed by dkimpy", "signed by someone else");
    assert_ne!(changed, text);
    let hits = check(&verifier, "h.test", "news@pyorg.test", changed.as_bytes()).await;
    assert_eq!(
        names(&hits),
        ["R_SPF_FAIL", "R_DKIM_REJECT", "DMARC_POLICY_REJECT"]
    );
    let reject = hit(&hits, "R_DKIM_REJECT");
    assert_eq!(reject.options[0], "pyorg.test:py");
    assert!(
        reject.options[1].starts_with("fix: signature d=pyorg.test s=py does not verify ("),
        "{reject:?}"
    );
}

#[tokio::test]
async fn dkim_unknown_selector_is_permfail_and_key_servfail_is_tempfail() {
    let dns = dns().await;
    let verifier = authenticator(&dns, &[EGRESS], None);
    let signed = signed_by_gateway(&dns, "keys-unpublished", &message("user@unpub.test"));
    let hits = check(&verifier, "h.test", "user@unpub.test", &signed).await;
    assert_eq!(
        names(&hits),
        ["R_SPF_FAIL", "R_DKIM_PERMFAIL", "DMARC_POLICY_REJECT"]
    );
    assert_eq!(hit(&hits, "R_DKIM_PERMFAIL").options[0], "unpub.test:s2");

    // The customer.test key under selector "tk", whose lookup SERVFAILs.
    let dir = std::env::temp_dir().join(format!("smtpgate-dkim-tk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    std::fs::copy(
        keys("keys-rsa").join("s1._domainkey.customer.test.pem"),
        dir.join("tk._domainkey.customer.test.pem"),
    )
    .expect("copy key");
    let signer = authenticator(&dns, &[EGRESS], Some(&dir));
    let msg = message("user@customer.test");
    let signed = [signer.sign(&msg).expect("signature").as_bytes(), &msg].concat();
    std::fs::remove_dir_all(&dir).expect("rm tmp dir");
    let hits = check(&verifier, "h.test", "user@customer.test", &signed).await;
    assert_eq!(hits[1].name, "R_DKIM_TEMPFAIL", "{hits:?}");
    assert_eq!(hits[1].options[0], "customer.test:tk");
}

#[tokio::test]
async fn silent_dns_server_gives_tempfail_symbols() {
    let dns = dns().await;
    let auth = authenticator(&dns, &[EGRESS], None);
    let signed = signed_by_gateway(&dns, "keys-rsa", &message("user@customer.test"));
    dns.set_mode(Mode::Silent);
    let hits = check(&auth, "h.test", "user@customer.test", &signed).await;
    assert_eq!(
        names(&hits),
        ["R_SPF_DNSFAIL", "R_DKIM_TEMPFAIL", "DMARC_DNSFAIL"],
        "{hits:?}"
    );
}

#[tokio::test]
async fn evaluation_past_its_budget_is_a_check_error() {
    let dns = dns().await;
    let auth = authenticator(&dns, &[EGRESS], None);
    // 500ms x 1 attempt x 8 lookups.
    assert_eq!(auth.budget(), Duration::from_secs(4));
    // Ten signatures with a valid body hash under different selectors:
    // each key lookup waits for the silent server.
    let signed = signed_by_gateway(&dns, "keys-rsa", &message("user@customer.test"));
    let text = String::from_utf8(signed).expect("ascii");
    let (signature, rest) = text.split_at(text.find("\r\nFrom: ").expect("end of signature") + 2);
    let mut many = String::new();
    for i in 0..10 {
        many.push_str(&signature.replace("s=s1;", &format!("s=x{i};")));
    }
    many.push_str(rest);
    assert!(many.contains("s=x9;"), "{many}");
    dns.set_mode(Mode::Silent);
    let sender = address("user@customer.test");
    let view = View {
        client_ip: "127.0.0.1".parse::<IpAddr>().expect("ip"),
        helo: "h.test",
        tls: false,
        login: None,
        trusted: true,
        sender: Some(&sender),
        recipient: None,
        recipients: &[],
        message: Some(many.as_bytes()),
        parsed: None,
        fetched: smtpgate::checks::Fetched::none(),
    };
    let started = std::time::Instant::now();
    let error = AuthenticationCheck::new(Arc::clone(&auth))
        .check(&view)
        .await
        .expect_err("over budget");
    assert_eq!(
        error.to_string(),
        "authentication: SPF/DKIM/DMARC took longer than 4s"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

// ---- end to end through the gateway --------------------------------------

async fn gateway(dns: &DnsServer, dkim: Option<&Path>) -> (common::sink::Sink, common::Gateway) {
    let sink = common::sink::Sink::start(SinkConfig::default()).await;
    let gw = start(&config_text(
        sink.addr,
        "",
        &auth_sections(dns, &[EGRESS], dkim),
    ))
    .await;
    (sink, gw)
}

fn wire(message: &[u8]) -> Vec<u8> {
    [message, b".\r\n"].concat()
}

#[tokio::test]
async fn seed_case_end_to_end_is_spam_and_signing_makes_it_pass() {
    let dns = dns().await;
    let (sink, gw) = gateway(&dns, None).await;
    let reply = send_message(
        gw.addr,
        "user@customer.test",
        &["rcpt@example.net"],
        &wire(&message("ivan@mailru.test")),
    )
    .await;
    assert_eq!(
        (reply.code, reply.enhanced().as_deref()),
        (550, Some("5.7.1")),
        "{reply:?}"
    );
    assert!(
        reply.text().starts_with(
            "5.7.1 SPAM alert: score 6.00 (must be lower 2.00): DMARC_POLICY_REJECT(5.00) R_SPF_FAIL(1.00) R_DKIM_NA(0.00) ref="
        ),
        "{reply:?}"
    );
    assert!(sink.messages().is_empty());

    // The customer's own From, signed by smtpgate: passes, and the MTA gets
    // our Authentication-Results and DKIM-Signature after Received.
    let keys_dir = keys("keys-rsa");
    let (sink, gw) = gateway(&dns, Some(&keys_dir)).await;
    // A forged Authentication-Results claiming our authserv-id is dropped.
    let original = message("user@customer.test");
    let forged = [
        b"Authentication-Results: gw.example.test; dmarc=pass header.from=customer.test\r\n"
            .as_slice(),
        &original,
    ]
    .concat();
    let reply = send_message(
        gw.addr,
        "user@customer.test",
        &["rcpt@example.net"],
        &wire(&forged),
    )
    .await;
    assert_eq!(
        (reply.code, reply.enhanced().as_deref()),
        (250, Some("2.0.0")),
        "{reply:?}"
    );
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    let after_received = common::after_header(&msgs[0].data);
    let text = String::from_utf8_lossy(after_received).to_string();
    let expected_ar = "Authentication-Results: gw.example.test;\r\n\tspf=fail smtp.mailfrom=customer.test;\r\n\tdkim=pass header.d=customer.test header.s=s1;\r\n\tdmarc=pass header.from=customer.test\r\nDKIM-Signature: ";
    assert!(text.starts_with(expected_ar), "{text}");
    assert!(!text.contains("X-Spamd-Result"), "off by default: {text}");
    assert!(
        after_received.ends_with(&original),
        "message unchanged after our headers"
    );
    assert_eq!(text.matches("Authentication-Results:").count(), 1, "{text}");
    assert_eq!(
        gw.handle.app().auth.signatures_made(),
        1,
        "the signature made to predict DMARC is the one delivered"
    );

    // The other implementation (python3-dkim) verifies our signature, with
    // the key from the fixture zone.
    let delivered = dir_file("delivered.eml", after_received);
    let out = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(DKIMPY_VERIFY)
        .arg(&delivered)
        .arg(root().join("tests/fixtures/dkim/keys.zone"))
        .output()
        .expect("run /usr/bin/python3 (apt-get install python3-dkim)");
    let _ = std::fs::remove_file(&delivered);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "dkimpy: pass",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Verifies argv[1] with dkimpy, answering its DNS from the zone file argv[2].
const DKIMPY_VERIFY: &str = r#"
import sys, re, dkim
records = {}
for line in open(sys.argv[2]):
    m = re.match(r'^(\S+)\s+TXT\s+(.*)$', line)
    if m:
        records[m.group(1) + '.'] = ''.join(re.findall(r'"([^"]*)"', m.group(2))).encode()
def dnsfunc(name, timeout=5):
    return records.get(name.decode() if isinstance(name, bytes) else name)
ok = dkim.verify(open(sys.argv[1], 'rb').read(), dnsfunc=dnsfunc)
print('dkimpy: pass' if ok else 'dkimpy: fail')
"#;

fn dir_file(name: &str, data: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("smtpgate-{}-{name}", std::process::id()));
    std::fs::write(&path, data).expect("write temp file");
    path
}

#[tokio::test]
async fn spf_temperror_is_451_4_4_3_never_5xx() {
    let dns = dns().await;
    let (sink, gw) = gateway(&dns, None).await;
    let reply = send_message(
        gw.addr,
        "user@timeout.test",
        &["rcpt@example.net"],
        &wire(&message("user@timeout.test")),
    )
    .await;
    assert_eq!(
        (reply.code, reply.enhanced().as_deref()),
        (451, Some("4.4.3")),
        "{reply:?}"
    );
    assert_eq!(
        reply.text(),
        "4.4.3 Temporary DNS failure checking timeout.test, try again later (R_SPF_DNSFAIL)"
    );
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn without_outbound_section_nothing_is_added() {
    let dns = dns().await;
    let sink = common::sink::Sink::start(SinkConfig::default()).await;
    let gw = start(&config_text(sink.addr, "", &dns.dns_section())).await;
    let original = message("user@customer.test");
    let reply = send_message(
        gw.addr,
        "user@customer.test",
        &["rcpt@example.net"],
        &wire(&original),
    )
    .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(strip_received(&msgs[0].data), original.as_slice());
    assert!(
        !String::from_utf8_lossy(&msgs[0].data).contains("Authentication-Results:"),
        "nothing to report, no Authentication-Results: none"
    );
    assert_eq!(dns.queries(), 0, "no DNS without [outbound]");
}

// ---- DMARC: failures above the author domain ------------------------------

#[tokio::test]
async fn dmarc_parent_refused_or_servfail_lets_the_author_record_decide() {
    let dns = dns().await;
    let auth = authenticator(&dns, &[EGRESS], None);
    for (domain, expected) in [
        // _dmarc.refused.test answers REFUSED, _dmarc.servfail.test
        // SERVFAIL: the author domain's own p=reject decides.
        (
            "shop.refused.test",
            ["R_SPF_ALLOW", "R_DKIM_NA", "DMARC_POLICY_ALLOW"],
        ),
        (
            "shop.servfail.test",
            ["R_SPF_ALLOW", "R_DKIM_NA", "DMARC_POLICY_ALLOW"],
        ),
        (
            "fail.refused.test",
            ["R_SPF_FAIL", "R_DKIM_NA", "DMARC_POLICY_REJECT"],
        ),
        // Without a record of its own the failed parent could have held
        // the policy: a temporary failure.
        (
            "own.refused.test",
            ["R_SPF_ALLOW", "R_DKIM_NA", "DMARC_DNSFAIL"],
        ),
        // The author domain's own lookup fails (SERVFAIL).
        (
            "dmarcfail.test",
            ["R_SPF_ALLOW", "R_DKIM_NA", "DMARC_DNSFAIL"],
        ),
    ] {
        let sender = format!("user@{domain}");
        let hits = check(&auth, "h.test", &sender, &message(&sender)).await;
        assert_eq!(names(&hits), expected, "{domain}: {hits:?}");
        assert_eq!(hits[2].subject(), domain, "{domain}");
    }
    let sender = "user@fail.refused.test";
    let hits = check(&auth, "h.test", sender, &message(sender)).await;
    assert_eq!(
        hit(&hits, "DMARC_POLICY_REJECT").options,
        s(&[
            "fail.refused.test",
            "p=reject",
            "fix: add ip4:203.0.113.10 to the SPF record of fail.refused.test, or sign with DKIM for fail.refused.test",
        ])
    );
}

#[tokio::test]
async fn dmarc_parent_failure_over_smtp_author_record_decides_author_servfail_is_451() {
    let dns = dns().await;
    let (sink, gw) = gateway(&dns, None).await;
    // Parent REFUSED, the author's p=reject passes with aligned SPF.
    let reply = send_message(
        gw.addr,
        "user@shop.refused.test",
        &["rcpt@example.net"],
        &wire(&message("user@shop.refused.test")),
    )
    .await;
    assert_eq!(
        (reply.code, reply.enhanced().as_deref()),
        (250, Some("2.0.0")),
        "{reply:?}"
    );
    let msgs = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(common::after_header(&msgs[0].data)).to_string();
    assert!(
        text.starts_with(
            "Authentication-Results: gw.example.test;\r\n\tspf=pass smtp.mailfrom=shop.refused.test;\r\n\tdkim=none;\r\n\tdmarc=pass header.from=shop.refused.test\r\n"
        ),
        "{text}"
    );
    // Parent REFUSED, SPF fails: the author's p=reject refuses it.
    let reply = send_message(
        gw.addr,
        "user@fail.refused.test",
        &["rcpt@example.net"],
        &wire(&message("user@fail.refused.test")),
    )
    .await;
    assert_eq!(
        (reply.code, reply.enhanced().as_deref()),
        (550, Some("5.7.1")),
        "{reply:?}"
    );
    assert!(
        reply.text().starts_with(
            "5.7.1 SPAM alert: score 6.00 (must be lower 2.00): DMARC_POLICY_REJECT(5.00) R_SPF_FAIL(1.00) R_DKIM_NA(0.00) ref="
        ),
        "{reply:?}"
    );
    // The author domain's own _dmarc SERVFAILs, and a parent failure
    // without an own record: tempfail, never 5xx.
    for domain in ["dmarcfail.test", "own.refused.test"] {
        let reply = send_message(
            gw.addr,
            &format!("user@{domain}"),
            &["rcpt@example.net"],
            &wire(&message(&format!("user@{domain}"))),
        )
        .await;
        assert_eq!(
            (reply.code, reply.enhanced().as_deref()),
            (451, Some("4.4.3")),
            "{domain}: {reply:?}"
        );
        assert_eq!(
            reply.text(),
            format!(
                "4.4.3 Temporary DNS failure checking {domain}, try again later (DMARC_DNSFAIL)"
            )
        );
    }
    assert_eq!(sink.messages().len(), 1);
}
