//! Lookup tables read from files, Postfix-style: one entry a line (`#`
//! comments, blank lines ignored) or `hash:` source text `key value`.
//! Domains and addresses go in a `HashSet` (a lookup costs the same for
//! ten entries or a million); networks in a prefix table (one hash probe
//! per prefix length in use). A [`Watched`] table re-reads its file when
//! its mtime changes (a watcher thread looks every `interval`), and on
//! [`Watched::reload`] (SIGHUP); a file that no longer parses keeps the old table.

use arc_swap::ArcSwap;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Why a map file could not be used; says where.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not an entry.
    #[error("{path}:{line}:{col}: {expected}")]
    Syntax {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What was expected there.
        expected: String,
    },
}

impl From<MapError> for crate::config::ConfigError {
    fn from(e: MapError) -> Self {
        match e {
            MapError::Read { path, source } => crate::config::ConfigError::Read { path, source },
            MapError::Syntax {
                path,
                line,
                col,
                expected,
            } => crate::config::ConfigError::Invalid {
                path,
                line,
                col,
                message: expected,
            },
        }
    }
}

/// The entries of a map file: `(line, key, value)`, keys lower-cased.
fn entries<'a>(text: &'a str) -> impl Iterator<Item = (usize, String, &'a str)> + 'a {
    text.lines().enumerate().filter_map(|(i, raw)| {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            return None;
        }
        let (key, value) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(k, v)| (k, v.trim()));
        Some((i + 1, key.trim_end_matches('.').to_ascii_lowercase(), value))
    })
}

/// A set of domains or addresses (case-insensitive; a trailing dot ignored).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct KeySet(HashSet<String, foldhash::fast::RandomState>);

impl KeySet {
    /// The keys of `text` (a `key value` line contributes its key).
    pub fn parse(text: &str) -> KeySet {
        KeySet(entries(text).map(|(_, k, _)| k).collect())
    }

    /// True when `key` is in the set.
    pub fn contains(&self, key: &str) -> bool {
        let key = key.strip_suffix('.').unwrap_or(key);
        if key.bytes().any(|b| b.is_ascii_uppercase()) {
            self.0.contains(&key.to_ascii_lowercase())
        } else {
            self.0.contains(key)
        }
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Postfix's `smtpd_sender_login_maps`: address (or `@domain`) → logins.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SenderLogins(HashMap<String, Vec<String>>);

impl SenderLogins {
    /// `address login1,login2` lines (logins separated by `,` or spaces).
    pub fn parse(path: &Path, text: &str) -> Result<SenderLogins, MapError> {
        let mut map = HashMap::new();
        for (line, key, value) in entries(text) {
            if value.is_empty() {
                return Err(MapError::Syntax {
                    path: path.display().to_string(),
                    line,
                    col: key.len() + 1,
                    expected: format!("expected `{key} login[,login...]`"),
                });
            }
            let logins = value
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_ascii_lowercase)
                .collect();
            map.insert(key, logins);
        }
        Ok(SenderLogins(map))
    }

    /// True when `login` may send as `address`: an entry for the address,
    /// else for its `@domain`.
    pub fn allows(&self, address: &str, login: &str) -> bool {
        let address = address.to_ascii_lowercase();
        let domain = address.rfind('@').map(|at| address[at..].to_string());
        let logins = self
            .0
            .get(&address)
            .or_else(|| domain.and_then(|d| self.0.get(&d)));
        logins.is_some_and(|logins| logins.iter().any(|l| l == login))
    }
}

/// Networks as a prefix table: per address family, the prefix lengths in
/// use and a set of masked network addresses per length.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NetTable {
    v4: Vec<(u8, HashSet<u32>)>,
    v6: Vec<(u8, HashSet<u128>)>,
}

impl NetTable {
    /// Networks `a.b.c.d/n`, `x::/n` or bare addresses, one a line.
    pub fn parse(path: &Path, text: &str) -> Result<NetTable, MapError> {
        let mut t = NetTable::default();
        for (line, key, _) in entries(text) {
            let net: ipnet::IpNet = key
                .parse()
                .or_else(|_| key.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| MapError::Syntax {
                    path: path.display().to_string(),
                    line,
                    col: 1,
                    expected: format!("expected a network like 192.0.2.0/24, found `{key}`"),
                })?;
            t.insert(net);
        }
        Ok(t)
    }

