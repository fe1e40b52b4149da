//! `[greylist]`: greylisting of untrusted clients.

use super::Span;
use ipnet::IpNet;
use serde::Deserialize;
use std::time::Duration;

/// `[greylist]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GreylistConfig {
    /// Greylisting runs only when true (the section's presence alone
    /// enables it).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long a new triplet must wait before a retry passes.
    #[serde(default = "default_delay")]
    pub delay: Span,
    /// How long after its first attempt a triplet may still pass.
    #[serde(default = "default_retry_window")]
    pub retry_window: Span,
    /// How long a passed triplet (and a network's pass count) is kept.
    #[serde(default = "default_max_age")]
    pub max_age: Span,
    /// Passes after which the client network is whitelisted; 0 = never.
    #[serde(default = "default_auto_whitelist_after")]
    pub auto_whitelist_after: u64,
    /// The client network of an IPv4 client: this prefix length.
    #[serde(default = "default_ipv4_prefix")]
    pub ipv4_prefix: u8,
    /// The client network of an IPv6 client: this prefix length.
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6_prefix: u8,
    /// No greylisting for clients that authenticated (SMTP AUTH).
    #[serde(default = "yes")]
    pub skip_authenticated: bool,
    /// No greylisting for clients in `relay.mynetworks`.
    #[serde(default)]
    pub skip_mynetworks: bool,
    /// Client networks never greylisted.
    #[serde(default)]
    pub whitelist_networks: Vec<IpNet>,
    /// Sender domains never greylisted (a subdomain matches too).
    #[serde(default)]
    pub whitelist_sender_domains: Vec<String>,
    /// Recipients never greylisted: `user@domain`, or `domain` for all of it.
    #[serde(default)]
    pub whitelist_recipients: Vec<String>,
}

fn yes() -> bool {
    true
}
fn default_delay() -> Span {
    Span(Duration::from_secs(300))
}
fn default_retry_window() -> Span {
    Span(Duration::from_secs(2 * 86_400))
}
fn default_max_age() -> Span {
    Span(Duration::from_secs(35 * 86_400))
}
fn default_auto_whitelist_after() -> u64 {
    5
}
fn default_ipv4_prefix() -> u8 {
    24
}
fn default_ipv6_prefix() -> u8 {
    64
}

impl Default for GreylistConfig {
    fn default() -> Self {
        GreylistConfig {
            enabled: true,
            delay: default_delay(),
            retry_window: default_retry_window(),
            max_age: default_max_age(),
            auto_whitelist_after: default_auto_whitelist_after(),
            ipv4_prefix: default_ipv4_prefix(),
            ipv6_prefix: default_ipv6_prefix(),
            skip_authenticated: true,
            skip_mynetworks: false,
            whitelist_networks: Vec::new(),
            whitelist_sender_domains: Vec::new(),
            whitelist_recipients: Vec::new(),
        }
    }
}
