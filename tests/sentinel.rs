//! Redis Sentinel failover under load: a real master, a replica and three
//! Sentinels; the gateway (in-process, over SMTP) uses the store on every
//! message (rate limits at RCPT); the master is SIGKILLed mid-load. The
//! gateway must follow the promoted replica within a stated bound, and
//! nothing may be lost: every message that got 250 is at the sink exactly
//! once, every other got a 4xx.

mod common;

use common::client::Client;
use common::redis::{sentinel_master_port, start_replica, start_sentinels, RedisServer};
use common::sink::{Sink, SinkConfig};
use common::{config_text, start};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SESSIONS: usize = 4;
const PER_SESSION: usize = 75;
/// Pause between a session's messages, so the load spans the failover.
const PACE: Duration = Duration::from_millis(80);
/// Sentinel's `down-after-milliseconds`.
const DOWN_AFTER_MS: u64 = 1_000;
/// The gateway serves again (a 250) within this long after the kill.
const FOLLOW_BOUND: Duration = Duration::from_secs(10);

/// One message's fate: its token, when its MAIL was sent, the last reply.
#[derive(Debug, Clone)]
struct Outcome {
    token: String,
    sent: Instant,
    code: u16,
    reply: String,
}

async fn session(gw: SocketAddr, n: usize, log: Arc<Mutex<Vec<Outcome>>>) {
    let mut c = connect(gw).await;
    for i in 0..PER_SESSION {
        let token = format!("sentinel-{n}-{i}");
        let sent = Instant::now();
        let (code, reply) = match transaction(&mut c, &token).await {
            Some(r) => r,
            None => {
                // The connection ended (e.g. 421): a fresh one for the next.
                c = connect(gw).await;
                (421, "connection closed".into())
            }
        };
        log.lock().unwrap().push(Outcome {
            token,
            sent,
            code,
            reply,
        });
        tokio::time::sleep(PACE).await;
    }
    c.send(b"QUIT\r\n").await;
    let _ = c.try_read_reply().await;
}

async fn connect(gw: SocketAddr) -> Client {
    let mut c = Client::connect(gw).await;
    assert_eq!(c.read_reply().await.code, 220);
    assert_eq!(c.cmd("EHLO load.example.test").await.code, 250);
    c
}

/// MAIL, RCPT, DATA: the first reply that is not a success ends it (RSET
/// after a refusal). None when the connection ended.
async fn transaction(c: &mut Client, token: &str) -> Option<(u16, String)> {
    let steps = [
        ("MAIL FROM:<load@example.test>".to_string(), 250),
        (format!("RCPT TO:<{token}@example.net>"), 250),
        ("DATA".to_string(), 354),
    ];
    for (line, want) in steps {
        c.send(format!("{line}\r\n").as_bytes()).await;
        let r = c.try_read_reply().await?;
        if r.code != want {
            c.send(b"RSET\r\n").await;
            c.try_read_reply().await?;
            return Some((r.code, r.text()));
        }
    }
    let body = format!(
        "From: load@example.test\r\nTo: {token}@example.net\r\nSubject: {token}\r\n\
         Message-ID: <{token}@example.test>\r\n\r\nbody of {token}\r\n.\r\n"
    );
    c.send(body.as_bytes()).await;
    let r = c.try_read_reply().await?;
    Some((r.code, r.text()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_follows_a_sentinel_failover_and_loses_nothing() {
    let mut master = RedisServer::start();
    let replica = start_replica(&master);
    let sentinels = start_sentinels(&master, 3, 2, DOWN_AFTER_MS, 1);
    let hosts: Vec<String> = sentinels
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    let url = format!("redis+sentinel://{}/mymaster", hosts.join(","));

    let sink = Sink::start(SinkConfig::default()).await;
    let extra = format!(
        "[store]\nbackend = \"redis\"\nredis_url = \"{url}\"\nkey_prefix = \"fo:\"\n\
         timeout = \"500ms\"\non_error = \"tempfail\"\n\
         [ratelimit]\nmessages_per_day = 1000000\nrecipients_per_hour = 1000000\n"
    );
    let gw = start(&config_text(sink.addr, "", &extra)).await;

    let log = Arc::new(Mutex::new(Vec::new()));
    let load: Vec<_> = (0..SESSIONS)
        .map(|n| tokio::spawn(session(gw.addr, n, Arc::clone(&log))))
        .collect();

    // Let the load run on the first master, then kill it.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let before_kill = log.lock().unwrap().len();
    master.kill();
    let killed = Instant::now();
    let promoted = tokio::task::spawn_blocking({
        let sentinel = sentinels[0].port;
        let new_master = replica.port;
        move || loop {
            if sentinel_master_port(sentinel) == Some(new_master) {
                return Some(killed.elapsed());
            }
            if killed.elapsed() > Duration::from_secs(30) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    for task in load {
        task.await.expect("session");
    }
    let promoted = promoted.expect("Sentinel promoted the replica within 30 s");

    let outcomes = log.lock().unwrap().clone();
    assert_eq!(outcomes.len(), SESSIONS * PER_SESSION);
    let delivered = sink.messages();
    let mut at_sink = std::collections::HashMap::<String, usize>::new();
    for m in &delivered {
        let text = String::from_utf8_lossy(&m.data);
        let token = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .expect("Subject")
            .to_string();
        *at_sink.entry(token).or_default() += 1;
    }
    let (mut accepted, mut tempfailed) = (0, 0);
    for o in &outcomes {
        let copies = at_sink.get(&o.token).copied().unwrap_or(0);
        match o.code {
            250 => {
                accepted += 1;
                assert_eq!(copies, 1, "{} got 250: exactly once at the sink", o.token);
            }
            400..=499 => {
                tempfailed += 1;
                assert_eq!(copies, 0, "{} got {}: not delivered", o.token, o.code);
            }
            _ => panic!("{}: neither 250 nor 4xx: {} {}", o.token, o.code, o.reply),
        }
    }
    assert_eq!(delivered.len(), accepted, "nothing at the sink unaccounted");
    let first_after = outcomes
        .iter()
        .filter(|o| o.sent > killed && o.code == 250)
        .map(|o| o.sent.duration_since(killed))
        .min()
        .expect("a message got 250 after the kill");
    let late_failures: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.sent > killed + FOLLOW_BOUND && o.code != 250)
        .collect();
    println!(
        "{} messages: {accepted} got 250 (each once at the sink), {tempfailed} got 4xx; \
         {before_kill} before the kill; Sentinel promoted the replica {promoted:?} after the \
         kill; first 250 after the kill at {first_after:?}",
        outcomes.len()
    );
    assert!(tempfailed > 0, "the outage was seen (4xx during failover)");
    assert!(
        first_after <= FOLLOW_BOUND,
        "followed after {first_after:?}, bound {FOLLOW_BOUND:?}"
    );
    assert!(
        late_failures.is_empty(),
        "still failing {FOLLOW_BOUND:?} after the kill: {late_failures:?}"
    );
    drop(sentinels);
    drop(replica);
}
