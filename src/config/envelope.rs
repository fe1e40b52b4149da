//! `[envelope]` (DNS and store based envelope checks) and `[dnsbl]` (DNSBL/RHSBL zones).

use super::Span;
use serde::Deserialize;
use std::time::Duration;

/// `[envelope]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeConfig {
    /// The HELO name must resolve (A, AAAA or MX).
    #[serde(default)]
    pub reject_unknown_helo_hostname: bool,
    /// The client IP must have a PTR record.
    #[serde(default)]
    pub reject_unknown_reverse_client_hostname: bool,
    /// A PTR name of the client IP must resolve back to it.
    #[serde(default)]
    pub reject_unknown_client_hostname: bool,
    /// The sender domain must resolve (A, AAAA or MX), and not be a null MX.
    #[serde(default)]
    pub reject_unknown_sender_domain: bool,
    /// Refuse recipients the upstream hard-bounced (learned automatically).
    #[serde(default = "default_true")]
    pub reject_known_bad_recipient_address: bool,
    /// How long a learned bad recipient is remembered.
    #[serde(default = "default_known_bad_ttl")]
    pub known_bad_ttl: Span,
    /// Sender verification by SMTP callout: "none", "local" or "all".
    #[serde(default)]
    pub reject_unverified_sender: CalloutScope,
    /// The port callouts connect to (25; tests use another).
    #[serde(default = "default_callout_port")]
    pub callout_port: u16,
    /// Longest callout.
    #[serde(default = "default_callout_timeout")]
    pub callout_timeout: Span,
    /// Callouts at once per destination host.
    #[serde(default = "default_callout_concurrency")]
    pub callout_concurrency: usize,
}

fn default_callout_port() -> u16 {
    25
}
fn default_callout_timeout() -> Span {
    Span(Duration::from_secs(10))
}
fn default_callout_concurrency() -> usize {
    4
}

impl Default for EnvelopeConfig {
    fn default() -> Self {
        EnvelopeConfig {
            reject_unknown_helo_hostname: false,
            reject_unknown_reverse_client_hostname: false,
            reject_unknown_client_hostname: false,
            reject_unknown_sender_domain: false,
            reject_known_bad_recipient_address: true,
            known_bad_ttl: default_known_bad_ttl(),
            reject_unverified_sender: CalloutScope::None,
            callout_port: default_callout_port(),
            callout_timeout: default_callout_timeout(),
            callout_concurrency: default_callout_concurrency(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_known_bad_ttl() -> Span {
    Span(Duration::from_secs(30 * 86_400))
}

/// One DNSBL/RHSBL zone.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// The zone, e.g. "zen.spamhaus.org".
    pub zone: String,
    /// The symbol suffix: RBL_<NAME> / RHSBL_<NAME>.
    pub name: String,
}

/// `[dnsbl]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsblConfig {
    /// Zones listing client IPs.
    #[serde(default)]
    pub client: Vec<Zone>,
    /// Zones listing sender domains.
    #[serde(default)]
    pub sender: Vec<Zone>,
    /// A DNSBL that times out or fails: `skip` (the default: a blocklist
    /// outage must not stop mail; counted and logged) or `tempfail`
    /// (451 4.3.0 for that phase).
    #[serde(default)]
    pub on_error: DnsblOnError,
}

/// What a DNSBL/RHSBL lookup failure does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsblOnError {
    /// Not listed, as far as we know.
    #[default]
    Skip,
    /// 451 4.3.0 for that phase.
    Tempfail,
}

/// Which senders are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CalloutScope {
    /// Nobody (the default).
    #[default]
    None,
    /// Senders of relay.local_domains.
    Local,
    /// Every sender.
    All,
}
