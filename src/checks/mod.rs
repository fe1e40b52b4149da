//! The check pipeline: a [`Check`] looks at a read-only [`View`] of the
//! transaction in one [`Phase`] and returns symbols. It never replies, never
//! reads config files and never knows scores (DESIGN §2).

pub mod authentication;
pub mod callout;
pub mod content;
pub mod envelope;
pub mod greylist;
pub mod helo;
pub mod hold;
pub mod ratelimit;
pub mod recent;
pub mod recipient;
pub mod relay;
pub mod sender;

use crate::address::Address;
use crate::config::{Config, ConfigError};
use crate::dns::Lookup;
use crate::mailauth::Authenticator;
use crate::maps::Domains;
use crate::passwd::Credentials;
use crate::rules::content::ContentRules;
use crate::score::Hit;
use crate::store::queue::WriteQueue;
use crate::store::{Store, StoreError};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

/// When a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// After HELO/EHLO.
    Helo,
    /// After MAIL FROM.
    Mail,
    /// After each RCPT TO, for that recipient.
    Rcpt,
    /// After the message was received.
    Data,
}

impl Phase {
    /// The phase's name in logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Helo => "helo",
            Phase::Mail => "mail",
            Phase::Rcpt => "rcpt",
            Phase::Data => "data",
        }
    }
}

/// What a check may look at.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The client's address.
    pub client_ip: IpAddr,
    /// The HELO/EHLO name.
    pub helo: &'a str,
    /// True when the session is TLS-encrypted.
    pub tls: bool,
    /// The SMTP AUTH login, when authenticated.
    pub login: Option<&'a str>,
    /// True when the client is in `relay.mynetworks`.
    pub trusted: bool,
    /// The envelope sender (from MAIL on).
    pub sender: Option<&'a Address>,
    /// The recipient being checked (RCPT phase).
    pub recipient: Option<&'a Address>,
    /// The accepted recipients (DATA phase).
    pub recipients: &'a [Address],
    /// The message as received (DATA phase).
    pub message: Option<&'a [u8]>,
    /// The message parsed once (DATA phase).
    pub parsed: Option<&'a crate::message::Parsed>,
    /// What the phase read from the store for its checks, in one round
    /// trip ([`Check::reads`]); empty outside a phase run.
    pub fetched: &'a Fetched,
}

impl<'a> View<'a> {
    /// The client's part of the view, as every phase sees it; `trusted`
    /// comes from `relay.mynetworks`. The session and `smtpgate check`
    /// both build their views here.
    pub fn new(
        client_ip: IpAddr,
        helo: &'a str,
        tls: bool,
        login: Option<&'a str>,
        relay: &crate::config::RelayConfig,
    ) -> View<'a> {
        View {
            client_ip,
            helo,
            tls,
            login,
            trusted: relay.is_trusted(client_ip),
            sender: None,
            recipient: None,
            recipients: &[],
            message: None,
            parsed: None,
            fetched: Fetched::none(),
        }
    }

    /// From MAIL on: the sender and the recipients accepted so far.
    pub fn with_transaction(self, sender: &'a Address, recipients: &'a [Address]) -> View<'a> {
        View {
            sender: Some(sender),
            recipients,
            ..self
        }
    }

    /// At RCPT: the recipient being checked.
    pub fn with_recipient(self, recipient: &'a Address) -> View<'a> {
        View {
            recipient: Some(recipient),
            ..self
        }
    }

    /// At DATA: the message as received and parsed once.
    pub fn with_message(self, message: &'a [u8], parsed: &'a crate::message::Parsed) -> View<'a> {
        View {
            message: Some(message),
            parsed: Some(parsed),
            ..self
        }
    }
}

/// A check could not reach a verdict (a dependency failed): the phase is
/// tempfailed, never rejected.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{check}: {reason}")]
pub struct CheckError {
    /// The check's name.
    pub check: &'static str,
    /// What went wrong.
    pub reason: String,
    /// The shared store failed: the store logs that once per outage, so
    /// callers need not log it per command.
    pub store_outage: bool,
}

