//! Envelope sender checks: `reject_non_fqdn_sender`.

use super::{is_address_literal, is_fqdn, Check, CheckFuture, Phase, View};
use crate::score::Hit;

/// The sender's domain must be fully qualified (the null sender passes).
pub struct NonFqdnSenderCheck;

const NON_FQDN: &str = "reject_non_fqdn_sender";

impl Check for NonFqdnSenderCheck {
    fn name(&self) -> &'static str {
        "non_fqdn_sender"
    }

    fn phase(&self) -> Phase {
        Phase::Mail
    }

    fn symbols(&self) -> &'static [&'static str] {
        &[NON_FQDN]
    }

    fn check<'a>(&'a self, view: &'a View<'a>) -> CheckFuture<'a> {
        let hits = match view.sender {
            Some(s) if !s.is_null() && !is_fqdn(&s.domain) && !is_address_literal(&s.domain) => {
                vec![Hit::new(NON_FQDN, s.to_string())]
            }
            _ => Vec::new(),
        };
        Box::pin(async move { Ok(hits) })
    }
}
