//! Counters, gauges and histograms (the `metrics` facade) and the
//! Prometheus scrape endpoint on `[metrics].listen` at `/metrics`. Every
//! name is here, so dashboards have one place to look. Every family has
//! HELP text and its known series exist, at zero, from start-up, so
//! `promtool check metrics` passes and `rate()` has a first sample.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Latency buckets in seconds: 0.1 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The text exposition format, with its version as Prometheus asks.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often histogram samples are folded in between scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// Longest scrape request head read; a scrape is one short GET.
const MAX_REQUEST: usize = 8192;

/// A scrape connection's whole life, request to response.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a family is, for its `describe_*` call.
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every family: name, kind, HELP text.
const FAMILIES: &[(&str, Kind, &str)] = &[
    ("smtpgate_build_info", Kind::Gauge, "Always 1; the version label is the running build."),
    ("smtpgate_sessions_total", Kind::Counter, "Client connections, accepted or turned away."),
    ("smtpgate_sessions_active", Kind::Gauge, "Client sessions open now."),
    ("smtpgate_sessions_refused_total", Kind::Counter, "Clients turned away at the connection limit."),
    ("smtpgate_replies_total", Kind::Counter, "Replies sent to clients, by class (2xx, 3xx, 4xx, 5xx)."),
    ("smtpgate_transactions_total", Kind::Counter, "Mail transactions ended, by how they ended (delivered, spam, blocked, ...)."),
    ("smtpgate_symbol_hits_total", Kind::Counter, "Symbols found in transactions, by symbol."),
    ("smtpgate_shadow_hits_total", Kind::Counter, "Shadow rules' hits (recorded, not counted), by symbol."),
    ("smtpgate_phase_seconds", Kind::Histogram, "Time the checks of one SMTP phase took, by phase."),
    ("smtpgate_upstream_seconds", Kind::Histogram, "Time an upstream operation took (begin: connect to RCPT; data: DATA), by operation."),
    ("smtpgate_upstream_errors_total", Kind::Counter, "Upstream operations that failed, by operation."),
    ("smtpgate_upstream_idle_connections", Kind::Gauge, "Idle pooled upstream connections."),
    ("smtpgate_store_seconds", Kind::Histogram, "Time a store operation took, by operation."),
    ("smtpgate_store_errors_total", Kind::Counter, "Store operations that failed, by operation."),
    ("smtpgate_dns_seconds", Kind::Histogram, "Time a DNS lookup took, by kind (a, aaaa, mx, ptr; spf, dkim, dmarc: a whole evaluation with its lookups)."),
    ("smtpgate_dns_errors_total", Kind::Counter, "DNS lookups that failed (timeout, SERVFAIL, refused), by kind."),
    ("smtpgate_dnsbl_errors_total", Kind::Counter, "DNSBL lookups that failed and were treated as not listed (on_error = \"skip\")."),
    ("smtpgate_auth_total", Kind::Counter, "AUTH attempts, by result (ok, failed, lockout)."),
    ("smtpgate_config_reloads_total", Kind::Counter, "Configuration reloads, by result (ok, failed)."),
    ("smtpgate_client_limit_total", Kind::Counter, "Clients turned away by a per-client limit, by limit (connections, rate)."),
    ("smtpgate_store_evictions_total", Kind::Counter, "Live keys the memory store evicted to stay within store.max_entries."),
    ("smtpgate_store_entries", Kind::Gauge, "Keys the memory store holds."),
    ("smtpgate_anomaly_holds_total", Kind::Counter, "Identities held for review, by rule (volume, new_domains, refused, spam; operator: by hand)."),
    ("smtpgate_anomaly_held_identities", Kind::Gauge, "Identities held now (every node's holds, as this node last counted them)."),
    ("smtpgate_anomaly_counted_total", Kind::Counter, "Transactions counted into the anomaly baselines, by result (counted, failed, dropped: the queue was full)."),
    ("smtpgate_history_records_total", Kind::Counter, "Transactions written to the message history, by result (written, failed, dropped: the queue was full)."),
    ("smtpgate_store_queue_total", Kind::Counter, "Store writes nobody waits for (rate-limit counts, alert bookkeeping), by result (written, failed, dropped: the queue was full)."),
    ("smtpgate_task_panics_total", Kind::Counter, "Tasks that panicked (their work was dropped and logged), by task (session, ...)."),
    ("smtpgate_dmarc_parent_dns_errors_total", Kind::Counter, "DMARC lookups above an author domain with its own record that failed and were taken as no record at that level."),
];

