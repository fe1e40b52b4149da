//! The command parser and the address parsers never panic.
#![no_main]

#[path = "../bodies/command.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
