//! Sending quotas per identity (the AUTH login, else the client IP):
//! messages per day and recipients per hour. The RCPT check only reads the
//! counters; [`record_delivery`] adds to them once the upstream accepted a
//! message, so refused or failed messages never use up a quota. Each
//! counter is a fixed window that starts with the first counted message.

use super::{Check, CheckError, CheckFuture, Phase, View};
use crate::config::{Config, OnError};
use crate::score::Hit;
use crate::store::Store;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The symbol of an identity over its quota; its subject is the identity.
pub const RATELIMIT: &str = "RATELIMIT";

const DAY: Duration = Duration::from_secs(86_400);
const HOUR: Duration = Duration::from_secs(3_600);

/// `[ratelimit]`. Present = enabled; 0 turns one limit off.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Messages an identity may send per day.
    #[serde(default = "default_messages_per_day")]
    pub messages_per_day: u64,
    /// Recipients an identity may send to per hour (0 = no limit).
    #[serde(default)]
    pub recipients_per_hour: u64,
    /// Per-identity limits: `"login" = { messages_per_day = 5000 }`, or an
    /// IP address for clients that do not authenticate.
    #[serde(default)]
    pub overrides: BTreeMap<String, Limits>,
}

/// One identity's limits; a missing key keeps the section's value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Messages per day.
    pub messages_per_day: Option<u64>,
    /// Recipients per hour.
    pub recipients_per_hour: Option<u64>,
}

fn default_messages_per_day() -> u64 {
    500
}

impl RateLimitConfig {
    /// (messages per day, recipients per hour) for `identity`.
    pub fn limits(&self, identity: &str) -> (u64, u64) {
        let o = self.overrides.get(identity);
        (
            o.and_then(|l| l.messages_per_day)
                .unwrap_or(self.messages_per_day),
            o.and_then(|l| l.recipients_per_hour)
                .unwrap_or(self.recipients_per_hour),
        )
    }
}

/// Whose quota a transaction uses: the login, else the client IP.
pub fn identity(view: &View<'_>) -> String {
    match view.login {
        Some(login) => login.to_string(),
        None => view.client_ip.to_string(),
    }
}

fn messages_key(identity: &str) -> String {
    format!("rl:{identity}:messages")
}

fn recipients_key(identity: &str) -> String {
    format!("rl:{identity}:recipients")
}

/// The rate-limit check (RCPT phase).
pub struct RateLimitCheck {
    config: RateLimitConfig,
    store: Arc<dyn Store>,
    on_error: OnError,
}

impl RateLimitCheck {
    /// The check, when `[ratelimit]` is configured.
    pub fn from_config(config: &Config, store: Arc<dyn Store>) -> Option<RateLimitCheck> {
        config.ratelimit.as_ref().map(|r| RateLimitCheck {
            config: r.clone(),
            store,
            on_error: config.store.on_error,
        })
    }

    async fn count(&self, key: &str) -> Result<u64, crate::store::StoreError> {
        let value = self.store.get(key).await?;
        Ok(value
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<i64>().ok())
            .map_or(0, |n| u64::try_from(n).unwrap_or(0)))
    }

    async fn decide(&self, view: &View<'_>) -> Result<Vec<Hit>, crate::store::StoreError> {
        let who = identity(view);
        let (messages, recipients) = self.config.limits(&who);
        let over = if messages > 0 && self.count(&messages_key(&who)).await? >= messages {
            true
        } else if recipients > 0 {
            let sent = self.count(&recipients_key(&who)).await?;
            let this_message = view.recipients.len() as u64 + 1;
            sent + this_message > recipients
        } else {
            false
        };
        if over {
            tracing::info!(target: "smtpgate::ratelimit", identity = %who, "RATELIMIT");
            return Ok(vec![Hit::new(RATELIMIT, who)]);
        }
        Ok(Vec::new())
    }
}

impl Check for RateLimitCheck {
    fn name(&self) -> &'static str {
        "ratelimit"
    }

    fn phase(&self) -> Phase {
        Phase::Rcpt
    }

    fn symbols(&self) -> &'static [&'static str] {
        &[RATELIMIT]
    }

    fn check<'a>(&'a self, view: &'a View<'a>) -> CheckFuture<'a> {
        Box::pin(async move {
            match self.decide(view).await {
                Ok(hits) => Ok(hits),
                Err(_) if self.on_error == OnError::Accept => Ok(Vec::new()),
                Err(e) => Err(CheckError {
                    check: "ratelimit",
                    reason: e.to_string(),
                }),
            }
        })
    }
}

/// Counts a message the upstream accepted against `identity`'s quotas.
/// A store failure is only logged (by the store, once per outage): the
/// message is already delivered.
pub async fn record_delivery(
    config: &Config,
    store: &dyn Store,
    identity: &str,
    recipients: usize,
) {
    let Some(r) = config.ratelimit.as_ref() else {
        return;
    };
    let (messages, per_hour) = r.limits(identity);
    if messages > 0 {
        if let Err(e) = store.incr(&messages_key(identity), 1, DAY).await {
            tracing::debug!(identity, error = %e, "message not counted");
        }
    }
    if per_hour > 0 {
        let n = i64::try_from(recipients).unwrap_or(i64::MAX);
        if let Err(e) = store.incr(&recipients_key(identity), n, HOUR).await {
            tracing::debug!(identity, error = %e, "recipients not counted");
        }
    }
}