/// Reply classes.
const CLASSES: &[&str] = &["2xx", "3xx", "4xx", "5xx"];
/// How transactions end (see [`transaction`] for the label of each),
/// every label registered at start.
pub const ACTIONS: &[&str] = &[
    "delivered",
    "spam",
    "blocked",
    "refused",
    "tempfail",
    "upstream_refused",
    "upstream_lost",
    "too_big",
    "nul",
    "bare_newline",
    "data_timeout",
    "helo",
    "rset",
    "disconnect",
];
/// SMTP phases with checks.
const PHASES: &[&str] = &["helo", "mail", "rcpt", "data"];
/// Upstream operations.
const UPSTREAM_OPS: &[&str] = &["begin", "data"];
/// Store operations.
const STORE_OPS: &[&str] = &[
    "get",
    "set",
    "delete",
    "incr",
    "keys",
    "greylist",
    "get_many",
    "incr_many",
    "batch",
    "batch_get_many",
];
/// DNS lookup kinds.
const DNS_KINDS: &[&str] = &["a", "aaaa", "mx", "ptr", "spf", "dkim", "dmarc"];
/// AUTH results.
const AUTH_RESULTS: &[&str] = &["ok", "failed", "lockout"];
/// Reload results.
const RELOAD_RESULTS: &[&str] = &["ok", "failed"];

/// Installs the recorder and serves `/metrics` on `listen` (from inside the
/// tokio runtime). Returns the bound address.
pub async fn install(listen: SocketAddr) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("metrics listener on {listen}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let handle = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| format!("metrics recorder: {e}"))?;
    describe();
    register_known();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP).await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(serve(listener, handle));
    Ok(bound)
}

/// HELP text for every family.
fn describe() {
    for (name, kind, help) in FAMILIES {
        match kind {
            Kind::Counter => describe_counter!(*name, *help),
            Kind::Gauge => describe_gauge!(*name, *help),
            Kind::Histogram => describe_histogram!(*name, *help),
        }
    }
}

/// Zero-valued series for every label value known in advance.
fn register_known() {
    gauge!("smtpgate_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    counter!("smtpgate_sessions_total").increment(0);
    counter!("smtpgate_sessions_refused_total").increment(0);
    gauge!("smtpgate_sessions_active").increment(0.0);
    gauge!("smtpgate_upstream_idle_connections").increment(0.0);
    counter!("smtpgate_dnsbl_errors_total").increment(0);
    counter!("smtpgate_store_evictions_total").increment(0);
    counter!("smtpgate_dmarc_parent_dns_errors_total").increment(0);
    counter!("smtpgate_task_panics_total", "task" => "session").increment(0);
    gauge!("smtpgate_store_entries").increment(0.0);
    gauge!("smtpgate_anomaly_held_identities").increment(0.0);
    for rule in ["volume", "new_domains", "refused", "spam", "operator"] {
        counter!("smtpgate_anomaly_holds_total", "rule" => rule).increment(0);
    }
    for result in ["counted", "failed", "dropped"] {
        counter!("smtpgate_anomaly_counted_total", "result" => result).increment(0);
    }
    for limit in ["connections", "rate"] {
        counter!("smtpgate_client_limit_total", "limit" => limit).increment(0);
    }
    for class in CLASSES {
        counter!("smtpgate_replies_total", "class" => *class).increment(0);
    }
    for action in ACTIONS {
        counter!("smtpgate_transactions_total", "action" => *action).increment(0);
    }
    for phase in PHASES {
        let _ = histogram!("smtpgate_phase_seconds", "phase" => *phase);
    }
    for op in UPSTREAM_OPS {
        let _ = histogram!("smtpgate_upstream_seconds", "op" => *op);
        counter!("smtpgate_upstream_errors_total", "op" => *op).increment(0);
    }
    for op in STORE_OPS {
        let _ = histogram!("smtpgate_store_seconds", "op" => *op);
        counter!("smtpgate_store_errors_total", "op" => *op).increment(0);
    }
    for kind in DNS_KINDS {
        let _ = histogram!("smtpgate_dns_seconds", "kind" => *kind);
        counter!("smtpgate_dns_errors_total", "kind" => *kind).increment(0);
    }
    for result in AUTH_RESULTS {
        counter!("smtpgate_auth_total", "result" => *result).increment(0);
    }
    for result in RELOAD_RESULTS {
        counter!("smtpgate_config_reloads_total", "result" => *result).increment(0);
    }
    for result in ["written", "failed", "dropped"] {
        counter!("smtpgate_store_queue_total", "result" => result).increment(0);
    }
}

/// Zero-valued hit counters for the symbols the rules define, so every
/// symbol has a series before its first hit.
pub fn symbols<'a>(names: impl Iterator<Item = &'a str>) {
    for name in names {
        counter!("smtpgate_symbol_hits_total", "symbol" => name.to_string()).increment(0);
    }
}

