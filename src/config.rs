//! The configuration file: serde structs (unknown keys are errors), defaults,
//! and errors that name `file:line:col` and what was expected (DESIGN §4).

use serde::{de, Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration or rules file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file says something wrong at a place we can point to.
    #[error("{path}:{line}:{col}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

/// Where `key` is set inside `[section]` (or at top level for ""), for
/// errors found after parsing; the section header, else line 1.
pub fn locate_key(text: &str, section: &str, key: &str) -> (usize, usize) {
    let mut current = String::new();
    let mut header_line = 1;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = name.trim_matches(['[', ' ']).to_string();
            if current == section {
                header_line = i + 1;
            }
            continue;
        }
        if current == section {
            if let Some(rest) = line.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return (i + 1, raw.len() - raw.trim_start().len() + 1);
                }
            }
        }
    }
    (header_line, 1)
}

/// Parses TOML text into `T`, turning serde errors into `file:line:col`.
pub fn parse_toml<T: de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        ConfigError::Invalid {
            path: path.display().to_string(),
            line,
            col,
            message: e.message().trim().to_string(),
        }
    })
}

/// A duration written as `"500ms"`, `"30s"`, `"5m"`, `"2h"` or `"35d"`, at
/// most [`Span::MAX_DAYS`] days (so that `now + span` can never overflow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl Span {
    /// The longest duration any setting takes: ten years.
    pub const MAX_DAYS: u64 = 3650;

    /// Parses the textual form.
    pub fn parse(text: &str) -> Option<Span> {
        Span::parse_unbounded(text).filter(|s| s.0.as_secs() <= Span::MAX_DAYS * 86_400)
    }

    fn parse_unbounded(text: &str) -> Option<Span> {
        let digits = text.find(|c: char| !c.is_ascii_digit())?;
        let (number, unit) = text.split_at(digits);
        let n: u64 = number.parse().ok()?;
        let secs = match unit {
            "ms" => return Some(Span(Duration::from_millis(n))),
            "s" => n,
            "m" => n.checked_mul(60)?,
            "h" => n.checked_mul(3600)?,
            "d" => n.checked_mul(86_400)?,
            _ => return None,
        };
        Some(Span(Duration::from_secs(secs)))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).ok_or_else(|| {
            de::Error::custom(format!(
                "invalid duration `{text}`: expected a number followed by ms, s, m, h or d, e.g. \"30s\", at most \"{}d\"",
                Span::MAX_DAYS
            ))
        })
    }
}

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
    /// `[scores]`: operator overrides, SYMBOL = score.
    #[serde(default)]
    pub scores: BTreeMap<String, toml::Spanned<f64>>,
    /// `[relay]`: who may relay, which domains are ours.
    #[serde(default)]
    pub relay: RelayConfig,
    /// `[dns]`: resolver settings.
    #[serde(default)]
    pub dns: DnsConfig,
    /// `[store]`: where shared state lives.
    #[serde(default)]
    pub store: StoreConfig,
    /// `[envelope]`: the DNS and store based envelope checks.
    #[serde(default)]
    pub envelope: crate::checks::envelope::EnvelopeConfig,
    /// `[dnsbl]`: DNSBL and RHSBL zones.
    #[serde(default)]
    pub dnsbl: crate::checks::envelope::DnsblConfig,
    /// `[auth]`: SMTP AUTH, offered (after STARTTLS) when present.
    pub auth: Option<AuthConfig>,
    /// `[metrics]`: the Prometheus exporter (off when absent).
    pub metrics: Option<MetricsConfig>,
    /// `[outbound]`: SPF/DKIM/DMARC prediction for the egress path; the
    /// authentication checks run only when this section is present.
    pub outbound: Option<OutboundConfig>,
    /// `[dkim]`: DKIM signing of customer domains, when present.
    pub dkim: Option<DkimConfig>,
    /// `[greylist]`: greylisting, when present (and enabled).
    #[serde(default)]
    pub greylist: Option<crate::checks::greylist::GreylistConfig>,
    /// `[ratelimit]`: sending quotas per identity, when present.
    #[serde(default)]
    pub ratelimit: Option<crate::checks::ratelimit::RateLimitConfig>,
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

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Our name: banner, Received, authserv-id.
    pub hostname: String,
    /// Listening sockets.
    #[serde(deserialize_with = "listeners")]
    pub listen: Vec<Listener>,
    /// Largest message accepted, in octets.
    #[serde(default = "default_max_message_size")]
    pub max_message_size: usize,
    /// Most recipients per transaction.
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// Most concurrent client connections; the excess gets 421 4.7.0.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Unknown or invalid commands tolerated before 421 and close.
    #[serde(default = "default_max_errors")]
    pub max_errors: u32,
    /// Longest wait for a complete command line.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Span,
    /// Longest wait for the next chunk of DATA.
    #[serde(default = "default_data_timeout")]
    pub data_timeout: Span,
    /// Longest time one message's DATA may take in all (a client that
    /// trickles a byte now and then must not hold its upstream connection
    /// for ever).
    #[serde(default = "default_data_deadline")]
    pub data_deadline: Span,
    /// On SIGTERM, how long sessions may take to finish.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: Span,
}

