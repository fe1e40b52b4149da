//! The verdict headers we add to a passed message: Authentication-Results
//! (RFC 8601) from the breakdown's SPF/DKIM/DMARC symbols, and rspamd's
//! X-Spamd-Result.

use crate::config::SpamdResult;
use crate::score::Breakdown;

pub use crate::mailauth::authentication_results;

/// `X-Spamd-Result` in rspamd's milter_headers format, folded between
/// symbols: `default: False [0.40 / 2.00];` then `SYMBOL(score)[opt1,opt2]`
/// per symbol, options joined by `,` as rspamd joins them. `Symbols` keeps
/// names and scores only (`[]`: no records, no fix hints); `Off` is `None`.
pub fn spamd_result(breakdown: &Breakdown, threshold: &str, mode: SpamdResult) -> Option<String> {
    if mode == SpamdResult::Off {
        return None;
    }
    let mut out = format!(
        "X-Spamd-Result: default: False [{} / {threshold}]",
        breakdown.total()
    );
    for s in breakdown.sorted() {
        let options: Vec<String> = match mode {
            SpamdResult::Full => s
                .hit
                .options
                .iter()
                .map(|o| o.replace(['[', ']', '\r', '\n'], " "))
                .collect(),
            _ => Vec::new(),
        };
        out.push_str(&format!(
            ";\r\n\t{}({})[{}]",
            s.hit.name,
            s.score,
            options.join(",")
        ));
    }
    out.push_str("\r\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::{Hit, Score, ScoredSymbol};

    fn breakdown() -> Breakdown {
        let mut b = Breakdown::default();
        b.push(ScoredSymbol {
            hit: Hit {
                options: vec!["customer.test".into(), "v=DKIM1; p=[key]".into()],
                ..Hit::new("R_DKIM_NA", "")
            },
            score: Score(40),
            action: None,
            group: String::new(),
            shadow: false,
        });
        b
    }

    #[test]
    fn the_three_modes() {
        let b = breakdown();
        assert_eq!(spamd_result(&b, "2.00", SpamdResult::Off), None);
        assert_eq!(
            spamd_result(&b, "2.00", SpamdResult::Symbols).as_deref(),
            Some("X-Spamd-Result: default: False [0.40 / 2.00];\r\n\tR_DKIM_NA(0.40)[]\r\n")
        );
        assert_eq!(
            spamd_result(&b, "2.00", SpamdResult::Full).as_deref(),
            Some("X-Spamd-Result: default: False [0.40 / 2.00];\r\n\tR_DKIM_NA(0.40)[customer.test,v=DKIM1; p= key ]\r\n")
        );
    }
}