/// Accepts scrapes until the process ends.
async fn serve(listener: TcpListener, handle: PrometheusHandle) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let handle = handle.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(SCRAPE_TIMEOUT, answer(stream, &handle)).await;
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: do not spin.
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// `GET /metrics` (or HEAD: the same head without a body).
    Metrics { head_only: bool },
    /// Another path.
    NotFound,
    /// Another method.
    MethodNotAllowed,
    /// Not an HTTP request line.
    BadRequest,
}

/// The route of an HTTP request line (`GET /metrics HTTP/1.1`).
fn route(request_line: &str) -> Route {
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let path = target.split('?').next().unwrap_or(target);
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::MethodNotAllowed,
    };
    if path == "/metrics" {
        Route::Metrics { head_only }
    } else {
        Route::NotFound
    }
}

/// Reads one request head, answers it and closes (`Connection: close`).
async fn answer(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let end = loop {
        if let Some(end) = head_end(&head) {
            break end;
        }
        if head.len() > MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "",
                false,
            )
            .await;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&head[..end]);
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    match route(line) {
        Route::Metrics { head_only } => {
            respond(&mut stream, "200 OK", &handle.render(), head_only).await
        }
        Route::NotFound => respond(&mut stream, "404 Not Found", "", false).await,
        Route::MethodNotAllowed => respond(&mut stream, "405 Method Not Allowed", "", false).await,
        Route::BadRequest => respond(&mut stream, "400 Bad Request", "", false).await,
    }
}

/// Where the request head ends (the blank line), if it has.
fn head_end(head: &[u8]) -> Option<usize> {
    let crlf = head.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = head.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

/// A client connected (accepted or turned away).
pub fn session_started() {
    counter!("smtpgate_sessions_total").increment(1);
    gauge!("smtpgate_sessions_active").increment(1.0);
}

/// A task panicked (and was logged).
pub fn task_panicked(task: &'static str) {
    counter!("smtpgate_task_panics_total", "task" => task).increment(1);
}

/// A session ended.
pub fn session_ended() {
    gauge!("smtpgate_sessions_active").decrement(1.0);
}

/// A client turned away at the connection limit.
pub fn session_refused() {
    counter!("smtpgate_sessions_refused_total").increment(1);
}

/// A client turned away at a per-client limit (`connections`, `rate`).
pub fn client_limit(limit: &'static str) {
    counter!("smtpgate_client_limit_total", "limit" => limit).increment(1);
}

/// A reply sent to a client, by class (2xx, 3xx, 4xx, 5xx).
pub fn reply(code: u16) {
    let class = match code / 100 {
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    };
    counter!("smtpgate_replies_total", "class" => class).increment(1);
}

/// The label of a transaction's end: `spam (alert merged)` is `spam`,
/// `upstream refused` is `upstream_refused`.
/// The label of a transaction's action: `spam (alert merged)` → `spam`.
pub fn action_label(action: &str) -> String {
    let bare = action.split(" (").next().unwrap_or(action).trim();
    bare.replace(' ', "_")
}

/// A transaction ended with `action` (delivered, spam, blocked, ...) and
/// these symbols.
/// these symbols (`true`: a shadow rule's hit, counted apart).
pub fn transaction<'a>(action: &str, symbols: impl Iterator<Item = (&'a str, bool)>) {
    counter!("smtpgate_transactions_total", "action" => action_label(action)).increment(1);
    for (s, shadow) in symbols {
        if shadow {
            counter!("smtpgate_shadow_hits_total", "symbol" => s.to_string()).increment(1);
        } else {
            counter!("smtpgate_symbol_hits_total", "symbol" => s.to_string()).increment(1);
        }
    }
}

/// Transactions written to the history.
pub fn history_written(n: usize) {
    counter!("smtpgate_history_records_total", "result" => "written").increment(n as u64);
}

/// Transactions the history store refused.
pub fn history_failed(n: usize) {
    counter!("smtpgate_history_records_total", "result" => "failed").increment(n as u64);
}

/// Queued store writes (`result`: written, failed, dropped).
pub fn store_queue(result: &'static str, n: usize) {
    counter!("smtpgate_store_queue_total", "result" => result).increment(n as u64);
}

/// A transaction not recorded: the history queue was full.
pub fn history_dropped() {
    counter!("smtpgate_history_records_total", "result" => "dropped").increment(1);
}

