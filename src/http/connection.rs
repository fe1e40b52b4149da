//! One HTTP connection: requests read in turn (keep-alive), each bounded
//! in size and in time, admitted (the token) before its body is read, then
//! answered. Every failure is an answer with its status, then close.

use super::request::{head_end, parse_head, Head, RequestError, MAX_HEAD};
use super::response::Response;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// An answer being computed.
pub type Answering = Pin<Box<dyn Future<Output = Response> + Send + 'static>>;

/// What a listener serves.
pub trait Routes {
    /// A refusal before the body is read (401), or `None` to go on.
    fn admit(&self, head: &Head) -> Option<Response>;
    /// The answer to an admitted request with its body.
    fn answer(&self, head: Head, body: Vec<u8>) -> Answering;
}

/// How much and how long a connection may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body.
    pub max_body: usize,
    /// Longest time for one request, head and body, counted from when the
    /// server starts waiting for it (so also the keep-alive idle time).
    pub read_timeout: Duration,
}

/// Serves requests on `stream` until the client closes, asks to close, or
/// sends something that cannot be served.
pub async fn serve<S, R>(mut stream: S, routes: &R, limits: Limits)
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Routes + ?Sized,
{
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let deadline = Instant::now() + limits.read_timeout;
        let head = match tokio::time::timeout_at(deadline, read_head(&mut stream, &mut buf)).await {
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => return refuse(&mut stream, &e, limits).await,
            // Idle between requests: close quietly; mid-request: say why.
            Err(_) if buf.is_empty() => return,
            Err(_) => return refuse(&mut stream, &RequestError::Timeout, limits).await,
        };
        let head_only = head.method == "HEAD";
        if let Some(refusal) = routes.admit(&head) {
            // The body (if any) is not read: the connection cannot go on.
            let keep = head.keep_alive && head.content_length == 0;
            if send(&mut stream, &refusal, keep, head_only, limits)
                .await
                .is_err()
                || !keep
            {
                return;
            }
            continue;
        }
        if head.content_length > limits.max_body as u64 {
            let e = RequestError::BodyTooLarge {
                given: head.content_length,
                max: limits.max_body,
            };
            return refuse(&mut stream, &e, limits).await;
        }
        // Bounded just above by max_body, which is a usize.
        let length = head.content_length as usize;
        if head.expect_continue && length > buf.len() {
            let ok = write_all(&mut stream, b"HTTP/1.1 100 Continue\r\n\r\n", limits).await;
            if !ok {
                return;
            }
        }
        let body = match tokio::time::timeout_at(deadline, read_body(&mut stream, &mut buf, length))
            .await
        {
            Ok(Ok(body)) => body,
            Ok(Err(())) => return,
            Err(_) => return refuse(&mut stream, &RequestError::Timeout, limits).await,
        };
        let keep = head.keep_alive;
        let response = routes.answer(head, body).await;
        if send(&mut stream, &response, keep, head_only, limits)
            .await
            .is_err()
            || !keep
        {
            return;
        }
    }
}

/// Reads until `buf` holds a whole head, parses it and drops it from
/// `buf` (what follows is the body, or the next request). `None`: the
/// client closed between requests.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Result<Option<Head>, RequestError> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = head_end(buf) {
            let head = parse_head(&buf[..end]);
            buf.drain(..end);
            return head.map(Some);
        }
        if buf.len() > MAX_HEAD {
            return Err(RequestError::HeadTooLarge);
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| RequestError::Bad(format!("reading the request: {e}")))?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(RequestError::Bad(
                    "the request ended inside its head".into(),
                ))
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads the `length` octets of the body (some may be in `buf` already);
/// what follows stays in `buf`. `Err`: the client went away.
async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    length: usize,
) -> Result<Vec<u8>, ()> {
    let mut chunk = vec![0u8; 64 * 1024];
    while buf.len() < length {
        let want = (length - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..want]).await {
            Ok(0) | Err(_) => return Err(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let rest = buf.split_off(length);
    Ok(std::mem::replace(buf, rest))
}

/// Answers an unservable request with its status and closes.
async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, e: &RequestError, limits: Limits) {
    let _ = send(
        stream,
        &Response::error(e.status(), &e.to_string()),
        false,
        false,
        limits,
    )
    .await;
}

async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    response: &Response,
    keep_alive: bool,
    head_only: bool,
    limits: Limits,
) -> Result<(), ()> {
    let bytes = response.encode(keep_alive, head_only);
    let ok = write_all(stream, &bytes, limits).await;
    if !keep_alive {
        let _ = tokio::time::timeout(limits.read_timeout, stream.shutdown()).await;
    }
    if ok {
        Ok(())
    } else {
        Err(())
    }
}

