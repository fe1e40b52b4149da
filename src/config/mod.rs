//! The configuration file: serde structs (unknown keys are errors), defaults,
//! and errors that name `file:line:col` and what was expected (DESIGN §4).
//! One file per group of sections; every type is re-exported here.

mod anomaly;
mod dns;
mod envelope;
mod error;
mod greylist;
mod headers;
mod history;
mod http;
mod log;
mod outbound;
mod ratelimit;
mod relay;
mod scoring;
mod server;
mod span;
mod store;

pub use anomaly::{AnomalyConfig, MAX_HOLD};
pub use dns::DnsConfig;
pub use envelope::{CalloutScope, DnsblConfig, DnsblOnError, EnvelopeConfig, Zone};
pub use error::{line_col, locate_key, parse_toml, ConfigError};
pub use greylist::GreylistConfig;
pub use headers::{HeadersConfig, SpamdResult};
pub use history::HistoryConfig;
pub use http::HttpConfig;
pub use log::{LogConfig, LogFormat};
pub use outbound::{DkimConfig, OutboundConfig};
pub use ratelimit::{Limits, RateLimitConfig};
pub use relay::{AuthConfig, RelayConfig};
pub use scoring::{ScoreOverride, ScoringConfig, SpamAction};
pub use server::{ClientLimit, Listener, MetricsConfig, ServerConfig, TlsConfig, UpstreamConfig};
pub use span::Span;
pub use store::{OnError, StoreBackend, StoreConfig};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The most connections (client or upstream) one process may be told to
/// hold.
const MAX_CONNECTIONS: usize = 1_000_000;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: listeners and session limits.
    pub server: ServerConfig,
    /// `[tls]`: STARTTLS certificate; STARTTLS is offered when present.
    pub tls: Option<TlsConfig>,
    /// `[upstream]`: the MTA mail is relayed to.
    pub upstream: UpstreamConfig,
    /// `[scoring]`: threshold and what happens to spam.
    #[serde(default)]
    pub scoring: ScoringConfig,
    /// `[scores]`: operator overrides, `SYMBOL = score` or
    /// `SYMBOL = { score = 3.0, shadow = true }`.
    #[serde(default)]
    pub scores: BTreeMap<String, toml::Spanned<ScoreOverride>>,
    /// `[relay]`: who may relay, which domains are ours.
    #[serde(default)]
    pub relay: RelayConfig,
    /// `[headers]`: which verdict headers leave with the mail.
    #[serde(default)]
    pub headers: HeadersConfig,
    /// `[dns]`: resolver settings.
    #[serde(default)]
    pub dns: DnsConfig,
    /// `[store]`: where shared state lives.
    #[serde(default)]
    pub store: StoreConfig,
    /// `[envelope]`: the DNS and store based envelope checks.
    #[serde(default)]
    pub envelope: EnvelopeConfig,
    /// `[dnsbl]`: DNSBL and RHSBL zones.
    #[serde(default)]
    pub dnsbl: DnsblConfig,
    /// `[auth]`: SMTP AUTH, offered (after STARTTLS) when present.
    pub auth: Option<AuthConfig>,
    /// `[metrics]`: the Prometheus exporter (off when absent).
    pub metrics: Option<MetricsConfig>,
    /// `[http]`: the HTTP API and web console (off when absent).
    pub http: Option<HttpConfig>,
    /// `[log]`: how log lines are written.
    #[serde(default)]
    pub log: LogConfig,
    /// `[outbound]`: SPF/DKIM/DMARC prediction for the egress path; the
    /// authentication checks run only when this section is present.
    pub outbound: Option<OutboundConfig>,
    /// `[dkim]`: DKIM signing of customer domains, when present.
    pub dkim: Option<DkimConfig>,
    /// `[greylist]`: greylisting, when present (and enabled).
    #[serde(default)]
    pub greylist: Option<GreylistConfig>,
    /// `[ratelimit]`: sending quotas per identity, when present.
    #[serde(default)]
    pub ratelimit: Option<RateLimitConfig>,
    /// `[history]`: every transaction's summary, for support.
    #[serde(default)]
    pub history: HistoryConfig,
    /// `[anomaly]`: identities far above their own baseline are held.
    #[serde(default)]
    pub anomaly: AnomalyConfig,
    /// Where this configuration came from, for error messages.
    #[serde(skip)]
    pub source: Source,
}

