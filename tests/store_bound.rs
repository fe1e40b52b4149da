//! The memory store's bound (`[store] max_entries`): a spray of distinct
//! greylist triplets, as a botnet sends them, keeps it at its bound and its
//! memory flat. A test binary of its own, so the process's VmRSS is this
//! test's alone.

use smtpgate::store::memory::MemoryStore;
use smtpgate::store::{GreylistOutcome, Greylisting, Store};
use std::time::Instant;

fn request<'a>(triplet: &'a str, client: &'a str, now: u64) -> Greylisting<'a> {
    Greylisting {
        triplet_key: triplet,
        client_key: client,
        now,
        delay: 300,
        retry_window: 172_800,
        max_age: 3_024_000,
        auto_whitelist_after: 5,
    }
}

/// VmRSS of this process, in kB.
fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test]
async fn a_spray_of_greylist_triplets_stays_within_max_entries() {
    const TRIPLETS: u64 = 2_000_000;
    const MAX: usize = 100_000;
    let s = MemoryStore::with_max_entries(MAX);
    let before = rss_kb();
    let started = Instant::now();
    let now = 1_700_000_000;
    for i in 0..TRIPLETS {
        // As the greylist check writes them: a /24, a sender, a recipient.
        let net = format!("gl:{{10.{}.{}.0/24}}", (i >> 16) & 255, (i >> 8) & 255);
        let triplet = format!("{net}:t:bot{i}@spray.test/victim{}@example.test", i % 977);
        let client = format!("{net}:passes");
        let r = request(&triplet, &client, now);
        assert_eq!(s.greylist(&r).await.unwrap(), GreylistOutcome::Wait(300));
        assert!(s.len() <= MAX);
    }
    let took = started.elapsed();
    let after = rss_kb();
    assert_eq!(s.len(), MAX);
    assert_eq!(s.evictions(), TRIPLETS - MAX as u64);
    // The newest are kept (all share one TTL: the oldest expire first).
    let last = TRIPLETS - 1;
    let net = format!(
        "gl:{{10.{}.{}.0/24}}",
        (last >> 16) & 255,
        (last >> 8) & 255
    );
    let newest = format!(
        "{net}:t:bot{last}@spray.test/victim{}@example.test",
        last % 977
    );
    assert!(s.get(&newest).await.unwrap().is_some());
    let grown_mb = after.saturating_sub(before) as f64 / 1024.0;
    println!(
        "{TRIPLETS} triplets into max_entries={MAX}: {} held, {} evicted, \
         VmRSS {before} kB -> {after} kB (+{grown_mb:.1} MB) in {took:?}",
        s.len(),
        s.evictions()
    );
    assert!(grown_mb < 200.0, "RSS grew {grown_mb:.1} MB");
}
