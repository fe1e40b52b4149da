//! The content scan with the shipped rules/ never panics.
//!
//! The body of the cargo-fuzz target `content` (fuzz/fuzz_targets/content.rs) and of
//! its brief run in `cargo test` (tests/fuzz_smoke.rs).

use smtpgate::checks::content::ContentCheck;
use std::path::Path;
use std::sync::OnceLock;

fn check() -> &'static ContentCheck {
    static CHECK: OnceLock<ContentCheck> = OnceLock::new();
    CHECK.get_or_init(|| {
        let dir = crate_root().join("rules");
        let rules = smtpgate::rules::load_dir(&dir).expect("the shipped rules load");
        ContentCheck::new(rules.content)
    })
}

/// The repository root (this file is built from fuzz/ and from the root).
fn crate_root() -> std::path::PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if here.join("rules").is_dir() {
        here.to_path_buf()
    } else {
        here.join("..")
    }
}

/// One input.
pub fn run(data: &[u8]) {
    let parsed = smtpgate::message::Parsed::parse(data);
    let _ = check().scan(&parsed, data);
}
