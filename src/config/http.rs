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
    /// A file holding the bearer token (its first line) that every API
    /// request must then send as `Authorization: Bearer <token>`; required
    /// off loopback, and honoured on loopback too when set (a shared host
    /// where other local users must not read the history).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Largest request body (`POST /api/check`: the message), in octets.
    #[serde(default = "default_max_body")]
    pub max_body: usize,
    /// Longest wait for a complete request (head and body) and between
    /// requests on a kept-alive connection.
    #[serde(default = "default_read_timeout")]
    pub read_timeout: Span,
}

impl HttpConfig {
    /// True when the listener must have a token: it is not on a loopback
    /// address (`0.0.0.0` and `::` listen on every interface).
    pub fn token_required(&self) -> bool {
        !self.listen.ip().is_loopback()
    }

    /// The token of `token_file` (its first line), `None` without one; an
    /// unreadable or empty file, or a token with spaces, is an error.
    pub fn token(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("http.token_file {}: cannot read: {e}", path.display()))?;
        let token = text.lines().next().unwrap_or("").trim().to_string();
        if token.is_empty() {
            return Err(format!(
                "http.token_file {}: empty: expected the token on its first line",
                path.display()
            ));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "http.token_file {}: the token must not hold spaces or control characters",
                path.display()
            ));
        }
        Ok(Some(token))
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

    fn at(listen: &str) -> HttpConfig {
        HttpConfig {
            listen: listen.parse().unwrap(),
            token_file: None,
            max_body: default_max_body(),
            read_timeout: default_read_timeout(),
        }
    }

    #[test]
    fn the_token_is_required_off_loopback() {
        for (listen, required) in [
            ("127.0.0.1:8025", false),
            ("127.0.0.2:8025", false),
            ("[::1]:8025", false),
            ("0.0.0.0:8025", true),
            ("[::]:8025", true),
            ("192.0.2.10:8025", true),
            ("[2001:db8::1]:8025", true),
        ] {
            assert_eq!(at(listen).token_required(), required, "{listen}");
        }
    }
}

#[cfg(test)]
mod validation {
    use crate::config::Config;
    use std::path::Path;

    const BASE: &str = "[server]\nhostname = \"gw.test\"\nlisten = [\"127.0.0.1:2525\"]\n[upstream]\naddress = \"127.0.0.1:10025\"\n[http]\n";

    #[test]
    fn off_loopback_a_token_file_is_required_and_the_error_points_at_listen() {
        let text = format!("{BASE}listen = \"0.0.0.0:8025\"\n");
        let err = Config::from_text(Path::new("gw.toml"), &text)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "gw.toml:7:1: http.token_file: expected a bearer token file, as listen 0.0.0.0:8025 \
             is not a loopback address: the API shows the mail history to whoever reaches the port"
        );
        let token =
            std::env::temp_dir().join(format!("smtpgate-unit-{}.token", std::process::id()));
        let with_token = format!(
            "{BASE}listen = \"0.0.0.0:8025\"\ntoken_file = \"{}\"\n",
            token.display()
        );
        let err = Config::from_text(Path::new("gw.toml"), &with_token)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "gw.toml:8:1: http.token_file {}: cannot read: ",
                token.display()
            )),
            "{err}"
        );
        for (content, why) in [
            ("\n", "empty: expected the token on its first line"),
            (
                "two words\n",
                "the token must not hold spaces or control characters",
            ),
        ] {
            std::fs::write(&token, content).unwrap();
            let err = Config::from_text(Path::new("gw.toml"), &with_token)
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                format!("gw.toml:8:1: http.token_file {}: {why}", token.display())
            );
        }
        std::fs::write(&token, "s3cret-token\nignored\n").unwrap();
        let c = Config::from_text(Path::new("gw.toml"), &with_token).unwrap();
        assert_eq!(
            c.http.unwrap().token().unwrap().as_deref(),
            Some("s3cret-token")
        );
        let _ = std::fs::remove_file(&token);
        let text = format!("{BASE}listen = \"127.0.0.1:8025\"\n");
        let c = Config::from_text(Path::new("gw.toml"), &text).unwrap();
        assert_eq!(c.http.unwrap().max_body, 26_214_400);
        let text = format!("{BASE}listen = \"127.0.0.1:8025\"\nmax_body = 0\n");
        let err = Config::from_text(Path::new("gw.toml"), &text)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "gw.toml:8:1: http.max_body: expected a number greater than 0"
        );
    }
}
