//! Per-client connection limits (issue 17): one client cannot take every
//! slot, nor open connections without end; others are still served. The
//! clients are distinct loopback addresses (127.0.0.0/8 on Linux), all in
//! the default mynetworks, which the limits cover too.

mod common;

use common::client::Client;
use common::sink::SinkConfig;
use common::start_pair;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Connects from `from` and returns the client with its first reply.
async fn greeting(gw: SocketAddr, from: &str) -> (Client, common::client::Reply) {
    let mut c = Client::connect_from(gw, ip(from)).await;
    let r = c.read_reply().await;
    (c, r)
}

#[tokio::test]
async fn one_client_gets_50_connections_and_others_are_still_served() {
    let (_sink, gw) =
        start_pair(SinkConfig::default(), "max_connections_per_client = 50", "").await;
    let mut held = Vec::new();
    for i in 0..200 {
        let (mut c, r) = greeting(gw.addr, "127.0.0.2").await;
        if i < 50 {
            assert_eq!(r.code, 220, "connection {}: {r:?}", i + 1);
            held.push(c);
        } else {
            assert_eq!(
                (r.code, r.enhanced().as_deref()),
                (421, Some("4.7.0")),
                "connection {}: {r:?}",
                i + 1
            );
            assert_eq!(
                r.text(),
                "4.7.0 gw.example.test Error: too many connections from 127.0.0.2"
            );
            assert!(c.is_closed().await, "the excess is closed");
        }
    }
    let (mut other, r) = greeting(gw.addr, "127.0.0.3").await;
    assert_eq!(r.code, 220, "another client is served: {r:?}");
    other.expect("EHLO other.example.test", 250).await;
    // A slot given back is free again.
    held.pop().unwrap().expect("QUIT", 221).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let (c, r) = greeting(gw.addr, "127.0.0.2").await;
        if r.code == 220 {
            held.push(c);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot not returned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_connection_rate_is_per_client_and_overridable_per_network() {
    let (_sink, gw) = start_pair(
        SinkConfig::default(),
        "max_connection_rate_per_client = 5\n\
         [[server.client_limits]]\nnetwork = \"127.0.0.6/32\"\nmax_rate = 0\n",
        "",
    )
    .await;
    for i in 0..5 {
        let (mut c, r) = greeting(gw.addr, "127.0.0.4").await;
        assert_eq!(r.code, 220, "connection {}", i + 1);
        c.expect("QUIT", 221).await;
    }
    let (mut c, r) = greeting(gw.addr, "127.0.0.4").await;
    assert_eq!((r.code, r.enhanced().as_deref()), (421, Some("4.7.0")));
    assert_eq!(
        r.text(),
        "4.7.0 gw.example.test Error: too many connections per minute from 127.0.0.4"
    );
    assert!(c.is_closed().await);
    let (_c, r) = greeting(gw.addr, "127.0.0.5").await;
    assert_eq!(r.code, 220, "another client has its own budget");
    for i in 0..20 {
        let (mut c, r) = greeting(gw.addr, "127.0.0.6").await;
        assert_eq!(r.code, 220, "no rate limit for 127.0.0.6 ({})", i + 1);
        c.expect("QUIT", 221).await;
    }
}

/// Behind a load balancer the limits count the PROXY header's client, not
/// the balancer.
#[tokio::test]
async fn behind_proxy_the_relayed_client_is_counted() {
    let (_sink, gw) = {
        let sink = common::sink::Sink::start(SinkConfig::default()).await;
        let text = common::config_text(sink.addr, "max_connections_per_client = 2", "").replace(
            "listen = [\"127.0.0.1:0\"]",
            "listen = [{ address = \"127.0.0.1:0\", proxy_protocol = true }]",
        );
        (sink, common::start(&text).await)
    };
    let mut held = Vec::new();
    for (source, want) in [
        ("192.0.2.1", 220),
        ("192.0.2.1", 220),
        ("192.0.2.1", 421),
        ("192.0.2.2", 220),
    ] {
        let mut c = Client::connect(gw.addr).await;
        c.send(format!("PROXY TCP4 {source} 127.0.0.1 40000 25\r\n").as_bytes())
            .await;
        let r = c.read_reply().await;
        assert_eq!(r.code, want, "{source}: {r:?}");
        held.push(c);
    }
}