/// One listening socket: `"127.0.0.1:2525"` or a table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Address and port.
    pub address: SocketAddr,
    /// AUTH is offered here without TLS (a trusted network only).
    #[serde(default)]
    pub trusted_cleartext: bool,
    /// Connections start with a PROXY protocol v1/v2 header (from a load
    /// balancer); its source address is the client for every decision.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// With `proxy_protocol`: the load balancers allowed to send the
    /// header; a connection from anywhere else is closed unread. Empty:
    /// any peer (then the port must not be reachable by clients).
    #[serde(default)]
    pub proxy_from: Vec<ipnet::IpNet>,
    /// TLS from the first byte (port 465 style); needs `[tls]`.
    #[serde(default)]
    pub implicit_tls: bool,
}

impl<'de> Deserialize<'de> for ListenerEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ListenerEntry, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = ListenerEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address like \"127.0.0.1:2525\" or a table { address = \"...\" }")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ListenerEntry, E> {
                s.parse()
                    .map(|address| {
                        ListenerEntry(Listener {
                            address,
                            trusted_cleartext: false,
                            proxy_protocol: false,
                            proxy_from: Vec::new(),
                            implicit_tls: false,
                        })
                    })
                    .map_err(|_| {
                        E::custom(format!("invalid listen address `{s}`: expected IP:port"))
                    })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<ListenerEntry, A::Error> {
                Listener::deserialize(de::value::MapAccessDeserializer::new(map)).map(ListenerEntry)
            }
        }
        d.deserialize_any(V)
    }
}

/// Deserialization wrapper accepting both listener forms.
struct ListenerEntry(Listener);

fn listeners<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Listener>, D::Error> {
    Ok(Vec::<ListenerEntry>::deserialize(d)?
        .into_iter()
        .map(|e| e.0)
        .collect())
}

/// `[tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `[upstream]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The MTA's SMTP address.
    pub address: SocketAddr,
    /// Idle connections kept for reuse.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Most connections open to the MTA at once; sessions wait for a slot.
    #[serde(default = "default_upstream_max_connections")]
    pub max_connections: usize,
    /// Longest wait for any reply from the MTA (and for a free slot).
    #[serde(default = "default_upstream_timeout")]
    pub timeout: Span,
    /// Longest wait to connect.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Span,
    /// Idle pooled connections older than this are closed, not reused.
    #[serde(default = "default_max_idle")]
    pub max_idle: Span,
}

/// `[relay]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Client networks trusted to relay.
    #[serde(default = "default_mynetworks")]
    pub mynetworks: Vec<ipnet::IpNet>,
    /// Domains whose senders we serve and whose recipients we know.
    #[serde(default)]
    pub local_domains: Vec<String>,
    /// The known mailboxes of local_domains, one address a line ("@domain"
    /// accepts a whole domain); others get reject_unlisted_recipient.
    pub local_recipients: Option<PathBuf>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            mynetworks: default_mynetworks(),
            local_domains: Vec::new(),
            local_recipients: None,
        }
    }
}

impl RelayConfig {
    /// True when `ip` is in `mynetworks`.
    pub fn is_trusted(&self, ip: std::net::IpAddr) -> bool {
        self.mynetworks.iter().any(|n| n.contains(&ip))
    }

    /// True when `domain` (any case, trailing dot ignored) is a local domain.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        self.local_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }
}

fn default_mynetworks() -> Vec<ipnet::IpNet> {
    vec![
        "127.0.0.0/8".parse().expect("literal"),
        "::1/128".parse().expect("literal"),
    ]
}

/// `[dns]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Nameservers as `IP:port` (or `IP`, port 53); empty = the system resolver.
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// Per-query timeout.
    #[serde(default = "default_dns_timeout")]
    pub timeout: Span,
    /// Attempts per query.
    #[serde(default = "default_dns_attempts")]
    pub attempts: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            nameservers: Vec::new(),
            timeout: default_dns_timeout(),
            attempts: default_dns_attempts(),
        }
    }
}

fn default_dns_timeout() -> Span {
    Span(Duration::from_secs(3))
}
fn default_dns_attempts() -> usize {
    2
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Dovecot-style passwd-file: `user:{SCHEME}hash`.
    pub passwd_file: PathBuf,
    /// TOML: login = ["address", "@domain", ...]; when set, an
    /// authenticated client may only use those senders.
    pub sender_login_maps: Option<PathBuf>,
    /// Failed AUTH attempts per client IP before the lockout.
    #[serde(default = "default_max_failures")]
    pub max_failures: i64,
    /// How long failures are counted, and how long a lockout lasts.
    #[serde(default = "default_lockout")]
    pub lockout: Span,
}

