//! The configuration reader never panics on any text.
//!
//! The body of the cargo-fuzz target `config` (fuzz/fuzz_targets/config.rs) and of
//! its brief run in `cargo test` (tests/fuzz_smoke.rs).

use std::path::Path;

/// One input.
pub fn run(text: &str) {
    let _ = smtpgate::config::Config::from_text(Path::new("fuzz.toml"), text);
}
