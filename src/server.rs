//! Listeners, the accept loop, the connection limits (all clients, and per
//! client via `admission`), reload and graceful shutdown (the shape of
//! mini-redis's `server::run`).

use crate::admission::{ClientKey, ClientLimits, Refusal, Refused};
use crate::app::App;
use crate::config::{ConfigError, Listener};
use crate::proxy::Proxied;
use crate::session::stream::Stream;
use crate::session::Session;
use crate::smtp::reply::{self, Reply};
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// A bound, not yet running server.
pub struct Server {
    listeners: Vec<(TcpListener, Listener)>,
    /// The HTTP API and console, when `[http]` is set.
    http: Option<crate::http::HttpListener>,
    handle: Handle,
    connections: Arc<Semaphore>,
    max_connections: usize,
}

/// Controls a running server: reload and shutdown. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    app: Arc<ArcSwap<App>>,
    shutdown: watch::Sender<bool>,
    /// Per-client connection counts (they outlive reloads).
    clients: Arc<ClientLimits>,
}

impl Handle {
    /// The configuration new sessions start with.
    pub fn app(&self) -> Arc<App> {
        self.app.load_full()
    }

    /// Swaps in a new configuration; sessions in flight keep theirs.
    pub fn reload(&self, app: App) {
        self.app.store(Arc::new(app));
    }

    /// Loads, validates and builds the configuration at `path` (and its
    /// rules), then swaps it in; on any error the running one stays.
    /// A panic in any loader is caught and reported like any other error.
    pub fn reload_from(&self, path: &std::path::Path) -> Result<(), ConfigError> {
        let current = self.app();
        let app = build_guarded(path, || App::load(path, Some(&current)))?;
        self.reload(app);
        Ok(())
    }

    /// Builds from configuration text (tests, embedding) and swaps it in.
    pub fn reload_from_text(&self, text: &str) -> Result<(), ConfigError> {
        let current = self.app();
        let path = std::path::Path::new("reload.toml");
        let app = build_guarded(path, || {
            App::build(
                crate::config::Config::from_text(path, text)?,
                Some(&current),
            )
        })?;
        self.reload(app);
        Ok(())
    }