fn default_max_failures() -> i64 {
    5
}
fn default_lockout() -> Span {
    Span(Duration::from_secs(900))
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `/metrics` is served (keep it on loopback or a management network).
    pub listen: SocketAddr,
}

/// `[outbound]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// The upstream MTA's public IPs: SPF and DMARC are predicted for these
    /// (the client IP when empty).
    #[serde(default)]
    pub egress_ips: Vec<std::net::IpAddr>,
}

/// `[dkim]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    /// Directory of private keys, one PEM file per domain and selector named
    /// `<selector>._domainkey.<domain>.pem` (RSA or Ed25519, PKCS#1 or PKCS#8).
    pub keys_dir: PathBuf,
    /// Header fields the signature covers (those present in the message).
    #[serde(default = "default_dkim_headers")]
    pub headers: Vec<String>,
}

fn default_dkim_headers() -> Vec<String> {
    [
        "From",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "Reply-To",
        "In-Reply-To",
        "References",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ]
    .map(String::from)
    .to_vec()
}

/// Which `Store` backend holds shared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// In this process only (lost on restart; not shared between nodes).
    Memory,
    /// A Redis (or Valkey) server shared by every node.
    Redis,
}

/// What a check does when the store fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// 451 4.3.0 for that phase (the default).
    Tempfail,
    /// Skip the check.
    Accept,
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `memory` or `redis`.
    #[serde(default = "default_store_backend")]
    pub backend: StoreBackend,
    /// Redis URL (`redis://host:port/db`).
    #[serde(default = "default_redis_url")]
    pub redis_url: String,
    /// Prefix of every key, so several deployments can share a server.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Longest wait for one store operation.
    #[serde(default = "default_store_timeout")]
    pub timeout: Span,
    /// `tempfail` or `accept` when the store fails.
    #[serde(default = "default_on_error")]
    pub on_error: OnError,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: default_store_backend(),
            redis_url: default_redis_url(),
            key_prefix: default_key_prefix(),
            timeout: default_store_timeout(),
            on_error: default_on_error(),
        }
    }
}

fn default_store_backend() -> StoreBackend {
    StoreBackend::Memory
}
fn default_redis_url() -> String {
    "redis://127.0.0.1:6379".into()
}
fn default_key_prefix() -> String {
    "smtpgate:".into()
}
fn default_store_timeout() -> Span {
    Span(Duration::from_millis(500))
}
fn default_on_error() -> OnError {
    OnError::Tempfail
}

/// What happens to a message scored as spam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpamAction {
    /// Refuse at end of DATA with a one-line 5xx breakdown.
    Reject,
    /// Accept, and send the SPAM alert to the originator instead of the message.
    Bounce,
}

/// `[scoring]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringConfig {
    /// A total at or above this is spam.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Reject or bounce spam.
    #[serde(default = "default_spam_action")]
    pub spam_action: SpamAction,
    /// Directory of rules/*.toml, relative to the working directory.
    #[serde(default = "default_rules_dir")]
    pub rules_dir: PathBuf,
    /// Time one message's content analysis may take; beyond it the message
    /// scores MIME_TOO_COMPLEX on what was found so far.
    #[serde(default = "default_analysis_timeout")]
    pub analysis_timeout: Span,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig {
            threshold: default_threshold(),
            spam_action: default_spam_action(),
            rules_dir: default_rules_dir(),
            analysis_timeout: default_analysis_timeout(),
        }
    }
}

fn default_max_message_size() -> usize {
    26_214_400
}
fn default_max_recipients() -> usize {
    100
}
fn default_max_connections() -> usize {
    10_000
}
fn default_max_errors() -> u32 {
    20
}
fn default_idle_timeout() -> Span {
    Span(Duration::from_secs(300))
}
fn default_data_deadline() -> Span {
    Span(Duration::from_secs(1800))
}
fn default_data_timeout() -> Span {
    Span(Duration::from_secs(180))
}
fn default_shutdown_timeout() -> Span {
    Span(Duration::from_secs(30))
}
fn default_pool_size() -> usize {
    16
}
fn default_upstream_max_connections() -> usize {
    256
}
fn default_upstream_timeout() -> Span {
    Span(Duration::from_secs(60))
}
fn default_connect_timeout() -> Span {
    Span(Duration::from_secs(10))
}
fn default_max_idle() -> Span {
    Span(Duration::from_secs(60))
}
fn default_threshold() -> f64 {
    2.0
}
fn default_spam_action() -> SpamAction {
    SpamAction::Bounce
}
fn default_analysis_timeout() -> Span {
    Span(Duration::from_secs(2))
}
fn default_rules_dir() -> PathBuf {
    PathBuf::from("rules")
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
        if !(self.scoring.threshold > 0.0 && self.scoring.threshold.is_finite()) {
            return invalid(
                "scoring",
                "threshold",
                "scoring.threshold: expected a positive number like 2.00".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