/// Writes within the read timeout (a client that does not read must not
/// hold the task).
async fn write_all<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8], limits: Limits) -> bool {
    matches!(
        tokio::time::timeout(limits.read_timeout, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await,
        Ok(Ok(()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echoes the method, path, query and body; refuses `/secret`.
    struct Echo;

    impl Routes for Echo {
        fn admit(&self, head: &Head) -> Option<Response> {
            (head.path == "/secret").then(|| Response::unauthorized("token"))
        }
        fn answer(&self, head: Head, body: Vec<u8>) -> Answering {
            Box::pin(async move {
                let text = format!(
                    "{} {} {:?} {}",
                    head.method,
                    head.path,
                    head.query,
                    String::from_utf8_lossy(&body)
                );
                Response {
                    status: 200,
                    content_type: "text/plain",
                    body: text.into_bytes(),
                    fields: Vec::new(),
                }
            })
        }
    }

    const LIMITS: Limits = Limits {
        max_body: 16,
        read_timeout: Duration::from_secs(5),
    };

    /// Sends `input` in chunks of `size` octets, then closes the writing
    /// side; returns everything the server wrote.
    async fn exchange(input: &[u8], size: usize) -> String {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let served = tokio::spawn(async move { serve(server, &Echo, LIMITS).await });
        for chunk in input.chunks(size) {
            // The server may have closed (Connection: close) before the end.
            let _ = client.write_all(chunk).await;
            tokio::task::yield_now().await;
        }
        let _ = client.shutdown().await;
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        served.await.unwrap();
        String::from_utf8(out).unwrap()
    }

    fn statuses(out: &str) -> Vec<&str> {
        out.match_indices("HTTP/1.1 ")
            .map(|(i, _)| &out[i + 9..i + 12])
            .collect()
    }

    #[tokio::test]
    async fn pipelined_requests_in_every_chunking_get_the_same_answers() {
        let input = b"POST /a?x=1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\n\r\n";
        let whole = exchange(input, input.len()).await;
        assert_eq!(statuses(&whole), ["200", "200", "200"], "{whole}");
        assert!(whole.contains("POST /a [(\"x\", \"1\")] hello"), "{whole}");
        assert!(whole.contains("GET /b [] "), "{whole}");
        assert!(!whole.contains("/never"), "{whole}");
        for size in [1, 2, 3, 7, 64] {
            assert_eq!(exchange(input, size).await, whole, "chunks of {size}");
        }
    }

    #[tokio::test]
    async fn limits_are_answered_with_their_status_and_close() {
        let out = exchange(b"POST /a HTTP/1.1\r\nContent-Length: 17\r\n\r\n", 1024).await;
        assert_eq!(statuses(&out), ["413"], "{out}");
        assert!(
            out.contains("the body is 17 octets, longer than http.max_body (16)"),
            "{out}"
        );
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD + 10));
        let out = exchange(long.as_bytes(), 4096).await;
        assert_eq!(statuses(&out), ["431"], "{out}");
        let out = exchange(b"EHLO client.test\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1024).await;
        assert_eq!(statuses(&out), ["400"], "{out}");
        let out = exchange(b"GET / HTTP/1.1\r\nHost", 1024).await;
        assert_eq!(statuses(&out), ["400"], "{out}");
        assert!(out.contains("the request ended inside its head"), "{out}");
    }

    #[tokio::test]
    async fn a_refused_request_with_a_body_closes_the_connection() {
        let out = exchange(
            b"POST /secret HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n\r\n",
            1024,
        )
        .await;
        assert_eq!(statuses(&out), ["401"], "{out}");
        let out = exchange(b"GET /secret HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n", 1024).await;
        assert_eq!(statuses(&out), ["401", "200"], "{out}");
    }

    #[tokio::test]
    async fn expect_100_continue_gets_its_interim_answer_before_the_body() {
        let (mut client, server) = tokio::io::duplex(4096);
        let served = tokio::spawn(async move { serve(server, &Echo, LIMITS).await });
        client
            .write_all(b"POST /a HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
        let mut first = vec![0u8; interim.len()];
        client.read_exact(&mut first).await.unwrap();
        assert_eq!(first, interim);
        client.write_all(b"hi").await.unwrap();
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        served.await.unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("POST /a [] hi"), "{out}");
        // A body sent with the head needs no interim answer.
        let out = exchange(
            b"POST /a HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi",
            1024,
        )
        .await;
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_request_times_out_with_408() {
        let (mut client, server) = tokio::io::duplex(4096);
        let served = tokio::spawn(async move { serve(server, &Echo, LIMITS).await });
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        served.await.unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(statuses(&out), ["408"], "{out}");
    }
}
