//! DNS for the envelope checks behind the [`Lookup`] trait: A/AAAA, MX and
//! PTR over hickory-resolver (through mail-auth's re-export, so one copy),
//! configured from `[dns]`. NXDOMAIN and NODATA are answers (`Ok(None)`);
//! timeouts, SERVFAIL and refusals are [`DnsError`]s, which checks turn into
//! a tempfail, never a 5xx. hickory's cache holds positive and negative
//! answers for their TTLs, bounded in size; in front of it each kind of
//! lookup keeps its answers as the checks use them (see [`Memo`]), until
//! the same instant hickory's entry expires.

use crate::config::{Config, ConfigError};
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::net::runtime::TokioRuntimeProvider;
use mail_auth::hickory_resolver::proto::rr::RData;
use mail_auth::hickory_resolver::{Resolver, TokioResolver};
use std::future::Future;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::{Duration, Instant};

mod expiring;
pub use expiring::Expiring;

/// Entries hickory's answer cache holds at most.
const CACHE_SIZE: u64 = 50_000;

/// DNS could not answer: a temporary failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("DNS lookup of {name} failed: {reason}")]
pub struct DnsError {
    /// What was asked.
    pub name: String,
    /// Why there is no answer.
    pub reason: String,
}

/// The future a lookup returns: `Ok(None)` is NXDOMAIN or NODATA.
pub type DnsFuture<'a, T> = Pin<Box<dyn Future<Output = Result<Option<T>, DnsError>> + Send + 'a>>;

/// The lookups the envelope checks need.
pub trait Lookup: Send + Sync {
    /// A and AAAA addresses of `name`.
    fn ips<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<IpAddr>>;
    /// MX records of `name`: (preference, exchange without the root dot).
    fn mx<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<(u16, String)>>;
    /// PTR names of `ip`.
    fn ptr<'a>(&'a self, ip: IpAddr) -> DnsFuture<'a, Vec<String>>;
    /// A records of `name` (DNSBL answers).
    fn a<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<std::net::Ipv4Addr>>;
}

/// The resolver configuration of `[dns]`: its nameservers (UDP and TCP,
/// `IP` or `IP:port`), timeout and attempts; the system's when none are
/// listed. `strict`: an unreadable system configuration is an error.
pub fn resolver_config(
    config: &Config,
    strict: bool,
) -> Result<(ResolverConfig, ResolverOpts), ConfigError> {
    let dns = &config.dns;
    let error = |message: String| config.source.error_at_key("dns", "nameservers", message);
    let (resolver_config, mut opts) = if dns.nameservers.is_empty() {
        match mail_auth::hickory_resolver::system_conf::read_system_conf() {
            Ok(system) => system,
            Err(_) if !strict => (
                ResolverConfig::from_name_servers(Vec::new()),
                ResolverOpts::default(),
            ),
            Err(e) => {
                return Err(error(format!(
                    "dns: cannot read the system resolver configuration: {e}"
                )))
            }
        }
    } else {
        let mut servers = Vec::new();
        for text in &dns.nameservers {
            let addr: SocketAddr = text
                .parse()
                .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| {
                    error(format!(
                        "dns.nameservers: invalid address `{text}`: expected \"IP\" or \"IP:port\""
                    ))
                })?;
            let mut server = NameServerConfig::udp_and_tcp(addr.ip());
            for connection in &mut server.connections {
                connection.port = addr.port();
            }
            servers.push(server);
        }
        // Explicit nameservers are the whole truth: no /etc/hosts answers.
        let mut opts = ResolverOpts::default();
        opts.use_hosts_file = mail_auth::hickory_resolver::config::ResolveHosts::Never;
        (ResolverConfig::from_name_servers(servers), opts)
    };
    opts.timeout = dns.timeout.0;
    opts.attempts = dns.attempts.max(1);
    opts.cache_size = CACHE_SIZE;
    Ok((resolver_config, opts))
}

/// Answers of one kind of lookup as the checks use them, each until the
/// instant hickory's cached answer expires (a positive answer's
/// `valid_until`, a negative one's remaining negative TTL); failures are
/// never kept. A hit costs a hash lookup instead of hickory's query
/// building, cache read and response copy, which every message repeated.
type Memo<K, T> = Expiring<K, Option<Vec<T>>>;

/// Keeps a lookup's answer in `memo` until `until`; a failure is not kept.
fn keep<K, T>(
    memo: &Memo<K, T>,
    key: K,
    answer: &Result<Option<Vec<T>>, DnsError>,
    until: Option<Instant>,
) where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    if let Ok(answer) = answer {
        memo.insert(key, answer.clone(), until);
    }
}

/// Until when hickory keeps the answer `result` (`None`: a failure, not
/// kept). `now` is when the lookup started (a negative TTL counts from
/// the answer, which is no earlier).
fn valid_until(
    result: &Result<
        mail_auth::hickory_resolver::lookup::Lookup,
        mail_auth::hickory_resolver::net::NetError,
    >,
    now: Instant,
) -> Option<Instant> {
    match result {
        Ok(lookup) => Some(lookup.valid_until()),
        Err(e) => negative_until(e, now),
    }
}

/// Until when hickory keeps the negative answer `error` (no records, with
/// the zone's negative TTL), counted from `now`, when the lookup started;
/// `None` for any other failure (never kept).
pub fn negative_until(
    error: &mail_auth::hickory_resolver::net::NetError,
    now: Instant,
) -> Option<Instant> {
    use mail_auth::hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
    match error {
        NetError::Dns(HickoryDnsError::NoRecordsFound(no_records)) => no_records
            .negative_ttl
            .map(|ttl| now + Duration::from_secs(u64::from(ttl))),
        _ => None,
    }
}