    /// Stops accepting; sessions finish (bounded by `shutdown_timeout`).
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Server {
    /// Binds every `server.listen` address, and `[http] listen`.
    pub async fn bind(app: App) -> std::io::Result<Server> {
        let mut listeners = Vec::new();
        for listen in &app.config.server.listen {
            let listener = TcpListener::bind(listen.address).await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {}: {e}", listen.address),
                )
            })?;
            if listen.proxy_protocol && listen.proxy_from.is_empty() {
                tracing::warn!(
                    listen = %listen.address,
                    "proxy_protocol without proxy_from: any peer that reaches this port can claim any client address"
                );
            }
            listeners.push((listener, listen.clone()));
        }
        let http = match &app.config.http {
            Some(config) => Some(crate::http::bind(config).await?),
            None => None,
        };
        let max_connections = app.config.server.max_connections;
        let (shutdown, _) = watch::channel(false);
        Ok(Server {
            listeners,
            http,
            handle: Handle {
                app: Arc::new(ArcSwap::from_pointee(app)),
                shutdown,
                clients: Arc::default(),
            },
            connections: Arc::new(Semaphore::new(max_connections)),
            max_connections,
        })
    }

    /// The bound addresses (with the real ports when 0 was asked for).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// The HTTP listener's bound address, when `[http]` is set.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|h| h.local_addr().ok())
    }

    /// A handle for reload and shutdown.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Accepts connections until shutdown, then waits for sessions to end,
    /// at most `server.shutdown_timeout`. An error: a listener died (the
    /// sessions were drained all the same).
    pub async fn run(self) -> Result<(), String> {
        // What the MTA offers decides what EHLO advertises (SMTPUTF8,
        // 8BITMIME): learn it now rather than at the first transaction.
        let upstream = Arc::clone(&self.handle.app().upstream);
        tokio::spawn(async move {
            match upstream.probe().await {
                Ok(o) => tracing::info!(
                    smtputf8 = o.smtputf8,
                    eightbitmime = o.eightbit,
                    "upstream MTA extensions"
                ),
                Err(e) => tracing::warn!(
                    upstream = %upstream.config().address,
                    error = %e,
                    "upstream MTA not reachable: clients get 451 4.4.1 until it is"
                ),
            }
        });
        let mut accepting = tokio::task::JoinSet::new();
        for (listener, config) in self.listeners {
            let handle = self.handle.clone();
            let connections = Arc::clone(&self.connections);
            accepting.spawn(accept_loop(listener, config, handle, connections));
        }
        // The HTTP listener is supervised like the SMTP ones.
        if let Some(http) = self.http {
            accepting.spawn(http.run(Arc::clone(&self.handle.app)));
        }
        // Supervision: an accept loop never returns; if one ends (a panic),
        // that listener is dead, so the gateway drains and exits non-zero
        // for its supervisor (systemd `Restart=on-failure`) to start it
        // afresh rather than run on half deaf.
        let mut shutdown = self.handle.shutdown.subscribe();
        let mut failed = None;
        while !*shutdown.borrow_and_update() {
            tokio::select! {
                changed = shutdown.changed() => if changed.is_err() { break },
                Some(ended) = accepting.join_next() => {
                    let why = match ended {
                        Err(e) if e.is_panic() => "its task panicked".to_string(),
                        Err(e) => e.to_string(),
                        Ok(()) => "it returned".to_string(),
                    };
                    tracing::error!(reason = %why, "a listener stopped accepting: shutting down");
                    failed = Some(why);
                    break;
                }
            }
        }
        accepting.abort_all();
        let grace = self.handle.app().config.server.shutdown_timeout.0;
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        match tokio::time::timeout(grace, self.connections.acquire_many(all)).await {
            Ok(_) => tracing::info!("all sessions finished"),
            Err(_) => tracing::warn!("shutdown timeout: closing remaining sessions"),
        }
        match failed {
            Some(why) => Err(format!("a listener stopped accepting: {why}")),
            None => Ok(()),
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: Listener,
    handle: Handle,
    connections: Arc<Semaphore>,
) {
    let config = Arc::new(config);
    let inherited = nodelay_inherited(&listener);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if !inherited {
            let _ = tcp.set_nodelay(true);
        }
        let app = handle.app();
        crate::metrics::session_started();
        match Arc::clone(&connections).try_acquire_owned() {
            Ok(permit) => {
                let shutdown = handle.shutdown.subscribe();
                let config = Arc::clone(&config);
                let clients = Arc::clone(&handle.clients);
                tokio::spawn(async move {
                    let _ended = SessionEnded;
                    if let Some((tcp, peer)) = client_of(tcp, peer, &config, &app).await {
                        let server = &app.config.server;
                        match clients.admit(peer.ip(), server, Instant::now()) {
                            Ok(admitted) => {
                                if let Some(stream) = start(tcp, peer, &config, &app).await {
                                    let mut session = Session::new(app, stream, peer, shutdown);
                                    session.trusted_cleartext = config.trusted_cleartext;
                                    session.xforward_allowed =
                                        config.xforward_from.iter().any(|n| n.contains(&peer.ip()));
                                    session.run().await;
                                }
                                drop(admitted);
                            }
                            Err(refused) => turn_away(tcp, peer, refused, &config, &app).await,
                        }
                    }
                    drop(permit);
                });
            }
            Err(_) => {
                tracing::warn!(client = %peer, "too many connections");
                crate::metrics::session_refused();
                crate::metrics::session_ended();
                let reply = reply::too_many_connections(&app.config.server.hostname);
                tokio::spawn(refuse(tcp, reply));
            }
        }
    }
}

/// Ends a session's accounting however its task ends: a panic in one
/// session drops that connection (tokio isolates the task; its permit and
/// per-client slot are released as the future is dropped) and is logged
/// and counted here, the gauge stays true.
struct SessionEnded;

impl Drop for SessionEnded {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("a session task panicked: its connection was dropped");
            crate::metrics::task_panicked("session");
        }
        crate::metrics::session_ended();
    }
}

/// The client of a connection: its peer, or the PROXY header's source
/// (when the listener expects one, read within `idle_timeout`). `None`:
/// the connection is closed without a greeting.
async fn client_of(
    mut tcp: TcpStream,
    peer: SocketAddr,
    config: &Listener,
    app: &App,
) -> Option<(TcpStream, SocketAddr)> {
    let limit = app.config.server.idle_timeout.0;
    let mut peer = canonical(peer);
    if config.proxy_protocol {
        if !config.proxy_from.is_empty()
            && !config.proxy_from.iter().any(|n| n.contains(&peer.ip()))
        {
            tracing::warn!(client = %peer, "PROXY listener: peer not in proxy_from: closed");
            return None;
        }
        match tokio::time::timeout(limit, crate::proxy::read_header(&mut tcp)).await {
            Ok(Ok(Proxied::Client(source))) => peer = canonical(source),
            // A health check: quiet, and the balancer is its own client.
            Ok(Ok(Proxied::Local)) => {
                tracing::debug!(client = %peer, "PROXY LOCAL: the connection's own address")
            }
            Ok(Err(e)) => {
                tracing::info!(client = %peer, error = %e, "PROXY header missing or invalid: closed");
                return None;
            }
            Err(_) => {
                tracing::info!(client = %peer, "no PROXY header in time: closed");
                return None;
            }
        }
    }
    Some((tcp, peer))
}

