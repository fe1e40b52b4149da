//! The passwd-file reader never panics on any text.
#![no_main]

#[path = "../bodies/passwd.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|text: &str| body::run(text));
