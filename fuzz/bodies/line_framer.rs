//! The line framer yields the same lines whether the input arrives whole
//! or in two pieces split at a point taken from the input.
//!
//! The body of the cargo-fuzz target `line_framer` (fuzz/fuzz_targets/line_framer.rs) and of
//! its brief run in `cargo test` (tests/fuzz_smoke.rs).

use smtpgate::smtp::codec::{LineError, LineFramer};

type Lines = Vec<Result<Vec<u8>, LineError>>;

fn drain(f: &mut LineFramer, max: usize, out: &mut Lines) {
    while let Some(line) = f.next_line(max) {
        out.push(line);
    }
}

fn decode(chunks: &[&[u8]], max: usize) -> (Lines, Vec<u8>) {
    let mut f = LineFramer::default();
    let mut out = Vec::new();
    for chunk in chunks {
        f.extend(chunk);
        drain(&mut f, max, &mut out);
    }
    (out, f.buffered().to_vec())
}

/// One input.
pub fn run(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    // A small limit so that over-long lines are reached too.
    let max = usize::from(data[0]) % 64 + 1;
    let split = usize::from(data[1]);
    let input = &data[2..];
    let split = split.min(input.len());
    let (whole, _) = decode(&[input], max);
    let (parts, _) = decode(&[&input[..split], &input[split..]], max);
    // A discarded over-long line is reported when it passes `max` and
    // again never; a split may only report it earlier, never differently.
    let ok = |l: &Lines| {
        l.iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ok(&whole),
        ok(&parts),
        "complete lines differ with split {split}"
    );
    for line in whole.iter().flatten() {
        assert!(line.len() <= max && !line.contains(&0) && !line.contains(&b'\n'));
    }
}
