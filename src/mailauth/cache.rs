//! The record caches mail-auth reads through: parsed TXT (SPF, DKIM,
//! DMARC), MX, A, AAAA and PTR answers kept for their TTL, shared by every
//! message of one configuration, and names that cannot exist in DNS
//! answered without a query.

use mail_auth::{Parameters, RecordSet, ResolverCache, Txt, MX};
use std::borrow::Borrow;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

/// A TTL cache for mail-auth's parsed records: each entry kept until the
/// answer's own expiry, at most [`crate::dns::Expiring`]'s bound (CLOCK):
/// that cache behind mail-auth's [`ResolverCache`] trait.
pub(super) struct TtlCache<K, V>(crate::dns::Expiring<K, V>);

impl<K, V> Default for TtlCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        TtlCache(crate::dns::Expiring::default())
    }
}

impl<K, V> ResolverCache<K, V> for TtlCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.get(name)
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.remove(name)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        self.0.insert(key, value, Some(valid_until));
    }
}

/// What a lookup of a name that cannot exist in DNS (an empty label, a
/// label over 63 octets, over 255 in all) answers. mail-auth 0.13 turns the
/// resolver's refusal to build such a query into a *temporary* error, which
/// would tempfail a customer's mail forever over a typo in an SPF record;
/// the name caches answer first: TXT → a parse error (SPF permerror), A,
/// AAAA and MX → no records (the mechanism does not match).
trait UnresolvableName: Sized {
    fn unresolvable() -> Self;
}

impl UnresolvableName for Txt {
    fn unresolvable() -> Self {
        Txt::Error(mail_auth::Error::ParseError)
    }
}

impl<T> UnresolvableName for RecordSet<T> {
    fn unresolvable() -> Self {
        RecordSet {
            rrset: std::sync::Arc::from(Vec::new()),
            dnssec_status: mail_auth::DnssecStatus::Indeterminate,
        }
    }
}

/// Collects what a key feeds its Hasher. mail-auth asks the caches with a
/// generic `&Q`; for a `str` that is the name's bytes then 0xff, which is
/// how [`NameCache`] sees the name without a `str` bound on the trait.
#[derive(Default)]
struct KeyBytes(Vec<u8>);

impl std::hash::Hasher for KeyBytes {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

/// The name mail-auth asks a cache for (`None` when the key is not a
/// UTF-8 name).
pub(super) fn asked_name<Q: Hash + ?Sized>(name: &Q) -> Option<String> {
    let mut key = KeyBytes::default();
    name.hash(&mut key);
    let bytes = key.0.strip_suffix(&[0xff]).unwrap_or(&key.0);
    std::str::from_utf8(bytes).ok().map(str::to_string)
}

/// True when hickory can build a query for `name`.
fn resolvable(name: &str) -> bool {
    mail_auth::hickory_resolver::proto::rr::Name::from_str_relaxed(name).is_ok()
}

/// A [`TtlCache`] keyed by DNS names that answers names that cannot exist
/// (see [`UnresolvableName`]) without asking the resolver.
pub(super) struct NameCache<V>(TtlCache<Box<str>, V>);

impl<V: Clone + Send + Sync + 'static> Default for NameCache<V> {
    fn default() -> Self {
        NameCache(TtlCache::default())
    }
}

impl<V: Clone + Send + Sync + 'static + UnresolvableName> ResolverCache<Box<str>, V>
    for NameCache<V>
{
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Only names the resolver answered are kept, so a kept entry needs
        // no check (which parses the name): every message asks the same.
        if let Some(kept) = self.0.get(name) {
            return Some(kept);
        }
        if asked_name(name).is_some_and(|n| !resolvable(&n)) {
            return Some(V::unresolvable());
        }
        None
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.remove(name)
    }

    fn insert(&self, key: Box<str>, value: V, valid_until: Instant) {
        self.0.insert(key, value, valid_until);
    }
}

/// The record caches shared by every message of one configuration.
#[derive(Default)]
pub(super) struct Caches {
    /// Parsed TXT records (SPF, DKIM keys, DMARC).
    pub(super) txt: NameCache<Txt>,
    mx: NameCache<RecordSet<MX>>,
    ptr: TtlCache<IpAddr, RecordSet<Box<str>>>,
    ipv4: NameCache<RecordSet<Ipv4Addr>>,
    ipv6: NameCache<RecordSet<Ipv6Addr>>,
}

pub(super) type CachedParameters<'x, P, T = NameCache<Txt>> = Parameters<
    'x,
    P,
    T,
    NameCache<RecordSet<MX>>,
    NameCache<RecordSet<Ipv4Addr>>,
    NameCache<RecordSet<Ipv6Addr>>,
    TtlCache<IpAddr, RecordSet<Box<str>>>,
>;

impl Caches {
    /// mail-auth's parameters reading through these caches.
    pub(super) fn params<'x, P>(&'x self, params: P) -> CachedParameters<'x, P> {
        self.params_with(&self.txt, params)
    }

    /// The same, with TXT answers read through `txt` (an [`Overlay`] of
    /// this evaluation over [`Caches::txt`]).
    ///
    /// [`Overlay`]: super::overlay::Overlay
    pub(super) fn params_with<'x, P, T: ResolverCache<Box<str>, Txt>>(
        &'x self,
        txt: &'x T,
        params: P,
    ) -> CachedParameters<'x, P, T> {
        Parameters::new(params)
            .with_txt_cache(txt)
            .with_mx_cache(&self.mx)
            .with_ptr_cache(&self.ptr)
            .with_ipv4_cache(&self.ipv4)
            .with_ipv6_cache(&self.ipv6)
    }
}