/// An identity held for review by `rule` (or `operator`).
pub fn anomaly_hold(rule: &str) {
    counter!("smtpgate_anomaly_holds_total", "rule" => rule.to_string()).increment(1);
}

/// The holds in force now.
pub fn anomaly_held(n: usize) {
    gauge!("smtpgate_anomaly_held_identities").set(n as f64);
}

/// Transactions counted into the anomaly baselines (`counted`, `failed`,
/// `dropped`).
pub fn anomaly_counted(result: &'static str, n: usize) {
    counter!("smtpgate_anomaly_counted_total", "result" => result).increment(n as u64);
}

/// How long the checks of `phase` (helo, mail, rcpt, data) took.
pub fn phase(phase: &'static str, took: Duration) {
    histogram!("smtpgate_phase_seconds", "phase" => phase).record(took.as_secs_f64());
}

/// An upstream operation (`begin`, `data`) and whether it failed.
pub fn upstream(op: &'static str, took: Duration, failed: bool) {
    histogram!("smtpgate_upstream_seconds", "op" => op).record(took.as_secs_f64());
    if failed {
        counter!("smtpgate_upstream_errors_total", "op" => op).increment(1);
    }
}

/// Idle pooled upstream connections.
pub fn upstream_idle(n: usize) {
    gauge!("smtpgate_upstream_idle_connections").set(n as f64);
}

/// A store operation and whether it failed.
pub fn store(op: &'static str, took: Duration, failed: bool) {
    histogram!("smtpgate_store_seconds", "op" => op).record(took.as_secs_f64());
    if failed {
        counter!("smtpgate_store_errors_total", "op" => op).increment(1);
    }
}

/// Live keys the memory store evicted to stay within `store.max_entries`.
pub fn store_evicted(n: u64) {
    counter!("smtpgate_store_evictions_total").increment(n);
}

/// Keys the memory store holds.
pub fn store_entries(n: usize) {
    gauge!("smtpgate_store_entries").set(n as f64);
}

/// A DNS lookup of `kind` (a, aaaa, mx, ptr; spf, dkim, dmarc for a whole
/// evaluation) and whether it failed (timeout, SERVFAIL).
pub fn dns(kind: &'static str, took: Duration, failed: bool) {
    histogram!("smtpgate_dns_seconds", "kind" => kind).record(took.as_secs_f64());
    if failed {
        counter!("smtpgate_dns_errors_total", "kind" => kind).increment(1);
    }
}

/// A DNSBL lookup failed and was treated as not listed.
pub fn dnsbl_skipped() {
    counter!("smtpgate_dnsbl_errors_total").increment(1);
}

/// An AUTH attempt: `ok`, `failed` or `lockout`.
pub fn auth(result: &'static str) {
    counter!("smtpgate_auth_total", "result" => result).increment(1);
}

/// A configuration reload and its result.
pub fn reload(ok: bool) {
    counter!("smtpgate_config_reloads_total", "result" => if ok { "ok" } else { "failed" })
        .increment(1);
}

/// A DMARC lookup above an author domain with its own record failed and
/// was taken as "no record at that level".
pub fn dmarc_parent_dns_error() {
    counter!("smtpgate_dmarc_parent_dns_errors_total").increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let cases = [
            ("GET /metrics HTTP/1.1", Route::Metrics { head_only: false }),
            (
                "GET /metrics?x=1 HTTP/1.0",
                Route::Metrics { head_only: false },
            ),
            ("HEAD /metrics HTTP/1.1", Route::Metrics { head_only: true }),
            ("GET / HTTP/1.1", Route::NotFound),
            ("GET /metricsx HTTP/1.1", Route::NotFound),
            ("POST /metrics HTTP/1.1", Route::MethodNotAllowed),
            ("GET /metrics", Route::BadRequest),
            ("GET /metrics SMTP/1.0", Route::BadRequest),
            ("", Route::BadRequest),
        ];
        for (line, expected) in cases {
            assert_eq!(route(line), expected, "{line:?}");
        }
    }

    #[test]
    fn head_ends_at_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.0\r\n\r\nrest"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.0\r\nHost: x\r\n"), None);
    }

    #[test]
    fn action_labels() {
        let cases = [
            ("delivered", "delivered"),
            ("spam (alert merged)", "spam"),
            ("spam (no alert recipient)", "spam"),
            ("upstream refused", "upstream_refused"),
            ("too big", "too_big"),
        ];
        for (action, label) in cases {
            assert_eq!(action_label(action), label);
            assert!(ACTIONS.contains(&label), "{label} is registered at start");
        }
    }
}
