//! Relay control (who may send where) and sender identity.
//!
//! * `reject_routing_trick`: sender-specified routing is refused whoever the
//!   client is — source routes (`@a:b@c`), the `%` hack, `!` bang paths,
//!   quoted local parts hiding `@`/`%`/`!`, address literals that are not
//!   ours, a trailing dot or dots out of place in the address.
//! * `reject_unauth_destination`: clients outside `relay.mynetworks` that
//!   did not authenticate may only send to `relay.local_domains`.
//! * `reject_sender_login_mismatch`: an authenticated client may only use
//!   the senders `auth.sender_login_maps` gives its login.

use super::{Check, CheckFuture, Phase, View};
use crate::address::Address;
use crate::config::Config;
use crate::passwd::Credentials;
use crate::score::Hit;
use std::net::IpAddr;
use std::sync::Arc;

/// RCPT: routing tricks and unauthorised relay.
pub struct RelayCheck {
    local_domains: Arc<crate::maps::Domains>,
    our_ips: Vec<IpAddr>,
    /// Known mailboxes (lowercase; "@domain" entries accept the domain),
    /// followed as the file changes.
    local_recipients: Option<crate::maps::Watched<crate::maps::KeySet>>,
}

impl RelayCheck {
    /// From `[relay]` and the listen addresses (our address literals);
    /// reads `relay.local_recipients` (followed when the file changes; SIGHUP rebuilds it).
    pub fn new(
        config: &Config,
        local_domains: &Arc<crate::maps::Domains>,
    ) -> Result<RelayCheck, crate::config::ConfigError> {
        let local_recipients = config
            .relay
            .local_recipients
            .as_deref()
            .map(|path| {
                crate::maps::Watched::open(
                    path,
                    crate::maps::address_set,
                    crate::maps::FILE_CHECK_INTERVAL,
                )
            })
            .transpose()?;
        Ok(RelayCheck {
            local_recipients,
            local_domains: Arc::clone(local_domains),
            our_ips: config
                .server
                .listen
                .iter()
                .map(|l| l.address.ip())
                .filter(|ip| !ip.is_unspecified())
                .collect(),
        })
    }

    /// For a local domain with a mailbox list: whether `rcpt` is on it.
    fn is_listed(&self, rcpt: &Address) -> bool {
        let Some(list) = &self.local_recipients else {
            return true;
        };
        let addr = rcpt.to_string().to_ascii_lowercase();
        list.with(|l| l.contains(&addr) || l.contains(&format!("@{}", rcpt.domain)))
    }

    fn is_local(&self, domain: &str) -> bool {
        self.local_domains.contains(domain)
    }
}

/// Why `rcpt` is sender-specified routing, if it is.
pub fn routing_trick(rcpt: &Address, our_ips: &[IpAddr]) -> Option<&'static str> {
    let local = rcpt.local.as_str();
    let domain = rcpt.domain.as_str();
    if local.starts_with('@') {
        return Some("source routes are not allowed");
    }
    if let Some(inner) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        if inner.contains(['@', '%', '!']) {
            return Some("a quoted local part may not hide @, % or ! routing");
        }
    } else {
        if local.contains('@') {
            return Some("more than one @ (sender-specified routing)");
        }
        if local.contains('%') {
            return Some("the % hack (user%host@relay) is not allowed");
        }
        if local.contains('!') {
            return Some("bang paths (host!user) are not allowed");
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Some("dots out of place in the local part");
        }
    }
    if domain.ends_with('.') {
        return Some("a trailing dot in the domain");
    }
    if domain.starts_with('.') || domain.contains("..") {
        return Some("an empty label in the domain");
    }
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let ip = literal
            .strip_prefix("ipv6:")
            .or_else(|| literal.strip_prefix("IPv6:"))
            .unwrap_or(literal)
            .parse::<IpAddr>()
            .ok();
        return match ip {
            Some(ip) if our_ips.contains(&ip) => None,
            Some(_) => Some("address literals other than ours are not allowed"),
            None => Some("a malformed address literal"),
        };
    }
    None
}

