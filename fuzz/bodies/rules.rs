//! The rules loader never panics (nor overflows the stack) on one file's
//! text. There is no text-level entry point, so the input is written to
//! `rules/50-x.toml` in a directory made once per run.
//!
//! The body of the cargo-fuzz target `rules` (fuzz/fuzz_targets/rules.rs) and of
//! its brief run in `cargo test` (tests/fuzz_smoke.rs).

use std::path::PathBuf;
use std::sync::OnceLock;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("smtpgate-fuzz-rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// One input.
pub fn run(data: &[u8]) {
    std::fs::write(dir().join("50-x.toml"), data).unwrap();
    let _ = smtpgate::rules::load_dir(dir());
}
