//! What the API reads from the flow layer: the history (`app.history`) and
//! the readiness report. The seam between the HTTP layer and them.

use super::response::Response;
use crate::app::App;

const NOT_YET: &str = "the message history is not part of this build";

/// `GET /api/history?from=&rcpt=&login=&ip=&action=&since=&limit=`.
pub async fn history(_app: &App, _query: &[(String, String)]) -> Response {
    Response::error(503, NOT_YET)
}

/// `GET /api/messages/{ref}`.
pub async fn message(_app: &App, _reference: &str) -> Response {
    Response::error(503, NOT_YET)
}

/// `GET /api/readiness/{domain}`.
pub async fn readiness(_app: &App, _domain: &str) -> Response {
    Response::error(503, "the readiness report is not part of this build")
}

/// `GET /api/stats?since=`.
pub async fn stats(_app: &App, _query: &[(String, String)]) -> Response {
    Response::error(503, NOT_YET)
}
