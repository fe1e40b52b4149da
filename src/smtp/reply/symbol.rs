//! The replies for symbols whose rule forces `reject` or `tempfail`:
//! Postfix's wording and codes per restriction, plus the symbol name.

use super::Reply;
use crate::score::{Hit, Why};

/// The reply for a hit whose rule forces `reject` (or `tempfail` when
/// `temporary`): [`for_symbol`] with its subject and cause, except for the
/// symbols whose reply carries more of the hit's details.
pub fn for_hit(hit: &Hit, temporary: bool) -> Reply {
    match hit.name.as_str() {
        // Details: the identity, the reason in numbers, the hold's reference.
        "ANOMALY_HOLD" => {
            let detail = |n: usize| hit.options.get(n).map_or("", String::as_str);
            Reply::new(
                451,
                "4.7.1",
                format!(
                    "<{}> held for review: {} (ANOMALY_HOLD) ref={}",
                    detail(0),
                    detail(1),
                    detail(2)
                ),
            )
        }
        _ => for_symbol(&hit.name, hit.subject(), hit.why, temporary),
    }
}

/// The reply for a symbol whose rule forces `reject` (or `tempfail` when
/// `temporary`), at the phase where it fired. `subject` is what it is about
/// (the HELO name, the address). Postfix's wording, plus the symbol name.
pub fn for_symbol(symbol: &str, subject: &str, why: Why, temporary: bool) -> Reply {
    let (code, enhanced, text): (u16, &str, String) = match symbol {
        "reject_invalid_helo_hostname" => (
            501,
            "5.5.2",
            format!("<{subject}>: Helo command rejected: Invalid name"),
        ),
        "reject_non_fqdn_helo_hostname" => (
            504,
            "5.5.2",
            format!("<{subject}>: Helo command rejected: need fully-qualified hostname"),
        ),
        "reject_unknown_helo_hostname" => (
            450,
            "4.7.1",
            format!("<{subject}>: Helo command rejected: Host not found"),
        ),
        "reject_unknown_client_hostname" | "reject_unknown_reverse_client_hostname" => (
            450,
            "4.7.25",
            format!("Client host rejected: cannot find your hostname, [{subject}]"),
        ),
        "reject_non_fqdn_sender" => (
            504,
            "5.5.2",
            format!("<{subject}>: Sender address rejected: need fully-qualified address"),
        ),
        "reject_unknown_sender_domain" => match why {
            // RFC 7505 §4.2: a domain that says it sends no mail.
            Why::NullMx => (
                550,
                "5.7.27",
                format!(
                    "<{subject}>: Sender address rejected: Domain does not accept mail (null MX)"
                ),
            ),
            _ => (
                550,
                "5.1.8",
                format!("<{subject}>: Sender address rejected: Domain not found"),
            ),
        },
        "reject_unverified_sender" => match why {
            Why::Temporary => (
                450,
                "4.1.7",
                format!(
                    "<{subject}>: Sender address rejected: unverified address: try again later"
                ),
            ),
            _ => (
                550,
                "5.1.7",
                format!("<{subject}>: Sender address rejected: undeliverable address"),
            ),
        },
        "reject_sender_login_mismatch" => (
            553,
            "5.7.1",
            format!("<{subject}>: Sender address rejected: not owned by user"),
        ),
        "reject_non_fqdn_recipient" => (
            504,
            "5.5.2",
            format!("<{subject}>: Recipient address rejected: need fully-qualified address"),
        ),
        "reject_unlisted_recipient" => (
            550,
            "5.1.1",
            format!("<{subject}>: Recipient address rejected: User unknown"),
        ),
        "reject_known_bad_recipient_address" => (
            550,
            "5.1.1",
            format!("<{subject}>: Recipient address rejected: hard-bounced before"),
        ),
        "reject_unauth_destination" => (554, "5.7.1", format!("<{subject}>: Relay access denied")),
        "reject_routing_trick" => {
            let (address, reason) = subject.split_once(": ").unwrap_or((subject, "not allowed"));
            (
                550,
                "5.7.1",
                format!("<{address}>: Recipient address rejected: {reason}"),
            )
        }
        "RATELIMIT" => (450, "4.7.1", format!("<{subject}>: rate limit exceeded")),
        // RFC 7208 §8.6: temperror → 451 4.4.3; DKIM and DMARC alike.
        "R_SPF_DNSFAIL" | "R_DKIM_TEMPFAIL" | "DMARC_DNSFAIL" => (
            451,
            "4.4.3",
            format!("Temporary DNS failure checking {subject}, try again later"),
        ),
        "GREYLIST" => (
            450,
            "4.2.0",
            format!("Greylisted, try again in {subject} seconds"),
        ),
        _ => (550, "5.7.1", format!("<{subject}>: rejected by policy")),
    };
    let mut reply = Reply::new(code, enhanced, format!("{text} ({symbol})"));
    if temporary && reply.class() == 5 {
        reply.code = 450;
        reply.enhanced.replace_range(0..1, "4");
    }
    reply
}
