//! Map lookups as the relay and callout checks make them
//! (`maps::Domains::contains`): a 1,000,000-line `relay.local_domains_file`
//! (through its mtime watch) against a 10-entry `relay.local_domains` list,
//! half hits and half misses. Prints lookups/s for both and their ratio
//! (issue 16: within 2×), then runs the same under criterion.

use criterion::{black_box, Criterion};
use smtpgate::maps::Domains;
use std::path::Path;
use std::time::Instant;

fn file(dir: &Path, n: usize) -> Domains {
    let path = dir.join(format!("domains-{n}"));
    let mut text = String::with_capacity(n * 24);
    for i in 0..n {
        text.push_str(&format!("customer{i}.example.test\n"));
    }
    std::fs::write(&path, text).unwrap();
    Domains::new(&[], Some(&path)).unwrap()
}

fn list(n: usize) -> Domains {
    let names: Vec<String> = (0..n)
        .map(|i| format!("customer{i}.example.test"))
        .collect();
    Domains::new(&names, None).unwrap()
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

fn lookups_per_second(map: &Domains, probes: &[String]) -> f64 {
    let rounds = 2_000;
    let start = Instant::now();
    let mut hits = 0usize;
    for _ in 0..rounds {
        for p in probes {
            hits += usize::from(map.contains(black_box(p)));
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
    let small = list(10);
    let small_file = file(&dir, 10);
    let (big_probes, small_probes) = (probes(1_000_000), probes(10));
    let (b, s, f) = (
        lookups_per_second(&big, &big_probes),
        lookups_per_second(&small, &small_probes),
        lookups_per_second(&small_file, &small_probes),
    );
    println!("10-entry list in the config: {s:>12.0} lookups/s");
    println!("10-line file:                {f:>12.0} lookups/s");
    println!("1,000,000-line file:         {b:>12.0} lookups/s");
    println!("ratio 10-line file / 1,000,000-line file: {:.2}x", f / b);
    println!("ratio 10-entry list / 1,000,000-line file: {:.2}x", s / b);
    let mut c = Criterion::default().configure_from_args();
    c.bench_function("local_domains 10 entries", |bench| {
        let mut i = 0;
        bench.iter(|| {
            i = (i + 1) % small_probes.len();
            small.contains(&small_probes[i])
        })
    });
    c.bench_function("local_domains 1,000,000 entries", |bench| {
        let mut i = 0;
        bench.iter(|| {
            i = (i + 1) % big_probes.len();
            big.contains(&big_probes[i])
        })
    });
    c.final_summary();
    std::fs::remove_dir_all(&dir).unwrap();
}
