//! `[store] memo` through the real gateway on a real redis-server: a node
//! answers a rate-limit counter far below its limit and a recipient not
//! known bad from what it read a moment ago, reads Redis for every message
//! near the limit, sees a recipient another node marked bad once the memo
//! ends (at once when it learned it itself), and answers nothing from the
//! memo while Redis fails. Redis's own MONITOR counts the reads.

mod common;

use common::attempt::{assert_delivered, attempt, gateway};
use common::client::Client;
use common::redis::RedisServer;
use common::sink::{Sink, SinkConfig};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A raw RESP command to `server`, its first reply line.
fn redis(server: &RedisServer, args: &[&str]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("redis");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(cmd.as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line.trim_end().to_string()
}

/// Every command Redis ran while it watched (`MONITOR`).
struct Monitor {
    lines: Arc<Mutex<Vec<String>>>,
    stream: TcpStream,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Monitor {
    fn start(server: &RedisServer) -> Monitor {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("redis");
        stream.write_all(b"MONITOR\r\n").unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut read = BufReader::new(stream.try_clone().unwrap());
        let mut ok = String::new();
        read.read_line(&mut ok).unwrap();
        assert_eq!(ok, "+OK\r\n");
        let seen = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in read.lines() {
                let Ok(line) = line else { break };
                seen.lock().unwrap().push(line);
            }
        });
        Monitor {
            lines,
            stream,
            reader: Some(reader),
        }
    }

    /// The reads (GET, MGET) that name `key`, once every command sent
    /// before this call was seen.
    fn reads_of(&self, server: &RedisServer, key: &str) -> usize {
        let marker = format!("marker-{}", self.lines.lock().unwrap().len());
        redis(server, &["GET", &marker]);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines = self.lines.lock().unwrap().clone();
            if lines.iter().any(|l| l.contains(&marker)) {
                return lines
                    .iter()
                    .filter(|l| l.contains("] \"MGET\"") || l.contains("] \"GET\""))
                    .filter(|l| l.contains(&format!("\"{key}\"")))
                    .count();
            }
            assert!(Instant::now() < deadline, "MONITOR saw no marker");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn store_section(server: &RedisServer, prefix: &str, memo: &str) -> String {
    format!(
        "[store]\nbackend = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"{prefix}\"\n\
         timeout = \"500ms\"\nmemo = \"{memo}\"\n",
        server.url()
    )
}

#[tokio::test]
async fn a_counter_far_below_its_limit_is_read_once_a_memo_and_near_it_every_message() {
    let server = RedisServer::start();
    let sink = Sink::start(SinkConfig::default()).await;
    let monitor = Monitor::start(&server);
    let extra = format!(
        "{}[ratelimit]\nmessages_per_day = 20\nrecipients_per_hour = 0\n",
        store_section(&server, "memo:", "60s")
    );
    let gw = gateway(&sink, &extra).await;
    let counter = "memo:rl:127.0.0.1:messages";
    let bad = "memo:badrcpt:b@example.net";
    // Messages 1-10 keep the counter (read 0, plus this node's) within 10
    // of 20: one read.
    for _ in 1..=10 {
        let (r, data) = attempt(gw.addr, "a@example.test", "b@example.net").await;
        assert_delivered(&r, &data);
    }
    assert_eq!(monitor.reads_of(&server, counter), 1);
    assert_eq!(monitor.reads_of(&server, bad), 1, "absent: remembered");
    // 11-20 are in the upper half: each reads (and sees what was counted).
    for _ in 11..=20 {
        let (r, data) = attempt(gw.addr, "a@example.test", "b@example.net").await;
        assert_delivered(&r, &data);
    }
    assert_eq!(monitor.reads_of(&server, counter), 11);
    // The 21st is over the limit, exactly.
    let (r, data) = attempt(gw.addr, "a@example.test", "b@example.net").await;
    assert_eq!(r.code, 450, "{r:?}");
    assert_eq!(
        r.text(),
        "4.7.1 <127.0.0.1>: rate limit exceeded (RATELIMIT)"
    );
    assert!(data.is_none());
    assert_eq!(monitor.reads_of(&server, counter), 12);
    assert_eq!(monitor.reads_of(&server, bad), 1);
    assert_eq!(sink.messages().len(), 20);

    // memo = "0s": every message reads both.
    let extra = format!(
        "{}[ratelimit]\nmessages_per_day = 20\nrecipients_per_hour = 0\n",
        store_section(&server, "exact:", "0s")
    );
    let exact = gateway(&sink, &extra).await;
    for _ in 1..=5 {
        let (r, data) = attempt(exact.addr, "a@example.test", "b@example.net").await;
        assert_delivered(&r, &data);
    }
    assert_eq!(monitor.reads_of(&server, "exact:rl:127.0.0.1:messages"), 5);
    assert_eq!(monitor.reads_of(&server, "exact:badrcpt:b@example.net"), 5);
}

#[tokio::test]
async fn a_recipient_marked_bad_elsewhere_counts_after_the_memo_and_one_learned_here_at_once() {
    let server = RedisServer::start();
    let mut rcpt_replies = std::collections::HashMap::new();
    rcpt_replies.insert(
        "gone2@example.net".to_string(),
        "550 5.1.1 <gone2@example.net>: Recipient address rejected: User unknown".to_string(),
    );
    let sink = Sink::start(SinkConfig {
        rcpt_replies,
        ..Default::default()
    })
    .await;
    let gw = gateway(&sink, &store_section(&server, "kb:", "2s")).await;
    let mut c = Client::connect(gw.addr).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO client.example.test", 250).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    c.expect("RCPT TO:<gone@example.net>", 250).await;
    let read = Instant::now();
    // Another node (or `bad-recipients import`) marks it bad.
    assert_eq!(
        redis(
            &server,
            &[
                "SET",
                "kb:badrcpt:gone@example.net",
                "550 5.1.1 learned elsewhere",
                "EX",
                "600"
            ]
        ),
        "+OK"
    );
    let r = c.cmd("RCPT TO:<gone@example.net>").await;
    if read.elapsed() < Duration::from_millis(1_500) {
        assert_eq!(r.code, 250, "answered from the memo: {r:?}");
    }
    tokio::time::sleep(Duration::from_millis(2_100).saturating_sub(read.elapsed())).await;
    let r = c.cmd("RCPT TO:<gone@example.net>").await;
    assert_eq!(r.code, 550, "{r:?}");
    assert_eq!(
        r.text(),
        "5.1.1 <gone@example.net>: Recipient address rejected: hard-bounced before: \
         reject_known_bad_recipient_address (0.00) blocks sending on its own"
    );
    // Learned on this node: refused at once by itself, not asked again.
    c.expect("RSET", 250).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    let r = c.cmd("RCPT TO:<gone2@example.net>").await;
    assert_eq!(r.code, 550, "the MTA's own reply: {r:?}");
    assert!(r.text().contains("User unknown"), "{r:?}");
    c.expect("RSET", 250).await;
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    let r = c.cmd("RCPT TO:<gone2@example.net>").await;
    assert_eq!(r.code, 550, "{r:?}");
    assert!(
        r.text()
            .contains("reject_known_bad_recipient_address (0.00)"),
        "{r:?}"
    );
    let asked = sink
        .commands()
        .iter()
        .filter(|l| l.contains("gone2@example.net"))
        .count();
    assert_eq!(asked, 1, "the second attempt never reached the MTA");
}

#[tokio::test]
async fn while_redis_fails_nothing_is_answered_from_the_memo() {
    let mut server = RedisServer::start();
    let sink = Sink::start(SinkConfig::default()).await;
    let extra = format!(
        "{}on_error = \"tempfail\"\n[ratelimit]\nmessages_per_day = 1000\n",
        store_section(&server, "down:", "60s")
    );
    let gw = gateway(&sink, &extra).await;
    let (r, data) = attempt(gw.addr, "a@example.test", "b@example.net").await;
    assert_delivered(&r, &data);
    server.kill();
    // At most the messages before the gateway meets the outage (its
    // queued counter writes fail) pass; from then on every RCPT reads and
    // is tempfailed.
    let mut delivered = 1;
    let mut first_failure = None;
    for n in 2..=8 {
        let (r, data) = attempt(gw.addr, "a@example.test", "b@example.net").await;
        if first_failure.is_none() && r.code == 250 {
            assert_delivered(&r, &data);
            delivered += 1;
            continue;
        }
        first_failure.get_or_insert(n);
        assert_eq!(r.code, 451, "message {n}: {r:?}");
        assert_eq!(r.enhanced().as_deref(), Some("4.3.0"), "{r:?}");
        assert!(data.is_none());
    }
    let first = first_failure.expect("the outage was seen");
    assert!(first <= 4, "seen at message {first}");
    assert_eq!(sink.messages().len(), delivered, "every 250 is at the sink");
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (r, data) = attempt(gw.addr, "a@example.test", "b@example.net").await;
        if r.code == 250 {
            assert_delivered(&r, &data);
            break;
        }
        assert_eq!(r.code, 451, "{r:?}");
        assert!(Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
