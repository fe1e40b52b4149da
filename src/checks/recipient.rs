//! Recipient checks: `reject_non_fqdn_recipient`.

use super::{is_address_literal, is_fqdn, Check, CheckFuture, Phase, View};
use crate::score::Hit;

/// The recipient's domain must be fully qualified (`postmaster` passes).
pub struct NonFqdnRecipientCheck;

const NON_FQDN: &str = "reject_non_fqdn_recipient";

impl Check for NonFqdnRecipientCheck {
    fn name(&self) -> &'static str {
        "non_fqdn_recipient"
    }

    fn phase(&self) -> Phase {
        Phase::Rcpt
    }

    fn symbols(&self) -> &'static [&'static str] {
        &[NON_FQDN]
    }

    fn check<'a>(&'a self, view: &'a View<'a>) -> CheckFuture<'a> {
        let hits = match view.recipient {
            Some(r)
                if !r.domain.is_empty()
                    && !is_fqdn(&r.domain)
                    && !is_address_literal(&r.domain) =>
            {
                vec![Hit::new(NON_FQDN, r.to_string())]
            }
            _ => Vec::new(),
        };
        Box::pin(async move { Ok(hits) })
    }
}
