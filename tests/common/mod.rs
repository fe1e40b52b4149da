//! Test harness: the real gateway on 127.0.0.1:0 in-process, configured from
//! TOML text like an operator would, in front of an in-process sink.
#![allow(dead_code)]

pub mod attempt;
pub mod client;
pub mod dns;
pub mod http;
pub mod redis;
pub mod sink;

use smtpgate::app::App;
use smtpgate::config::Config;
use smtpgate::server::{Handle, Server};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test TLS fixtures directory.
pub fn tls_dir() -> PathBuf {
    root().join("tests/fixtures/tls")
}

/// A gateway configuration relaying to `upstream`; `extra` is appended
/// (more sections) and `server_extra` goes inside `[server]`.
pub fn config_text(upstream: SocketAddr, server_extra: &str, extra: &str) -> String {
    format!(
        "[server]\nhostname = \"gw.example.test\"\nlisten = [\"127.0.0.1:0\"]\n{server_extra}\n\
         [upstream]\naddress = \"{upstream}\"\ntimeout = \"2s\"\nconnect_timeout = \"2s\"\n\
         [scoring]\nspam_action = \"reject\"\nrules_dir = \"{}\"\n{extra}\n",
        root().join("rules").display()
    )
}

/// The `[tls]` section with the test certificate.
pub fn tls_section() -> String {
    format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        tls_dir().join("cert.pem").display(),
        tls_dir().join("key.pem").display()
    )
}

/// A running in-process gateway.
pub struct Gateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where the HTTP API listens, when `[http]` is set.
    pub http: Option<SocketAddr>,
    /// Reload and shutdown.
    pub handle: Handle,
    /// The server task (ends after shutdown and drain).
    pub task: tokio::task::JoinHandle<Result<(), String>>,
}

/// Builds the App from configuration text.
pub fn build_app(text: &str) -> App {
    let config =
        Config::from_text(Path::new("test.toml"), text).unwrap_or_else(|e| panic!("config: {e}"));
    App::build(config, None).unwrap_or_else(|e| panic!("app: {e}"))
}

/// Starts a gateway from configuration text.
pub async fn start(text: &str) -> Gateway {
    let server = Server::bind(build_app(text)).await.expect("bind");
    let addr = server.local_addrs()[0];
    let http = server.http_addr();
    let handle = server.handle();
    let task = tokio::spawn(server.run());
    Gateway {
        addr,
        http,
        handle,
        task,
    }
}

/// Starts a sink with `cfg` and a gateway in front of it.
pub async fn start_pair(
    cfg: sink::SinkConfig,
    server_extra: &str,
    extra: &str,
) -> (sink::Sink, Gateway) {
    let sink = sink::Sink::start(cfg).await;
    let gw = start(&config_text(sink.addr, server_extra, extra)).await;
    (sink, gw)
}

/// The message without the headers smtpgate prepends (asserting that
/// `Received:` comes first, then `Authentication-Results:` when there is
/// something to report and `X-Spamd-Result:` when `[headers]` asks for it).
pub fn strip_received(data: &[u8]) -> &[u8] {
    assert!(
        data.starts_with(b"Received: from "),
        "expected Received first: {:?}",
        String::from_utf8_lossy(&data[..data.len().min(200)])
    );
    let mut rest = after_header(data);
    for name in ["Authentication-Results: ", "X-Spamd-Result: "] {
        if rest.starts_with(name.as_bytes()) {
            rest = after_header(rest);
        }
    }
    rest
}

/// The text after the first header field (with its folded lines).
pub fn after_header(text: &[u8]) -> &[u8] {
    let mut i = 0;
    loop {
        let nl = text[i..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("header end")
            + i;
        if !matches!(text.get(nl + 2), Some(b'\t' | b' ')) {
            return &text[nl + 2..];
        }
        i = nl + 2;
    }
}
