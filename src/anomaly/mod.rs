//! The anomaly hold. Per identity (the AUTH login, else the client IP) the
//! store keeps what it sent per window and over `baseline_days`: messages,
//! recipients and how many were refused as unknown (5.1.x), messages
//! stopped as spam, recipient and From domains. An identity that crosses a
//! limit is held: the MAIL check ([`Anomaly::held`], one store read) gives
//! its next messages `451 4.7.1 … (ANOMALY_HOLD)`, so the mail waits in the
//! customer's own queue, and once per hold a report goes to the abuse desk
//! and an alert to the customer (through [`Announce`], the alert path's).
//!
//! Counting is off the hot path ([`Watch::count`] queues; a writer counts a
//! batch in one `incr_many`, a second for the derived counters, and reads
//! baselines only for identities at the floor). Every node sharing a Redis
//! counts into the same keys and sees the same holds.
//!
//! Store keys (all under `anomaly:`; `W` the window number, Unix time /
//! window; `D` the day number; `I` the identity):
//! * `anomaly:hold:I` — the hold (JSON [`Hold`]), kept `hold_for`;
//!   `anomaly:holds:D` — the identities held on day D, one a line (the
//!   index `hold list` reads);
//! * `anomaly:trip:I` — counts who placed it: only the first announces;
//! * `anomaly:{m,r,x,s}:W:I` — messages, recipients, refused recipients,
//!   spam messages in window W; `anomaly:{dom,nrd,nfd}:W:I` — distinct
//!   recipient domains, recipient domains new to I, new From domains;
//! * `anomaly:wd:W:I:DOMAIN` — a recipient domain seen in window W;
//!   `anomaly:rd:I:DOMAIN` / `anomaly:fd:I:DOMAIN` — a recipient / From
//!   domain I used within `baseline_days`;
//! * `anomaly:dm:D:I`, `anomaly:dw:D:I` — messages and active windows per
//!   day, kept `baseline_days` + 1: the baseline.

mod count;
mod hold;
pub mod text;
mod watch;

pub use count::{recipient_domains, Rule, Seen};
pub use hold::{hold_span, Hold, OPERATOR_REASON};
pub use watch::{Announce, AnnounceFuture, Watch};

use crate::config::AnomalyConfig;
use crate::store::{Store, StoreError, WriteOp};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The symbol of a held identity (rules/25-anomaly.toml); its details are
/// the identity, the reason in numbers and the hold's reference.
pub const ANOMALY_HOLD: &str = "ANOMALY_HOLD";

/// Held by detection ([`Hold::by`]).
pub const BY_ANOMALY: &str = "anomaly";
/// Held by an operator (`smtpgate hold IDENTITY`).
pub const BY_OPERATOR: &str = "operator";

const DAY: u64 = 86_400;

/// One transaction, as the baseline counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// When it ended, Unix seconds.
    pub time: u64,
    /// Its reference (a hold names the transaction that crossed the limit).
    pub reference: String,
    /// The login, else the client IP ([`identity`] form).
    pub identity: String,
    /// The SMTP AUTH login, if any.
    pub login: Option<String>,
    /// MAIL FROM.
    pub from: String,
    /// The distinct domains of the recipients, lowercase.
    pub recipient_domains: Vec<String>,
    /// Recipients accepted, plus those refused as unknown.
    pub recipients: u64,
    /// Recipients refused as unknown (5.1.x).
    pub refused: u64,
    /// Stopped as spam (or blocked).
    pub spam: bool,
}

impl Observation {
    /// The sender's domain, lowercase ("" for the null sender).
    pub fn from_domain(&self) -> String {
        domain_of(&self.from)
    }
}

/// `user@Domain` → `domain`; "" without `@`.
pub fn domain_of(address: &str) -> String {
    address.rsplit_once('@').map_or_else(String::new, |(_, d)| {
        d.trim_end_matches('.').to_ascii_lowercase()
    })
}

/// An identity as keys hold it: an IP address in its canonical form, a
/// login in lower case.
pub fn identity(text: &str) -> String {
    let text = text.trim();
    match text.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => text.to_ascii_lowercase(),
    }
}

