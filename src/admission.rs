//! Per-client connection admission, like Postfix's anvil: how many
//! connections one client (an IPv4 address, an IPv6 /64) holds at once and
//! how many it opens a minute, for every client, mynetworks included. The
//! counts live in the server and outlive reloads; the limits come from the
//! configuration each connection starts with.

use crate::config::ServerConfig;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The rate window, and how often one client's refusals are logged.
const MINUTE: Duration = Duration::from_secs(60);
/// Admissions between sweeps of clients with nothing left to count.
const SWEEP_EVERY: u32 = 4096;

/// Whom connections are counted against: an IPv4 address or an IPv6 /64
/// (a client with a routed /64 would otherwise get a fresh budget per
/// address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of a client address.
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let net = ipnet::Ipv6Net::new(v6, 64).map_or(v6, |n| n.trunc().addr());
                ClientKey(IpAddr::V6(net))
            }
            v4 => ClientKey(v4),
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
            v4 => write!(f, "{v4}"),
        }
    }
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client already holds this many connections.
    Connections(usize),
    /// The client opened this many connections in the last minute.
    Rate(u32),
}

impl Refusal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Connections(_) => "connections",
            Refusal::Rate(_) => "rate",
        }
    }
}

/// A refused connection: why, and whether this one should be logged (the
/// first refusal of a client in a minute is; `suppressed` were not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Which limit.
    pub why: Refusal,
    /// Log this refusal.
    pub log: bool,
    /// Refusals of this client not logged since the last logged one.
    pub suppressed: u64,
}

#[derive(Debug)]
struct Client {
    open: usize,
    window_start: Instant,
    this_window: u32,
    last_window: u32,
    logged: Option<Instant>,
    suppressed: u64,
}

impl Client {
    fn new(now: Instant) -> Client {
        Client {
            open: 0,
            window_start: now,
            this_window: 0,
            last_window: 0,
            logged: None,
            suppressed: 0,
        }
    }

    /// Connections opened in the minute before `now`: this window's, plus
    /// the share of the last one that still falls in that minute (a sliding
    /// window in two counters).
    fn rate(&mut self, now: Instant) -> u32 {
        let mut elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= MINUTE {
            self.last_window = if elapsed < 2 * MINUTE {
                self.this_window
            } else {
                0
            };
            self.this_window = 0;
            self.window_start = if elapsed < 2 * MINUTE {
                self.window_start + MINUTE
            } else {
                now
            };
            elapsed = now.saturating_duration_since(self.window_start);
        }
        let left = MINUTE.saturating_sub(elapsed).as_millis() as u64;
        let carried = u64::from(self.last_window) * left / MINUTE.as_millis() as u64;
        u32::try_from(carried)
            .unwrap_or(u32::MAX)
            .saturating_add(self.this_window)
    }

    fn idle(&self, now: Instant) -> bool {
        self.open == 0
            && now.saturating_duration_since(self.window_start) >= 2 * MINUTE
            && self
                .logged
                .is_none_or(|t| now.saturating_duration_since(t) >= MINUTE)
    }
}

#[derive(Debug, Default)]
struct Table {
    clients: HashMap<ClientKey, Client>,
    since_sweep: u32,
}

/// The per-client counts of one server.
#[derive(Debug, Default)]
pub struct ClientLimits {
    table: Mutex<Table>,
}

/// An admitted connection; dropping it gives its slot back.
#[derive(Debug)]
pub struct Admitted {
    limits: Arc<ClientLimits>,
    key: ClientKey,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut table = self.limits.lock();
        if let Some(client) = table.clients.get_mut(&self.key) {
            client.open = client.open.saturating_sub(1);
        }
    }
}

/// The limits that apply to `ip`: the longest matching
/// `[[server.client_limits]]` network, else the `[server]` defaults.
fn limits_for(config: &ServerConfig, ip: IpAddr) -> (usize, u32) {
    let rule = config
        .client_limits
        .iter()
        .filter(|l| l.network.contains(&ip))
        .max_by_key(|l| l.network.prefix_len());
    (
        rule.and_then(|r| r.max_connections)
            .unwrap_or(config.max_connections_per_client),
        rule.and_then(|r| r.max_rate)
            .unwrap_or(config.max_connection_rate_per_client),
    )
}

