//! The verdict headers we add to a passed message: Authentication-Results
//! (RFC 8601) from the breakdown's SPF/DKIM/DMARC symbols, and rspamd's
//! X-Spamd-Result.

use crate::score::Breakdown;

pub use crate::mailauth::authentication_results;

/// `X-Spamd-Result` (rspamd's format), folded between symbols.
pub fn spamd_result(breakdown: &Breakdown, threshold: &str) -> String {
    let mut out = format!(
        "X-Spamd-Result: default: False [{} / {threshold}]",
        breakdown.total()
    );
    for s in breakdown.sorted() {
        let options: Vec<String> = s
            .hit
            .options
            .iter()
            .map(|o| o.replace(['[', ']', '\r', '\n'], " "))
            .collect();
        out.push_str(&format!(
            ";\r\n\t{}({})[{}]",
            s.hit.name,
            s.score,
            options.join(", ")
        ));
    }
    out.push_str("\r\n");
    out
}