impl CheckError {
    /// A dependency other than the store failed.
    pub fn new(check: &'static str, reason: impl Into<String>) -> CheckError {
        CheckError {
            check,
            reason: reason.into(),
            store_outage: false,
        }
    }

    /// The shared store failed.
    pub fn store(check: &'static str, error: impl std::fmt::Display) -> CheckError {
        CheckError {
            check,
            reason: error.to_string(),
            store_outage: true,
        }
    }
}

/// The future a check returns.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Hit>, CheckError>> + Send + 'a>>;

/// One check.
pub trait Check: Send + Sync {
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// The phase it runs in.
    fn phase(&self) -> Phase;
    /// Every symbol it can emit (the rules test checks each has a rule).
    fn symbols(&self) -> &'static [&'static str];
    /// Looks at the transaction and returns the symbols found.
    fn check<'a>(&'a self, view: &'a View<'a>) -> CheckFuture<'a>;
    /// The store keys [`Check::check`] will read for `view`: the phase
    /// reads every check's keys in one round trip (`Store::get_many`)
    /// before the first check runs, and the check finds them with
    /// [`read`]. None by default.
    fn reads(&self, _view: &View<'_>) -> Vec<String> {
        Vec::new()
    }
}

/// The store values one phase read for its checks (see [`Check::reads`]).
#[derive(Debug, Default)]
pub struct Fetched {
    keys: Vec<String>,
    values: Vec<Option<Vec<u8>>>,
    /// The read failed: each check reading these keys answers as its
    /// `store.on_error` says.
    failed: Option<StoreError>,
}

impl Fetched {
    /// Nothing read (a view outside a phase run: checks ask the store).
    pub fn none() -> &'static Fetched {
        static NONE: Fetched = Fetched {
            keys: Vec::new(),
            values: Vec::new(),
            failed: None,
        };
        &NONE
    }

    /// Reads `keys` in one round trip (duplicates once), which also carries
    /// the store writes `queue` holds (so the read sees them).
    pub async fn read(queue: &WriteQueue, mut keys: Vec<String>) -> Fetched {
        keys.sort_unstable();
        keys.dedup();
        if keys.is_empty() {
            return Fetched::default();
        }
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        match queue.get_many(&refs).await {
            Ok(values) if values.len() == keys.len() => Fetched {
                keys,
                values,
                failed: None,
            },
            Ok(values) => Fetched {
                failed: Some(StoreError(format!(
                    "{} values for {} keys",
                    values.len(),
                    keys.len()
                ))),
                keys,
                values: Vec::new(),
            },
            Err(e) => Fetched {
                keys,
                values: Vec::new(),
                failed: Some(e),
            },
        }
    }

    /// `key` as read, or `None` when it was not read.
    fn get(&self, key: &str) -> Option<Result<Option<&[u8]>, StoreError>> {
        let i = self.keys.binary_search_by(|k| k.as_str().cmp(key)).ok()?;
        Some(match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(self.values.get(i).and_then(|v| v.as_deref())),
        })
    }
}

/// The value at `key`: from the phase's one read when it has it, else
/// from `store`.
pub async fn read(
    view: &View<'_>,
    store: &dyn Store,
    key: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    match view.fetched.get(key) {
        Some(result) => result.map(|v| v.map(<[u8]>::to_vec)),
        None => store.get(key).await,
    }
}

/// What checks are built with: the shared dependencies behind traits.
#[derive(Clone)]
pub struct Deps {
    /// Shared state.
    pub store: Arc<dyn Store>,
    /// The compiled content rules.
    pub content: Arc<ContentRules>,
    /// SPF/DKIM/DMARC (resolver from `[dns]`, keys from `[dkim]`).
    pub auth: Arc<Authenticator>,
    /// SMTP AUTH users and their senders, when `[auth]` is configured.
    pub credentials: Option<Arc<Credentials>>,
    /// DNS for the envelope checks.
    pub dns: Arc<dyn Lookup>,
    /// `relay.local_domains` and `relay.local_domains_file`.
    pub local_domains: Arc<Domains>,
    /// What this node read of the store a moment ago (`[store] memo`).
    pub recent: Arc<recent::Recent>,
}

