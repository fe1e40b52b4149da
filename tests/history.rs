//! The message history: 10,000 transactions of mixed outcomes (delivered,
//! spam, aborted) from three clients (two addresses, one AUTH login)
//! through the gateway, then queries by sender domain, login, IP, action,
//! time range and Message-ID, each returning exactly the matching ones —
//! with the memory store and with Redis.

mod common;

use common::client::Client;
use common::sink::{Sink, SinkConfig};
use smtpgate::history::{Query, Record};
use std::collections::BTreeSet;
use std::time::Duration;

const MESSAGES: usize = 10_000;

/// What the test sent, transaction by transaction.
#[derive(Debug, Clone)]
struct Sent {
    reference: Option<String>,
    ip: &'static str,
    login: Option<&'static str>,
    from: String,
    action: &'static str,
    message_id: String,
}

fn plain(user: &str, password: &str) -> String {
    smtpgate::base64::encode(format!("\0{user}\0{password}").as_bytes())
}

fn config(sink: &Sink, store: &str) -> String {
    let fixtures = common::root().join("tests/fixtures/auth");
    common::config_text(
        sink.addr,
        "",
        &format!(
            "{}[relay]\nmynetworks = [\"127.0.0.0/8\"]\nlocal_domains = [\"example.test\"]\n\
             [auth]\npasswd_file = \"{}\"\nsender_login_maps = \"{}\"\n\
             [scores]\nSUBJ_ALL_CAPS = 5.0\n{store}\n",
            common::tls_section(),
            fixtures.join("passwd").display(),
            fixtures.join("sender_logins").display(),
        ),
    )
}

async fn clients(addr: std::net::SocketAddr) -> Vec<Client> {
    let mut a = Client::connect(addr).await;
    a.read_reply().await;
    a.expect("EHLO web1.example.test", 250).await;
    let mut b = Client::connect_from(addr, "127.0.0.2".parse().unwrap()).await;
    b.read_reply().await;
    b.expect("EHLO web2.example.test", 250).await;
    let mut c = Client::connect(addr).await;
    c.read_reply().await;
    c.expect("EHLO app.example.test", 250).await;
    c.expect("STARTTLS", 220).await;
    let ca = std::fs::read(common::tls_dir().join("ca.pem")).unwrap();
    let mut c = c.starttls("gw.example.test", &ca).await;
    c.expect("EHLO app.example.test", 250).await;
    c.expect(
        &format!("AUTH PLAIN {}", plain("plain@example.test", "secret")),
        235,
    )
    .await;
    vec![a, b, c]
}

fn reference_of(text: &str) -> String {
    text.rsplit("ref=").next().unwrap().trim().to_string()
}

/// Sends the mix; returns what was sent.
async fn send_all(addr: std::net::SocketAddr) -> Vec<Sent> {
    let mut conns = clients(addr).await;
    let mut sent = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        let which = i % 3;
        let (ip, login, from) = match which {
            0 => (
                "127.0.0.1",
                None,
                format!("user{}@dom{}.test", i % 4, i % 4),
            ),
            1 => (
                "127.0.0.2",
                None,
                format!("user{}@dom{}.test", i % 4, i % 4),
            ),
            _ => (
                "127.0.0.1",
                Some("plain@example.test"),
                "plain@example.test".to_string(),
            ),
        };
        let kind = i % 10;
        let c = &mut conns[which];
        let message_id = format!("m{i}@gen.test");
        c.expect(&format!("MAIL FROM:<{from}>"), 250).await;
        c.expect(&format!("RCPT TO:<r{}@dest{}.test>", i % 6, i % 2), 250)
            .await;
        if kind == 3 {
            c.expect("RSET", 250).await;
            sent.push(Sent {
                reference: None,
                ip,
                login,
                from,
                action: "rset",
                message_id,
            });
            continue;
        }
        c.expect("DATA", 354).await;
        let subject = if kind == 0 || kind == 5 {
            "BUY NOW"
        } else {
            "Your invoice"
        };
        c.send(
            format!(
                "From: <{from}>\r\nTo: <r@dest.test>\r\nSubject: {subject}\r\n\
                 Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{message_id}>\r\n\r\n\
                 Hello {i}.\r\n.\r\n"
            )
            .as_bytes(),
        )
        .await;
        let r = c.read_reply().await;
        let action = if subject == "BUY NOW" {
            assert_eq!(r.code, 550, "{r:?}");
            "spam"
        } else {
            assert_eq!(r.code, 250, "{r:?}");
            "delivered"
        };
        sent.push(Sent {
            reference: Some(reference_of(&r.text())),
            ip,
            login,
            from,
            action,
            message_id,
        });
    }
    sent
}

async fn query(history: &smtpgate::history::History, pairs: &[(&str, &str)]) -> Vec<Record> {
    let mut pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    pairs.push(("limit".into(), "10000".into()));
    history
        .query(&Query::from_pairs(&pairs).unwrap())
        .await
        .unwrap()
}

/// The records match exactly the sent transactions `expect` selects:
/// the same references (where the client got one), the same count.
fn same(records: &[Record], sent: &[Sent], expect: impl Fn(&Sent) -> bool, what: &str) {
    let wanted: Vec<&Sent> = sent.iter().filter(|s| expect(s)).collect();
    assert!(!wanted.is_empty(), "{what}: the mix has some");
    assert_eq!(records.len(), wanted.len(), "{what}: count");
    let got: BTreeSet<&str> = records.iter().map(|r| r.reference.as_str()).collect();
    assert_eq!(got.len(), records.len(), "{what}: each once");
    for w in &wanted {
        if let Some(r) = &w.reference {
            assert!(got.contains(r.as_str()), "{what}: {r} missing");
        }
    }
    // Newest first.
    assert!(
        records.windows(2).all(|p| p[0].time >= p[1].time),
        "{what}: order"
    );
}

