//! `[outbound]` (SPF/DMARC prediction for the egress path) and `[dkim]` (signing).

use serde::Deserialize;
use std::path::PathBuf;

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
