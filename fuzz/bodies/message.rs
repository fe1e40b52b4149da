//! Message analysis (MIME, HTML, links, archives) never panics.
//!
//! The body of the cargo-fuzz target `message` (fuzz/fuzz_targets/message.rs) and of
//! its brief run in `cargo test` (tests/fuzz_smoke.rs).

/// One input.
pub fn run(data: &[u8]) {
    let _ = smtpgate::message::Parsed::parse(data);
}
