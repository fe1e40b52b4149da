//! What a passed message carries to the MTA: the header block we prepend
//! (the session's Received line, Authentication-Results when there is
//! something to report, X-Spamd-Result when `[headers]` asks for it,
//! our DKIM signature) on the message with client copies of our verdict
//! headers removed; and what a delivery counts (rate limits).

mod headers;

pub use headers::{authentication_results, spamd_result};

use crate::app::App;
use crate::checks::View;
use crate::score::Breakdown;
use std::borrow::Cow;

/// A message ready for the upstream: our headers, then the message.
pub struct Prepared<'a> {
    /// The header block we prepend (CRLF-terminated lines).
    pub header: String,
    /// The message as delivered (client copies of our headers removed).
    pub message: Cow<'a, [u8]>,
}

/// Prepares `message` for delivery: `received` (the session's trace line)
/// first, then the verdict headers and the DKIM signature over the message
/// as it will be delivered.
pub fn prepare<'a>(
    app: &App,
    received: String,
    breakdown: &Breakdown,
    message: &'a [u8],
) -> Prepared<'a> {
    let hostname = &app.config.server.hostname;
    let message = crate::message::as_delivered(hostname, message);
    let mut header = received;
    // Nothing to report is no header (RFC 8601 allows `none`, but every
    // recipient would get a line saying nothing).
    if let Some(results) = authentication_results(hostname, breakdown) {
        header.push_str(&results);
    }
    let threshold = app.policy.threshold.to_string();
    let mode = app.config.headers.spamd_result;
    if let Some(result) = spamd_result(breakdown, &threshold, mode) {
        header.push_str(&result);
    }
    header.extend(app.auth.sign(&message));
    Prepared { header, message }
}

/// Counts a delivered message against the sender's rate limits, off the
/// hot path (the store's write queue; at once near a limit, so that the
/// other nodes see it).
pub fn delivered(app: &App, view: &View<'_>) {
    let who = crate::checks::ratelimit::identity(view);
    let rcpts = view.recipients.len();
    let counts = crate::checks::ratelimit::delivery_counts(&app.config, &who, rcpts);
    if crate::checks::ratelimit::near_limit(&app.config, &app.recent, &who) {
        app.writes.push_urgent(counts);
    } else {
        app.writes.push(counts);
    }
}
