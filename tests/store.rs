//! The Store contract, one suite run against both backends: the memory
//! store and a real redis-server started on a free port. Plus what only
//! Redis has: key prefixes, and failing fast (not hanging) when it is down.

mod common;

use common::redis::{start_replica, start_sentinel, RedisCluster, RedisServer};
use smtpgate::store::memory::MemoryStore;
use smtpgate::store::redis::RedisStore;
use smtpgate::store::{GreylistOutcome, Greylisting, Increment, Store, WriteOp};
use std::time::{Duration, Instant};

fn redis_store(server: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::new(&server.url(), prefix, Duration::from_millis(500)).expect("redis url")
}

async fn values_are_set_read_and_deleted(s: &dyn Store) {
    assert_eq!(s.get("v:missing").await.unwrap(), None);
    s.set("v:a", b"one\x00\xff", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        s.get("v:a").await.unwrap().as_deref(),
        Some(&b"one\x00\xff"[..])
    );
    s.set("v:a", b"two", Duration::from_secs(60)).await.unwrap();
    assert_eq!(s.get("v:a").await.unwrap().as_deref(), Some(&b"two"[..]));
    assert!(s.delete("v:a").await.unwrap());
    assert!(!s.delete("v:a").await.unwrap());
    assert_eq!(s.get("v:a").await.unwrap(), None);
}

async fn values_expire(s: &dyn Store) {
    s.set("e:a", b"x", Duration::from_millis(150))
        .await
        .unwrap();
    assert_eq!(s.get("e:a").await.unwrap().as_deref(), Some(&b"x"[..]));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.get("e:a").await.unwrap(), None);
}

async fn counters_keep_a_fixed_window(s: &dyn Store) {
    let ttl = Duration::from_millis(600);
    assert_eq!(s.incr("c:a", 1, ttl).await.unwrap(), 1);
    assert_eq!(s.incr("c:a", 5, ttl).await.unwrap(), 6);
    assert_eq!(s.incr("c:a", -2, ttl).await.unwrap(), 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Still the first window: the second incr did not extend it.
    assert_eq!(s.incr("c:a", 1, ttl).await.unwrap(), 5);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.incr("c:a", 1, ttl).await.unwrap(), 1, "window restarted");
    s.set("c:text", b"abc", Duration::from_secs(60))
        .await
        .unwrap();
    let err = s.incr("c:text", 1, ttl).await.unwrap_err();
    assert!(err.to_string().starts_with("store: "), "{err}");
}

async fn keys_are_listed_by_prefix(s: &dyn Store) {
    for k in ["k:bad:b", "k:bad:a", "k:bad:c", "k:other", "k:ba*d"] {
        s.set(k, b"", Duration::from_secs(60)).await.unwrap();
    }
    assert_eq!(
        s.keys("k:bad:", 10).await.unwrap(),
        ["k:bad:a", "k:bad:b", "k:bad:c"]
    );
    assert_eq!(s.keys("k:bad:", 2).await.unwrap().len(), 2);
    assert_eq!(
        s.keys("k:ba*", 10).await.unwrap(),
        ["k:ba*d"],
        "glob characters are literal"
    );
    assert!(s.keys("k:none", 10).await.unwrap().is_empty());
}

fn request<'a>(triplet: &'a str, client: &'a str, now: u64) -> Greylisting<'a> {
    Greylisting {
        triplet_key: triplet,
        client_key: client,
        now,
        delay: 300,
        retry_window: 172_800,
        max_age: 3_024_000,
        auto_whitelist_after: 3,
    }
}

