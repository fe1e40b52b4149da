//! Envelope checks over DNS and the store, each switched on in
//! `[envelope]` (all off by default: they need a resolver):
//! reject_unknown_helo_hostname, reject_unknown_reverse_client_hostname,
//! reject_unknown_client_hostname (forward-confirmed rDNS),
//! reject_unknown_sender_domain (A/AAAA/MX; a null MX is refused), and
//! reject_known_bad_recipient_address (recipients the MTA hard-bounced),
//! plus DNSBL/RHSBL zones from `[dnsbl]`. A DNS failure is a CheckError:
//! the phase is tempfailed, never rejected.

use super::{is_address_literal, is_fqdn, Check, CheckError, CheckFuture, Phase, View};
use crate::config::{Config, DnsblOnError, OnError};
use crate::dns::{DnsError, Lookup};
use crate::score::{Hit, Why};
use crate::store::Store;
use std::net::IpAddr;
use std::sync::Arc;

fn dns_error(check: &'static str, e: DnsError) -> CheckError {
    CheckError::new(check, e.to_string())
}

/// Whether `name` has an address or a mail exchanger. `Ok(None)`: it
/// resolves; `Ok(Some(why))`: it does not.
async fn resolves(dns: &dyn Lookup, name: &str) -> Result<Option<&'static str>, DnsError> {
    if let Some(mx) = dns.mx(name).await? {
        // RFC 7505: a single MX "." with preference 0 means "no mail".
        if mx.len() == 1 && mx[0].1.is_empty() {
            return Ok(Some("null MX"));
        }
        return Ok(None);
    }
    Ok(match dns.ips(name).await? {
        Some(_) => None,
        None => Some("not found"),
    })
}

/// HELO: the HELO name and the client's reverse DNS.
pub struct HeloDnsCheck {
    dns: Arc<dyn Lookup>,
    helo: bool,
    reverse: bool,
    forward_confirmed: bool,
}

impl Check for HeloDnsCheck {
    fn name(&self) -> &'static str {
        "helo_dns"
    }
    fn phase(&self) -> Phase {
        Phase::Helo
    }
    fn symbols(&self) -> &'static [&'static str] {
        &[
            "reject_unknown_helo_hostname",
            "reject_unknown_reverse_client_hostname",
            "reject_unknown_client_hostname",
        ]
    }
    fn check<'a>(&'a self, view: &'a View<'a>) -> CheckFuture<'a> {
        Box::pin(async move {
            let mut hits = Vec::new();
            let helo = view.helo.trim_end_matches('.');
            if self.helo && is_fqdn(helo) && !is_address_literal(helo) {
                if let Some(why) = resolves(self.dns.as_ref(), helo)
                    .await
                    .map_err(|e| dns_error("helo_dns", e))?
                {
                    hits.push(Hit {
                        why: Default::default(),
                        name: "reject_unknown_helo_hostname".into(),
                        options: vec![helo.to_string(), why.to_string()],
                    });
                }
            }
            if self.reverse || self.forward_confirmed {
                let ip = view.client_ip;
                let names = self
                    .dns
                    .ptr(ip)
                    .await
                    .map_err(|e| dns_error("client_dns", e))?;
                match names {
                    None if self.reverse => hits.push(Hit::new(
                        "reject_unknown_reverse_client_hostname",
                        ip.to_string(),
                    )),
                    None => hits.push(Hit::new("reject_unknown_client_hostname", ip.to_string())),
                    Some(names) if self.forward_confirmed => {
                        let mut confirmed = false;
                        for name in names.iter().take(5) {
                            let ips = self
                                .dns
                                .ips(name)
                                .await
                                .map_err(|e| dns_error("client_dns", e))?;
                            if ips.is_some_and(|ips| ips.contains(&ip)) {
                                confirmed = true;
                                break;
                            }
                        }
                        if !confirmed {
                            hits.push(Hit::new("reject_unknown_client_hostname", ip.to_string()));
                        }
                    }
                    Some(_) => {}
                }
            }
            Ok(hits)
        })
    }
}

/// MAIL: the sender domain must exist and accept mail; RHSBL zones.
pub struct SenderDnsCheck {
    dns: Arc<dyn Lookup>,
    unknown_domain: bool,
    on_error: DnsblOnError,
    rhsbl: Vec<(String, &'static str)>,
    symbols: &'static [&'static str],
}

impl Check for SenderDnsCheck {
    fn name(&self) -> &'static str {
        "sender_dns"
    }
    fn phase(&self) -> Phase {
        Phase::Mail
    }
    fn symbols(&self) -> &'static [&'static str] {
        self.symbols
    }
    fn check<'a>(&'a self, view: &'a View<'a>) -> CheckFuture<'a> {
        Box::pin(async move {
            let mut hits = Vec::new();
            let Some(sender) = view.sender else {
                return Ok(hits);
            };
            let domain = sender.domain.trim_end_matches('.');
            if domain.is_empty() || is_address_literal(domain) || !is_fqdn(domain) {
                return Ok(hits);
            }
            if self.unknown_domain {
                if let Some(why) = resolves(self.dns.as_ref(), domain)
                    .await
                    .map_err(|e| dns_error("sender_dns", e))?
                {
                    let hit = Hit::new("reject_unknown_sender_domain", domain);
                    hits.push(if why == "null MX" {
                        hit.because(Why::NullMx)
                    } else {
                        hit
                    });
                }
            }
            for (zone, symbol) in &self.rhsbl {
                let query = format!("{domain}.{zone}");
                if let Some(code) =
                    listed(self.dns.as_ref(), &query, self.on_error, "sender_dns").await?
                {
                    hits.push(Hit::new(
                        symbol,
                        format!("{domain} listed in {zone} ({code})"),
                    ));
                }
            }
            Ok(hits)
        })
    }
}

