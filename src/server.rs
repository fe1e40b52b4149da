//! Listeners, the accept loop, the connection limit, reload and graceful
//! shutdown (the shape of mini-redis's `server::run`).

use crate::app::App;
use crate::config::Listener;
use crate::session::stream::Stream;
use crate::session::Session;
use crate::smtp::reply;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// A bound, not yet running server.
pub struct Server {
    listeners: Vec<(TcpListener, Listener)>,
    handle: Handle,
    connections: Arc<Semaphore>,
    max_connections: usize,
}

/// Controls a running server: reload and shutdown. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    app: Arc<ArcSwap<App>>,
    shutdown: watch::Sender<bool>,
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
    pub fn reload_from(&self, path: &std::path::Path) -> Result<(), crate::config::ConfigError> {
        let current = self.app();
        let app = App::load(path, Some(&current))?;
        self.reload(app);
        Ok(())
    }

    /// Builds from configuration text (tests, embedding) and swaps it in.
    pub fn reload_from_text(&self, text: &str) -> Result<(), crate::config::ConfigError> {
        let current = self.app();
        let config = crate::config::Config::from_text(std::path::Path::new("reload.toml"), text)?;
        self.reload(App::build(config, Some(&current))?);
        Ok(())
    }

    /// Stops accepting; sessions finish (bounded by `shutdown_timeout`).
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Server {
    /// Binds every `server.listen` address.
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
        let max_connections = app.config.server.max_connections;
        let (shutdown, _) = watch::channel(false);
        Ok(Server {
            listeners,
            handle: Handle {
                app: Arc::new(ArcSwap::from_pointee(app)),
                shutdown,
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

    /// A handle for reload and shutdown.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Accepts connections until shutdown, then waits for sessions to end,
    /// at most `server.shutdown_timeout`.
    pub async fn run(self) {
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
                Err(e) => tracing::debug!(error = %e, "upstream probe failed"),
            }
        });
        let mut accepting = Vec::new();
        for (listener, config) in self.listeners {
            let handle = self.handle.clone();
            let connections = Arc::clone(&self.connections);
            accepting.push(tokio::spawn(accept_loop(
                listener,
                config,
                handle,
                connections,
            )));
        }
        let mut shutdown = self.handle.shutdown.subscribe();
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        for task in &accepting {
            task.abort();
        }
        let grace = self.handle.app().config.server.shutdown_timeout.0;
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        match tokio::time::timeout(grace, self.connections.acquire_many(all)).await {
            Ok(_) => tracing::info!("all sessions finished"),
            Err(_) => tracing::warn!("shutdown timeout: closing remaining sessions"),
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
        let _ = tcp.set_nodelay(true);
        let app = handle.app();
        crate::metrics::session_started();
        match Arc::clone(&connections).try_acquire_owned() {
            Ok(permit) => {
                let shutdown = handle.shutdown.subscribe();
                let config = Arc::clone(&config);
                tokio::spawn(async move {
                    if let Some((stream, peer)) = open(tcp, peer, &config, &app).await {
                        let mut session = Session::new(app, stream, peer, shutdown);
                        session.trusted_cleartext = config.trusted_cleartext;
                        session.xforward_allowed =
                            config.xforward_from.iter().any(|n| n.contains(&peer.ip()));
                        session.run().await;
                    }
                    drop(permit);
                    crate::metrics::session_ended();
                });
            }
            Err(_) => {
                tracing::warn!(client = %peer, "too many connections");
                crate::metrics::session_refused();
                crate::metrics::session_ended();
                tokio::spawn(refuse(tcp, app));
            }
        }
    }
}

/// The PROXY header (when the listener expects one) and the TLS handshake
/// (for implicit-TLS listeners), each bounded by `idle_timeout`. `None`:
/// the connection is closed without a greeting.
async fn open(
    mut tcp: TcpStream,
    peer: SocketAddr,
    config: &Listener,
    app: &App,
) -> Option<(Stream, SocketAddr)> {
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
            Ok(Ok(source)) => peer = canonical(source),
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
    if !config.implicit_tls {
        return Some((Stream::Plain(tcp), peer));
    }
    let acceptor = app.tls.as_ref()?;
    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some((Stream::Tls(Box::new(tls)), peer)),
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

/// An IPv4 client seen through a dual-stack socket (`::ffff:192.0.2.1`)
/// is the IPv4 client: mynetworks, DNSBL, greylisting networks and the
/// Received header all see `192.0.2.1`.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Tells an excess client why it is turned away.
async fn refuse(mut tcp: TcpStream, app: Arc<App>) {
    let mut out = Vec::new();
    reply::too_many_connections(&app.config.server.hostname).write_to(&mut out);
    let _ = tcp.write_all(&out).await;
    let _ = tcp.shutdown().await;
}