async fn greylisting_follows_postgrey(s: &dyn Store) {
    let net = "g:{192.0.2.0/24}:passes";
    let t1 = "g:{192.0.2.0/24}:t:a@example.test/b@example.net";
    let t = 1_700_000_000;
    assert_eq!(
        s.greylist(&request(t1, net, t)).await.unwrap(),
        GreylistOutcome::Wait(300)
    );
    assert_eq!(
        s.greylist(&request(t1, net, t + 60)).await.unwrap(),
        GreylistOutcome::Wait(240)
    );
    assert_eq!(
        s.greylist(&request(t1, net, t + 299)).await.unwrap(),
        GreylistOutcome::Wait(1)
    );
    // A node whose clock is behind never says more than the delay.
    assert_eq!(
        s.greylist(&request(t1, net, t - 5)).await.unwrap(),
        GreylistOutcome::Wait(300)
    );
    assert_eq!(
        s.greylist(&request(t1, net, t + 300)).await.unwrap(),
        GreylistOutcome::Passed(1)
    );
    assert_eq!(
        s.greylist(&request(t1, net, t + 400)).await.unwrap(),
        GreylistOutcome::Passed(2)
    );

    // A triplet whose retry comes after the retry window starts over.
    let t2 = "g:{192.0.2.0/24}:t:a@example.test/late@example.net";
    assert_eq!(
        s.greylist(&request(t2, net, t)).await.unwrap(),
        GreylistOutcome::Wait(300)
    );
    let late = t + 172_801;
    assert_eq!(
        s.greylist(&request(t2, net, late)).await.unwrap(),
        GreylistOutcome::Wait(300)
    );
    assert_eq!(
        s.greylist(&request(t2, net, late + 300)).await.unwrap(),
        GreylistOutcome::Passed(3)
    );

    // Three passes: the network is whitelisted, a new triplet passes at once.
    let t3 = "g:{192.0.2.0/24}:t:a@example.test/new@example.net";
    assert_eq!(
        s.greylist(&request(t3, net, late + 301)).await.unwrap(),
        GreylistOutcome::Whitelisted
    );
    // Another network is not.
    let other = "g:{198.51.100.0/24}:passes";
    let t4 = "g:{198.51.100.0/24}:t:a@example.test/new@example.net";
    assert_eq!(
        s.greylist(&request(t4, other, t)).await.unwrap(),
        GreylistOutcome::Wait(300)
    );
    // Never auto-whitelisted when the threshold is 0.
    let mut never = request(t3, net, late + 302);
    never.auto_whitelist_after = 0;
    assert_eq!(
        s.greylist(&never).await.unwrap(),
        GreylistOutcome::Wait(300)
    );
}

async fn greylist_entries_expire(s: &dyn Store) {
    let net = "x:{203.0.113.0/24}:passes";
    let t1 = "x:{203.0.113.0/24}:t:s@example.test/r@example.net";
    let mut r = request(t1, net, 1_000);
    r.delay = 1;
    r.retry_window = 1;
    r.max_age = 1;
    assert_eq!(s.greylist(&r).await.unwrap(), GreylistOutcome::Wait(1));
    r.now = 1_001;
    assert_eq!(s.greylist(&r).await.unwrap(), GreylistOutcome::Passed(1));
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    r.now = 1_003;
    assert_eq!(
        s.greylist(&r).await.unwrap(),
        GreylistOutcome::Wait(1),
        "forgotten after max_age"
    );
    assert_eq!(s.get(net).await.unwrap(), None, "pass count forgotten too");
}

