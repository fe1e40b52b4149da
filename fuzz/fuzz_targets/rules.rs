//! The rules loader never panics (nor overflows the stack) on one file's
//! text. There is no text-level entry point, so the input is written to
//! `rules/50-x.toml` in a directory made once per run.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("smtpgate-fuzz-rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    std::fs::write(dir().join("50-x.toml"), data).unwrap();
    let _ = smtpgate::rules::load_dir(dir());
});
