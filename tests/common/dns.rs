//! In-process DNS server for tests: hickory-server on 127.0.0.1 (UDP and
//! TCP on the same free port) answering from a zone description, so no test
//! ever asks the system resolver.
//!
//! Zone text, one record a line (`;` or `#` start a comment):
//! ```text
//! example.test            TXT  "v=spf1 ip4:192.0.2.1 -all"
//! long.example.test       TXT  "first string" "second string"
//! empty.example.test      TXT                ; a TXT record with no strings
//! mail.example.test       A    192.0.2.1
//! mail.example.test       AAAA 2001:db8::1
//! example.test            MX   10 mail.example.test
//! 1.2.0.192.in-addr.arpa  PTR  mail.example.test
//! www.example.test        CNAME example.test
//! slow.example.test       TIMEOUT    ; queries with no record of their type go unanswered
//! broken.example.test     SERVFAIL   ; every query for this name gets SERVFAIL
//! closed.example.test     REFUSED    ; every query for this name gets REFUSED
//! ```
//! Names are case-insensitive, a trailing dot is optional. A name not in the
//! zone is NXDOMAIN; a known name without the asked type is NODATA. The
//! whole server can also be switched to never answer or to SERVFAIL
//! everything ([`Mode`]).
#![allow(dead_code)]

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, SOA, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// One record's data.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A TXT record (its character-strings).
    Txt(Vec<Vec<u8>>),
    /// An A record.
    A(Ipv4Addr),
    /// An AAAA record.
    Aaaa(Ipv6Addr),
    /// An MX record.
    Mx(u16, String),
    /// A PTR record.
    Ptr(String),
    /// A CNAME record (followed one level for other types).
    Cname(String),
    /// Queries for a type with no record here are never answered.
    Timeout,
    /// Every query for this name gets SERVFAIL.
    ServFail,
    /// Every query for this name gets REFUSED.
    Refused,
}

/// Records by lower-case name (no trailing dot).
#[derive(Debug, Clone, Default)]
pub struct Zone {
    names: HashMap<String, Vec<Entry>>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Zone {
    /// An empty zone.
    pub fn new() -> Zone {
        Zone::default()
    }

    /// Parses zone text (see the module doc); panics with the line number
    /// on a malformed line, as a broken fixture should.
    pub fn parse(text: &str) -> Zone {
        let mut zone = Zone::new();
        for (n, raw) in text.lines().enumerate() {
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            let (name, rest) = split_word(line);
            let (kind, data) = split_word(rest);
            let entry = parse_entry(kind, data.trim())
                .unwrap_or_else(|| panic!("zone line {}: cannot parse {raw:?}", n + 1));
            zone.add(name, entry);
        }
        zone
    }

    /// Reads and parses a zone file.
    pub fn load(path: &Path) -> Zone {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("zone {}: {e}", path.display()));
        Zone::parse(&text)
    }

    /// Adds a record.
    pub fn add(&mut self, name: &str, entry: Entry) -> &mut Zone {
        self.names.entry(key(name)).or_default().push(entry);
        self
    }

    /// Adds a one-string TXT record.
    pub fn txt(&mut self, name: &str, value: &str) -> &mut Zone {
        self.add(name, Entry::Txt(vec![value.as_bytes().to_vec()]))
    }

    /// Adds every record of `other`.
    pub fn merge(&mut self, other: Zone) -> &mut Zone {
        for (name, entries) in other.names {
            self.names.entry(name).or_default().extend(entries);
        }
        self
    }

    fn entries(&self, name: &str) -> Option<&[Entry]> {
        self.names.get(&key(name)).map(Vec::as_slice)
    }
}

fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' | '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

fn parse_entry(kind: &str, data: &str) -> Option<Entry> {
    Some(match kind.to_ascii_uppercase().as_str() {
        "TXT" => Entry::Txt(parse_strings(data)?),
        "A" => Entry::A(data.parse().ok()?),
        "AAAA" => Entry::Aaaa(data.parse().ok()?),
        "MX" => {
            let (pref, host) = split_word(data);
            Entry::Mx(pref.parse().ok()?, host.trim().to_string())
        }
        "PTR" => Entry::Ptr(data.to_string()),
        "CNAME" => Entry::Cname(data.to_string()),
        "TIMEOUT" => Entry::Timeout,
        "SERVFAIL" => Entry::ServFail,
        "REFUSED" => Entry::Refused,
        _ => return None,
    })
}

