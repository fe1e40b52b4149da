//! The web console: one HTML page, its script and its style sheet, built
//! into the binary (`include_str!`), with no external fonts, scripts or
//! images. The page's state is its URL: `/?from=...` searches, `/message/REF`
//! shows one message, `/readiness/DOMAIN` one domain; the script reads the
//! API of the same listener.

use super::request::Head;
use super::response::Response;

/// The page for every console URL.
pub const INDEX: &str = include_str!("console/index.html");
/// The script.
pub const SCRIPT: &str = include_str!("console/console.js");
/// The style sheet.
pub const STYLE: &str = include_str!("console/console.css");

/// Answers a console path (`segments` without the leading `/`).
pub fn answer(head: &Head, segments: &[String]) -> Response {
    let found = match segments
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["message", _] | ["readiness"] | ["readiness", _] => {
            Some(("text/html; charset=utf-8", INDEX))
        }
        ["console.js"] => Some(("text/javascript; charset=utf-8", SCRIPT)),
        ["console.css"] => Some(("text/css; charset=utf-8", STYLE)),
        _ => None,
    };
    match found {
        None => Response::error(404, "no such page: the console is at /"),
        Some(_) if !matches!(head.method.as_str(), "GET" | "HEAD") => {
            Response::method_not_allowed("GET, HEAD")
        }
        Some((content_type, body)) => Response::asset(content_type, body),
    }
}
