//! The rules loader never panics (nor overflows the stack) on one file's
//! text. There is no text-level entry point, so the input is written to
//! `rules/50-x.toml` in a directory made once per run.
#![no_main]

#[path = "../bodies/rules.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