/// The first listing answer for `query`; "query refused" codes
/// (127.255.255.252-255) are not listings. A DNS failure is "not listed"
/// with `on_error = "skip"` (a DNSBL outage must not stop mail), else a
/// CheckError (451 4.3.0).
async fn listed(
    dns: &dyn Lookup,
    query: &str,
    on_error: DnsblOnError,
    check: &'static str,
) -> Result<Option<std::net::Ipv4Addr>, CheckError> {
    match dns.a(query).await {
        Ok(Some(codes)) => Ok(codes.into_iter().find(|c| {
            let o = c.octets();
            o[0] == 127 && !(o[1] == 255 && o[2] == 255 && o[3] >= 252)
        })),
        Ok(None) => Ok(None),
        Err(e) if on_error == DnsblOnError::Skip => {
            tracing::debug!(error = %e, query, "DNSBL lookup failed; treated as not listed");
            crate::metrics::dnsbl_skipped();
            Ok(None)
        }
        Err(e) => Err(dns_error(check, e)),
    }
}

/// HELO phase (once per connection): DNSBL zones for the client IP.
pub struct ClientDnsblCheck {
    dns: Arc<dyn Lookup>,
    on_error: DnsblOnError,
    zones: Vec<(String, &'static str)>,
    symbols: &'static [&'static str],
}

/// The DNSBL query label of `ip`: reversed octets, or IPv6 nibbles.
pub fn reversed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let hex: String = v6.octets().iter().map(|b| format!("{b:02x}")).collect();
            hex.chars()
                .rev()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(".")
        }
    }
}

impl Check for ClientDnsblCheck {
    fn name(&self) -> &'static str {
        "dnsbl"
    }
    fn phase(&self) -> Phase {
        Phase::Helo
    }
    fn symbols(&self) -> &'static [&'static str] {
        self.symbols
    }
    fn check<'a>(&'a self, view: &'a View<'a>) -> CheckFuture<'a> {
        Box::pin(async move {
            let mut hits = Vec::new();
            let label = reversed(view.client_ip);
            for (zone, symbol) in &self.zones {
                let query = format!("{label}.{zone}");
                if let Some(code) =
                    listed(self.dns.as_ref(), &query, self.on_error, "dnsbl").await?
                {
                    hits.push(Hit::new(
                        symbol,
                        format!("{} listed in {zone} ({code})", view.client_ip),
                    ));
                }
            }
            Ok(hits)
        })
    }
}

/// The store key of a known-bad recipient.
pub fn known_bad_key(rcpt: &str) -> String {
    format!("badrcpt:{}", rcpt.to_ascii_lowercase())
}

/// RCPT: recipients the upstream hard-bounced before.
pub struct KnownBadRecipientCheck {
    store: Arc<dyn Store>,
    recent: Arc<super::recent::Recent>,
    on_error: OnError,
}

impl Check for KnownBadRecipientCheck {
    fn name(&self) -> &'static str {
        "known_bad_recipient"
    }
    fn phase(&self) -> Phase {
        Phase::Rcpt
    }
    fn symbols(&self) -> &'static [&'static str] {
        &["reject_known_bad_recipient_address"]
    }
    fn check<'a>(&'a self, view: &'a View<'a>) -> CheckFuture<'a> {
        Box::pin(async move {
            let Some(rcpt) = view.recipient else {
                return Ok(Vec::new());
            };
            let key = known_bad_key(&rcpt.to_string());
            if view.fetched.get(&key).is_none() && self.recent.absent(&key) {
                return Ok(Vec::new());
            }
            let read = super::read(view, self.store.as_ref(), &key).await;
            if let Ok(value) = &read {
                self.recent.read_presence(&key, value.is_some());
            }
            match read {
                Ok(Some(why)) => Ok(vec![Hit {
                    why: Default::default(),
                    name: "reject_known_bad_recipient_address".into(),
                    options: vec![rcpt.to_string(), String::from_utf8_lossy(&why).into_owned()],
                }]),
                Ok(None) => Ok(Vec::new()),
                Err(_) if self.on_error == OnError::Accept => Ok(Vec::new()),
                Err(e) => Err(CheckError::store("known_bad_recipient", e)),
            }
        })
    }
    fn reads(&self, view: &View<'_>) -> Vec<String> {
        view.recipient
            .map(|rcpt| known_bad_key(&rcpt.to_string()))
            .filter(|key| !self.recent.absent(key))
            .map(|key| vec![key])
            .unwrap_or_default()
    }
}

