//! The fuzz targets, briefly, in every `cargo test` (so in CI): each
//! target's body (fuzz/bodies/, the same code cargo-fuzz runs) over its
//! committed seeds (fuzz/corpus/TARGET/), its regression inputs
//! (fuzz/regressions/TARGET-*) and then random mutations of them — byte
//! flips, SMTP-ish insertions, deletions, duplications, splices — bounded
//! by count and by time. Coverage-guided runs of minutes are `fuzz/run.sh`.
//! A body panics on a finding (a crash, or a broken invariant such as the
//! DATA framer's "any chunking gives the same result").

#![allow(dead_code)]

#[path = "../fuzz/bodies/command.rs"]
mod command;
#[path = "../fuzz/bodies/config.rs"]
mod config;
#[path = "../fuzz/bodies/content.rs"]
mod content;
#[path = "../fuzz/bodies/data_framer.rs"]
mod data_framer;
#[path = "../fuzz/bodies/line_framer.rs"]
mod line_framer;
#[path = "../fuzz/bodies/message.rs"]
mod message;
#[path = "../fuzz/bodies/passwd.rs"]
mod passwd;
#[path = "../fuzz/bodies/proxy.rs"]
mod proxy;
#[path = "../fuzz/bodies/rules.rs"]
mod rules;

use std::path::Path;
use std::time::{Duration, Instant};

/// At most this many mutated inputs per target…
const MUTATIONS: usize = 20_000;
/// …and at most this long.
const BUDGET: Duration = Duration::from_millis(1500);

/// Tokens worth inserting: the framing and syntax the parsers care about.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b".\r\n",
    b"\r\n.\r\n",
    b"\0",
    b"<",
    b">",
    b"@",
    b":",
    b"=",
    b"--",
    b"\"",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\\",
    b"<a href=",
    b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"--b\r\n",
    b"base64",
    b"=?utf-8?b?",
    b"PROXY TCP4 ",
    b"\r\n\r\n\0\r\nQUIT\n",
    b"\xff",
    b"\xc2\xa0",
    b"\xe3\x80\x80",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(7) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                input.splice(at..at, token.iter().copied());
            }
            2 if !input.is_empty() => {
                let end = (at + rng.below(16)).min(input.len());
                input.drain(at..end);
            }
            3 if !input.is_empty() && input.len() < 64 * 1024 => {
                let end = (at + rng.below(64)).min(input.len());
                let piece = input[at..end].to_vec();
                let times = 1 + rng.below(8);
                for _ in 0..times {
                    input.splice(at..at, piece.iter().copied());
                }
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let end = (from + rng.below(64)).min(other.len());
                    input.splice(at..at, other[from..end].iter().copied());
                }
            }
            5 => input.truncate(at),
            _ => input.insert(at.min(input.len()), rng.next() as u8),
        }
    }
}

fn files(dir: &Path, prefix: Option<&str>) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            prefix.is_none_or(|pre| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(pre))
            })
        })
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Runs `body` over the seeds, the regressions and mutations of them;
/// returns how many inputs it took.
fn smoke(target: &str, body: impl Fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut seeds = files(&root.join("corpus").join(target), None);
    seeds.extend(files(
        &root.join("regressions"),
        Some(&format!("{target}-")),
    ));
    assert!(
        !seeds.is_empty(),
        "{target}: no seeds in fuzz/corpus/{target}"
    );
    for seed in &seeds {
        body(seed);
    }
    // A fixed seed per target: a failure reproduces.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (target.len() as u64 * 0x1000_0001));
    let start = Instant::now();
    let mut runs = seeds.len();
    let mut input = Vec::new();
    while runs < MUTATIONS && start.elapsed() < BUDGET {
        input.clear();
        input.extend_from_slice(&seeds[rng.below(seeds.len())]);
        mutate(&mut rng, &seeds, &mut input);
        body(&input);
        runs += 1;
    }
    eprintln!("{target}: {runs} inputs in {:?}", start.elapsed());
    runs
}

fn text(body: fn(&str)) -> impl Fn(&[u8]) {
    move |data| body(&String::from_utf8_lossy(data))
}

#[test]
fn command() {
    assert!(smoke("command", command::run) > 0);
}

#[test]
fn config() {
    assert!(smoke("config", text(config::run)) > 0);
}

#[test]
fn content() {
    assert!(smoke("content", content::run) > 0);
}

#[test]
fn data_framer() {
    assert!(smoke("data_framer", data_framer::run) > 0);
}

#[test]
fn line_framer() {
    assert!(smoke("line_framer", line_framer::run) > 0);
}

#[test]
fn message() {
    assert!(smoke("message", message::run) > 0);
}

#[test]
fn passwd() {
    assert!(smoke("passwd", text(passwd::run)) > 0);
}

#[test]
fn proxy() {
    assert!(smoke("proxy", proxy::run) > 0);
}

#[test]
fn rules() {
    assert!(smoke("rules", rules::run) > 0);
}
