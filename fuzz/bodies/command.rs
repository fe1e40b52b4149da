//! The command parser and the address parsers never panic.
//!
//! The body of the cargo-fuzz target `command` (fuzz/fuzz_targets/command.rs) and of
//! its brief run in `cargo test` (tests/fuzz_smoke.rs).

/// One input.
pub fn run(data: &[u8]) {
    let _ = smtpgate::smtp::command::parse(data);
    let _ = smtpgate::smtp::command::line_limit(data);
    let text = match std::str::from_utf8(data) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&data[..e.valid_up_to()]).unwrap(),
    };
    for allow_null in [false, true] {
        let _ = smtpgate::address::parse_address(text, allow_null);
        let _ = smtpgate::address::parse_typed(text, allow_null);
    }
}