async fn several_values_are_read_at_once(s: &dyn Store) {
    assert!(s.get_many(&[]).await.unwrap().is_empty());
    s.set("m:a", b"1", Duration::from_secs(60)).await.unwrap();
    s.set("m:{x}:c", b"three", Duration::from_secs(60))
        .await
        .unwrap();
    s.set("m:gone", b"x", Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Keys in several Cluster slots, in the order asked, a repeat included.
    let got = s
        .get_many(&["m:a", "m:b", "m:{x}:c", "m:gone", "m:a"])
        .await
        .unwrap();
    assert_eq!(
        got,
        [
            Some(b"1".to_vec()),
            None,
            Some(b"three".to_vec()),
            None,
            Some(b"1".to_vec())
        ]
    );
}

async fn several_counters_are_counted_at_once(s: &dyn Store) {
    assert!(s.incr_many(&[]).await.unwrap().is_empty());
    let short = Duration::from_millis(500);
    let long = Duration::from_secs(60);
    let batch = [
        Increment {
            key: "n:messages",
            by: 1,
            ttl: short,
        },
        Increment {
            key: "n:recipients",
            by: 7,
            ttl: long,
        },
    ];
    assert_eq!(s.incr_many(&batch).await.unwrap(), [1, 7]);
    assert_eq!(s.incr_many(&batch).await.unwrap(), [2, 14]);
    // Each key keeps its own window: the short one restarts alone.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(s.incr_many(&batch).await.unwrap(), [1, 21]);
    // Interchangeable with incr on the same keys.
    assert_eq!(s.incr("n:recipients", 1, long).await.unwrap(), 22);
    let values = s.get_many(&["n:messages", "n:recipients"]).await.unwrap();
    assert_eq!(values, [Some(b"1".to_vec()), Some(b"22".to_vec())]);
    s.set("n:text", b"abc", long).await.unwrap();
    let bad = [Increment {
        key: "n:text",
        by: 1,
        ttl: long,
    }];
    let err = s.incr_many(&bad).await.unwrap_err();
    assert!(err.to_string().starts_with("store: "), "{err}");
}

async fn writes_ride_on_a_read(s: &dyn Store) {
    let long = Duration::from_secs(60);
    let ops = [
        WriteOp::Incr("w:n".into(), 2, long),
        WriteOp::Append("w:a".into(), b"x\n".to_vec(), long),
        WriteOp::Set("w:{y}:s".into(), b"v".to_vec(), long),
        WriteOp::Incr("w:m".into(), 5, long),
    ];
    let (written, values) = s
        .batch_then_get_many(&ops, &["w:n", "w:a", "w:{y}:s", "w:none", "w:m"])
        .await
        .unwrap();
    written.unwrap();
    assert_eq!(
        values,
        [
            Some(b"2".to_vec()),
            Some(b"x\n".to_vec()),
            Some(b"v".to_vec()),
            None,
            Some(b"5".to_vec())
        ]
    );
    // A counter on a text value: the writes fail, the read still answers.
    let bad = [WriteOp::Incr("w:{y}:s".into(), 1, long)];
    let (written, values) = s.batch_then_get_many(&bad, &["w:n"]).await.unwrap();
    assert!(written.is_err());
    assert_eq!(values, [Some(b"2".to_vec())]);
}

async fn contract(s: &dyn Store) {
    values_are_set_read_and_deleted(s).await;
    writes_ride_on_a_read(s).await;
    several_values_are_read_at_once(s).await;
    several_counters_are_counted_at_once(s).await;
    values_expire(s).await;
    counters_keep_a_fixed_window(s).await;
    keys_are_listed_by_prefix(s).await;
    greylisting_follows_postgrey(s).await;
    greylist_entries_expire(s).await;
}

#[tokio::test]
async fn memory_store_meets_the_contract() {
    let s = MemoryStore::new();
    assert_eq!(s.backend(), "memory");
    contract(&s).await;
}

#[tokio::test]
async fn redis_store_meets_the_contract() {
    let server = RedisServer::start();
    let s = redis_store(&server, "test:");
    assert_eq!(s.backend(), "redis");
    contract(&s).await;
}

#[tokio::test]
async fn redis_through_sentinel_meets_the_contract() {
    let master = RedisServer::start();
    let sentinel = start_sentinel(&master);
    let url = format!("redis+sentinel://127.0.0.1:{}/mymaster/0", sentinel.port);
    let s = RedisStore::new(&url, "sentinel:", Duration::from_secs(2)).expect("url");
    contract(&s).await;
    // The data is on the master.
    let direct = redis_store(&master, "sentinel:");
    s.set("where", b"master", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        direct.get("where").await.unwrap().as_deref(),
        Some(&b"master"[..])
    );
}

#[tokio::test]
async fn sentinel_failover_is_followed() {
    let mut master = RedisServer::start();
    let replica = start_replica(&master);
    let sentinel = start_sentinel(&master);
    let url = format!("redis+sentinel://127.0.0.1:{}/mymaster", sentinel.port);
    let s = RedisStore::new(&url, "fo:", Duration::from_millis(500)).expect("url");
    // The first write may meet a machine busy with the other tests (the
    // 500 ms timeout covers asking the Sentinel and checking the master's
    // role): retried within a bound, as the gateway would on the next
    // message.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match s.set("k", b"before", Duration::from_secs(600)).await {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "first write: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Replicated before the master goes.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &replica.port.to_string(), "get", "fo:k"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).trim() == "before" {
            break;
        }
        assert!(Instant::now() < deadline, "not replicated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    master.kill();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    let mut failures = 0;
    loop {
        match s.set("k", b"after", Duration::from_secs(600)).await {
            Ok(()) => break,
            Err(e) => {
                failures += 1;
                assert!(
                    Instant::now() < deadline,
                    "no failover after {failures} failures: {e}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(failures > 0, "the master was down for a while");
    // The write went to the promoted replica.
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &replica.port.to_string(), "get", "fo:k"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "after");
    println!(
        "failover followed after {:?} ({failures} failed operations)",
        started.elapsed()
    );
}

#[tokio::test]
async fn redis_cluster_meets_the_contract() {
    let cluster = RedisCluster::start();
    let s = RedisStore::new(&cluster.url(), "cluster:", Duration::from_secs(2)).expect("url");
    contract(&s).await;
}

#[test]
fn redis_urls_are_checked() {
    let t = Duration::from_secs(1);
    for bad in [
        "redis+sentinel://127.0.0.1:26379",
        "redis+sentinel://127.0.0.1:26379/mymaster/x",
        "redis+cluster://127.0.0.1:7000/1",
        "http://127.0.0.1",
    ] {
        let err = RedisStore::new(bad, "", t)
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(
            err.starts_with(&format!("invalid Redis URL `{bad}`: ")),
            "{err}"
        );
    }
    for good in [
        "redis://127.0.0.1:6379/2",
        "redis://user:pw@127.0.0.1:6379",
        "redis+unix:///run/redis.sock",
        "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster",
        "redis+cluster://user:pw@127.0.0.1:7000,127.0.0.1:7001",
    ] {
        assert!(RedisStore::new(good, "", t).is_ok(), "{good}");
    }
}

#[tokio::test]
async fn redis_keys_carry_the_prefix_and_prefixes_do_not_mix() {
    let server = RedisServer::start();
    let a = redis_store(&server, "site-a:");
    let b = redis_store(&server, "site-b:");
    a.set("k", b"a", Duration::from_secs(60)).await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), None);
    b.set("k", b"b", Duration::from_secs(60)).await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"a"[..]));
    assert_eq!(a.keys("", 10).await.unwrap(), ["k"]);
    // The key as Redis sees it has the prefix.
    let raw = redis_store(&server, "");
    let mut all = raw.keys("site-", 10).await.unwrap();
    all.sort();
    assert_eq!(all, ["site-a:k", "site-b:k"]);
}

#[tokio::test]
async fn redis_down_fails_fast_and_recovers() {
    let mut server = RedisServer::start();
    let s = redis_store(&server, "t:");
    s.set("k", b"1", Duration::from_secs(60)).await.unwrap();
    assert!(!s.is_down());
    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let err = s.get("k").await.unwrap_err();
        assert!(err.to_string().starts_with("store: redis GET: "), "{err}");
        assert!(
            started.elapsed() < Duration::from_millis(1_500),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(s.is_down());
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match s.set("k", b"2", Duration::from_secs(60)).await {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "no recovery: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(attempts <= 3, "recovered after {attempts} attempts");
    assert!(!s.is_down());
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"2"[..]));
}

#[tokio::test]
async fn redis_never_started_is_an_error_within_the_timeout() {
    // A free port with nothing behind it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = RedisStore::new(
        &format!("redis://127.0.0.1:{port}/0"),
        "t:",
        Duration::from_millis(300),
    )
    .unwrap();
    let started = Instant::now();
    assert!(s.incr("c", 1, Duration::from_secs(1)).await.is_err());
    assert!(started.elapsed() < Duration::from_millis(1_000));
}