/// `"a" "b\"c"` → [a, b"c]; `\\`, `\"` and `\DDD` (a decimal byte, as in
/// zone files) are the escapes.
fn parse_strings(data: &str) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut chars = data.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some('"') => {}
            Some(_) => return None,
        }
        let mut s = Vec::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => {
                    let c = chars.next()?;
                    if c.is_ascii_digit() {
                        let digits = [c, chars.next()?, chars.next()?];
                        let text: String = digits.iter().collect();
                        s.push(text.parse::<u8>().ok()?);
                    } else {
                        s.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                }
                c => s.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        out.push(s);
    }
    // No strings at all is a valid (empty) TXT record.
    Some(out)
}

/// How the whole server behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer from the zone.
    Answer = 0,
    /// Never answer anything.
    Silent = 1,
    /// SERVFAIL everything.
    ServFail = 2,
}

struct Handler {
    zone: Arc<RwLock<Zone>>,
    mode: Arc<AtomicU8>,
    queries: Arc<AtomicUsize>,
}

const TTL: u32 = 300;

impl Handler {
    /// The answer records and response code for one question; `None` means
    /// stay silent.
    fn answer(&self, qname: &Name, qtype: RecordType) -> Option<(ResponseCode, Vec<Record>)> {
        let zone = self.zone.read().expect("zone lock");
        // The labels as sent: to_ascii() would escape `:` and `/`, which
        // SPF domains may hold (a:foo:bar/baz.example.com).
        let text: Vec<String> = qname
            .iter()
            .map(|label| String::from_utf8_lossy(label).into_owned())
            .collect();
        let Some(entries) = zone.entries(&text.join(".")) else {
            return Some((ResponseCode::NXDomain, Vec::new()));
        };
        if entries.contains(&Entry::ServFail) {
            return Some((ResponseCode::ServFail, Vec::new()));
        }
        if entries.contains(&Entry::Refused) {
            return Some((ResponseCode::Refused, Vec::new()));
        }
        let mut records = records_of(qname, entries, qtype);
        if records.is_empty() && qtype != RecordType::CNAME {
            for entry in entries {
                if let Entry::Cname(target) = entry {
                    let target_name = Name::from_str_relaxed(target).ok()?;
                    records.push(Record::from_rdata(
                        qname.clone(),
                        TTL,
                        RData::CNAME(CNAME(target_name.clone())),
                    ));
                    if let Some(target_entries) = zone.entries(target) {
                        records.extend(records_of(&target_name, target_entries, qtype));
                    }
                }
            }
        }
        if records.is_empty() && entries.contains(&Entry::Timeout) {
            return None;
        }
        Some((ResponseCode::NoError, records))
    }
}

/// An SOA for the top-level domain of `name`, TTL and minimum [`TTL`].
fn negative_soa(name: &Name) -> Record {
    let ascii = name.to_ascii();
    let tld = ascii
        .trim_end_matches('.')
        .rsplit('.')
        .next()
        .unwrap_or("test");
    let apex = Name::from_str_relaxed(format!("{tld}.")).unwrap_or_else(|_| Name::root());
    let host = |label: &str| {
        Name::from_str_relaxed(format!("{label}.{tld}.")).unwrap_or_else(|_| Name::root())
    };
    Record::from_rdata(
        apex,
        TTL,
        RData::SOA(SOA::new(
            host("ns"),
            host("hostmaster"),
            1,
            3600,
            600,
            86400,
            TTL,
        )),
    )
}

