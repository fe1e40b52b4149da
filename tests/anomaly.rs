//! The anomaly hold through the gateway, with a short window instead of an
//! hour: a login with a baseline of 3 messages a window bursts 200 across
//! two gateways sharing one Redis; it is held at the floor (50), later
//! messages get the exact 451 4.7.1 … (ANOMALY_HOLD), one report reaches
//! the abuse desk and one alert the customer, `smtpgate check` shows the
//! hold, `smtpgate hold list` lists it and `smtpgate hold release` lets the
//! next message through. A login growing within the factor is never held,
//! nor a trusted one with the same jump that holds another.

mod common;

use common::client::Client;
use common::redis::RedisServer;
use common::sink::{Sink, SinkConfig, SinkMessage};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PASSWD: &str = "burst@example.test:{PLAIN}secret\nslow@example.test:{PLAIN}secret\n\
                      jump@example.test:{PLAIN}secret\ntrusted@example.test:{PLAIN}secret\n";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "smtpgate-anomaly-{name}-{}-{}",
        std::process::id(),
        common::redis::free_port()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A gateway configuration: AUTH without TLS on loopback, `store` and
/// `anomaly` as given.
fn config(sink: SocketAddr, dir: &Path, store: &str, anomaly: &str) -> String {
    let passwd = dir.join("passwd");
    std::fs::write(&passwd, PASSWD).expect("passwd");
    format!(
        "[server]\nhostname = \"gw.example.test\"\n\
         listen = [{{ address = \"127.0.0.1:0\", trusted_cleartext = true }}]\n\
         [upstream]\naddress = \"{sink}\"\ntimeout = \"5s\"\nconnect_timeout = \"2s\"\n\
         [scoring]\nspam_action = \"reject\"\nrules_dir = \"{}\"\n\
         [relay]\nlocal_domains = [\"example.test\"]\n\
         [auth]\npasswd_file = \"{}\"\n{store}\n[anomaly]\n{anomaly}\n",
        common::root().join("rules").display(),
        passwd.display()
    )
}

/// Waits for the start of the next window of `secs` (plus 150 ms).
async fn next_window(secs: u64) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let ms = now.as_millis() as u64;
    let next = (ms / (secs * 1000) + 1) * secs * 1000 + 150;
    tokio::time::sleep(Duration::from_millis(next - ms)).await;
}

async fn login(addr: SocketAddr, user: &str) -> Client {
    let mut c = Client::connect(addr).await;
    c.read_reply().await;
    c.expect("EHLO web.example.test", 250).await;
    let token = smtpgate::base64::encode(format!("\0{user}\0secret").as_bytes());
    c.expect(&format!("AUTH PLAIN {token}"), 235).await;
    c
}

/// One message from `user` to `rcpt`: `Ok(reference)` when delivered,
/// `Err(reply)` when MAIL is refused.
async fn send(c: &mut Client, user: &str, rcpt: &str, n: usize) -> Result<String, String> {
    let r = c.cmd(&format!("MAIL FROM:<{user}>")).await;
    if r.code != 250 {
        return Err(format!("{} {}", r.code, r.text()));
    }
    c.expect(&format!("RCPT TO:<{rcpt}>"), 250).await;
    c.expect("DATA", 354).await;
    c.send(
        format!(
            "From: <{user}>\r\nTo: <{rcpt}>\r\nSubject: Order {n}\r\n\
             Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m{n}.{user}>\r\n\r\n\
             Your order {n} has shipped.\r\n.\r\n"
        )
        .as_bytes(),
    )
    .await;
    let r = c.read_reply().await;
    assert_eq!(r.code, 250, "{r:?}");
    Ok(r.text().rsplit("ref=").next().unwrap().trim().to_string())
}

/// Our own messages (`MAIL FROM:<>`) to `to`.
fn own_to(sink: &Sink, to: &str) -> Vec<SinkMessage> {
    sink.messages()
        .into_iter()
        .filter(|m| m.mail_from.is_empty() && m.rcpts == [to])
        .collect()
}

