//! The content scan with the shipped rules/ never panics.
#![no_main]

#[path = "../bodies/content.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
