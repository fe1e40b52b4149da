//! The counting and the limits on a memory store, with explicit times: a
//! baseline, a burst, each rule, two nodes on one store.

use super::*;
use crate::store::memory::MemoryStore;

const WINDOW: u64 = 10;
/// The start of a window (a multiple of 10 s), one day in.
const T0: u64 = 86_400 + 1_000;

fn config() -> AnomalyConfig {
    AnomalyConfig {
        enabled: true,
        window: crate::config::Span(Duration::from_secs(WINDOW)),
        min_messages: 50,
        factor: 10.0,
        max_new_recipient_domains: 0,
        notify: vec!["abuse@example.test".into()],
        trusted_identities: vec!["big@example.test".into()],
        ..AnomalyConfig::default()
    }
}

fn obs(identity: &str, time: u64, n: usize) -> Observation {
    Observation {
        time,
        reference: format!("REF{n:04}"),
        identity: identity.into(),
        login: Some(identity.into()),
        from: identity.into(),
        recipient_domains: vec![format!("d{n}.test")],
        recipients: 1,
        refused: 0,
        spam: false,
    }
}

/// Counts `all` in batches of `size`; the holds placed, in order.
async fn count_in(a: &Anomaly, all: &[Observation], size: usize) -> Vec<Hold> {
    let mut placed = Vec::new();
    for batch in all.chunks(size) {
        placed.extend(a.count(batch).await.expect("counted"));
    }
    placed
}

#[tokio::test]
async fn a_burst_over_ten_times_the_baseline_is_held_at_the_floor_once() {
    let a = Anomaly::new(&config(), Arc::new(MemoryStore::new()));
    let who = "shop@example.test";
    let baseline: Vec<Observation> = (0..3).map(|n| obs(who, T0 + 1, n)).collect();
    assert!(count_in(&a, &baseline, 2).await.is_empty());
    let burst: Vec<Observation> = (3..83).map(|n| obs(who, T0 + WINDOW + 2, n)).collect();
    let placed = count_in(&a, &burst, 7).await;
    assert_eq!(placed.len(), 1, "{placed:?}");
    let h = &placed[0];
    assert_eq!(h.identity, who);
    assert_eq!(
        h.reason,
        "50 messages in the last 10s to 50 domains; usually 3 per 10s"
    );
    // The 50th message of the window crossed it.
    assert_eq!(h.reference, "REF0052");
    assert_eq!(h.by, BY_ANOMALY);
    let seen = h.seen.as_ref().unwrap();
    assert_eq!(
        (seen.messages, seen.domains, seen.new_recipient_domains),
        (50, 50, 50)
    );
    assert_eq!(
        (seen.usual_per_window, seen.baseline_windows),
        (Some(3.0), 1)
    );
    assert_eq!(seen.rule, Rule::Volume);
    assert_eq!(a.held(who).await.unwrap().as_ref(), Some(h));
    // Released: the window starts over, the next messages are not held.
    assert!(a.release(who).await.unwrap());
    let after: Vec<Observation> = (83..90).map(|n| obs(who, now(), n)).collect();
    assert!(count_in(&a, &after, 3).await.is_empty());
    assert_eq!(a.held(who).await.unwrap(), None);
}

#[tokio::test]
async fn growth_within_the_factor_is_never_held_and_trusted_never_counted() {
    let mut c = config();
    c.min_messages = 5;
    c.factor = 3.0;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let a = Anomaly::new(&c, Arc::clone(&store));
    let mut n = 0;
    // 6, 10, 16, 24, 40 a window: each under 3 × the mean before it.
    for (w, count) in [6usize, 10, 16, 24, 40].into_iter().enumerate() {
        for who in ["slow@example.test", "big@example.test"] {
            let batch: Vec<Observation> = (0..count)
                .map(|_| {
                    n += 1;
                    obs(who, T0 + WINDOW * w as u64 + 1, n % 7)
                })
                .collect();
            assert!(count_in(&a, &batch, 4).await.is_empty(), "window {w}");
        }
    }
    // A jump past 3 × the mean (19.2 → 58) is held; trusted never.
    for who in ["slow@example.test", "big@example.test"] {
        let batch: Vec<Observation> = (0..80).map(|i| obs(who, T0 + WINDOW * 5 + 1, i)).collect();
        let placed = count_in(&a, &batch, 5).await;
        if who == "slow@example.test" {
            assert_eq!(placed.len(), 1);
            assert_eq!(
                placed[0].reason,
                "58 messages in the last 10s to 58 domains; usually 19 per 10s"
            );
        } else {
            assert!(placed.is_empty());
        }
    }
    assert!(store
        .keys("anomaly:m:", 100)
        .await
        .unwrap()
        .iter()
        .all(|k| !k.contains("big@")));
}

#[tokio::test]
async fn a_new_identity_is_held_only_by_the_shares() {
    let a = Anomaly::new(&config(), Arc::new(MemoryStore::new()));
    let plain: Vec<Observation> = (0..200).map(|n| obs("new@example.test", T0, n)).collect();
    assert!(count_in(&a, &plain, 9).await.is_empty(), "no baseline yet");
    let bad: Vec<Observation> = (0..60)
        .map(|n| Observation {
            recipients: 2,
            refused: u64::from(n % 3 != 0),
            ..obs("192.0.2.7", T0, n)
        })
        .collect();
    let placed = count_in(&a, &bad, 8).await;
    assert_eq!(placed.len(), 1);
    assert_eq!(
        placed[0].reason,
        "33 of 100 recipients (33%) refused as unknown in the last 10s (limit 30%)"
    );
    let spam: Vec<Observation> = (0..60)
        .map(|n| Observation {
            spam: n % 2 == 0,
            ..obs("spam@example.test", T0, n)
        })
        .collect();
    let placed = count_in(&a, &spam, 60).await;
    assert_eq!(placed.len(), 1);
    assert_eq!(
        placed[0].reason,
        "26 of 51 messages (51%) stopped as spam in the last 10s (limit 50%)"
    );
}

#[tokio::test]
async fn two_nodes_on_one_store_place_one_hold() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (a, b) = (
        Anomaly::new(&config(), Arc::clone(&store)),
        Anomaly::new(&config(), Arc::clone(&store)),
    );
    let who = "shop@example.test";
    let baseline: Vec<Observation> = (0..3).map(|n| obs(who, T0 + 1, n)).collect();
    count_in(&a, &baseline, 3).await;
    let burst: Vec<Observation> = (3..200).map(|n| obs(who, T0 + WINDOW + 1, n)).collect();
    let (mut from_a, mut from_b) = (Vec::new(), Vec::new());
    for (i, batch) in burst.chunks(5).enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        let placed = node.count(batch).await.unwrap();
        if i % 2 == 0 {
            from_a.extend(placed)
        } else {
            from_b.extend(placed)
        }
    }
    assert_eq!(from_a.len() + from_b.len(), 1, "{from_a:?} {from_b:?}");
    assert!(b.held(who).await.unwrap().is_some());
    assert!(a.held(who).await.unwrap().is_some());
}
