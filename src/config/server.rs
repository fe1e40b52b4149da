//! `[server]` (listeners and session limits), `[tls]`, `[upstream]` and `[metrics]`.

use super::Span;
use serde::{de, Deserialize, Deserializer};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Our name: banner, Received, authserv-id.
    pub hostname: String,
    /// Listening sockets.
    #[serde(deserialize_with = "listeners")]
    pub listen: Vec<Listener>,
    /// Largest message accepted, in octets.
    #[serde(default = "default_max_message_size")]
    pub max_message_size: usize,
    /// Most recipients per transaction.
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// Most concurrent client connections; the excess gets 421 4.7.0.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most connections one client (an IPv4 address, an IPv6 /64) may hold
    /// at once, mynetworks included; 0: no limit. The excess gets 421 4.7.0.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// Most connections one client may open a minute; 0: no limit.
    #[serde(default = "default_max_connection_rate_per_client")]
    pub max_connection_rate_per_client: u32,
    /// Per-network overrides of the two per-client limits (the longest
    /// matching network wins).
    #[serde(default)]
    pub client_limits: Vec<ClientLimit>,
    /// Unknown or invalid commands tolerated before 421 and close.
    #[serde(default = "default_max_errors")]
    pub max_errors: u32,
    /// Longest wait for a complete command line.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Span,
    /// Longest wait for the next chunk of DATA.
    #[serde(default = "default_data_timeout")]
    pub data_timeout: Span,
    /// Longest time one message's DATA may take in all (a client that
    /// trickles a byte now and then must not hold its upstream connection
    /// for ever).
    #[serde(default = "default_data_deadline")]
    pub data_deadline: Span,
    /// On SIGTERM, how long sessions may take to finish.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: Span,
    /// The AUTH login in our Received header (Postfix's
    /// smtpd_sasl_authenticated_header): off, every recipient would see it.
    #[serde(default)]
    pub received_login: bool,
}

/// `[[server.client_limits]]`: other per-client limits for the clients of
/// one network (each client of it is still counted on its own).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientLimit {
    /// The clients this applies to.
    pub network: ipnet::IpNet,
    /// Instead of `max_connections_per_client` (0: no limit).
    pub max_connections: Option<usize>,
    /// Instead of `max_connection_rate_per_client` (0: no limit).
    pub max_rate: Option<u32>,
}

/// One listening socket: `"127.0.0.1:2525"` or a table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Address and port.
    pub address: SocketAddr,
    /// AUTH is offered here without TLS (a trusted network only).
    #[serde(default)]
    pub trusted_cleartext: bool,
    /// Connections start with a PROXY protocol v1/v2 header (from a load
    /// balancer); its source address is the client for every decision.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// With `proxy_protocol`: the load balancers allowed to send the
    /// header; a connection from anywhere else is closed unread. Empty:
    /// any peer (then the port must not be reachable by clients).
    #[serde(default)]
    pub proxy_from: Vec<ipnet::IpNet>,
    /// TLS from the first byte (port 465 style); needs `[tls]`.
    #[serde(default)]
    pub implicit_tls: bool,
    /// Clients allowed to send XFORWARD (a Postfix in front with
    /// `smtpd_proxy_filter`): what they forward stands for the client in
    /// checks, Received and logs. Empty: XFORWARD is offered to no one.
    #[serde(default)]
    pub xforward_from: Vec<ipnet::IpNet>,
}

impl<'de> Deserialize<'de> for ListenerEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ListenerEntry, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = ListenerEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address like \"127.0.0.1:2525\" or a table { address = \"...\" }")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ListenerEntry, E> {
                s.parse()
                    .map(|address| {
                        ListenerEntry(Listener {
                            address,
                            trusted_cleartext: false,
                            proxy_protocol: false,
                            proxy_from: Vec::new(),
                            implicit_tls: false,
                            xforward_from: Vec::new(),
                        })
                    })
                    .map_err(|_| {
                        E::custom(format!("invalid listen address `{s}`: expected IP:port"))
                    })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<ListenerEntry, A::Error> {
                Listener::deserialize(de::value::MapAccessDeserializer::new(map)).map(ListenerEntry)
            }
        }
        d.deserialize_any(V)
    }
}

/// Deserialization wrapper accepting both listener forms.
struct ListenerEntry(Listener);

fn listeners<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Listener>, D::Error> {
    Ok(Vec::<ListenerEntry>::deserialize(d)?
        .into_iter()
        .map(|e| e.0)
        .collect())
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `[upstream]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The MTA's SMTP address.
    pub address: SocketAddr,
    /// Idle connections kept for reuse.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Most connections open to the MTA at once; sessions wait for a slot.
    #[serde(default = "default_upstream_max_connections")]
    pub max_connections: usize,
    /// Longest wait for any reply from the MTA (and for a free slot).
    #[serde(default = "default_upstream_timeout")]
    pub timeout: Span,
    /// Longest wait to connect.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Span,
    /// Idle pooled connections older than this are closed, not reused.
    #[serde(default = "default_max_idle")]
    pub max_idle: Span,
    /// Send XCLIENT (the client's NAME, ADDR, PORT, PROTO, HELO) when the
    /// MTA offers it, so its own policies judge the customer; the MTA must
    /// authorize us (`smtpd_authorized_xclient_hosts`). XFORWARD (logging
    /// only) is sent whenever offered.
    #[serde(default)]
    pub xclient: bool,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `/metrics` is served (keep it on loopback or a management network).
    pub listen: SocketAddr,
}

fn default_max_message_size() -> usize {
    26_214_400
}
fn default_max_recipients() -> usize {
    100
}
fn default_max_connections() -> usize {
    10_000
}
fn default_max_connections_per_client() -> usize {
    50
}
fn default_max_connection_rate_per_client() -> u32 {
    600
}
fn default_max_errors() -> u32 {
    20
}
fn default_idle_timeout() -> Span {
    Span(Duration::from_secs(300))
}
fn default_data_deadline() -> Span {
    Span(Duration::from_secs(1800))
}
fn default_data_timeout() -> Span {
    Span(Duration::from_secs(180))
}
fn default_shutdown_timeout() -> Span {
    Span(Duration::from_secs(30))
}
fn default_pool_size() -> usize {
    16
}
fn default_upstream_max_connections() -> usize {
    256
}
fn default_upstream_timeout() -> Span {
    Span(Duration::from_secs(60))
}
fn default_connect_timeout() -> Span {
    Span(Duration::from_secs(10))
}
fn default_max_idle() -> Span {
    Span(Duration::from_secs(60))
}
