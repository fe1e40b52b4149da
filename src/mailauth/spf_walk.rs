//! The SPF records one check will meet, read and validated before mail-auth
//! evaluates them: the domain's record, then every `include:` and
//! `redirect=` target (macros expanded as mail-auth will), at most the
//! RFC 7208 §4.6.4 lookup limit. A broken record (see [`super::spf_syntax`])
//! is laid over the TXT cache as a parse error, so mail-auth answers
//! permerror at exactly the point of its evaluation that reaches it (a
//! broken include after a matching mechanism is never reached); the note
//! names the broken term for the customer's alert. A failed lookup is laid
//! over as the DNS error it was, so mail-auth does not wait for it again.
//!
//! The RFC 7208 suite (tests/spf_rfc7208.rs) passes 193 of 203; the misses:
//! * null-text: a TXT record with no strings, which the test DNS server
//!   cannot serve (temperror there);
//! * ptr-match-implicit, ptr-match-ip6: mail-auth's `ptr` evaluation fails
//!   where the suite expects pass (not investigated);
//! * a-colon-domain, mx-colon-domain (and their -ip4mapped twins): the
//!   record is validated and rebuilt, but the lookup of
//!   `foo:bar/baz.example.com` finds nothing (hickory's handling of `:`
//!   and `/` in a label, not investigated);
//! * exists-ip6only: mail-auth's `exists` also matches an AAAA-only name;
//!   RFC 7208 §5.7 asks for an A lookup only;
//! * macro-mania-in-domain: its zone holds a name with spaces, which the
//!   test DNS server's zone format cannot load;
//! * void-over-limit: mail-auth does not count void lookups (§4.6.4).

use super::overlay::Overlay;
use super::spf_record;
use super::spf_syntax::{self, SpfSyntaxError};
use mail_auth::hickory_resolver::proto::rr::{Name, RData};

use mail_auth::spf::{Mechanism, Spf, Variables};
use mail_auth::{DnsError, Error, MessageAuthenticator, Txt};
use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Records read at most: the domain's own and the 10 lookups RFC 7208
/// §4.6.4 allows.
const MAX_RECORDS: usize = 11;

/// Whose SPF is checked, with what the macros expand to.
pub(super) struct Identity<'a> {
    /// The address checked.
    pub(super) ip: IpAddr,
    /// The domain whose record is evaluated first.
    pub(super) domain: &'a str,
    /// The HELO name.
    pub(super) helo: &'a str,
    /// Our own host name (`%{r}`).
    pub(super) host_domain: &'a str,
    /// The sender (`postmaster@<domain>` for the HELO identity).
    pub(super) sender: String,
}

pub(super) enum Fetched {
    Records(Vec<String>),
    Absent,
    Failed(String),
}

/// The TXT strings of `name`, each record's strings joined (RFC 7208 §3.3).
pub(super) async fn fetch(resolver: &MessageAuthenticator, name: &str) -> Fetched {
    fetch_until(resolver, name).await.0
}

/// [`fetch`], and until when hickory keeps that answer (`None` for a
/// failure, or a name that cannot be asked).
async fn fetch_until(resolver: &MessageAuthenticator, name: &str) -> (Fetched, Option<Instant>) {
    let Ok(query) = Name::from_str_relaxed(name) else {
        return (Fetched::Absent, None);
    };
    let started = Instant::now();
    match resolver.0.txt_lookup(query).await {
        Ok(lookup) => {
            let until = lookup.valid_until();
            (
                Fetched::Records(
                    lookup
                        .answers()
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::TXT(txt) => Some(
                                txt.txt_data
                                    .iter()
                                    .map(|s| String::from_utf8_lossy(s))
                                    .collect::<String>(),
                            ),
                            _ => None,
                        })
                        .collect(),
                ),
                Some(until),
            )
        }
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => {
            (Fetched::Absent, crate::dns::negative_until(&e, started))
        }
        Err(e) => (Fetched::Failed(e.to_string()), None),
    }
}

/// What a name's TXT answer is to the walk, before the client's address
/// and macros come in: the same for every message until the answer
/// expires.
#[derive(Clone)]
enum Read {
    /// The lookup failed (never kept).
    Failed(String),
    /// No SPF record (NXDOMAIN, NODATA, or no `v=spf1` among the TXT).
    NoRecord,
    /// A record that does not select or validate.
    Broken(SpfSyntaxError),
    /// A record mail-auth's parser cannot read (skipped, as before).
    Unparsed,
    /// The record, validated and parsed.
    Record(Arc<Spf>),
}

