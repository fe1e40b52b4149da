//! The PROXY header reader never panics and never reads past the header.
//!
//! The body of the cargo-fuzz target `proxy` (fuzz/fuzz_targets/proxy.rs) and of
//! its brief run in `cargo test` (tests/fuzz_smoke.rs).

use std::sync::OnceLock;
use tokio::runtime::Runtime;

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
}

/// One input.
pub fn run(data: &[u8]) {
    let mut rest: &[u8] = data;
    let result = runtime().block_on(smtpgate::proxy::read_header(&mut rest));
    let taken = data.len() - rest.len();
    if result.is_ok() {
        let header = &data[..taken];
        assert!(header.ends_with(b"\r\n") || header.starts_with(b"\r\n\r\n\0\r\nQUIT\n"));
    }
}
