//! Greylisting and rate limits through the real gateway: the postgrey
//! timeline with paused time (memory store), whitelists, two gateways
//! sharing one real redis-server, Redis dying and coming back under a
//! running gateway, and sending quotas per identity.

mod common;

use common::attempt::{assert_delivered, attempt, attempt_from, gateway, MESSAGE};
use common::client::{Client, Reply};
use common::redis::RedisServer;
use common::sink::{Sink, SinkConfig};
use common::{config_text, start_pair};
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[track_caller]
fn assert_greylisted(reply: &Reply, seconds: u64) {
    assert_eq!(reply.code, 450, "{reply:?}");
    assert_eq!(reply.enhanced().as_deref(), Some("4.2.0"), "{reply:?}");
    assert_eq!(
        reply.text(),
        format!("4.2.0 Greylisted, try again in {seconds} seconds (GREYLIST)"),
        "{reply:?}"
    );
}

#[track_caller]
fn assert_rate_limited(reply: &Reply, identity: &str) {
    assert_eq!(reply.code, 450, "{reply:?}");
    assert_eq!(reply.enhanced().as_deref(), Some("4.7.1"), "{reply:?}");
    assert_eq!(
        reply.text(),
        format!("4.7.1 <{identity}>: rate limit exceeded (RATELIMIT)"),
        "{reply:?}"
    );
}

#[track_caller]
fn assert_store_tempfail(reply: &Reply) {
    assert_eq!(reply.code, 451, "{reply:?}");
    assert_eq!(reply.enhanced().as_deref(), Some("4.3.0"), "{reply:?}");
    assert_eq!(
        reply.text(),
        "4.3.0 Temporary failure in a quality check, try again later"
    );
}

/// Advances paused time (whole seconds).
async fn advance(seconds: u64) {
    tokio::time::advance(Duration::from_secs(seconds)).await;
}

