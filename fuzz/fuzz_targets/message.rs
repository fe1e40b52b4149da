//! Message analysis (MIME, HTML, links, archives) never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = smtpgate::message::Parsed::parse(data);
});
