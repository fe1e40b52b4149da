//! The passwd-file reader never panics on any text.
//!
//! The body of the cargo-fuzz target `passwd` (fuzz/fuzz_targets/passwd.rs) and of
//! its brief run in `cargo test` (tests/fuzz_smoke.rs).

use std::path::Path;

/// One input.
pub fn run(text: &str) {
    // Only parsing: verifying would run a hash whose cost the input sets.
    let _ = smtpgate::passwd::Credentials::parse_passwd(Path::new("passwd"), text);
}