impl Check for RelayCheck {
    fn name(&self) -> &'static str {
        "relay"
    }

    fn phase(&self) -> Phase {
        Phase::Rcpt
    }

    fn symbols(&self) -> &'static [&'static str] {
        &[
            "reject_routing_trick",
            "reject_unauth_destination",
            "reject_unlisted_recipient",
        ]
    }

    fn check<'a>(&'a self, view: &'a View<'a>) -> CheckFuture<'a> {
        let mut hits = Vec::new();
        if let Some(rcpt) = view.recipient {
            if let Some(reason) = routing_trick(rcpt, &self.our_ips) {
                hits.push(Hit::new(
                    "reject_routing_trick",
                    format!("{rcpt}: {reason}"),
                ));
            } else if !view.trusted
                && view.login.is_none()
                && !rcpt.domain.is_empty()
                && !self.is_local(&rcpt.domain)
            {
                hits.push(Hit::new("reject_unauth_destination", rcpt.to_string()));
            } else if self.is_local(&rcpt.domain) && !self.is_listed(rcpt) {
                hits.push(Hit::new("reject_unlisted_recipient", rcpt.to_string()));
            }
        }
        Box::pin(async move { Ok(hits) })
    }
}

/// MAIL: an authenticated client may only use the senders it owns.
pub struct SenderLoginCheck {
    credentials: Arc<Credentials>,
}

impl SenderLoginCheck {
    /// When sender_login_maps are configured.
    pub fn new(credentials: &Option<Arc<Credentials>>) -> Option<SenderLoginCheck> {
        credentials
            .as_ref()
            .filter(|c| c.has_login_maps())
            .map(|c| SenderLoginCheck {
                credentials: Arc::clone(c),
            })
    }
}

impl Check for SenderLoginCheck {
    fn name(&self) -> &'static str {
        "sender_login"
    }

    fn phase(&self) -> Phase {
        Phase::Mail
    }

    fn symbols(&self) -> &'static [&'static str] {
        &["reject_sender_login_mismatch"]
    }

    fn check<'a>(&'a self, view: &'a View<'a>) -> CheckFuture<'a> {
        let mut hits = Vec::new();
        if let (Some(login), Some(sender)) = (view.login, view.sender) {
            // The null sender (bounces) belongs to everyone.
            if !sender.domain.is_empty() && !self.credentials.owns(login, &sender.to_string()) {
                hits.push(Hit {
                    why: Default::default(),
                    name: "reject_sender_login_mismatch".into(),
                    options: vec![sender.to_string(), format!("login {login}")],
                });
            }
        }
        Box::pin(async move { Ok(hits) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::parse_address;

    fn trick(path: &str) -> Option<&'static str> {
        let ours: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap()];
        routing_trick(&parse_address(path, false).unwrap(), &ours)
    }

    #[test]
    fn routing_tricks_are_named() {
        assert_eq!(
            trick("@relay.test:user@victim.test"),
            Some("source routes are not allowed")
        );
        assert_eq!(
            trick("user%victim.test@relay.test"),
            Some("the % hack (user%host@relay) is not allowed")
        );
        assert_eq!(
            trick("victim.test!user@relay.test"),
            Some("bang paths (host!user) are not allowed")
        );
        assert_eq!(
            trick("\"user@victim.test\"@relay.test"),
            Some("a quoted local part may not hide @, % or ! routing")
        );
        assert_eq!(
            trick("user@[203.0.113.9]"),
            Some("address literals other than ours are not allowed")
        );
        assert_eq!(trick("user@[192.0.2.1]"), None);
        assert_eq!(
            trick("user@example.test."),
            Some("a trailing dot in the domain")
        );
        assert_eq!(
            trick("user.@example.test"),
            Some("dots out of place in the local part")
        );
        assert_eq!(trick("first.last@example.test"), None);
        assert_eq!(trick("\"first last\"@example.test"), None);
    }
}
