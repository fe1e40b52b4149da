//! `[dns]`: the resolver the checks and SPF/DKIM/DMARC use.

use super::Span;
use serde::Deserialize;
use std::time::Duration;

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