fn records_of(name: &Name, entries: &[Entry], qtype: RecordType) -> Vec<Record> {
    entries
        .iter()
        .filter_map(|entry| {
            let rdata = match (entry, qtype) {
                (Entry::Txt(strings), RecordType::TXT) => {
                    RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect()))
                }
                (Entry::A(ip), RecordType::A) => RData::A(A(*ip)),
                (Entry::Aaaa(ip), RecordType::AAAA) => RData::AAAA(AAAA(*ip)),
                (Entry::Mx(pref, host), RecordType::MX) => {
                    RData::MX(MX::new(*pref, Name::from_str_relaxed(host).ok()?))
                }
                (Entry::Ptr(host), RecordType::PTR) => {
                    RData::PTR(PTR(Name::from_str_relaxed(host).ok()?))
                }
                (Entry::Cname(host), RecordType::CNAME) => {
                    RData::CNAME(CNAME(Name::from_str_relaxed(host).ok()?))
                }
                _ => return None,
            };
            Some(Record::from_rdata(name.clone(), TTL, rdata))
        })
        .collect()
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        self.queries.fetch_add(1, Ordering::SeqCst);
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        metadata.recursion_available = true;
        let silent = ResponseInfo::from(Header {
            metadata,
            counts: HeaderCounts::default(),
        });
        let question = request.queries.queries().first();
        let outcome = match (self.mode.load(Ordering::SeqCst), question) {
            (1, _) => None,
            (2, _) | (_, None) => Some((ResponseCode::ServFail, Vec::new())),
            (_, Some(q)) => self.answer(q.original().name(), q.query_type()),
        };
        let Some((code, records)) = outcome else {
            return silent;
        };
        metadata.response_code = code;
        // Negative answers carry an SOA, as real servers' do, so resolvers
        // cache them (RFC 2308).
        let soa = match (code, records.is_empty(), question) {
            (ResponseCode::NXDomain | ResponseCode::NoError, true, Some(q)) => {
                Some(negative_soa(q.original().name()))
            }
            _ => None,
        };
        let response = MessageResponseBuilder::new(&request.queries, None).build(
            metadata,
            records.iter(),
            soa.iter(),
            None.iter(),
            None.iter(),
        );
        response_handle
            .send_response(response)
            .await
            .unwrap_or(silent)
    }
}

/// A running DNS server; stopped when dropped.
pub struct DnsServer {
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    zone: Arc<RwLock<Zone>>,
    mode: Arc<AtomicU8>,
    queries: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    /// Starts serving `zone` on 127.0.0.1, UDP and TCP on one free port.
    pub async fn start(zone: Zone) -> DnsServer {
        let zone = Arc::new(RwLock::new(zone));
        let mode = Arc::new(AtomicU8::new(Mode::Answer as u8));
        let queries = Arc::new(AtomicUsize::new(0));
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().expect("udp addr");
        let mut server = Server::new(Handler {
            zone: Arc::clone(&zone),
            mode: Arc::clone(&mode),
            queries: Arc::clone(&queries),
        });
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64);
        let task = tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        DnsServer {
            addr,
            zone,
            mode,
            queries,
            task,
        }
    }

    /// Starts serving a zone file from tests/fixtures.
    pub async fn start_fixture(name: &str) -> DnsServer {
        DnsServer::start(Zone::load(&super::root().join("tests/fixtures").join(name))).await
    }

    /// Switches the whole server's behaviour.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Replaces the zone.
    pub fn set_zone(&self, zone: Zone) {
        *self.zone.write().expect("zone lock") = zone;
    }

    /// Adds records to the zone.
    pub fn update(&self, f: impl FnOnce(&mut Zone)) {
        f(&mut self.zone.write().expect("zone lock"));
    }

    /// Queries received so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    /// A `[dns]` section pointing at this server (short timeout, one
    /// attempt, so the silent cases end quickly).
    pub fn dns_section(&self) -> String {
        format!(
            "[dns]\nnameservers = [\"{}\"]\ntimeout = \"500ms\"\nattempts = 1\n",
            self.addr
        )
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A UDP socket and a TCP listener on the same free loopback port (a few
/// tries: the UDP port's TCP twin may be taken).
async fn bind_pair() -> (tokio::net::UdpSocket, tokio::net::TcpListener) {
    for _ in 0..20 {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind udp");
        let addr = udp.local_addr().expect("udp addr");
        if let Ok(tcp) = tokio::net::TcpListener::bind(addr).await {
            return (udp, tcp);
        }
    }
    panic!("no free port for UDP and TCP on 127.0.0.1 after 20 tries");
}
