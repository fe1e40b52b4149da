//! The HTTP API and web console on `[http] listen`: a small HTTP/1.1
//! server over tokio (bounded heads and bodies, read timeouts, keep-alive,
//! JSON errors), separate from the SMTP listeners. The API answers only
//! with the bearer token when `token_file` is set (it must be off
//! loopback); the console's files hold no data and are served to anyone
//! who reaches the port, the data they show comes from the API.

mod api;
pub mod connection;
mod console;
mod data;
mod holds;
pub mod request;
pub mod response;

use crate::app::App;
use crate::config::HttpConfig;
use arc_swap::ArcSwap;
use connection::{Answering, Limits, Routes};
use request::Head;
use response::Response;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Most HTTP connections served at once; the excess gets 503.
const MAX_CONNECTIONS: usize = 64;

/// A bound, not yet running HTTP listener.
pub struct HttpListener {
    listener: TcpListener,
    access: Access,
    limits: Limits,
}

/// Who may use the API: anyone, or whoever sends the token.
#[derive(Clone)]
pub struct Access {
    token: Option<String>,
}

impl Access {
    /// The token of `config.token_file`, if set.
    pub fn load(config: &HttpConfig) -> Result<Access, String> {
        Ok(Access {
            token: config.token()?,
        })
    }

    /// True when `head` may use the API.
    pub fn allows(&self, head: &Head) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = head
            .field("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        same(given.as_bytes(), token.as_bytes())
    }
}

/// Compares in time that depends on the lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Binds `config.listen` and reads the token.
pub async fn bind(config: &HttpConfig) -> std::io::Result<HttpListener> {
    let access = Access::load(config)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = TcpListener::bind(config.listen).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {} (http): {e}", config.listen),
        )
    })?;
    Ok(HttpListener {
        listener,
        access,
        limits: Limits {
            max_body: config.max_body,
            read_timeout: config.read_timeout.0,
        },
    })
}

impl HttpListener {
    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections for ever; each request is answered with the
    /// configuration current at that moment.
    pub async fn run(self, app: Arc<ArcSwap<App>>) {
        let routes = Arc::new(Console {
            app,
            access: self.access,
        });
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (mut tcp, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let routes = Arc::clone(&routes);
            let limits = self.limits;
            match Arc::clone(&slots).try_acquire_owned() {
                Ok(slot) => {
                    tokio::spawn(async move {
                        connection::serve(tcp, routes.as_ref(), limits).await;
                        drop(slot);
                    });
                }
                Err(_) => {
                    tracing::warn!(client = %peer, "http: too many connections: 503");
                    tokio::spawn(async move {
                        let busy = Response::error(503, "too many connections: retry shortly");
                        let _ = tokio::time::timeout(limits.read_timeout, async {
                            use tokio::io::AsyncWriteExt;
                            let _ = tcp.write_all(&busy.encode(false, false)).await;
                            let _ = tcp.shutdown().await;
                        })
                        .await;
                    });
                }
            }
        }
    }
}

/// The API and the console of one listener.
struct Console {
    app: Arc<ArcSwap<App>>,
    access: Access,
}

impl Routes for Console {
    fn admit(&self, head: &Head) -> Option<Response> {
        // Decoded as the router decodes it: `/%61pi/` is `/api/` too.
        let api = head
            .segments()
            .map_or(true, |s| s.first().is_some_and(|f| f == "api"));
        if !api || self.access.allows(head) {
            return None;
        }
        let why = if head.field("authorization").is_some() {
            "the bearer token is wrong"
        } else {
            "send the token: Authorization: Bearer <token of http.token_file>"
        };
        Some(Response::unauthorized(why))
    }

    fn answer(&self, head: Head, body: Vec<u8>) -> Answering {
        let app = self.app.load_full();
        Box::pin(async move {
            // A bug in one answer is a 500 for that request, not a dead task.
            match tokio::spawn(route(app, head, body)).await {
                Ok(response) => response,
                Err(e) => {
                    tracing::error!(error = %e, "http: an answer's task failed");
                    crate::metrics::task_panicked("http");
                    Response::error(500, "internal error (logged)")
                }
            }
        })
    }
}

/// Sends a request to the API or the console.
async fn route(app: Arc<App>, head: Head, body: Vec<u8>) -> Response {
    let segments = match head.segments() {
        Ok(segments) => segments,
        Err(e) => return Response::error(e.status(), &e.to_string()),
    };
    match segments.split_first() {
        Some((first, rest)) if first == "api" => api::answer(&app, &head, rest, body).await,
        _ => console::answer(&head, &segments),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_compared_whole() {
        let access = Access {
            token: Some("s3cret-token".into()),
        };
        let head = |auth: Option<&str>| {
            let mut text = "GET /api/history HTTP/1.1\r\n".to_string();
            if let Some(a) = auth {
                text.push_str(&format!("Authorization: {a}\r\n"));
            }
            text.push_str("\r\n");
            request::parse_head(text.as_bytes()).unwrap()
        };
        assert!(access.allows(&head(Some("Bearer s3cret-token"))));
        for wrong in [
            None,
            Some("Bearer s3cret"),
            Some("Bearer s3cret-token2"),
            Some("Basic s3cret-token"),
            Some("s3cret-token"),
        ] {
            assert!(!access.allows(&head(wrong)), "{wrong:?}");
        }
        assert!(Access { token: None }.allows(&head(None)));
    }
}
