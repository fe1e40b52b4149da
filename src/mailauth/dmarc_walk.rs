//! The DMARC tree walk made before mail-auth's, so that a broken name
//! above a customer's domain cannot stop its mail.
//!
//! The reading followed. RFC 7489 §6.6.3 asks for the record of the author
//! domain (the RFC 5322.From domain) and, only when there is none, for the
//! record of its organisational domain: a domain that publishes its own
//! record is never looked up above. RFC 9989 (DMARCbis) §4.10 replaces the
//! public suffix list with a DNS tree walk from the author domain up to the
//! top-level domain, and mail-auth 0.13 walks it whole even when the author
//! domain has a record (the levels above only find the organisational
//! domain for relaxed alignment and `psd=` boundaries); there, any failed
//! lookup is a temporary error of the message. We follow 9989 for the walk
//! and 7489 for what decides:
//!
//! * the author domain's own `_dmarc` lookup fails (SERVFAIL, REFUSED,
//!   timeout) → temporary error (DMARC_DNSFAIL, 451 4.4.3);
//! * the author domain has no record → the walk above it must find the
//!   policy, so a failure there stays a temporary error;
//! * the author domain has a record → its record decides the policy; a
//!   failed lookup of a name above it is "no record at that level" (9989
//!   §4.10.1 treats a level without a valid record the same way), logged
//!   and counted in `smtpgate_dmarc_parent_dns_errors_total`.

use super::cache::Caches;
use super::overlay::Overlay;
use mail_auth::common::resolver::{ToFqdn, UnwrapTxtRecord};
use mail_auth::dmarc::{Dmarc, Psd};
use mail_auth::hickory_resolver::proto::rr::Name;
use mail_auth::{DnsError, Error, MessageAuthenticator, ResolverCache, Txt};
use std::sync::Arc;
use std::time::Instant;

/// What the walk found about the author domain.
pub(super) enum Walk {
    /// mail-auth may walk: the overlay answers the names above the author
    /// domain that failed (when it has a record of its own).
    Proceed,
    /// The author domain's own lookup failed: a temporary error.
    AuthorFailed(String),
}

/// The `_dmarc` names of the RFC 9989 walk from `domain`: the name itself,
/// then at most 7 labels, then one label fewer each step, down to the
/// top-level domain (mail-auth's order).
pub(super) fn walk_names(domain: &str) -> Vec<String> {
    let labels: Vec<&str> = domain
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
        .collect();
    let total = labels.len();
    let mut names = Vec::new();
    if total < 2 {
        return names;
    }
    let mut count = total;
    loop {
        names.push(format!("_dmarc.{}.", labels[total - count..].join(".")));
        if count == 1 {
            break;
        }
        count = if count >= 8 { 7 } else { count - 1 };
    }
    names
}

/// True for the answers that mean "no DMARC record at this name".
fn absent(e: &Error) -> bool {
    matches!(
        e,
        Error::Dns(DnsError::RecordNotFound(_) | DnsError::InvalidRecordType)
    )
}

/// The DMARC record at `name`, read through the shared TXT cache. mail-auth
/// keeps records and unparsable answers there but not "no record", so every
/// message asked DNS again for each absent name of its walk (twice: here and
/// in mail-auth's own walk); here an absent name is kept as the error
/// mail-auth answers for it, for the negative TTL hickory keeps it.
async fn dmarc_lookup(
    resolver: &MessageAuthenticator,
    caches: &Caches,
    name: &str,
) -> mail_auth::Result<Arc<Dmarc>> {
    // The key mail-auth's own lookup asks the cache with.
    let key = name.to_fqdn();
    // An answer already kept (a record, or an absent name remembered by an
    // earlier message) is the answer: no second cache read, no look at
    // hickory's negative answer.
    if let Some(kept) = caches.txt.get::<str>(key.as_ref()) {
        return Dmarc::unwrap_txt(kept);
    }
    let result = resolver.txt_lookup::<Dmarc>(name, Some(&caches.txt)).await;
    if let Err(e @ Error::Dns(DnsError::RecordNotFound(_))) = &result {
        remember_absent(resolver, caches, name, key.into_owned(), e).await;
    }
    result
}

/// Keeps `error` (no record at `name`) in the TXT cache until hickory's
/// negative answer for it expires (hickory answers from its cache here).
async fn remember_absent(
    resolver: &MessageAuthenticator,
    caches: &Caches,
    name: &str,
    key: String,
    error: &Error,
) {
    let Ok(query) = Name::from_str_relaxed(name) else {
        return;
    };
    let now = Instant::now();
    if let Err(e) = resolver.0.txt_lookup(query).await {
        if let Some(until) = crate::dns::negative_until(&e, now).filter(|u| *u > now) {
            caches
                .txt
                .insert(key.into(), Txt::Error(error.clone()), until);
        }
    }
}

/// Walks `author`'s tree before mail-auth does, through the shared TXT
/// cache (so mail-auth's walk finds the answers there), and lays "no
/// record" over the failed names above an author domain with a record.
pub(super) async fn prepare(
    resolver: &MessageAuthenticator,
    caches: &Caches,
    author: &str,
    overlay: &mut Overlay<'_>,
) -> Walk {
    let names = walk_names(author);
    let Some((own, above)) = names.split_first() else {
        return Walk::Proceed;
    };
    match dmarc_lookup(resolver, caches, own).await {
        // A psd= record ends the walk at the author domain.
        Ok(record) if matches!(record.psd, Psd::Yes | Psd::No) => return Walk::Proceed,
        Ok(_) => {}
        // No record of its own: mail-auth's walk decides, failures and all.
        Err(e) if absent(&e) => return Walk::Proceed,
        Err(e) => return Walk::AuthorFailed(e.to_string()),
    }
    for name in above {
        match dmarc_lookup(resolver, caches, name).await {
            Ok(record) if matches!(record.psd, Psd::Yes | Psd::No) => break,
            Ok(_) => {}
            Err(e) if absent(&e) => {}
            Err(e) => {
                tracing::warn!(
                    author,
                    name = name.trim_end_matches('.'),
                    error = %e,
                    "DMARC lookup above the author domain failed; the author domain's own record decides"
                );
                crate::metrics::dmarc_parent_dns_error();
                overlay.answer(name, Txt::Error(Error::Dns(DnsError::InvalidRecordType)));
            }
        }
    }
    Walk::Proceed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_names_follow_rfc9989() {
        assert_eq!(
            walk_names("shop.goodco.test"),
            [
                "_dmarc.shop.goodco.test.",
                "_dmarc.goodco.test.",
                "_dmarc.test."
            ]
        );
        assert!(walk_names("test").is_empty());
        assert_eq!(
            walk_names("a.b.c.d.e.f.g.h.i.test").len(),
            8,
            "the first name, then 7 labels down to 1"
        );
        assert_eq!(
            walk_names("a.b.c.d.e.f.g.h.i.test")[1],
            "_dmarc.d.e.f.g.h.i.test."
        );
    }
}
