//! The verdict lookup: every stopped message's breakdown is kept in the
//! Store under its reference for 7 days, so support can answer a customer
//! who quotes the reference from the SPAM alert or the 5xx
//! (`smtpgate why REF`).

use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// How long verdicts are kept.
pub const KEEP: Duration = Duration::from_secs(7 * 86_400);

/// The store key of a reference.
pub fn key(reference: &str) -> String {
    format!("verdict:{}", reference.trim().to_ascii_uppercase())
}

/// Saves `text` under `reference` in the background (bounded by the store's
/// own timeout); a failure is logged, never shown to the client.
pub fn save(store: Arc<dyn Store>, reference: String, text: String) {
    tokio::spawn(async move {
        if let Err(e) = store.set(&key(&reference), text.as_bytes(), KEEP).await {
            tracing::warn!(%reference, error = %e, "verdict not saved");
        }
    });
}

/// The saved verdict of `reference`, if any.
pub async fn load(store: &dyn Store, reference: &str) -> Result<Option<String>, StoreError> {
    Ok(store
        .get(&key(reference))
        .await?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// What `smtpgate why` shows of a stopped message.
pub struct Story<'a> {
    /// The reference.
    pub reference: &'a str,
    /// The client's address and HELO name.
    pub client: (std::net::IpAddr, &'a str),
    /// MAIL FROM.
    pub sender: &'a crate::address::Address,
    /// The recipients.
    pub recipients: &'a [crate::address::Address],
    /// The transaction's log label.
    pub action: &'a str,
    /// The client's reply.
    pub reply: &'a crate::smtp::reply::Reply,
    /// Every symbol, weighed.
    pub breakdown: &'a crate::score::Breakdown,
}

/// Keeps a stopped message's breakdown for `smtpgate why`.
pub fn keep(app: &crate::app::App, s: Story<'_>) {
    let rcpts: Vec<String> = s.recipients.iter().map(ToString::to_string).collect();
    let text = format!(
        "Reference: {}\nDate: {}\nClient: {} ({})\nFrom: <{}>\nTo: {}\nAction: {}\nReply: {}\n\n{}",
        s.reference,
        crate::smtp::received::rfc5322_date(std::time::SystemTime::now()),
        s.client.0,
        s.client.1,
        s.sender,
        rcpts.join(", "),
        s.action,
        s.reply,
        crate::bounce::breakdown_text(s.breakdown, &app.symbols, app.policy.threshold),
    );
    save(app.store.clone(), s.reference.to_string(), text);
}
