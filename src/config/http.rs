//! `[http]`: the HTTP API and web console (read at start-up; a reload
//! does not move the listener).

use super::Span;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where the API (`/api/...`) and the console (`/`) are served. A
    /// listener on a loopback address answers without a token; any other
    /// address needs `token_file`.
    pub listen: SocketAddr,
    /// A file holding the bearer token (one line) every request must send
    /// as `Authorization: Bearer <token>`; required off loopback.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Ask for the token on a loopback listener too (a shared host where
    /// other local users must not read the history).
    #[serde(default)]
    pub require_token: bool,
    /// Largest request body (`POST /api/check`: the message), in octets.
    #[serde(default = "default_max_body")]
    pub max_body: usize,
    /// Longest wait for a complete request (head and body) and between
    /// requests on a kept-alive connection.
    #[serde(default = "default_read_timeout")]
    pub read_timeout: Span,
}

impl HttpConfig {
    /// True when requests must carry the token: the listener is not on a
    /// loopback address (`0.0.0.0` and `::` listen on every interface), or
    /// `require_token` says so.
    pub fn token_required(&self) -> bool {
        self.require_token || !self.listen.ip().is_loopback()
    }
}

fn default_max_body() -> usize {
    26_214_400
}
fn default_read_timeout() -> Span {
    Span(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(listen: &str, require_token: bool) -> HttpConfig {
        HttpConfig {
            listen: listen.parse().unwrap(),
            token_file: None,
            require_token,
            max_body: default_max_body(),
            read_timeout: default_read_timeout(),
        }
    }

    #[test]
    fn the_token_is_required_off_loopback_or_when_asked() {
        for (listen, required) in [
            ("127.0.0.1:8025", false),
            ("127.0.0.2:8025", false),
            ("[::1]:8025", false),
            ("0.0.0.0:8025", true),
            ("[::]:8025", true),
            ("192.0.2.10:8025", true),
            ("[2001:db8::1]:8025", true),
        ] {
            assert_eq!(at(listen, false).token_required(), required, "{listen}");
            assert!(
                at(listen, true).token_required(),
                "{listen} with require_token"
            );
        }
    }
}