/// The earlier of two expiries (`None`, not kept, wins).
fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    Some(a?.min(b?))
}

/// hickory behind [`Lookup`].
pub struct HickoryLookup {
    resolver: TokioResolver,
    ips: Memo<Box<str>, IpAddr>,
    mx: Memo<Box<str>, (u16, String)>,
    ptr: Memo<IpAddr, String>,
    a: Memo<Box<str>, std::net::Ipv4Addr>,
}

impl HickoryLookup {
    /// From `[dns]`.
    pub fn new(config: &Config, strict: bool) -> Result<HickoryLookup, ConfigError> {
        let (rc, opts) = resolver_config(config, strict)?;
        let resolver = Resolver::builder_with_config(rc, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| {
                config.source.error_at_key(
                    "dns",
                    "nameservers",
                    format!("dns: cannot build the resolver: {e}"),
                )
            })?;
        Ok(HickoryLookup {
            resolver,
            ips: Memo::default(),
            mx: Memo::default(),
            ptr: Memo::default(),
            a: Memo::default(),
        })
    }
}

/// True when `name` cannot be a DNS name at all (then nothing exists there:
/// an answer, not a failure).
fn impossible(name: &str) -> bool {
    mail_auth::hickory_resolver::proto::rr::Name::from_ascii(name).is_err()
}

/// Absolute form of `name` (one query, no search list).
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// Maps a hickory result: records, none (NXDOMAIN/NODATA), or a failure.
fn answer<T>(
    kind: &'static str,
    name: &str,
    started: Instant,
    result: Result<
        mail_auth::hickory_resolver::lookup::Lookup,
        mail_auth::hickory_resolver::net::NetError,
    >,
    pick: impl Fn(&RData) -> Option<T>,
) -> Result<Option<Vec<T>>, DnsError> {
    let out = match result {
        Ok(lookup) => {
            let found: Vec<T> = lookup
                .answers()
                .iter()
                .filter_map(|r| pick(&r.data))
                .collect();
            Ok((!found.is_empty()).then_some(found))
        }
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(None),
        Err(e) => Err(DnsError {
            name: name.to_string(),
            reason: e.to_string(),
        }),
    };
    crate::metrics::dns(kind, started.elapsed(), out.is_err());
    out
}

fn name_text(name: &mail_auth::hickory_resolver::proto::rr::Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

impl Lookup for HickoryLookup {
    fn ips<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<IpAddr>> {
        Box::pin(async move {
            let key: Box<str> = name.into();
            if let Some(kept) = self.ips.get(&key) {
                crate::metrics::dns("a", Duration::ZERO, false);
                crate::metrics::dns("aaaa", Duration::ZERO, false);
                return Ok(kept);
            }
            if impossible(name) {
                return Ok(None);
            }
            let started = Instant::now();
            let (v4, v6) = tokio::join!(
                self.resolver.ipv4_lookup(fqdn(name)),
                self.resolver.ipv6_lookup(fqdn(name))
            );
            let until = earlier(valid_until(&v4, started), valid_until(&v6, started));
            let v4 = answer("a", name, started, v4, |d| match d {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                _ => None,
            });
            let v6 = answer("aaaa", name, started, v6, |d| match d {
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            });
            let out = match (v4, v6) {
                (Ok(a), Ok(b)) => {
                    let all: Vec<IpAddr> = a
                        .into_iter()
                        .flatten()
                        .chain(b.into_iter().flatten())
                        .collect();
                    Ok((!all.is_empty()).then_some(all))
                }
                // One family answered: that is an answer.
                (Ok(Some(a)), Err(_)) | (Err(_), Ok(Some(a))) => Ok(Some(a)),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            keep(&self.ips, key, &out, until);
            out
        })
    }

    fn mx<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<(u16, String)>> {
        Box::pin(async move {
            let key: Box<str> = name.into();
            if let Some(kept) = self.mx.get(&key) {
                crate::metrics::dns("mx", Duration::ZERO, false);
                return Ok(kept);
            }
            let started = Instant::now();
            let result = self.resolver.mx_lookup(fqdn(name)).await;
            let until = valid_until(&result, started);
            let out = answer("mx", name, started, result, |d| match d {
                RData::MX(mx) => Some((mx.preference, name_text(&mx.exchange))),
                _ => None,
            });
            keep(&self.mx, key, &out, until);
            out
        })
    }

    fn ptr<'a>(&'a self, ip: IpAddr) -> DnsFuture<'a, Vec<String>> {
        Box::pin(async move {
            if let Some(kept) = self.ptr.get(&ip) {
                crate::metrics::dns("ptr", Duration::ZERO, false);
                return Ok(kept);
            }
            let started = Instant::now();
            let result = self.resolver.reverse_lookup(ip).await;
            let until = valid_until(&result, started);
            let out = answer("ptr", &ip.to_string(), started, result, |d| match d {
                RData::PTR(p) => Some(name_text(&p.0)),
                _ => None,
            });
            keep(&self.ptr, ip, &out, until);
            out
        })
    }

    fn a<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<std::net::Ipv4Addr>> {
        Box::pin(async move {
            let key: Box<str> = name.into();
            if let Some(kept) = self.a.get(&key) {
                crate::metrics::dns("a", Duration::ZERO, false);
                return Ok(kept);
            }
            let started = Instant::now();
            let result = self.resolver.ipv4_lookup(fqdn(name)).await;
            let until = valid_until(&result, started);
            let out = answer("a", name, started, result, |d| match d {
                RData::A(a) => Some(a.0),
                _ => None,
            });
            keep(&self.a, key, &out, until);
            out
        })
    }
}
