//! The configuration reader never panics on any text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|text: &str| {
    let _ = smtpgate::config::Config::from_text(Path::new("fuzz.toml"), text);
});