    fn insert(&mut self, net: ipnet::IpNet) {
        match net.trunc() {
            ipnet::IpNet::V4(n) => {
                let len = n.prefix_len();
                match self.v4.iter_mut().find(|(l, _)| *l == len) {
                    Some((_, s)) => s.insert(u32::from(n.network())),
                    None => {
                        self.v4.push((len, HashSet::from([u32::from(n.network())])));
                        true
                    }
                };
            }
            ipnet::IpNet::V6(n) => {
                let len = n.prefix_len();
                match self.v6.iter_mut().find(|(l, _)| *l == len) {
                    Some((_, s)) => s.insert(u128::from(n.network())),
                    None => {
                        self.v6
                            .push((len, HashSet::from([u128::from(n.network())])));
                        true
                    }
                };
            }
        }
    }

    /// True when `ip` is in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4
                    .iter()
                    .any(|(len, s)| s.contains(&(a & mask32(*len))))
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6
                    .iter()
                    .any(|(len, s)| s.contains(&(a & mask128(*len))))
            }
        }
    }
}

fn mask32(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

/// A table kept in step with its file: a watcher thread looks at the
/// file's mtime every `interval` and re-reads it off the lookup path (a
/// million-line file takes a second or two to read; no session waits for
/// it). Lookups only load the current table. The thread ends when the
/// table is dropped (a reload builds a new one).
pub struct Watched<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    path: PathBuf,
    parse: fn(&Path, &str) -> Result<T, MapError>,
    table: ArcSwap<T>,
    mtime: Mutex<Option<SystemTime>>,
}

impl<T: Send + Sync + 'static> Watched<T> {
    /// Reads `path` now; a watcher re-reads it when its mtime changed,
    /// looking every `interval`.
    pub fn open(
        path: &Path,
        parse: fn(&Path, &str) -> Result<T, MapError>,
        interval: Duration,
    ) -> Result<Watched<T>, MapError> {
        let (table, mtime) = read(path, parse)?;
        let inner = Arc::new(Inner {
            path: path.to_path_buf(),
            parse,
            table: ArcSwap::from_pointee(table),
            mtime: Mutex::new(mtime),
        });
        let weak = Arc::downgrade(&inner);
        let interval = interval.max(Duration::from_millis(10));
        let spawned = std::thread::Builder::new()
            .name("smtpgate-map-watch".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                let Some(inner) = weak.upgrade() else { return };
                inner.refresh_if_changed();
            });
        if let Err(e) = spawned {
            tracing::warn!(file = %path.display(), error = %e, "no watcher thread: the map changes only on reload");
        }
        Ok(Watched { inner })
    }
}

impl<T> Watched<T> {
    /// The current table.
    pub fn get(&self) -> Arc<T> {
        self.inner.table.load_full()
    }

    /// `f` over the current table, without taking a reference count.
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.inner.table.load())
    }

    /// Re-reads the file now (SIGHUP); on error the old table stays.
    pub fn reload(&self) -> Result<(), MapError> {
        self.inner.reload()
    }
}

impl<T> Inner<T> {
    fn refresh_if_changed(&self) {
        let changed = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let known = *self.mtime.lock().unwrap_or_else(|e| e.into_inner());
        if changed != known {
            match self.reload() {
                Ok(()) => tracing::info!(file = %self.path.display(), "map file re-read"),
                Err(e) => tracing::warn!(error = %e, "map file not reloaded; the old table stays"),
            }
        }
    }

    fn reload(&self) -> Result<(), MapError> {
        let (table, mtime) = read(&self.path, self.parse)?;
        self.table.store(Arc::new(table));
        *self.mtime.lock().unwrap_or_else(|e| e.into_inner()) = mtime;
        Ok(())
    }
}

fn read<T>(
    path: &Path,
    parse: fn(&Path, &str) -> Result<T, MapError>,
) -> Result<(T, Option<SystemTime>), MapError> {
    let err = |source| MapError::Read {
        path: path.display().to_string(),
        source,
    };
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(err)?;
    let text = std::fs::read_to_string(path).map_err(err)?;
    Ok((parse(path, &text)?, Some(mtime)))
}