async fn scenario(store: &str) {
    let sink = Sink::start(SinkConfig::default()).await;
    let gw = common::start(&config(&sink, store)).await;
    let sent = tokio::time::timeout(Duration::from_secs(300), send_all(gw.addr))
        .await
        .expect("the mix is sent within 5 minutes");
    let history = gw.handle.app().history.clone();
    // Written off the hot path: wait (bounded) until all are there.
    let mut all = Vec::new();
    for _ in 0..100 {
        all = query(&history, &[]).await;
        if all.len() >= MESSAGES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    same(&all, &sent, |_| true, "everything");

    let r = query(&history, &[("from", "@dom1.test")]).await;
    same(
        &r,
        &sent,
        |s| s.from.ends_with("@dom1.test"),
        "from @dom1.test",
    );
    assert!(r.iter().all(|r| r.from.ends_with("@dom1.test")));
    let r = query(&history, &[("from", "user2@dom2.test"), ("action", "spam")]).await;
    same(
        &r,
        &sent,
        |s| s.from == "user2@dom2.test" && s.action == "spam",
        "from user2@dom2.test, spam",
    );
    let r = query(&history, &[("login", "plain@example.test")]).await;
    same(
        &r,
        &sent,
        |s| s.login == Some("plain@example.test"),
        "login",
    );
    assert!(r
        .iter()
        .all(|r| r.login.as_deref() == Some("plain@example.test")));
    let r = query(&history, &[("ip", "127.0.0.2")]).await;
    same(&r, &sent, |s| s.ip == "127.0.0.2", "ip 127.0.0.2");
    let r = query(&history, &[("ip", "127.0.0.1"), ("action", "delivered")]).await;
    same(
        &r,
        &sent,
        |s| s.ip == "127.0.0.1" && s.action == "delivered",
        "ip 127.0.0.1 delivered",
    );
    for action in ["delivered", "spam", "rset"] {
        let r = query(&history, &[("action", action)]).await;
        same(&r, &sent, |s| s.action == action, action);
    }
    let r = query(&history, &[("rcpt", "@dest1.test")]).await;
    assert!(r
        .iter()
        .all(|r| r.rcpts.iter().all(|t| t.ends_with("@dest1.test"))));
    let r = query(&history, &[("message_id", "<m4242@gen.test>")]).await;
    same(
        &r,
        &sent,
        |s| s.message_id == "m4242@gen.test",
        "message-id",
    );
    assert_eq!(r[0].subject.as_deref(), Some("Your invoice"));
    assert_eq!(r[0].message_id.as_deref(), Some("m4242@gen.test"));
    let spam = query(&history, &[("message_id", "m4240@gen.test")]).await;
    assert_eq!(spam.len(), 1);
    assert_eq!(spam[0].action, "spam");
    assert_eq!(spam[0].score, 5.0);
    assert!(
        spam[0].reply.starts_with("550 5.7.1 "),
        "{:?}",
        spam[0].reply
    );
    assert!(spam[0]
        .symbols
        .iter()
        .any(|s| s.name == "SUBJ_ALL_CAPS" && s.score == 5.0));
    // The time range: three transactions of three hours ago.
    let old_time = smtpgate::history::now() - 3 * 3600;
    for n in 0..3 {
        let mut r = all[0].clone();
        r.reference = format!("OLD0000{n}");
        r.time = old_time;
        r.client_ip = "192.0.2.99".into();
        r.action = "spam (alert)".into();
        history.write_now(&r).await.unwrap();
    }
    assert_eq!(query(&history, &[("since", "2h")]).await.len(), MESSAGES);
    assert!(query(&history, &[("since", "2h"), ("ip", "192.0.2.99")])
        .await
        .is_empty());
    let r = query(&history, &[("since", "4h"), ("ip", "192.0.2.99")]).await;
    assert_eq!(r.len(), 3);
    assert!(r
        .iter()
        .all(|r| r.time == old_time && r.reference.starts_with("OLD0000")));
    let r = query(&history, &[("since", "4h"), ("action", "spam")]).await;
    assert_eq!(
        r.len(),
        sent.iter().filter(|s| s.action == "spam").count() + 3
    );
    // A limit is the newest N.
    let five = history
        .query(&Query {
            limit: 5,
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(five.len(), 5);
    assert_eq!(five[0].reference, all[0].reference);
    // The statistics count the same.
    let stats = history.stats(Duration::from_secs(3600)).await.unwrap();
    let n = |a: &str| sent.iter().filter(|s| s.action == a).count() as u64;
    assert_eq!(stats.by_action.get("delivered"), Some(&n("delivered")));
    assert_eq!(stats.by_action.get("spam"), Some(&n("spam")));
    assert_eq!(stats.by_action.get("rset"), Some(&n("rset")));
    assert_eq!(
        stats
            .top_symbols
            .iter()
            .find(|(s, _)| s == "SUBJ_ALL_CAPS")
            .map(|(_, n)| *n),
        Some(n("spam"))
    );
    gw.handle.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_transactions_are_found_by_every_criterion_in_memory() {
    scenario("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_transactions_are_found_by_every_criterion_in_redis() {
    let redis = common::redis::RedisServer::start();
    scenario(&format!(
        "[store]\nbackend = \"redis\"\nredis_url = \"{}\"\n",
        redis.url()
    ))
    .await;
}
