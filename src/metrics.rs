//! Counters, gauges and histograms (the `metrics` facade) and the
//! Prometheus exporter on `[metrics].listen` at `/metrics`. Every name is
//! here, so dashboards have one place to look.

use crate::checks::Phase;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::PrometheusBuilder;
use std::net::SocketAddr;
use std::time::Duration;

/// Latency buckets in seconds: 0.1 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Starts the exporter (from inside the tokio runtime).
pub fn install(listen: SocketAddr) -> Result<(), String> {
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets(BUCKETS)
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| format!("metrics exporter on {listen}: {e}"))
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Helo => "helo",
        Phase::Mail => "mail",
        Phase::Rcpt => "rcpt",
        Phase::Data => "data",
    }
}

/// A client connected (accepted or turned away).
pub fn session_started() {
    counter!("smtpgate_sessions_total").increment(1);
    gauge!("smtpgate_sessions_active").increment(1.0);
}

/// A session ended.
pub fn session_ended() {
    gauge!("smtpgate_sessions_active").decrement(1.0);
}

/// A client turned away at the connection limit.
pub fn session_refused() {
    counter!("smtpgate_sessions_refused_total").increment(1);
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

/// A transaction ended with `action` (delivered, spam, blocked, ...) and
/// these symbols.
pub fn transaction<'a>(action: &str, symbols: impl Iterator<Item = &'a str>) {
    let action = action.split(' ').next().unwrap_or(action).to_string();
    counter!("smtpgate_transactions_total", "action" => action).increment(1);
    for s in symbols {
        counter!("smtpgate_symbol_hits_total", "symbol" => s.to_string()).increment(1);
    }
}

/// How long a phase's checks took.
pub fn phase(phase: Phase, took: Duration) {
    histogram!("smtpgate_phase_seconds", "phase" => phase_name(phase)).record(took.as_secs_f64());
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

/// A DNS lookup and whether it failed (timeout, SERVFAIL).
pub fn dns(took: Duration, failed: bool) {
    histogram!("smtpgate_dns_seconds").record(took.as_secs_f64());
    if failed {
        counter!("smtpgate_dns_errors_total").increment(1);
    }
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