#[tokio::test(start_paused = true)]
async fn greylisting_timeline_follows_postgrey() {
    // The client 127.0.0.1 is in mynetworks; greylisting still applies.
    let (sink, gw) = start_pair(SinkConfig::default(), "", "[greylist]\n").await;
    let (from, rcpt) = ("a@example.test", "b@example.net");

    let (r, data) = attempt(gw.addr, from, rcpt).await;
    assert_greylisted(&r, 300);
    assert!(data.is_none());
    advance(60).await;
    let (r, _) = attempt(gw.addr, from, rcpt).await;
    assert_greylisted(&r, 240);
    advance(239).await;
    let (r, _) = attempt(gw.addr, from, rcpt).await;
    assert_greylisted(&r, 1);
    advance(1).await;
    let (r, data) = attempt(gw.addr, from, rcpt).await;
    assert_delivered(&r, &data);
    assert_eq!(
        sink.messages().len(),
        1,
        "only the passed attempt reached the MTA"
    );

    // Passes 2 to 4 of this network; a new triplet is still greylisted.
    for _ in 2..=4 {
        advance(600).await;
        let (r, data) = attempt(gw.addr, from, rcpt).await;
        assert_delivered(&r, &data);
    }
    let (r, _) = attempt(gw.addr, from, "new1@example.net").await;
    assert_greylisted(&r, 300);
    // Pass 5: the network is auto-whitelisted; new triplets pass at once.
    let (r, data) = attempt(gw.addr, from, rcpt).await;
    assert_delivered(&r, &data);
    let (r, data) = attempt(gw.addr, "other@example.org", "new2@example.net").await;
    assert_delivered(&r, &data);
    assert_eq!(sink.messages().len(), 6);

    // 35 days later everything about the network is forgotten.
    advance(35 * 86_400 + 1).await;
    let (r, _) = attempt(gw.addr, from, rcpt).await;
    assert_greylisted(&r, 300);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_the_retry_window_starts_over() {
    let (_sink, gw) = start_pair(
        SinkConfig::default(),
        "",
        "[greylist]\ndelay = \"1m\"\nretry_window = \"1h\"\n",
    )
    .await;
    let (r, _) = attempt(gw.addr, "a@example.test", "b@example.net").await;
    assert_greylisted(&r, 60);
    advance(3_601).await;
    let (r, _) = attempt(gw.addr, "a@example.test", "b@example.net").await;
    assert_greylisted(&r, 60);
}

#[tokio::test(start_paused = true)]
async fn triplets_are_per_network_sender_and_recipient() {
    let (_sink, gw) = start_pair(SinkConfig::default(), "", "[greylist]\n").await;
    let (r, _) = attempt(gw.addr, "bounce-123@example.test", "b@example.net").await;
    assert_greylisted(&r, 300);
    advance(300).await;
    // VERP numbers and case do not make a new sender; 127.0.0.2 is the same /24.
    let (replies, data) = attempt_from(
        gw.addr,
        [127, 0, 0, 2].into(),
        "Bounce-456@EXAMPLE.test",
        &["b@example.net"],
    )
    .await;
    assert_delivered(&replies[0], &data);
    // Another recipient, or another sender, is another triplet.
    let (r, _) = attempt(gw.addr, "bounce-123@example.test", "c@example.net").await;
    assert_greylisted(&r, 300);
    let (r, _) = attempt(gw.addr, "z@example.test", "b@example.net").await;
    assert_greylisted(&r, 300);
}

#[tokio::test]
async fn refused_recipients_record_no_triplet() {
    // An untrusted client (mynetworks elsewhere) probing for relay: 554,
    // and nothing written to the store by greylisting.
    let (_sink, gw) = start_pair(
        SinkConfig::default(),
        "",
        "[relay]\nmynetworks = [\"192.0.2.0/24\"]\nlocal_domains = [\"example.test\"]\n[greylist]\n",
    )
    .await;
    for _ in 0..2 {
        let (r, _) = attempt(gw.addr, "a@example.test", "victim@example.net").await;
        assert_eq!(r.code, 554, "{r:?}");
    }
    let store = gw.handle.app().store.clone();
    assert_eq!(store.keys("gl:", 10).await.unwrap(), Vec::<String>::new());
    // A local recipient is greylisted as usual (and recorded).
    let (r, _) = attempt(gw.addr, "a@example.test", "b@example.test").await;
    assert_greylisted(&r, 300);
    assert_eq!(store.keys("gl:", 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn whitelists_and_mynetworks_skip_greylisting() {
    let extra = "[greylist]\nwhitelist_sender_domains = [\"example.org\"]\n\
                 whitelist_recipients = [\"postmaster@example.net\", \"partner.test\"]\n";
    let (_sink, gw) = start_pair(SinkConfig::default(), "", extra).await;
    for (from, rcpt) in [
        ("a@mail.example.org", "b@example.net"),
        ("a@example.test", "Postmaster@example.net"),
        ("a@example.test", "x@mx.partner.test"),
    ] {
        let (r, data) = attempt(gw.addr, from, rcpt).await;
        assert_delivered(&r, &data);
    }
    let (r, _) = attempt(gw.addr, "a@example.test", "b@example.net").await;
    assert_greylisted(&r, 300);

    let (_sink, gw) = start_pair(
        SinkConfig::default(),
        "",
        "[greylist]\nskip_mynetworks = true\n",
    )
    .await;
    let (r, data) = attempt(gw.addr, "a@example.test", "b@example.net").await;
    assert_delivered(&r, &data);

    let (_sink, gw) = start_pair(
        SinkConfig::default(),
        "",
        "[greylist]\nwhitelist_networks = [\"127.0.0.0/30\"]\n",
    )
    .await;
    let (r, data) = attempt(gw.addr, "a@example.test", "b@example.net").await;
    assert_delivered(&r, &data);

    let (_sink, gw) = start_pair(SinkConfig::default(), "", "[greylist]\nenabled = false\n").await;
    let (r, data) = attempt(gw.addr, "a@example.test", "b@example.net").await;
    assert_delivered(&r, &data);
}

#[test]
fn greylist_config_errors_name_the_key() {
    let text = config_text(
        "127.0.0.1:1".parse().unwrap(),
        "",
        "[greylist]\ndelay = \"10m\"\nretry_window = \"5m\"\n",
    );
    let config =
        smtpgate::config::Config::from_text(std::path::Path::new("gw.toml"), &text).unwrap();
    let err = smtpgate::app::App::build(config, None)
        .err()
        .unwrap()
        .to_string();
    let line = text
        .lines()
        .position(|l| l.starts_with("retry_window"))
        .unwrap()
        + 1;
    assert_eq!(
        err,
        format!("gw.toml:{line}:1: greylist.retry_window: expected a duration at least as long as greylist.delay, e.g. \"2d\"")
    );
    let text = config_text(
        "127.0.0.1:1".parse().unwrap(),
        "",
        "[greylist]\nipv4_prefix = 33\n",
    );
    let config =
        smtpgate::config::Config::from_text(std::path::Path::new("gw.toml"), &text).unwrap();
    let err = smtpgate::app::App::build(config, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("greylist.ipv4_prefix: expected a prefix length from 0 to 32"),
        "{err}"
    );
}

#[test]
fn a_bad_redis_url_is_a_config_error_at_its_line() {
    let text = config_text(
        "127.0.0.1:1".parse().unwrap(),
        "",
        "[store]\nbackend = \"redis\"\nredis_url = \"http://127.0.0.1:6379\"\n",
    );
    let config =
        smtpgate::config::Config::from_text(std::path::Path::new("gw.toml"), &text).unwrap();
    let err = smtpgate::app::App::build(config, None)
        .err()
        .unwrap()
        .to_string();
    let line = text
        .lines()
        .position(|l| l.starts_with("redis_url"))
        .unwrap()
        + 1;
    let expected =
        format!("gw.toml:{line}:1: store.redis_url: invalid Redis URL `http://127.0.0.1:6379`: ");
    assert!(err.starts_with(&expected), "{err}");
    assert!(
        err.ends_with("expected redis://host:port/db, redis+unix:///path, redis+sentinel://host:port,host:port/service or redis+cluster://host:port,host:port"),
        "{err}"
    );
}

fn redis_section(server: &RedisServer, on_error: &str) -> String {
    format!(
        "[store]\nbackend = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"gw-test:\"\ntimeout = \"500ms\"\non_error = \"{on_error}\"\n",
        server.url()
    )
}

#[tokio::test]
async fn two_gateways_sharing_redis_share_greylisting() {
    let server = RedisServer::start();
    let sink = Sink::start(SinkConfig::default()).await;
    let extra = format!(
        "{}[greylist]\ndelay = \"3s\"\n",
        redis_section(&server, "tempfail")
    );
    let gw1 = gateway(&sink, &extra).await;
    let gw2 = gateway(&sink, &extra).await;
    let (r, _) = attempt(gw1.addr, "a@example.test", "b@example.net").await;
    assert_greylisted(&r, 3);
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    // The second node knows the triplet: fewer seconds, not a fresh 3.
    let (r, _) = attempt(gw2.addr, "a@example.test", "b@example.net").await;
    let left: u64 = r.lines[0]
        .trim_start_matches("4.2.0 Greylisted, try again in ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{r:?}"));
    assert!(left == 1 || left == 2, "{r:?}");
    assert_greylisted(&r, left);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (r, data) = attempt(gw2.addr, "a@example.test", "b@example.net").await;
    assert_delivered(&r, &data);
    // And the first node sees it passed.
    let (r, data) = attempt(gw1.addr, "a@example.test", "b@example.net").await;
    assert_delivered(&r, &data);
    assert_eq!(sink.messages().len(), 2);
}

#[tokio::test]
async fn two_gateways_sharing_redis_share_rate_limits() {
    let server = RedisServer::start();
    let sink = Sink::start(SinkConfig::default()).await;
    let extra = format!(
        "{}[ratelimit]\nmessages_per_day = 3\n",
        redis_section(&server, "tempfail")
    );
    let gw1 = gateway(&sink, &extra).await;
    let gw2 = gateway(&sink, &extra).await;
    for gw in [&gw1, &gw2, &gw1] {
        let (r, data) = attempt(gw.addr, "a@example.test", "b@example.net").await;
        assert_delivered(&r, &data);
    }
    for gw in [&gw2, &gw1] {
        let (r, data) = attempt(gw.addr, "a@example.test", "b@example.net").await;
        assert_rate_limited(&r, "127.0.0.1");
        assert!(data.is_none());
    }
    assert_eq!(sink.messages().len(), 3);
}

#[tokio::test]
async fn redis_outage_tempfails_within_the_timeout_and_the_gateway_recovers() {
    let mut server = RedisServer::start();
    let sink = Sink::start(SinkConfig::default()).await;
    let extra = format!(
        "{}[greylist]\n[ratelimit]\nmessages_per_day = 100\n",
        redis_section(&server, "tempfail")
    );
    let gw = gateway(&sink, &extra).await;
    let logs = LogBuffer::default();
    let _logging = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish(),
    );
    let (r, _) = attempt(gw.addr, "a@example.test", "b@example.net").await;
    assert_greylisted(&r, 300);

    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let (r, data) = attempt(gw.addr, "a@example.test", "b@example.net").await;
        let took = started.elapsed();
        assert_store_tempfail(&r);
        assert!(data.is_none());
        assert!(took < Duration::from_millis(1_500), "took {took:?}");
    }
    assert!(
        sink.messages().is_empty(),
        "nothing passed while Redis was down"
    );

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut attempts = 0;
    let recovered = loop {
        attempts += 1;
        let (r, _) = attempt(gw.addr, "a@example.test", "b@example.net").await;
        if r.code != 451 {
            break r;
        }
        assert_store_tempfail(&r);
        assert!(
            Instant::now() < deadline,
            "no recovery after {attempts} attempts"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The restarted Redis is empty: a fresh triplet again.
    assert_greylisted(&recovered, 300);
    assert!(attempts <= 3, "recovered after {attempts} attempts");
    // One line when the outage starts, one when it ends; none per message.
    let text = logs.text();
    assert_eq!(text.matches("store: Redis failed").count(), 1, "{text}");
    assert_eq!(
        text.matches("store: Redis is reachable again").count(),
        1,
        "{text}"
    );
    assert_eq!(text.matches("RCPT check failed").count(), 0, "{text}");
}

/// Log output captured in memory (the runtime is single-threaded, so a
/// thread-local default subscriber sees the gateway's tasks too).
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

#[tokio::test]
async fn a_redis_that_does_not_answer_tempfails_within_the_timeout() {
    let server = RedisServer::start();
    let sink = Sink::start(SinkConfig::default()).await;
    let extra = format!("{}[greylist]\n", redis_section(&server, "tempfail"));
    let gw = gateway(&sink, &extra).await;
    let (r, _) = attempt(gw.addr, "a@example.test", "b@example.net").await;
    assert_greylisted(&r, 300);
    server.freeze();
    for _ in 0..2 {
        let started = Instant::now();
        let (r, _) = attempt(gw.addr, "a@example.test", "b@example.net").await;
        let took = started.elapsed();
        assert_store_tempfail(&r);
        assert!(
            took >= Duration::from_millis(450),
            "waited for the timeout: {took:?}"
        );
        assert!(took < Duration::from_millis(1_500), "took {took:?}");
    }
    server.thaw();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (r, _) = attempt(gw.addr, "a@example.test", "b@example.net").await;
        if r.code == 450 {
            // The triplet survived: Redis was only slow.
            assert_eq!(r.enhanced().as_deref(), Some("4.2.0"), "{r:?}");
            assert!(
                r.text().starts_with("4.2.0 Greylisted, try again in 29"),
                "{r:?}"
            );
            break;
        }
        assert_store_tempfail(&r);
        assert!(Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn redis_outage_with_on_error_accept_skips_the_checks() {
    let mut server = RedisServer::start();
    let sink = Sink::start(SinkConfig::default()).await;
    let extra = format!(
        "{}[greylist]\n[ratelimit]\nmessages_per_day = 1\n",
        redis_section(&server, "accept")
    );
    let gw = gateway(&sink, &extra).await;
    let (r, _) = attempt(gw.addr, "a@example.test", "b@example.net").await;
    assert_greylisted(&r, 300);
    server.kill();
    let (r, data) = attempt(gw.addr, "a@example.test", "b@example.net").await;
    assert_delivered(&r, &data);
    let (r, data) = attempt(gw.addr, "a@example.test", "b@example.net").await;
    assert_delivered(&r, &data);
    assert_eq!(sink.messages().len(), 2);
}

#[tokio::test]
async fn the_message_over_the_daily_quota_gets_450_and_other_identities_do_not() {
    let extra = "[ratelimit]\nmessages_per_day = 3\n[ratelimit.overrides]\n\"127.0.0.3\" = { messages_per_day = 1 }\n";
    let (sink, gw) = start_pair(SinkConfig::default(), "", extra).await;
    let one: IpAddr = [127, 0, 0, 1].into();
    for _ in 0..3 {
        let (r, data) = attempt_from(gw.addr, one, "a@example.test", &["b@example.net"]).await;
        assert_delivered(&r[0], &data);
    }
    let (r, data) = attempt_from(gw.addr, one, "a@example.test", &["b@example.net"]).await;
    assert_rate_limited(&r[0], "127.0.0.1");
    assert!(data.is_none());
    // Another identity has its own quota.
    let (r, data) = attempt_from(
        gw.addr,
        [127, 0, 0, 2].into(),
        "a@example.test",
        &["b@example.net"],
    )
    .await;
    assert_delivered(&r[0], &data);
    // An override.
    let three: IpAddr = [127, 0, 0, 3].into();
    let (r, data) = attempt_from(gw.addr, three, "a@example.test", &["b@example.net"]).await;
    assert_delivered(&r[0], &data);
    let (r, _) = attempt_from(gw.addr, three, "a@example.test", &["b@example.net"]).await;
    assert_rate_limited(&r[0], "127.0.0.3");
    assert_eq!(sink.messages().len(), 5);
}

#[tokio::test]
async fn refused_messages_do_not_use_the_quota() {
    let cfg = SinkConfig {
        data_reply: Some("554 5.7.1 Refused by policy".into()),
        ..SinkConfig::default()
    };
    let (_sink, gw) = start_pair(cfg, "", "[ratelimit]\nmessages_per_day = 1\n").await;
    for _ in 0..3 {
        let (r, data) = attempt(gw.addr, "a@example.test", "b@example.net").await;
        assert_eq!(r.code, 250, "{r:?}");
        assert_eq!(data.as_ref().map(|d| d.code), Some(554), "{data:?}");
    }
}

#[tokio::test]
async fn recipients_per_hour_counts_recipients_of_delivered_messages() {
    let (_sink, gw) = start_pair(
        SinkConfig::default(),
        "",
        "[ratelimit]\nrecipients_per_hour = 3\n",
    )
    .await;
    let one: IpAddr = [127, 0, 0, 1].into();
    let (r, data) = attempt_from(
        gw.addr,
        one,
        "a@example.test",
        &["b@example.net", "c@example.net"],
    )
    .await;
    assert_eq!((r[0].code, r[1].code), (250, 250));
    assert_eq!(data.map(|d| d.code), Some(250));
    let (r, data) = attempt_from(
        gw.addr,
        one,
        "a@example.test",
        &["d@example.net", "e@example.net"],
    )
    .await;
    assert_eq!(r[0].code, 250, "{:?}", r[0]);
    assert_rate_limited(&r[1], "127.0.0.1");
    assert_eq!(data.map(|d| d.code), Some(250));
    let (r, _) = attempt_from(gw.addr, one, "a@example.test", &["f@example.net"]).await;
    assert_rate_limited(&r[0], "127.0.0.1");
}

#[tokio::test]
async fn the_default_quota_is_500_messages_a_day() {
    let (sink, gw) = start_pair(SinkConfig::default(), "", "[ratelimit]\n").await;
    let mut c = Client::connect(gw.addr).await;
    assert_eq!(c.read_reply().await.code, 220);
    c.expect("EHLO client.example.test", 250).await;
    for i in 0..500 {
        // One pipelined batch per message.
        c.send(
            format!("MAIL FROM:<a@example.test>\r\nRCPT TO:<b{i}@example.net>\r\nDATA\r\n")
                .as_bytes(),
        )
        .await;
        let replies = [
            c.read_reply().await,
            c.read_reply().await,
            c.read_reply().await,
        ];
        assert_eq!(
            replies.map(|r| r.code),
            [250, 250, 354],
            "message {}",
            i + 1
        );
        c.send(MESSAGE).await;
        assert_eq!(c.read_reply().await.code, 250, "message {}", i + 1);
    }
    c.expect("MAIL FROM:<a@example.test>", 250).await;
    let r = c.cmd("RCPT TO:<b501@example.net>").await;
    assert_rate_limited(&r, "127.0.0.1");
    assert_eq!(sink.messages().len(), 500);
}
