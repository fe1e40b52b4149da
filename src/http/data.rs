//! What the API reads from the flow layer: the message history
//! (`app.history`), a record's breakdown as the SPAM alert explains it
//! (`verdict::breakdown`, `bounce::explain_all`), the counts over time, and
//! the readiness report (`readiness::report`). A store failure is a 503
//! that says so.

use super::response::Response;
use crate::app::App;
use crate::bounce::{breakdown_text, explain_all};
use crate::config::Span;
use crate::history::Query;
use crate::score::Score;
use crate::store::StoreError;
use std::time::Duration;

/// The longest `since` of `/api/stats` (per-minute counts are kept a day).
const MAX_STATS_PERIOD: Duration = Duration::from_secs(86_400);

/// `GET /api/history?from=&rcpt=&login=&ip=&action=&message_id=&since=&limit=`:
/// the records, newest first, as `smtpgate history --json` prints them.
pub async fn history(app: &App, query: &[(String, String)]) -> Response {
    let query = match Query::from_pairs(query) {
        Ok(q) => q,
        Err(e) => return Response::error(400, &e),
    };
    if let Some(off) = off(app) {
        return off;
    }
    match app.history.query(&query).await {
        Ok(records) => Response::json(200, &records),
        Err(e) => store_failure(&e),
    }
}

/// `GET /api/messages/{ref}`: the record, its breakdown in the alert's
/// order with each symbol's description and fix, and the alert's text.
pub async fn message(app: &App, reference: &str) -> Response {
    if let Some(off) = off(app) {
        return off;
    }
    let record = match app.history.get(reference).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            return Response::error(
                404,
                &format!(
                    "no transaction with reference {reference} in the history (kept {})",
                    app.config.history.keep
                ),
            )
        }
        Err(e) => return store_failure(&e),
    };
    let breakdown = crate::verdict::breakdown(&record, &app.symbols);
    let text = breakdown_text(&breakdown, &app.symbols, Score::from_f64(record.threshold));
    let answer = serde_json::json!({
        "record": record,
        "breakdown": explain_all(&breakdown, &app.symbols),
        "text": text,
    });
    Response::json(200, &answer)
}

/// `GET /api/stats?since=1h`: transactions by action, per minute by action
/// and the top symbols over the period (default the last hour, at most a
/// day).
pub async fn stats(app: &App, query: &[(String, String)]) -> Response {
    let mut since = Duration::from_secs(3600);
    for (name, value) in query {
        match name.as_str() {
            "since" => match Span::parse(value.trim()) {
                Some(span) if span.0 <= MAX_STATS_PERIOD && !span.0.is_zero() => since = span.0,
                _ => {
                    return Response::error(
                        400,
                        &format!("since: expected a duration from 1m to 1d like 1h, got {value:?}"),
                    )
                }
            },
            other => {
                return Response::error(
                    400,
                    &format!("unknown parameter {other:?} (expected since)"),
                )
            }
        }
    }
    if let Some(off) = off(app) {
        return off;
    }
    match app.history.stats(since).await {
        Ok(stats) => Response::json(200, &stats),
        Err(e) => store_failure(&e),
    }
}

/// `GET /api/readiness/{domain}`: the report `smtpgate readiness DOMAIN`
/// prints (never fails: a lookup that did not answer is a warn line).
pub async fn readiness(app: &App, domain: &str) -> Response {
    if let Err(e) = crate::readiness::parse_domain(domain) {
        return Response::error(400, &e);
    }
    Response::json(200, &crate::readiness::report(app, domain).await)
}

/// 404 when `[history] enabled = false`.
fn off(app: &App) -> Option<Response> {
    (!app.history.enabled()).then(|| {
        Response::error(
            404,
            "the message history is off ([history] enabled = false)",
        )
    })
}

fn store_failure(e: &StoreError) -> Response {
    Response::error(503, &format!("the history cannot be read now: {e}"))
}