/// The walk's reading of each name's answer, kept until hickory's answer
/// expires, so that a message from a customer whose record was read
/// before costs no TXT lookup, selection, validation or parse.
#[derive(Default)]
pub(super) struct SpfMemo {
    entries: crate::dns::Expiring<Box<str>, Read>,
}

impl SpfMemo {
    /// The reading of `name`'s answer: kept, or looked up and read.
    async fn read(&self, resolver: &MessageAuthenticator, name: &str) -> Read {
        let key: Box<str> = name.to_ascii_lowercase().into();
        if let Some(read) = self.entries.get(&key) {
            return read;
        }
        let (fetched, until) = fetch_until(resolver, name).await;
        let records = match fetched {
            Fetched::Records(records) => records,
            Fetched::Absent => Vec::new(),
            Fetched::Failed(why) => return Read::Failed(why),
        };
        let read = match spf_syntax::select(&records) {
            Ok(None) => Read::NoRecord,
            Err(e) => Read::Broken(e),
            Ok(Some(record)) => match spf_syntax::validate(record) {
                Err(e) => Read::Broken(e),
                Ok(()) => spf_record::parse(record)
                    .map_or(Read::Unparsed, |spf| Read::Record(Arc::new(spf))),
            },
        };
        self.entries.insert(key, read.clone(), until);
        read
    }
}

/// Reads and validates the records `id` leads to, laying what mail-auth
/// must see over `overlay`.
pub(super) async fn prepare(
    resolver: &MessageAuthenticator,
    memo: &SpfMemo,
    id: &Identity<'_>,
    overlay: &mut Overlay<'_>,
) {
    let mut queue: VecDeque<(String, Option<String>)> = VecDeque::new();
    queue.push_back((id.domain.to_string(), None));
    let mut seen = HashSet::new();
    while let Some((name, via)) = queue.pop_front() {
        if seen.len() >= MAX_RECORDS {
            break;
        }
        if !seen.insert(name.trim_end_matches('.').to_ascii_lowercase()) {
            continue;
        }
        let spf = match memo.read(resolver, &name).await {
            Read::Record(spf) => spf,
            Read::Failed(why) => {
                overlay.answer(&name, Txt::Error(Error::Dns(DnsError::Resolver(why))));
                continue;
            }
            Read::NoRecord => {
                if let Some(via) = via {
                    overlay.note(&name, format!("{via}: {name} publishes no SPF record"));
                }
                continue;
            }
            Read::Broken(e) => {
                broken(overlay, &name, id.domain, via.as_deref(), &e);
                continue;
            }
            Read::Unparsed => continue,
        };
        let mut spf = Spf::clone(&spf);
        // ip4: never matches an IPv6 client, nor ip6: an IPv4 one (mail-auth
        // compares them mapped).
        spf.directives = spf
            .directives
            .iter()
            .filter(|d| match d.mechanism {
                Mechanism::Ip4 { .. } => id.ip.is_ipv4(),
                Mechanism::Ip6 { .. } => id.ip.is_ipv6(),
                _ => true,
            })
            .cloned()
            .collect();
        // mail-auth evaluates the record validated here, parsed here.
        overlay.answer(&name, Txt::Spf(Arc::new(spf.clone())));
        let mut vars = Variables::new();
        vars.set_ip(&id.ip);
        vars.set_sender(id.sender.as_bytes().to_vec());
        vars.set_domain(name.as_bytes().to_vec());
        vars.set_host_domain(id.host_domain.as_bytes().to_vec());
        vars.set_helo_domain(id.helo.as_bytes().to_vec());
        for directive in spf.directives.iter() {
            if let Mechanism::Include { macro_string } = &directive.mechanism {
                let target = macro_string.eval(&vars, &name, true).into_owned();
                let via = format!("include:{}", target.trim_end_matches('.'));
                queue.push_back((target, Some(via)));
            }
        }
        if let Some(redirect) = &spf.redirect {
            let target = redirect.eval(&vars, &name, true).into_owned();
            let via = format!("redirect={}", target.trim_end_matches('.'));
            queue.push_back((target, Some(via)));
        }
    }
}

/// Lays a parse error over `name` (mail-auth: permerror) with a note naming
/// the broken term and, for an included record, where it is.
fn broken(
    overlay: &mut Overlay<'_>,
    name: &str,
    domain: &str,
    via: Option<&str>,
    e: &SpfSyntaxError,
) {
    let name_shown = name.trim_end_matches('.');
    let note = match via {
        Some(via) if !name_shown.eq_ignore_ascii_case(domain) => {
            format!("{e} (in the SPF record of {name_shown}, reached by {via})")
        }
        _ => e.to_string(),
    };
    overlay.answer(name, Txt::Error(Error::ParseError));
    overlay.note(name, note);
}
