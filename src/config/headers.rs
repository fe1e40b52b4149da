//! `[headers]`: which of our verdict headers leave with the mail.

use serde::Deserialize;

/// `[headers]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadersConfig {
    /// `X-Spamd-Result` on passed mail: off (rspamd adds no extended
    /// headers to outbound mail by default), symbols or full.
    #[serde(default)]
    pub spamd_result: SpamdResult,
}

/// How much of the verdict `X-Spamd-Result` shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpamdResult {
    /// No header.
    #[default]
    Off,
    /// Symbol names and scores, without their options (fix hints, records).
    Symbols,
    /// rspamd's format: `SYMBOL(score)[opt1,opt2]`.
    Full,
}
