//! Greylisting with postgrey's semantics: the triplet (client network,
//! normalised envelope sender, recipient) seen for the first time is told
//! to come back after `delay`; a retry within `retry_window` passes, and the
//! passed triplet is remembered for `max_age`. A network whose triplets
//! passed `auto_whitelist_after` times is whitelisted. The decision is one
//! atomic store operation ([`Store::greylist`]), so nodes sharing a Redis
//! share the view.

use super::{Check, CheckError, CheckFuture, Phase, View};
use crate::address::Address;
use crate::config::{Config, ConfigError, GreylistConfig, OnError};
use crate::score::Hit;
use crate::store::{GreylistOutcome, Greylisting, Store};
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The symbol of a greylisted recipient; its subject is the wait in seconds.
pub const GREYLIST: &str = "GREYLIST";

/// Seconds of Unix time that follow tokio's clock: wall time at start plus
/// tokio time since, so tests with paused time move it, and nodes agree
/// (to the precision of their wall clocks).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Duration,
    start: tokio::time::Instant,
}

impl Clock {
    /// A clock starting at the current wall time.
    pub fn new() -> Clock {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            epoch,
            start: tokio::time::Instant::now(),
        }
    }

    /// Now, in whole seconds.
    pub fn now(&self) -> u64 {
        (self.epoch + self.start.elapsed()).as_secs()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// The greylisting check (RCPT phase).
pub struct GreylistCheck {
    config: GreylistConfig,
    store: Arc<dyn Store>,
    on_error: OnError,
    clock: Clock,
}

impl GreylistCheck {
    /// The check of `config` (its `[greylist]` section validated here), or
    /// None when greylisting is off.
    pub fn from_config(
        config: &Config,
        store: Arc<dyn Store>,
    ) -> Result<Option<GreylistCheck>, ConfigError> {
        let Some(g) = config.greylist.as_ref().filter(|g| g.enabled) else {
            return Ok(None);
        };
        let invalid = |key: &str, message: &str| {
            Err(config
                .source
                .error_at_key("greylist", key, format!("greylist.{key}: {message}")))
        };
        if g.delay.0 < Duration::from_secs(1) {
            return invalid("delay", "expected at least \"1s\", e.g. \"5m\"");
        }
        if g.retry_window.0 < g.delay.0 {
            return invalid(
                "retry_window",
                "expected a duration at least as long as greylist.delay, e.g. \"2d\"",
            );
        }
        if g.max_age.0 < Duration::from_secs(1) {
            return invalid("max_age", "expected at least \"1s\", e.g. \"35d\"");
        }
        if g.ipv4_prefix > 32 {
            return invalid(
                "ipv4_prefix",
                "expected a prefix length from 0 to 32, e.g. 24",
            );
        }
        if g.ipv6_prefix > 128 {
            return invalid(
                "ipv6_prefix",
                "expected a prefix length from 0 to 128, e.g. 64",
            );
        }
        let mut g = g.clone();
        for d in &mut g.whitelist_sender_domains {
            *d = d.trim_end_matches('.').to_ascii_lowercase();
        }
        for r in &mut g.whitelist_recipients {
            *r = r.trim_end_matches('.').to_ascii_lowercase();
        }
        Ok(Some(GreylistCheck {
            config: g,
            store,
            on_error: config.store.on_error,
            clock: Clock::new(),
        }))
    }

    /// The client's network, as `a.b.c.0/24` or `x:y::/64`.
    pub fn network(&self, ip: IpAddr) -> IpNet {
        let prefix = match ip {
            IpAddr::V4(_) => self.config.ipv4_prefix,
            IpAddr::V6(_) => self.config.ipv6_prefix,
        };
        IpNet::new(ip, prefix).map_or_else(|_| IpNet::from(ip), |n| n.trunc())
    }

    fn whitelisted(&self, view: &View<'_>, recipient: &Address) -> bool {
        let c = &self.config;
        if c.skip_authenticated && view.login.is_some() {
            return true;
        }
        if c.skip_mynetworks && view.trusted {
            return true;
        }
        if c.whitelist_networks
            .iter()
            .any(|n| n.contains(&view.client_ip))
        {
            return true;
        }
        if let Some(sender) = view.sender {
            let domain = sender.domain.trim_end_matches('.');
            if !domain.is_empty()
                && c.whitelist_sender_domains
                    .iter()
                    .any(|d| domain_matches(domain, d))
            {
                return true;
            }
        }
        let rcpt = recipient.to_string().to_ascii_lowercase();
        let rcpt_domain = recipient.domain.trim_end_matches('.');
        c.whitelist_recipients.iter().any(|w| {
            if w.contains('@') {
                *w == rcpt
            } else {
                domain_matches(rcpt_domain, w)
            }
        })
    }

    async fn decide(&self, view: &View<'_>, recipient: &Address) -> Result<Vec<Hit>, CheckError> {
        if self.whitelisted(view, recipient) {
            return Ok(Vec::new());
        }
        let net = self.network(view.client_ip);
        let sender = view.sender.map_or_else(String::new, normalise_sender);
        let rcpt = recipient.to_string().to_ascii_lowercase();
        // {net} is a hash tag: both keys live in one Redis Cluster slot.
        let triplet_key = format!("gl:{{{net}}}:t:{sender}/{rcpt}");
        let client_key = format!("gl:{{{net}}}:passes");
        let c = &self.config;
        let request = Greylisting {
            triplet_key: &triplet_key,
            client_key: &client_key,
            now: self.clock.now(),
            delay: c.delay.0.as_secs(),
            retry_window: c.retry_window.0.as_secs(),
            max_age: c.max_age.0.as_secs(),
            auto_whitelist_after: c.auto_whitelist_after,
        };
        match self.store.greylist(&request).await {
            Ok(GreylistOutcome::Wait(seconds)) => {
                tracing::info!(
                    target: "smtpgate::greylist",
                    client = %view.client_ip,
                    network = %net,
                    from = %sender,
                    rcpt = %rcpt,
                    wait = seconds,
                    "GREYLIST"
                );
                Ok(vec![Hit {
                    why: Default::default(),
                    name: GREYLIST.to_string(),
                    options: vec![seconds.to_string(), format!("{net} <{sender}> <{rcpt}>")],
                }])
            }
            Ok(GreylistOutcome::Passed(_) | GreylistOutcome::Whitelisted) => Ok(Vec::new()),
            Err(e) => match self.on_error {
                OnError::Accept => Ok(Vec::new()),
                OnError::Tempfail => Err(CheckError::store("greylist", e)),
            },
        }
    }
}

/// True when `domain` is `pattern` or a subdomain of it.
fn domain_matches(domain: &str, pattern: &str) -> bool {
    domain.eq_ignore_ascii_case(pattern)
        || (domain.len() > pattern.len()
            && domain.as_bytes()[domain.len() - pattern.len() - 1] == b'.'
            && domain[domain.len() - pattern.len()..].eq_ignore_ascii_case(pattern))
}

/// The sender as postgrey keys it: lower case, without a `+extension`,
/// without a BATV `prvs=tag=` prefix, numbers that stand as words of their
/// own replaced by `#` (so VERP addresses of one sender are one sender,
/// while user1@ and user2@ stay two). `<>` is empty.
pub fn normalise_sender(sender: &Address) -> String {
    let mut local = sender.local.to_ascii_lowercase();
    for batv in ["prvs=", "msprvs1=", "btv1="] {
        if let Some(rest) = local.strip_prefix(batv) {
            if let Some((_, user)) = rest.split_once('=') {
                local = user.to_string();
            }
            break;
        }
    }
    if let Some(plus) = local.find('+') {
        local.truncate(plus);
    }
    // postgrey: s/\b\d+\b/#/g — only digit runs that are words of their
    // own ("bounce-123-456"), not part of one ("user1").
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let bytes = local.as_bytes();
    let mut out = String::with_capacity(local.len() + sender.domain.len() + 1);
    let mut i = 0;
    while i < bytes.len() {
        let end = bytes[i..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .map_or(bytes.len(), |n| i + n);
        let bounded =
            end > i && (i == 0 || !word(bytes[i - 1])) && (end == bytes.len() || !word(bytes[end]));
        if bounded {
            out.push('#');
            i = end;
        } else {
            // A number inside a word, kept whole; else one character.
            let next = if end > i {
                end
            } else {
                i + local[i..].chars().next().map_or(1, char::len_utf8)
            };
            out.push_str(&local[i..next]);
            i = next;
        }
    }
    if !sender.domain.is_empty() {
        out.push('@');
        out.push_str(&sender.domain.to_ascii_lowercase());
    }
    out
}

impl Check for GreylistCheck {
    fn name(&self) -> &'static str {
        "greylist"
    }

    fn phase(&self) -> Phase {
        Phase::Rcpt
    }

    fn symbols(&self) -> &'static [&'static str] {
        &[GREYLIST]
    }

    fn check<'a>(&'a self, view: &'a View<'a>) -> CheckFuture<'a> {
        Box::pin(async move {
            match view.recipient {
                Some(recipient) => self.decide(view, recipient).await,
                None => Ok(Vec::new()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(local: &str, domain: &str) -> Address {
        Address {
            local: local.into(),
            domain: domain.into(),
        }
    }

    #[test]
    fn senders_are_normalised_like_postgrey() {
        assert_eq!(
            normalise_sender(&addr("Info", "example.test")),
            "info@example.test"
        );
        assert_eq!(
            normalise_sender(&addr("bounce-123-456", "lists.example.test")),
            "bounce-#-#@lists.example.test"
        );
        assert_eq!(
            normalise_sender(&addr("user1", "example.test")),
            "user1@example.test"
        );
        assert_eq!(
            normalise_sender(&addr("123.x.45é6", "example.test")),
            "#.x.#é#@example.test"
        );
        assert_eq!(
            normalise_sender(&addr("prvs=1234abcd=user+tag", "example.test")),
            "user@example.test"
        );
        assert_eq!(normalise_sender(&Address::null()), "");
    }

    #[tokio::test]
    async fn authenticated_clients_skip_greylisting_unless_configured() {
        use crate::store::memory::MemoryStore;
        let minimal = "[server]\nhostname = \"gw.test\"\nlisten = [\"127.0.0.1:2525\"]\n[upstream]\naddress = \"127.0.0.1:10025\"\n";
        let sender = addr("a", "example.test");
        let rcpt = addr("b", "example.net");
        let view = |login| View {
            client_ip: "2001:db8:1:2:3::9".parse().unwrap(),
            helo: "client.example.test",
            tls: true,
            login,
            trusted: false,
            sender: Some(&sender),
            recipient: Some(&rcpt),
            recipients: &[],
            message: None,
            parsed: None,
            fetched: crate::checks::Fetched::none(),
        };
        for (section, greylisted) in [("", false), ("skip_authenticated = false\n", true)] {
            let text = format!("{minimal}[greylist]\n{section}");
            let config = Config::from_text(std::path::Path::new("gw.toml"), &text).unwrap();
            let check = GreylistCheck::from_config(&config, Arc::new(MemoryStore::new()))
                .unwrap()
                .unwrap();
            let hits = check.check(&view(Some("alice"))).await.unwrap();
            assert_eq!(!hits.is_empty(), greylisted, "{section}");
            let hits = check.check(&view(None)).await.unwrap();
            assert_eq!(hits.len(), 1);
            assert_eq!(hits[0].name, GREYLIST);
            assert_eq!(
                hits[0].options,
                ["300", "2001:db8:1:2::/64 <a@example.test> <b@example.net>"]
            );
        }
    }

    #[test]
    fn domains_match_themselves_and_subdomains() {
        assert!(domain_matches("example.test", "example.test"));
        assert!(domain_matches("mx.Example.test", "example.test"));
        assert!(!domain_matches("badexample.test", "example.test"));
        assert!(!domain_matches("test", "example.test"));
    }
}