/// The decoded text of a one-part message, and its Subject.
fn text_of(m: &SinkMessage) -> (String, String) {
    let parsed = mail_parser::MessageParser::default()
        .parse(&m.data[..])
        .expect("a message");
    (
        parsed.subject().unwrap_or_default().to_string(),
        parsed
            .body_text(0)
            .unwrap_or_default()
            .replace("\r\n", "\n"),
    )
}

/// The number right after the first `marker` in `text`.
fn number_after(text: &str, marker: &str) -> usize {
    text.split(marker)
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {marker:?}: {text}"))
}

fn smtpgate(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smtpgate"))
        .args(args)
        .env("SMTPGATE_LOG", "error")
        .output()
        .expect("smtpgate runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_held_at_the_floor_on_both_gateways_reported_once_and_released() {
    let redis = RedisServer::start();
    let sink = Sink::start(SinkConfig::default()).await;
    let dir = temp_dir("burst");
    let store = format!(
        "[store]\nbackend = \"redis\"\nredis_url = \"{}\"\n",
        redis.url()
    );
    let anomaly = "enabled = true\nwindow = \"10s\"\nmin_messages = 50\nfactor = 10.0\n\
                   max_new_recipient_domains = 0\nhold_for = \"1h\"\n\
                   notify = [\"abuse@example.test\"]\ntrusted_identities = [\"trusted@example.test\"]";
    let text = config(sink.addr, &dir, &store, anomaly);
    let path = dir.join("gateway.toml");
    std::fs::write(&path, &text).unwrap();
    let path_arg = path.display().to_string();
    let (a, b) = (common::start(&text).await, common::start(&text).await);
    let user = "burst@example.test";

    // Its usual: 3 messages in one window.
    next_window(10).await;
    let mut ca = login(a.addr, user).await;
    for n in 0..3 {
        send(&mut ca, user, &format!("client{n}@usual.test"), n)
            .await
            .expect("delivered");
    }
    // The burst, in the next window, alternating between the gateways.
    next_window(10).await;
    let mut cb = login(b.addr, user).await;
    let (mut delivered, mut refused) = (Vec::new(), Vec::new());
    for n in 0..200 {
        let c = if n % 2 == 0 { &mut ca } else { &mut cb };
        match send(c, user, &format!("r{n}@d{n}.test"), n + 3).await {
            Ok(reference) => {
                assert!(refused.is_empty(), "message {n} passed after a hold");
                delivered.push(reference);
            }
            Err(reply) => refused.push(reply),
        }
    }
    assert!(
        (50..=110).contains(&delivered.len()),
        "held after the floor of 50, promptly: {} delivered",
        delivered.len()
    );
    assert_eq!(refused.len(), 200 - delivered.len());
    // The hold's numbers: N messages to N domains, N the count at which the
    // node that placed it crossed the floor (both nodes count into one
    // baseline: with a lagging writer the other node's count may be ahead).
    let first = &refused[0];
    let n = number_after(first, "held for review: ");
    assert!((50..=delivered.len()).contains(&n), "{first}");
    // Distinct domains (one per message here) as counted when it crossed:
    // the other node's last batch may have its messages counted and its
    // domains not yet (a second round trip), so at most N, and most.
    let d = number_after(first, " to ");
    assert!((n / 2..=n).contains(&d), "{first}");
    let reference = first.rsplit("ref=").next().unwrap().to_string();
    assert!(
        delivered.contains(&reference),
        "the ref is the crossing transaction: {first}"
    );
    let expected = format!(
        "451 4.7.1 <{user}> held for review: {n} messages in the last 10s to {d} domains; \
         usually 3 per 10s (ANOMALY_HOLD) ref={reference}"
    );
    assert_eq!(first, &expected);
    assert!(
        refused.iter().all(|r| r == &expected),
        "every later message the same 451"
    );

    // The second gateway holds it too, for a new session.
    let mut fresh = login(b.addr, user).await;
    assert_eq!(
        send(&mut fresh, user, "x@later.test", 900).await,
        Err(expected.clone())
    );

    // One report to the abuse desk, one alert to the customer.
    let deadline = Instant::now() + Duration::from_secs(15);
    while own_to(&sink, "abuse@example.test").is_empty() || own_to(&sink, user).is_empty() {
        assert!(Instant::now() < deadline, "report and alert within 15 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reports = own_to(&sink, "abuse@example.test");
    let alerts = own_to(&sink, user);
    assert_eq!((reports.len(), alerts.len()), (1, 1), "exactly one of each");
    let (subject, report) = text_of(&reports[0]);
    let reason = format!("{n} messages in the last 10s to {d} domains; usually 3 per 10s");
    assert_eq!(subject, format!("Anomaly hold: {user} - {reason}"));
    for needle in [
        format!("smtpgate held {user} for review.\n"),
        format!("  Reason:     {reason}\n"),
        "  Rule:       volume: more than 10 x its usual 3 per 10s (30), past the floor of 50 messages\n".into(),
        format!("  was alerted at {user} (what we saw, what to do, to ask support).\n"),
        format!("    {expected}\n"),
        format!("  smtpgate hold release {user}\n"),
        format!("  smtpgate history --login {user} --since 1h\n"),
    ] {
        assert!(report.contains(&needle), "report lacks {needle:?}:\n{report}");
    }
    let (subject, alert) = text_of(&alerts[0]);
    assert_eq!(
        subject,
        format!("Your outgoing mail is on hold: {user} held for review")
    );
    for needle in [
        format!("  {reason}.\n"),
        format!("  1. Change the password of {user}: someone else may be using it.\n"),
        "  2. Look for a script or app you do not know that sends mail (a contact\n".into(),
        format!("  3. Ask support to release the hold, quoting reference {reference}."),
        "your mail server or app keeps them in its own queue\n".into(),
    ] {
        assert!(alert.contains(&needle), "alert lacks {needle:?}:\n{alert}");
    }
    println!(
        "--- report to the abuse desk ---\n{}",
        String::from_utf8_lossy(&reports[0].data)
    );
    println!(
        "--- alert to the customer ---\n{}",
        String::from_utf8_lossy(&alerts[0].data)
    );

    // The command line sees it: check (the same MAIL check) and hold list.
    let eml = dir.join("m.eml");
    std::fs::write(&eml, "From: <burst@example.test>\nSubject: hi\n\nhello\n").unwrap();
    let (code, out, err) = smtpgate(&[
        "check",
        "--config",
        &path_arg,
        "--login",
        user,
        "--from",
        user,
        "--rcpt",
        "x@y.test",
        &eml.display().to_string(),
    ]);
    assert_eq!(code, 75, "{out}{err}");
    assert!(out.contains("ANOMALY_HOLD (0.00)"), "{out}");
    assert!(out.contains(&expected), "{out}");
    let (code, out, err) = smtpgate(&["hold", "--config", &path_arg, "list"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with(&format!("{user}  until ")), "{out}");
    assert!(
        out.contains(&format!("by anomaly  ref={reference}  {reason}")),
        "{out}"
    );

    // Released: the next message goes through, on either gateway.
    let (code, out, err) = smtpgate(&["hold", "release", user, "--config", &path_arg]);
    assert_eq!(
        (code, out.as_str()),
        (0, format!("released {user}\n").as_str()),
        "{err}"
    );
    let before = sink.messages().len();
    let mut again = login(a.addr, user).await;
    assert!(send(&mut again, user, "r@after.test", 901).await.is_ok());
    assert!(send(&mut cb, user, "r2@after.test", 902).await.is_ok());
    assert_eq!(sink.messages().len(), before + 2);
    let (code, out, _) = smtpgate(&["hold", "--config", &path_arg, "list"]);
    assert_eq!((code, out.as_str()), (0, "no identity is held\n"));
    let (code, _, err) = smtpgate(&["hold", "release", user, "--config", &path_arg]);
    assert_eq!(
        (code, err.as_str()),
        (1, format!("{user} is not held\n").as_str())
    );

    // By hand: held for 2h with the operator's words, then released.
    let (code, out, err) = smtpgate(&["hold", "--config", &path_arg, user, "--for", "2h"]);
    assert_eq!(code, 0, "{err}");
    let manual_ref = out
        .split("ref=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let r = send(&mut again, user, "r3@after.test", 903).await;
    assert_eq!(
        r,
        Err(format!(
            "451 4.7.1 <{user}> held for review: by the abuse desk (ANOMALY_HOLD) ref={manual_ref}"
        ))
    );
    let (code, _, _) = smtpgate(&["hold", "--config", &path_arg, "release", user]);
    assert_eq!(code, 0);
    let (code, _, err) = smtpgate(&["hold", "--config", &path_arg, user, "--for", "soon"]);
    assert_eq!(
        (code, err.trim()),
        (
            2,
            "--for: invalid duration `soon`: expected e.g. 30m, 2h, 3d (at most 30d)"
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_growth_within_the_factor_and_a_trusted_login_are_never_held() {
    let sink = Sink::start(SinkConfig::default()).await;
    let dir = temp_dir("slow");
    let anomaly = "enabled = true\nwindow = \"5s\"\nmin_messages = 5\nfactor = 3.0\n\
                   notify = [\"abuse@example.test\"]\ntrusted_identities = [\"trusted@example.test\"]";
    let gw = common::start(&config(sink.addr, &dir, "", anomaly)).await;
    let users = [
        "slow@example.test",
        "jump@example.test",
        "trusted@example.test",
    ];
    next_window(5).await;
    let mut conns = Vec::new();
    for u in users {
        conns.push(login(gw.addr, u).await);
    }
    // Per window: slow grows 6, 10, 16 (each under 3 x its usual so far);
    // jump and trusted go from 6 to 40 (jump's limit: 3 x 6 = 18). Each
    // window ends with one more message per sender once the watch has
    // counted the window: a burst shorter than the count interval is held
    // from its next message on.
    let plan = [[5, 5, 5], [9, 39, 39], [15, 0, 0]];
    let mut held = [0usize; 3];
    let mut n = 0;
    for (w, counts) in plan.iter().enumerate() {
        if w > 0 {
            next_window(5).await;
        }
        // The window's mail, then (once the watch has counted it) one more
        // message from each sender of the window.
        let last: Vec<usize> = counts.iter().map(|&c| usize::from(c > 0)).collect();
        for (pass, counts) in [counts.to_vec(), last].into_iter().enumerate() {
            if pass == 1 {
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            for (u, &count) in counts.iter().enumerate() {
                for _ in 0..count {
                    n += 1;
                    let rcpt = format!("r{}@d{}.test", n, n % 4);
                    if let Err(reply) = send(&mut conns[u], users[u], &rcpt, n).await {
                        assert!(
                            reply.starts_with(&format!(
                                "451 4.7.1 <{}> held for review: ",
                                users[u]
                            )) && reply.contains("(ANOMALY_HOLD) ref="),
                            "{reply}"
                        );
                        held[u] += 1;
                    }
                }
            }
        }
    }
    assert_eq!(held[0], 0, "slow growth is never held");
    assert!(held[1] > 0, "the same config holds a jump past the factor");
    assert_eq!(held[2], 0, "a trusted login is never held");
    // Only the jump was reported.
    let deadline = Instant::now() + Duration::from_secs(10);
    while own_to(&sink, "abuse@example.test").is_empty() {
        assert!(Instant::now() < deadline, "the jump's report");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reports = own_to(&sink, "abuse@example.test");
    assert_eq!(reports.len(), 1);
    assert!(text_of(&reports[0])
        .1
        .contains("smtpgate held jump@example.test for review."));
    assert!(own_to(&sink, "slow@example.test").is_empty());
    assert!(own_to(&sink, "trusted@example.test").is_empty());
    assert_eq!(own_to(&sink, "jump@example.test").len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
