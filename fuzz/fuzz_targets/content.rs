//! The content scan with the shipped rules/ never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smtpgate::checks::content::ContentCheck;
use std::path::Path;
use std::sync::OnceLock;

fn check() -> &'static ContentCheck {
    static CHECK: OnceLock<ContentCheck> = OnceLock::new();
    CHECK.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
        let rules = smtpgate::rules::load_dir(&dir).expect("the shipped rules load");
        ContentCheck::new(rules.content)
    })
}

fuzz_target!(|data: &[u8]| {
    let parsed = smtpgate::message::Parsed::parse(data);
    let _ = check().scan(&parsed, data);
});
