//! The passwd-file reader never panics on any text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|text: &str| {
    // Only parsing: verifying would run a hash whose cost the input sets.
    let _ = smtpgate::passwd::Credentials::parse_passwd(Path::new("passwd"), text);
});