/// True when `identity` is a client address rather than a login.
pub fn is_address(identity: &str) -> bool {
    identity.parse::<IpAddr>().is_ok()
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The anomaly settings over the shared store: who is trusted, who is
/// held, and the holds themselves.
pub struct Anomaly {
    config: AnomalyConfig,
    store: Arc<dyn Store>,
    trusted_logins: HashSet<String>,
    trusted_networks: Vec<ipnet::IpNet>,
}

impl Anomaly {
    /// The anomaly hold of `config` over `store`.
    pub fn new(config: &AnomalyConfig, store: Arc<dyn Store>) -> Anomaly {
        let mut trusted_logins = HashSet::new();
        let mut trusted_networks = Vec::new();
        for entry in &config.trusted_identities {
            let entry = entry.trim();
            if let Ok(net) = entry.parse::<ipnet::IpNet>() {
                trusted_networks.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                trusted_networks.push(ipnet::IpNet::from(ip));
            } else {
                trusted_logins.insert(entry.to_ascii_lowercase());
            }
        }
        Anomaly {
            config: config.clone(),
            store,
            trusted_logins,
            trusted_networks,
        }
    }

    /// The settings.
    pub fn config(&self) -> &AnomalyConfig {
        &self.config
    }

    /// The store holds and baselines live in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// True for an identity of `trusted_identities`: never held, not counted.
    pub fn is_trusted(&self, identity: &str) -> bool {
        match identity.parse::<IpAddr>() {
            Ok(ip) => self.trusted_networks.iter().any(|n| n.contains(&ip)),
            Err(_) => self.trusted_logins.contains(&identity.to_ascii_lowercase()),
        }
    }

    fn window_secs(&self) -> u64 {
        self.config.window.0.as_secs().max(1)
    }

    /// The window number of `time`.
    fn window_of(&self, time: u64) -> u64 {
        time / self.window_secs()
    }

    /// How long window counters are kept: the window, and one more for
    /// late writers.
    fn window_ttl(&self) -> Duration {
        Duration::from_secs(self.window_secs() * 2)
    }

    /// How long "this identity used this domain" is remembered.
    fn baseline_ttl(&self) -> Duration {
        Duration::from_secs(self.config.baseline_days * DAY)
    }

    /// How long the per-day counters are kept.
    fn day_ttl(&self) -> Duration {
        Duration::from_secs((self.config.baseline_days + 1) * DAY)
    }

    /// The hold of `identity`, if it is held now: one store read (none
    /// for a trusted identity).
    pub async fn held(&self, identity: &str) -> Result<Option<Hold>, StoreError> {
        let Some(key) = self.held_key(identity) else {
            return Ok(None);
        };
        let value = self.store.get(&key).await?;
        Ok(held_from(identity, value.as_deref()))
    }

    /// The key whose value says whether `identity` is held: `None` for a
    /// trusted identity (never held). The MAIL check reads it in the
    /// phase's one round trip and answers with [`held_from`].
    pub fn held_key(&self, identity: &str) -> Option<String> {
        (!self.is_trusted(identity)).then(|| hold_key(identity))
    }

    /// Every hold in force, soonest to end first: the identities of the
    /// hold index (one key a day, for the longest hold), then their holds,
    /// two reads whatever the size of the store.
    pub async fn holds(&self) -> Result<Vec<Hold>, StoreError> {
        let today = now() / DAY;
        let days: Vec<String> = (today.saturating_sub(MAX_HOLD_DAYS)..=today)
            .map(index_key)
            .collect();
        let refs: Vec<&str> = days.iter().map(String::as_str).collect();
        let mut identities: Vec<String> = self
            .store
            .get_many(&refs)
            .await?
            .into_iter()
            .flatten()
            .flat_map(|v| {
                String::from_utf8_lossy(&v)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        identities.sort();
        identities.dedup();
        if identities.is_empty() {
            crate::metrics::anomaly_held(0);
            return Ok(Vec::new());
        }
        let keys: Vec<String> = identities.iter().map(|i| hold_key(i)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let values = self.store.get_many(&refs).await?;
        let now = now();
        let mut holds: Vec<Hold> = identities
            .iter()
            .zip(values)
            .filter_map(|(i, v)| Some(Hold::read(i, &v?)))
            .filter(|h| h.until > now)
            .collect();
        holds.sort_by(|a, b| a.until.cmp(&b.until).then(a.identity.cmp(&b.identity)));
        crate::metrics::anomaly_held(holds.len());
        Ok(holds)
    }

    /// Holds `identity` for `span` by an operator's hand (no report: the
    /// operator knows). A hold in force is replaced.
    pub async fn hold(
        &self,
        identity: &str,
        span: Duration,
        reason: &str,
    ) -> Result<Hold, StoreError> {
        let identity = self::identity(identity);
        let since = now();
        let hold = Hold {
            identity: identity.clone(),
            reason: reason.to_string(),
            reference: crate::reference::new_reference(),
            since,
            until: since + span.as_secs().max(1),
            by: BY_OPERATOR.to_string(),
            seen: None,
        };
        let ops = [
            WriteOp::Set(hold_key(&identity), hold.json(), span),
            WriteOp::Set(trip_key(&identity), b"1".to_vec(), span),
            index_op(&identity, since),
        ];
        self.store.batch(&ops).await?;
        crate::metrics::anomaly_hold(BY_OPERATOR);
        Ok(hold)
    }

    /// Keeps `hold`, as it is, until it ends: how `smtpgate check` with
    /// the memory store sees a hold of the running gateway.
    pub async fn keep(&self, hold: &Hold) -> Result<(), StoreError> {
        let left = hold.until.saturating_sub(now());
        if left == 0 {
            return Ok(());
        }
        let key = hold_key(&hold.identity);
        self.store
            .set(&key, &hold.json(), Duration::from_secs(left))
            .await
    }

    /// Releases `identity`: its next message goes through, and the current
    /// window's counts start again from zero (else the same burst would
    /// hold it again at once). True when it was held.
    pub async fn release(&self, identity: &str) -> Result<bool, StoreError> {
        let identity = self::identity(identity);
        let was = self.store.delete(&hold_key(&identity)).await?;
        let window = self.window_of(now());
        let ttl = self.window_ttl();
        let mut ops: Vec<WriteOp> = count::WINDOW_COUNTERS
            .iter()
            .map(|kind| WriteOp::Set(window_key(kind, window, &identity), b"0".to_vec(), ttl))
            .collect();
        ops.push(WriteOp::Set(
            trip_key(&identity),
            b"0".to_vec(),
            Duration::from_secs(1),
        ));
        self.store.batch(&ops).await?;
        Ok(was)
    }
}

/// The longest hold, in days (`hold_for`, `smtpgate hold --for`): the hold
/// index is read this far back.
pub const MAX_HOLD_DAYS: u64 = crate::config::MAX_HOLD.as_secs() / DAY;

/// The hold of `identity` in force now, from the value of its
/// [`Anomaly::held_key`].
pub fn held_from(identity: &str, value: Option<&[u8]>) -> Option<Hold> {
    value
        .map(|v| Hold::read(identity, v))
        .filter(|h| h.until > now())
}

fn hold_key(identity: &str) -> String {
    format!("anomaly:hold:{identity}")
}

/// The identities held on day `day`, one a line.
fn index_key(day: u64) -> String {
    format!("anomaly:holds:{day}")
}

/// Adds `identity` to the index of the day `since` falls on.
fn index_op(identity: &str, since: u64) -> WriteOp {
    WriteOp::Append(
        index_key(since / DAY),
        format!("{identity}\n").into_bytes(),
        Duration::from_secs((MAX_HOLD_DAYS + 1) * DAY),
    )
}

fn trip_key(identity: &str) -> String {
    format!("anomaly:trip:{identity}")
}

fn window_key(kind: &str, window: u64, identity: &str) -> String {
    format!("anomaly:{kind}:{window}:{identity}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn anomaly(trusted: &[&str]) -> Anomaly {
        let config = AnomalyConfig {
            enabled: true,
            trusted_identities: trusted.iter().map(|s| s.to_string()).collect(),
            ..AnomalyConfig::default()
        };
        Anomaly::new(&config, Arc::new(MemoryStore::new()))
    }

    #[test]
    fn identities_are_canonical_and_trust_takes_logins_addresses_and_networks() {
        assert_eq!(identity(" Shop@Example.TEST "), "shop@example.test");
        assert_eq!(identity("2001:DB8:0::1"), "2001:db8::1");
        let a = anomaly(&["Newsletter@Example.test", "192.0.2.7", "198.51.100.0/24"]);
        assert!(a.is_trusted("newsletter@example.test"));
        assert!(a.is_trusted("192.0.2.7"));
        assert!(a.is_trusted("198.51.100.99"));
        assert!(!a.is_trusted("192.0.2.8"));
        assert!(!a.is_trusted("shop@example.test"));
    }

    #[tokio::test]
    async fn an_operator_hold_is_found_listed_and_released() {
        let a = anomaly(&[]);
        assert_eq!(a.held("shop@example.test").await.unwrap(), None);
        let placed = a
            .hold(
                "Shop@Example.test",
                Duration::from_secs(7200),
                "held by the operator",
            )
            .await
            .unwrap();
        assert_eq!(placed.identity, "shop@example.test");
        assert_eq!(placed.until - placed.since, 7200);
        let found = a.held("shop@example.test").await.unwrap().expect("held");
        assert_eq!(found, placed);
        assert_eq!(a.holds().await.unwrap(), vec![placed]);
        assert!(a.release("shop@example.test").await.unwrap());
        assert_eq!(a.held("shop@example.test").await.unwrap(), None);
        assert!(!a.release("shop@example.test").await.unwrap());
        assert!(a.holds().await.unwrap().is_empty());
    }
}

#[cfg(test)]
mod count_tests;