/// A domain list: the configuration's own entries plus, optionally, a file
/// kept in step with its changes (`relay.local_domains_file`, the shape of
/// Postfix's `relay_domains = /etc/postfix/relay_domains`). A lookup is one
/// hash probe in each, whatever their size.
pub struct Domains {
    listed: KeySet,
    file: Option<Watched<KeySet>>,
}

/// How often a domain file's mtime is looked at.
pub const FILE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

impl Domains {
    /// `list` and, when given, the domains of `file` (read now).
    pub fn new(list: &[String], file: Option<&Path>) -> Result<Domains, MapError> {
        Ok(Domains {
            listed: KeySet::parse(&list.join("\n")),
            file: file
                .map(|f| Watched::open(f, key_set, FILE_CHECK_INTERVAL))
                .transpose()?,
        })
    }

    /// True when `domain` (any case, trailing dot ignored) is listed.
    pub fn contains(&self, domain: &str) -> bool {
        self.listed.contains(domain)
            || self
                .file
                .as_ref()
                .is_some_and(|f| f.with(|t| t.contains(domain)))
    }
}

/// Mailboxes, one a line, `<a@b>` or `a@b` (`@domain` for a whole domain),
/// in the shape [`Watched::open`] takes.
pub fn address_set(_: &Path, text: &str) -> Result<KeySet, MapError> {
    Ok(KeySet(
        entries(text)
            .map(|(_, k, _)| k.trim_matches(['<', '>']).to_string())
            .collect(),
    ))
}

/// [`KeySet::parse`] in the shape [`Watched::open`] takes.
pub fn key_set(_: &Path, text: &str) -> Result<KeySet, MapError> {
    Ok(KeySet::parse(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_hash_source_text() {
        let s =
            KeySet::parse("# customers\nExample.TEST\nshop.test OK\n\n  other.test.  # trailing\n");
        assert_eq!(s.len(), 3);
        assert!(s.contains("example.test") && s.contains("SHOP.test") && s.contains("other.test."));
        assert!(!s.contains("ok"));
    }

    #[test]
    fn networks_by_prefix() {
        let t = NetTable::parse(
            Path::new("n"),
            "192.0.2.0/24\n10.1.2.3\n2001:db8::/32\n0.0.0.0/0 # no\n",
        )
        .unwrap();
        assert!(t.contains("192.0.2.77".parse().unwrap()));
        assert!(t.contains("2001:db8:1::5".parse().unwrap()));
        let t = NetTable::parse(Path::new("n"), "192.0.2.0/24\n10.1.2.3\n").unwrap();
        assert!(t.contains("10.1.2.3".parse().unwrap()));
        assert!(!t.contains("10.1.2.4".parse().unwrap()));
        let err = NetTable::parse(Path::new("nets"), "192.0.2.0/24\nbogus\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "nets:2:1: expected a network like 192.0.2.0/24, found `bogus`"
        );
    }

    #[test]
    fn sender_logins_run_address_to_logins() {
        let m = SenderLogins::parse(
            Path::new("s"),
            "orders@shop.test webshop\n@news.shop.test webshop, mailer\n",
        )
        .unwrap();
        assert!(m.allows("Orders@shop.test", "webshop"));
        assert!(m.allows("x@news.shop.test", "mailer"));
        assert!(!m.allows("x@shop.test", "webshop"));
        let err = SenderLogins::parse(Path::new("s"), "alone@shop.test\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "s:1:16: expected `alone@shop.test login[,login...]`"
        );
    }

    #[test]
    fn a_changed_file_takes_effect_without_restart() {
        let dir = std::env::temp_dir().join(format!("smtpgate-maps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("domains");
        std::fs::write(&path, "a.test\n").unwrap();
        let w = Watched::open(&path, key_set, Duration::ZERO).unwrap();
        assert!(w.get().contains("a.test") && !w.get().contains("b.test"));
        std::fs::write(&path, "a.test\nb.test\n").unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let start = std::time::Instant::now();
        while !w.get().contains("b.test") {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "picked up by the watcher"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
