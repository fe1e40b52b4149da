//! The PROXY header reader never panics and never reads past the header.
#![no_main]

#[path = "../bodies/proxy.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
