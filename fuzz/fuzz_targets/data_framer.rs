//! The DATA decoder ends a message only at CRLF.CRLF, and any chunking of
//! the same bytes gives the same result: message, status, error.
#![no_main]

#[path = "../bodies/data_framer.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