/// The client stream: the TCP connection, or on implicit-TLS listeners the
/// TLS session (handshake within `idle_timeout`). `None`: closed.
async fn start(tcp: TcpStream, peer: SocketAddr, config: &Listener, app: &App) -> Option<Stream> {
    if !config.implicit_tls {
        return Some(Stream::Plain(tcp));
    }
    let acceptor = app.tls.as_ref()?;
    let limit = app.config.server.idle_timeout.0;
    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(Stream::Tls(Box::new(tls))),
        Ok(Err(e)) => {
            tracing::info!(client = %peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!(client = %peer, "TLS handshake timed out");
            None
        }
    }
}

/// A client over a per-client limit: 421 4.7.0 (inside TLS on an
/// implicit-TLS listener), logged once a minute per client, counted.
async fn turn_away(
    tcp: TcpStream,
    peer: SocketAddr,
    refused: Refused,
    config: &Listener,
    app: &App,
) {
    let client = ClientKey::of(peer.ip()).to_string();
    crate::metrics::client_limit(refused.why.label());
    if refused.log {
        let (limit, max) = match refused.why {
            Refusal::Connections(n) => ("max_connections_per_client", n as u64),
            Refusal::Rate(n) => ("max_connection_rate_per_client", u64::from(n)),
        };
        tracing::warn!(
            %client,
            limit,
            max,
            suppressed = refused.suppressed,
            "per-client limit reached: 421 (logged once a minute per client)"
        );
    }
    let hostname = &app.config.server.hostname;
    let reply = match refused.why {
        Refusal::Connections(_) => reply::too_many_connections_from(hostname, &client),
        Refusal::Rate(_) => reply::connection_rate_exceeded(hostname, &client),
    };
    if let Some(stream) = start(tcp, peer, config, app).await {
        refuse(stream, reply).await;
    }
}

/// An IPv4 client seen through a dual-stack socket (`::ffff:192.0.2.1`)
/// is the IPv4 client: mynetworks, DNSBL, greylisting networks and the
/// Received header all see `192.0.2.1`.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Sets TCP_NODELAY on a listening socket; true when every connection it
/// accepts has it from there (Linux copies it to them), so that setting it
/// on each is one system call per connection saved.
fn nodelay_inherited(listener: &TcpListener) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket, and a c_int option of its own size.
        let rc = unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                std::ptr::from_ref(&on).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        rc == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = listener;
        false
    }
}

/// Tells an excess client why it is turned away, and closes.
async fn refuse(mut stream: impl AsyncWrite + Unpin, reply: Reply) {
    let mut out = Vec::new();
    reply.write_to(&mut out);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Runs a configuration build, turning a panic inside it (a bug in some
/// loader) into an error, so a reload keeps the running configuration
/// instead of killing the gateway.
fn build_guarded(
    path: &std::path::Path,
    build: impl FnOnce() -> Result<App, ConfigError>,
) -> Result<App, ConfigError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(build)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        Err(ConfigError::Panicked {
            path: path.display().to_string(),
            message,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_have_nodelay_from_their_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let inherited = nodelay_inherited(&listener);
        assert_eq!(inherited, cfg!(target_os = "linux"));
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert_eq!(accepted.nodelay().unwrap(), inherited);
    }

    #[test]
    fn a_panicking_loader_is_an_error_not_a_crash() {
        let path = std::path::Path::new("gateway.toml");
        let e = build_guarded(path, || panic!("index out of range")).err();
        let e = e.expect("a panic is an error").to_string();
        assert_eq!(
            e,
            "gateway.toml: loading failed on a bug: index out of range"
        );
        let e = build_guarded(path, || panic!("{} apples", 3)).err();
        assert!(e
            .expect("formatted panic")
            .to_string()
            .ends_with("3 apples"));
    }
}
