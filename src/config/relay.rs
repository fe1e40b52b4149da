//! `[relay]` (who may relay, which domains are ours) and `[auth]` (SMTP AUTH).

use super::Span;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

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
    /// More local domains, one a line (`#` comments), in a file that may
    /// hold millions; a change to it takes effect within a second, no
    /// reload needed.
    #[serde(default)]
    pub local_domains_file: Option<PathBuf>,
    /// The known mailboxes of local_domains, one address a line ("@domain"
    /// accepts a whole domain); others get reject_unlisted_recipient.
    pub local_recipients: Option<PathBuf>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            mynetworks: default_mynetworks(),
            local_domains: Vec::new(),
            local_domains_file: None,
            local_recipients: None,
        }
    }
}

impl RelayConfig {
    /// True when `ip` is in `mynetworks`.
    pub fn is_trusted(&self, ip: std::net::IpAddr) -> bool {
        self.mynetworks.iter().any(|n| n.contains(&ip))
    }
}

fn default_mynetworks() -> Vec<ipnet::IpNet> {
    vec![
        "127.0.0.0/8".parse().expect("literal"),
        "::1/128".parse().expect("literal"),
    ]
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
