//! Map lookups: a 1,000,000-line local_domains file against a 10-entry
//! list, through `Watched::get` (with its mtime check) and `KeySet::contains`,
//! half hits and half misses. Prints lookups/s for both and their ratio
//! (issue 16: within 2×), then runs the same under criterion.

use criterion::{black_box, Criterion};
use smtpgate::maps::{key_set, KeySet, Watched};
use std::path::Path;
use std::time::{Duration, Instant};

fn file(dir: &Path, n: usize) -> Watched<KeySet> {
    let path = dir.join(format!("domains-{n}"));
    let mut text = String::with_capacity(n * 24);
    for i in 0..n {
        text.push_str(&format!("customer{i}.example.test\n"));
    }
    std::fs::write(&path, text).unwrap();
    Watched::open(&path, key_set, Duration::from_secs(2)).unwrap()
}

fn probes(n: usize) -> Vec<String> {
    (0..1024)
        .map(|i| {
            if i % 2 == 0 {
                format!("customer{}.example.test", (i * 7919) % n)
            } else {
                format!("stranger{i}.example.net")
            }
        })
        .collect()
}

fn lookups_per_second(map: &Watched<KeySet>, probes: &[String]) -> f64 {
    let rounds = 2_000;
    let start = Instant::now();
    let mut hits = 0usize;
    for _ in 0..rounds {
        for p in probes {
            hits += usize::from(map.get().contains(black_box(p)));
        }
    }
    black_box(hits);
    (rounds * probes.len()) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("smtpgate-bench-maps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let loaded = Instant::now();
    let big = file(&dir, 1_000_000);
    println!("1,000,000-line file loaded in {:?}", loaded.elapsed());
    let small = file(&dir, 10);
    let (big_probes, small_probes) = (probes(1_000_000), probes(10));
    let (b, s) = (
        lookups_per_second(&big, &big_probes),
        lookups_per_second(&small, &small_probes),
    );
    println!("10 entries:        {s:>12.0} lookups/s");
    println!("1,000,000 entries: {b:>12.0} lookups/s");
    println!("ratio 10/1,000,000: {:.2}x", s / b);
    let mut c = Criterion::default().configure_from_args();
    c.bench_function("local_domains 10 entries", |bench| {
        let mut i = 0;
        bench.iter(|| {
            i = (i + 1) % small_probes.len();
            small.get().contains(&small_probes[i])
        })
    });
    c.bench_function("local_domains 1,000,000 entries", |bench| {
        let mut i = 0;
        bench.iter(|| {
            i = (i + 1) % big_probes.len();
            big.get().contains(&big_probes[i])
        })
    });
    c.final_summary();
    std::fs::remove_dir_all(&dir).unwrap();
}
