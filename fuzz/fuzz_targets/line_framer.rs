//! The line framer yields the same lines whether the input arrives whole
//! or in two pieces split at a point taken from the input.
#![no_main]

#[path = "../bodies/line_framer.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