/// Learns a hard bounce: the upstream answered RCPT with 550/551/553 and
/// an enhanced code about the *recipient* (RFC 3463: 5.1.1 no such
/// mailbox, 5.1.2 no such system, 5.1.3 bad address syntax, 5.1.6 moved,
/// 5.1.10 null MX). 5.1.0, 5.1.7 and 5.1.8 are about the sender (Postfix
/// gives a delayed sender refusal at RCPT): one customer's bad sender must
/// not block a recipient for everyone.
pub async fn learn_bad_recipient(
    config: &Config,
    store: &dyn Store,
    recent: &super::recent::Recent,
    rcpt: &str,
    code: u16,
    enhanced: &str,
    text: &str,
) {
    if !config.envelope.reject_known_bad_recipient_address {
        return;
    }
    if !matches!(code, 550 | 551 | 553)
        || !matches!(enhanced, "5.1.1" | "5.1.2" | "5.1.3" | "5.1.6" | "5.1.10")
    {
        return;
    }
    let why = format!("{code} {enhanced} {text}");
    let key = known_bad_key(rcpt);
    recent.forget(&key);
    if let Err(e) = store
        .set(&key, why.as_bytes(), config.envelope.known_bad_ttl.0)
        .await
    {
        tracing::warn!(%rcpt, error = %e, "known-bad recipient not stored");
    } else {
        tracing::info!(%rcpt, "learned a known-bad recipient");
    }
}

/// `name` as a `&'static str`, leaked once per distinct name (zone symbols
/// come from the config, so a SIGHUP reload must not leak them again).
fn intern(name: String) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let n: &'static str = Box::leak(name.into_boxed_str());
    names.push(n);
    n
}

/// A symbol list as `&'static`, interned like [`intern`].
fn leak(names: Vec<String>) -> &'static [&'static str] {
    static LISTS: std::sync::Mutex<Vec<&'static [&'static str]>> =
        std::sync::Mutex::new(Vec::new());
    let names: Vec<&'static str> = names.into_iter().map(intern).collect();
    let mut lists = LISTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = lists.iter().find(|l| **l == names.as_slice()) {
        return l;
    }
    let l: &'static [&'static str] = Box::leak(names.into_boxed_slice());
    lists.push(l);
    l
}

/// The checks of `[envelope]` and `[dnsbl]`.
pub fn build(config: &Config, deps: &super::Deps) -> Vec<Box<dyn Check>> {
    let (dns, store) = (&deps.dns, &deps.store);
    let env = &config.envelope;
    let mut checks: Vec<Box<dyn Check>> = Vec::new();
    if env.reject_unknown_helo_hostname
        || env.reject_unknown_reverse_client_hostname
        || env.reject_unknown_client_hostname
    {
        checks.push(Box::new(HeloDnsCheck {
            dns: Arc::clone(dns),
            helo: env.reject_unknown_helo_hostname,
            reverse: env.reject_unknown_reverse_client_hostname,
            forward_confirmed: env.reject_unknown_client_hostname,
        }));
    }
    let dnsbl = &config.dnsbl;
    if !dnsbl.client.is_empty() {
        let zones: Vec<(String, &'static str)> = dnsbl
            .client
            .iter()
            .map(|z| {
                (
                    z.zone.trim_end_matches('.').to_string(),
                    intern(format!("RBL_{}", z.name.to_ascii_uppercase())),
                )
            })
            .collect();
        let symbols = leak(zones.iter().map(|(_, s)| s.to_string()).collect());
        checks.push(Box::new(ClientDnsblCheck {
            dns: Arc::clone(dns),
            on_error: dnsbl.on_error,
            zones,
            symbols,
        }));
    }
    if env.reject_unknown_sender_domain || !dnsbl.sender.is_empty() {
        let rhsbl: Vec<(String, &'static str)> = dnsbl
            .sender
            .iter()
            .map(|z| {
                (
                    z.zone.trim_end_matches('.').to_string(),
                    intern(format!("RHSBL_{}", z.name.to_ascii_uppercase())),
                )
            })
            .collect();
        let mut names: Vec<String> = rhsbl.iter().map(|(_, s)| s.to_string()).collect();
        if env.reject_unknown_sender_domain {
            names.push("reject_unknown_sender_domain".into());
        }
        checks.push(Box::new(SenderDnsCheck {
            dns: Arc::clone(dns),
            unknown_domain: env.reject_unknown_sender_domain,
            on_error: dnsbl.on_error,
            rhsbl,
            symbols: leak(names),
        }));
    }
    if let Some(c) = super::callout::CalloutCheck::new(config, dns, store, &deps.local_domains) {
        checks.push(Box::new(c));
    }
    if env.reject_known_bad_recipient_address {
        checks.push(Box::new(KnownBadRecipientCheck {
            store: Arc::clone(store),
            recent: Arc::clone(&deps.recent),
            on_error: config.store.on_error,
        }));
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnsbl_labels() {
        assert_eq!(reversed("192.0.2.10".parse().unwrap()), "10.2.0.192");
        assert_eq!(
            reversed("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
        );
    }
}
