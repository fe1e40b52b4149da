//! HELO/EHLO name syntax: `reject_invalid_helo_hostname` and
//! `reject_non_fqdn_helo_hostname`, as Postfix defines them.

use super::{is_address_literal, is_fqdn, Check, CheckFuture, Phase, View};
use crate::score::Hit;

/// Checks the HELO name's syntax and that it is fully qualified.
pub struct HeloSyntaxCheck;

const INVALID: &str = "reject_invalid_helo_hostname";
const NON_FQDN: &str = "reject_non_fqdn_helo_hostname";

/// True when `name` is a syntactically valid hostname or address literal.
fn valid_hostname(name: &str) -> bool {
    if name.starts_with('[') {
        return is_address_literal(name);
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// The symbol the HELO name earns, if any.
fn judge(helo: &str) -> Option<&'static str> {
    if !valid_hostname(helo) {
        Some(INVALID)
    } else if !helo.starts_with('[') && !is_fqdn(helo) {
        Some(NON_FQDN)
    } else {
        None
    }
}

impl Check for HeloSyntaxCheck {
    fn name(&self) -> &'static str {
        "helo_syntax"
    }

    fn phase(&self) -> Phase {
        Phase::Helo
    }

    fn symbols(&self) -> &'static [&'static str] {
        &[INVALID, NON_FQDN]
    }

    fn check<'a>(&'a self, view: &'a View<'a>) -> CheckFuture<'a> {
        let hits = judge(view.helo)
            .map(|s| Hit::new(s, view.helo))
            .into_iter()
            .collect();
        Box::pin(async move { Ok(hits) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helo_names() {
        for (name, expected) in [
            ("mail.example.test", None),
            ("mail.example.test.", None),
            ("[192.0.2.1]", None),
            ("localhost", Some(NON_FQDN)),
            ("web01", Some(NON_FQDN)),
            ("bad..name", Some(INVALID)),
            ("-x.example.test", Some(INVALID)),
            ("[300.1.1.1]", Some(INVALID)),
            ("host name!", Some(INVALID)),
        ] {
            assert_eq!(judge(name), expected, "{name}");
        }
    }
}
