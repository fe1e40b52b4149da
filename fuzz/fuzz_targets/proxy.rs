//! The PROXY header reader never panics and never reads past the header.
#![no_main]
use libfuzzer_sys::fuzz_target;
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

fuzz_target!(|data: &[u8]| {
    let mut rest: &[u8] = data;
    let result = runtime().block_on(smtpgate::proxy::read_header(&mut rest));
    let taken = data.len() - rest.len();
    if result.is_ok() {
        let header = &data[..taken];
        assert!(header.ends_with(b"\r\n") || header.starts_with(b"\r\n\r\n\0\r\nQUIT\n"));
    }
});