/// The checks of this configuration, in the order they run.
pub fn build(config: &Config, deps: &Deps) -> Result<Vec<Box<dyn Check>>, ConfigError> {
    let mut checks: Vec<Box<dyn Check>> = vec![
        Box::new(helo::HeloSyntaxCheck),
        Box::new(sender::NonFqdnSenderCheck),
        Box::new(recipient::NonFqdnRecipientCheck),
        Box::new(relay::RelayCheck::new(config, &deps.local_domains)?),
        Box::new(content::ContentCheck::new(std::sync::Arc::clone(
            &deps.content,
        ))),
    ];
    // A held identity before the DNS and callout checks of MAIL.
    if let Some(c) = hold::HoldCheck::from_config(config, deps.store.clone()) {
        checks.push(Box::new(c));
    }
    checks.extend(envelope::build(config, deps));
    if let Some(c) = relay::SenderLoginCheck::new(&deps.credentials) {
        checks.push(Box::new(c));
    }
    // SPF/DKIM/DMARC need DNS: on only with an `[outbound]` section.
    if config.outbound.is_some() {
        checks.push(Box::new(authentication::AuthenticationCheck::new(
            std::sync::Arc::clone(&deps.auth),
        )));
    }
    // Quotas before greylisting: a refused recipient records no triplet.
    if let Some(c) =
        ratelimit::RateLimitCheck::from_config(config, deps.store.clone(), deps.recent.clone())
    {
        checks.push(Box::new(c));
    }
    if let Some(c) = greylist::GreylistCheck::from_config(config, deps.store.clone())? {
        checks.push(Box::new(c));
    }
    Ok(checks)
}

/// Messages up to this size are analysed on the worker itself: handing
/// the worker's other sessions to another thread (`block_in_place`: a
/// thread woken, the core passed over and back) costs more than parsing
/// and scanning them (tens of microseconds for a few kilobytes).
pub const OFF_WORKER_ABOVE: usize = 128 * 1024;

/// Runs CPU-bound analysis (MIME parsing, the content rules) of a message
/// of `size` bytes. Above [`OFF_WORKER_ABOVE`] it does not hold a runtime
/// worker: on the multi-threaded runtime the worker's other sessions move
/// to another thread meanwhile (`block_in_place`); on a current-thread
/// runtime (`smtpgate check`, tests) and for small messages it simply runs.
pub fn off_worker<R>(size: usize, work: impl FnOnce() -> R) -> R {
    if size <= OFF_WORKER_ABOVE {
        return work();
    }
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// True when `domain` is a fully-qualified domain name: at least two
/// labels, none empty (a trailing root dot is allowed).
pub fn is_fqdn(domain: &str) -> bool {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    domain.contains('.') && domain.split('.').all(|label| !label.is_empty())
}

/// True for an address literal like `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
pub fn is_address_literal(domain: &str) -> bool {
    domain
        .strip_prefix('[')
        .and_then(|d| d.strip_suffix(']'))
        .is_some_and(|inner| {
            let ip = inner
                .strip_prefix("IPv6:")
                .or_else(|| inner.strip_prefix("ipv6:"));
            match ip {
                Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
                None => inner.parse::<std::net::Ipv4Addr>().is_ok(),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdn() {
        assert!(is_fqdn("mail.example.test"));
        assert!(is_fqdn("example.test."));
        assert!(!is_fqdn("localhost"));
        assert!(!is_fqdn("a..b"));
        assert!(!is_fqdn(".test"));
    }

    #[test]
    fn address_literals() {
        assert!(is_address_literal("[192.0.2.1]"));
        assert!(is_address_literal("[IPv6:2001:db8::1]"));
        assert!(!is_address_literal("[999.0.2.1]"));
        assert!(!is_address_literal("192.0.2.1"));
    }
}