impl ClientLimits {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // The table holds plain counters: usable even after a panic.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new connection from `ip` and admits it, or says which
    /// limit it is over (0 means no limit). Every attempt counts toward
    /// the rate, refused ones too (as anvil counts them).
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        config: &ServerConfig,
        now: Instant,
    ) -> Result<Admitted, Refused> {
        let ip = ip.to_canonical();
        let key = ClientKey::of(ip);
        let (max_open, max_rate) = limits_for(config, ip);
        let mut table = self.lock();
        table.since_sweep += 1;
        if table.since_sweep >= SWEEP_EVERY {
            table.since_sweep = 0;
            table.clients.retain(|_, c| !c.idle(now));
        }
        let client = table.clients.entry(key).or_insert_with(|| Client::new(now));
        let rate = client.rate(now);
        client.this_window = client.this_window.saturating_add(1);
        let why = if max_rate != 0 && rate >= max_rate {
            Refusal::Rate(max_rate)
        } else if max_open != 0 && client.open >= max_open {
            Refusal::Connections(max_open)
        } else {
            client.open += 1;
            drop(table);
            return Ok(Admitted {
                limits: Arc::clone(self),
                key,
            });
        };
        let log = client
            .logged
            .is_none_or(|t| now.saturating_duration_since(t) >= MINUTE);
        let suppressed = client.suppressed;
        if log {
            client.logged = Some(now);
            client.suppressed = 0;
        } else {
            client.suppressed += 1;
        }
        Err(Refused {
            why,
            log,
            suppressed,
        })
    }

    /// How many clients are tracked (for tests and the sweep).
    pub fn tracked(&self) -> usize {
        self.lock().clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> ServerConfig {
        let text = format!("hostname = \"h\"\nlisten = [\"127.0.0.1:0\"]\n{extra}");
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn keys_are_ipv4_addresses_and_ipv6_slash_64s() {
        let k = |s: &str| ClientKey::of(s.parse().unwrap()).to_string();
        assert_eq!(k("192.0.2.1"), "192.0.2.1");
        assert_eq!(k("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(k("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(k("2001:db8:1:2::9"), k("2001:db8:1:2:ffff::1"));
    }

    #[test]
    fn concurrency_is_per_client_and_slots_come_back() {
        let limits = Arc::new(ClientLimits::default());
        let cfg = config("max_connections_per_client = 2");
        let now = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let first = limits.admit(a, &cfg, now).unwrap();
        let _second = limits.admit(a, &cfg, now).unwrap();
        let refused = limits.admit(a, &cfg, now).unwrap_err();
        assert_eq!(refused.why, Refusal::Connections(2));
        assert!(refused.log);
        let again = limits.admit(a, &cfg, now).unwrap_err();
        assert!(!again.log, "logged once a minute");
        let later = limits.admit(a, &cfg, now + MINUTE).unwrap_err();
        assert!(later.log);
        assert_eq!(later.suppressed, 1);
        assert!(limits
            .admit("192.0.2.2".parse().unwrap(), &cfg, now)
            .is_ok());
        drop(first);
        assert!(limits.admit(a, &cfg, now).is_ok());
    }

    #[test]
    fn the_rate_slides_over_a_minute() {
        let limits = Arc::new(ClientLimits::default());
        let cfg = config("max_connection_rate_per_client = 10");
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..10 {
            drop(limits.admit(a, &cfg, t0).unwrap());
        }
        let e = limits.admit("2001:db8::2".parse().unwrap(), &cfg, t0);
        assert_eq!(e.unwrap_err().why, Refusal::Rate(10), "same /64");
        // Half a minute into the next window, half of the last one's 11
        // attempts (5) still count.
        let t = t0 + MINUTE + MINUTE / 2;
        for _ in 0..5 {
            drop(limits.admit(a, &cfg, t).unwrap());
        }
        assert!(limits.admit(a, &cfg, t).is_err());
        assert!(limits.admit(a, &cfg, t0 + 10 * MINUTE).is_ok());
    }

    #[test]
    fn the_longest_matching_network_overrides_and_zero_is_unlimited() {
        let cfg = config(
            "max_connections_per_client = 5\n\
             [[client_limits]]\nnetwork = \"10.0.0.0/8\"\nmax_connections = 500\nmax_rate = 6000\n\
             [[client_limits]]\nnetwork = \"10.1.0.0/16\"\nmax_connections = 0\n",
        );
        assert_eq!(limits_for(&cfg, "192.0.2.1".parse().unwrap()), (5, 600));
        assert_eq!(limits_for(&cfg, "10.2.0.1".parse().unwrap()), (500, 6000));
        assert_eq!(limits_for(&cfg, "10.1.0.1".parse().unwrap()), (0, 600));
    }

    #[test]
    fn idle_clients_are_swept() {
        let limits = Arc::new(ClientLimits::default());
        let cfg = config("");
        let t0 = Instant::now();
        for i in 0..SWEEP_EVERY {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(
                u32::from_be_bytes([10, 0, 0, 0]) + i,
            ));
            drop(limits.admit(ip, &cfg, t0).unwrap());
        }
        assert_eq!(limits.tracked(), SWEEP_EVERY as usize, "none idle yet");
        let held = limits
            .admit("192.0.2.1".parse().unwrap(), &cfg, t0)
            .unwrap();
        for i in 0..SWEEP_EVERY {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(
                u32::from_be_bytes([10, 1, 0, 0]) + i,
            ));
            drop(limits.admit(ip, &cfg, t0 + 3 * MINUTE).unwrap());
        }
        assert!(
            limits.tracked() < SWEEP_EVERY as usize + 2,
            "the old ones went"
        );
        drop(held);
    }
}