/// A configuration file's path and text, kept for pointing at errors found
/// after parsing.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// The file.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

impl Source {
    /// An error at byte `offset` of this file.
    pub fn error_at(&self, offset: usize, message: String) -> ConfigError {
        let (line, col) = line_col(&self.text, offset);
        ConfigError::Invalid {
            path: self.path.display().to_string(),
            line,
            col,
            message,
        }
    }

    /// An error about `key` of `[section]` in this file.
    pub fn error_at_key(&self, section: &str, key: &str, message: String) -> ConfigError {
        let (line, col) = locate_key(&self.text, section, key);
        ConfigError::Invalid {
            path: self.path.display().to_string(),
            line,
            col,
            message,
        }
    }
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_text(path, &text)
    }

    /// Parses and validates configuration text (`path` is for messages).
    pub fn from_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut config: Config = parse_toml(path, text)?;
        config.source = Source {
            path: path.to_path_buf(),
            text: text.to_string(),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |section: &str, key: &str, message: String| {
            Err(self.source.error_at_key(section, key, message))
        };
        let s = &self.server;
        if s.hostname.is_empty() || s.hostname.contains(char::is_whitespace) {
            return invalid(
                "server",
                "hostname",
                "server.hostname: expected a host name like \"gw.example.test\"".into(),
            );
        }
        if s.listen.is_empty() {
            return invalid(
                "server",
                "listen",
                "server.listen: expected at least one address".into(),
            );
        }
        for (section, key, value) in [
            ("server", "max_message_size", s.max_message_size),
            ("server", "max_recipients", s.max_recipients),
            ("server", "max_connections", s.max_connections),
            ("upstream", "max_connections", self.upstream.max_connections),
            ("history", "queue", self.history.queue),
            ("history", "memory_records", self.history.memory_records),
        ] {
            if value == 0 {
                return invalid(
                    section,
                    key,
                    format!("{section}.{key}: expected a number greater than 0"),
                );
            }
        }
        for (section, key, value) in [
            ("server", "max_connections", s.max_connections),
            ("upstream", "max_connections", self.upstream.max_connections),
            ("upstream", "pool_size", self.upstream.pool_size),
        ] {
            if value > MAX_CONNECTIONS {
                return invalid(
                    section,
                    key,
                    format!("{section}.{key}: expected at most {MAX_CONNECTIONS}"),
                );
            }
        }
        if !(1..=10).contains(&self.dns.attempts) {
            return invalid(
                "dns",
                "attempts",
                "dns.attempts: expected a number from 1 to 10".into(),
            );
        }
        if let Some(http) = &self.http {
            if http.token_required() && http.token_file.is_none() {
                return invalid(
                    "http",
                    "listen",
                    format!(
                        "http.token_file: expected a bearer token file, as listen {} is not a loopback address: the API shows the mail history to whoever reaches the port",
                        http.listen
                    ),
                );
            }
            if let Err(e) = http.token() {
                return invalid("http", "token_file", e);
            }
            if http.max_body == 0 {
                return invalid(
                    "http",
                    "max_body",
                    "http.max_body: expected a number greater than 0".into(),
                );
            }
        }
        if !(self.scoring.threshold > 0.0 && self.scoring.threshold.is_finite()) {
            return invalid(
                "scoring",
                "threshold",
                "scoring.threshold: expected a positive number like 2.00".into(),
            );
        }
        if let Some((key, message)) = self.anomaly.problem() {
            return invalid("anomaly", key, message);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MINIMAL: &str = "[server]\nhostname = \"gw.test\"\nlisten = [\"127.0.0.1:2525\"]\n[upstream]\naddress = \"127.0.0.1:10025\"\n";

    fn load(text: &str) -> Result<Config, String> {
        Config::from_text(Path::new("gw.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = load(MINIMAL).unwrap();
        assert_eq!(c.server.max_recipients, 100);
        assert_eq!(c.server.idle_timeout, Span(Duration::from_secs(300)));
        assert_eq!(c.scoring.spam_action, SpamAction::Bounce);
    }

    #[test]
    fn misspelt_key_names_file_line_and_key() {
        let err = load(&MINIMAL.replace("hostname", "hostnme")).unwrap_err();
        assert!(
            err.starts_with("gw.toml:2:1: unknown field `hostnme`"),
            "{err}"
        );
    }

    #[test]
    fn bad_duration_says_what_was_expected() {
        let err = load(&format!("{MINIMAL}[server.x]\n")).unwrap_err();
        assert!(err.starts_with("gw.toml:"), "{err}");
        let text = MINIMAL.replace("[upstream]", "idle_timeout = \"5 minutes\"\n[upstream]");
        let err = load(&text).unwrap_err();
        assert!(
            err.starts_with("gw.toml:4:16: invalid duration `5 minutes`"),
            "{err}"
        );
    }

    #[test]
    fn listeners_accept_strings_and_tables() {
        let text = MINIMAL.replace(
            "[\"127.0.0.1:2525\"]",
            "[\"127.0.0.1:2525\", { address = \"[::1]:2526\" }]",
        );
        let c = load(&text).unwrap();
        assert_eq!(c.server.listen[1].address, "[::1]:2526".parse().unwrap());
        let err = load(&MINIMAL.replace("127.0.0.1:2525", "nowhere")).unwrap_err();
        assert!(err.contains("invalid listen address `nowhere`"), "{err}");
    }

    #[test]
    fn semantic_errors_point_at_the_key() {
        let err =
            load(&MINIMAL.replace("[upstream]", "max_recipients = 0\n[upstream]")).unwrap_err();
        assert!(
            err.starts_with("gw.toml:4:1: server.max_recipients"),
            "{err}"
        );
    }

    #[test]
    fn spans_parse() {
        assert_eq!(Span::parse("30s"), Some(Span(Duration::from_secs(30))));
        assert_eq!(Span::parse("2d"), Some(Span(Duration::from_secs(172_800))));
        assert_eq!(Span::parse("250ms"), Some(Span(Duration::from_millis(250))));
        assert_eq!(Span::parse("5"), None);
        assert_eq!(Span::parse("m"), None);
        // Ten years at most: `now + span` must not overflow anywhere.
        assert_eq!(
            Span::parse("3650d"),
            Some(Span(Duration::from_secs(3650 * 86_400)))
        );
        assert_eq!(Span::parse("3651d"), None);
        assert_eq!(Span::parse("18446744073709551615s"), None);
    }

    #[test]
    fn absurd_values_are_config_errors_not_panics() {
        let err = load(&MINIMAL.replace(
            "[upstream]",
            "idle_timeout = \"18446744073709551615s\"\n[upstream]",
        ))
        .unwrap_err();
        assert!(
            err.starts_with("gw.toml:4:") && err.contains("at most \"3650d\""),
            "{err}"
        );
        let err = load(&MINIMAL.replace(
            "[upstream]",
            "max_connections = 18446744073709551615\n[upstream]",
        ))
        .unwrap_err();
        assert!(
            err.starts_with("gw.toml:4:1: server.max_connections: expected at most 1000000"),
            "{err}"
        );
        let err = load(&format!("{MINIMAL}[dns]\nattempts = 100000\n")).unwrap_err();
        assert!(
            err.contains("dns.attempts: expected a number from 1 to 10"),
            "{err}"
        );
    }
}
