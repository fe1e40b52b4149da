//! The anomaly holds on the API, as `smtpgate hold` has them:
//! `GET /api/holds` (every hold in force, soonest to end first),
//! `GET /api/holds/{identity}`, `POST /api/holds/{identity}?for=2h&reason=…`
//! (hold by hand) and `DELETE /api/holds/{identity}` (release). A change
//! sent by a browser from another site (an `Origin` that is not this
//! listener) is refused: a page elsewhere cannot release a hold through
//! an operator's browser.

use super::request::Head;
use super::response::Response;
use crate::anomaly::{hold_span, identity, OPERATOR_REASON};
use crate::app::App;
use crate::store::StoreError;

/// The parameters `POST /api/holds/{identity}` takes.
const HOLD_PARAMETERS: &[&str] = &["for", "reason"];

/// Answers `/api/holds` and `/api/holds/{identity}`.
pub async fn answer(app: &App, head: &Head, who: Option<&str>) -> Response {
    let anomaly = app.anomaly.anomaly();
    let method = head.method.as_str();
    if matches!(method, "POST" | "DELETE") {
        if let Some(refused) = cross_site(head) {
            return refused;
        }
    }
    match (method, who) {
        ("GET" | "HEAD", None) => match anomaly.holds().await {
            Ok(holds) => Response::json(200, &holds),
            Err(e) => store_failure(&e),
        },
        (_, None) => Response::method_not_allowed("GET, HEAD"),
        ("GET" | "HEAD", Some(who)) => match anomaly.held(&identity(who)).await {
            Ok(Some(hold)) => Response::json(200, &hold),
            Ok(None) => not_held(who),
            Err(e) => store_failure(&e),
        },
        ("POST", Some(who)) => {
            if !app.config.anomaly.enabled {
                return Response::error(
                    409,
                    "anomaly.enabled is false: a hold would not be enforced",
                );
            }
            let (mut span, mut reason) = (None, None);
            for (name, value) in &head.query {
                match name.as_str() {
                    "for" => span = Some(value.as_str()),
                    "reason" => reason = Some(value.as_str()).filter(|r| !r.trim().is_empty()),
                    _ => {
                        return Response::error(
                            400,
                            &format!(
                                "unknown parameter `{name}`: expected {}",
                                HOLD_PARAMETERS.join(", ")
                            ),
                        )
                    }
                }
            }
            let span = match hold_span(span, app.config.anomaly.hold_for) {
                Ok(span) => span,
                Err(e) => return Response::error(400, &format!("for: {e}")),
            };
            let reason = reason.unwrap_or(OPERATOR_REASON);
            match anomaly.hold(who, span, reason).await {
                Ok(hold) => Response::json(200, &hold),
                Err(e) => store_failure(&e),
            }
        }
        ("DELETE", Some(who)) => match anomaly.release(who).await {
            Ok(true) => Response::json(200, &serde_json::json!({ "released": identity(who) })),
            Ok(false) => not_held(who),
            Err(e) => store_failure(&e),
        },
        (_, Some(_)) => Response::method_not_allowed("GET, HEAD, POST, DELETE"),
    }
}

/// A browser's request from a page of another origin than this listener.
fn cross_site(head: &Head) -> Option<Response> {
    let origin = head.field("origin")?;
    let host = head.field("host").unwrap_or("");
    let same = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host));
    (!same).then(|| {
        Response::error(
            403,
            &format!("a change from another site (Origin: {origin}) is refused"),
        )
    })
}

fn not_held(who: &str) -> Response {
    Response::error(404, &format!("{} is not held", identity(who)))
}

fn store_failure(e: &StoreError) -> Response {
    Response::error(503, &format!("the holds cannot be read now: {e}"))
}
