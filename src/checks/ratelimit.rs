//! Sending quotas per identity (the AUTH login, else the client IP):
//! messages per day and recipients per hour. The RCPT check only reads the
//! counters; [`delivery_counts`] adds to them once the upstream accepted a
//! message (through the store's write queue, off the hot path), so refused or failed messages never use up a quota. Each
//! counter is a fixed window that starts with the first counted message.

use super::recent::Recent;
use super::{Check, CheckError, CheckFuture, Phase, View};
use crate::config::{Config, OnError, RateLimitConfig};
use crate::score::Hit;
use crate::store::{Store, WriteOp};
use std::sync::Arc;
use std::time::Duration;

/// The symbol of an identity over its quota; its subject is the identity.
pub const RATELIMIT: &str = "RATELIMIT";

const DAY: Duration = Duration::from_secs(86_400);
const HOUR: Duration = Duration::from_secs(3_600);

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

/// The counters of `identity` that have a limit: (limit, key, what a
/// message with `recipients` recipients adds to it), messages per day,
/// then recipients per hour.
fn limited(
    config: &RateLimitConfig,
    identity: &str,
    recipients: u64,
) -> impl Iterator<Item = (u64, String, u64)> {
    let (per_day, per_hour) = config.limits(identity);
    [
        (per_day, messages_key(identity), 1),
        (per_hour, recipients_key(identity), recipients),
    ]
    .into_iter()
    .filter(|(limit, _, _)| *limit > 0)
}

/// The rate-limit check (RCPT phase).
pub struct RateLimitCheck {
    config: RateLimitConfig,
    store: Arc<dyn Store>,
    recent: Arc<Recent>,
    on_error: OnError,
}

impl RateLimitCheck {
    /// The check, when `[ratelimit]` is configured.
    pub fn from_config(
        config: &Config,
        store: Arc<dyn Store>,
        recent: Arc<Recent>,
    ) -> Option<RateLimitCheck> {
        config.ratelimit.as_ref().map(|r| RateLimitCheck {
            config: r.clone(),
            store,
            recent,
            on_error: config.store.on_error,
        })
    }

    /// The counter at `key` (limit `limit`; `need` more for this message,
    /// of which `add` with this RCPT): the phase's read, else this node's
    /// memo of it, else the store.
    async fn count(
        &self,
        view: &View<'_>,
        key: &str,
        (limit, need, add): (u64, u64, u64),
    ) -> Result<u64, crate::store::StoreError> {
        if view.fetched.get(key).is_none() {
            if let Some(known) = self.recent.spend(key, limit, need, add) {
                return Ok(known);
            }
        }
        let value = super::read(view, self.store.as_ref(), key).await?;
        let count = value
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<i64>().ok())
            .map_or(0, |n| u64::try_from(n).unwrap_or(0));
        self.recent.read_counter(key, count, add);
        Ok(count)
    }

    async fn decide(&self, view: &View<'_>) -> Result<Vec<Hit>, crate::store::StoreError> {
        let who = identity(view);
        let (messages, recipients) = self.config.limits(&who);
        let this_message = view.recipients.len() as u64 + 1;
        let first = u64::from(view.recipients.is_empty());
        let over = if messages > 0
            && self
                .count(view, &messages_key(&who), (messages, 1, first))
                .await?
                >= messages
        {
            true
        } else if recipients > 0 {
            let key = recipients_key(&who);
            let sent = self
                .count(view, &key, (recipients, this_message, 1))
                .await?;
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

    fn reads(&self, view: &View<'_>) -> Vec<String> {
        let who = identity(view);
        let this_message = view.recipients.len() as u64 + 1;
        limited(&self.config, &who, this_message)
            .filter(|(limit, key, need)| self.recent.counter(key, *limit, *need).is_none())
            .map(|(_, key, _)| key)
            .collect()
    }

    fn check<'a>(&'a self, view: &'a View<'a>) -> CheckFuture<'a> {
        Box::pin(async move {
            match self.decide(view).await {
                Ok(hits) => Ok(hits),
                Err(_) if self.on_error == OnError::Accept => Ok(Vec::new()),
                Err(e) => Err(CheckError::store("ratelimit", e)),
            }
        })
    }
}

/// True when a counter of `identity` may be near its limit (this node's
/// memo does not hold it in the lower half): its updates should reach
/// the other nodes at once ([`crate::store::queue::WriteQueue::push_urgent`]).
pub fn near_limit(config: &Config, recent: &Recent, identity: &str) -> bool {
    config.ratelimit.as_ref().is_some_and(|r| {
        limited(r, identity, 1)
            .any(|(limit, key, need)| recent.counter(&key, limit, need).is_none())
    })
}

/// The counter updates of a message the upstream accepted for
/// `identity`, for the store's write queue: nobody waits for them (the
/// message is delivered), and a store failure is only counted.
pub fn delivery_counts(config: &Config, identity: &str, recipients: usize) -> Vec<WriteOp> {
    let Some(r) = config.ratelimit.as_ref() else {
        return Vec::new();
    };
    let (messages, per_hour) = r.limits(identity);
    let mut ops = Vec::with_capacity(2);
    if messages > 0 {
        ops.push(WriteOp::Incr(messages_key(identity), 1, DAY));
    }
    if per_hour > 0 {
        let n = i64::try_from(recipients).unwrap_or(i64::MAX);
        ops.push(WriteOp::Incr(recipients_key(identity), n, HOUR));
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Address;
    use crate::store::memory::MemoryStore;
    use std::path::Path;

    const MINIMAL: &str = "[server]\nhostname = \"gw.test\"\nlisten = [\"127.0.0.1:2525\"]\n[upstream]\naddress = \"127.0.0.1:10025\"\n";

    fn view<'a>(login: Option<&'a str>, rcpt: &'a Address) -> View<'a> {
        View {
            client_ip: [192, 0, 2, 1].into(),
            helo: "client.example.test",
            tls: true,
            login,
            trusted: false,
            sender: None,
            recipient: Some(rcpt),
            recipients: &[],
            message: None,
            parsed: None,
            fetched: crate::checks::Fetched::none(),
        }
    }

    #[tokio::test]
    async fn message_501_of_the_day_for_one_login_is_over_and_another_login_is_not() {
        let config =
            Config::from_text(Path::new("gw.toml"), &format!("{MINIMAL}[ratelimit]\n")).unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let check = RateLimitCheck::from_config(
            &config,
            Arc::clone(&store),
            Arc::new(Recent::none(Arc::clone(&store))),
        )
        .unwrap();
        let rcpt = Address {
            local: "b".into(),
            domain: "example.net".into(),
        };
        for n in 1..=500 {
            let v = view(Some("alice"), &rcpt);
            assert!(check.check(&v).await.unwrap().is_empty(), "message {n}");
            let counts = delivery_counts(&config, &identity(&v), 1);
            store.batch(&counts).await.unwrap();
        }
        let hits = check.check(&view(Some("alice"), &rcpt)).await.unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].name, RATELIMIT);
        assert_eq!(hits[0].subject(), "alice");
        assert!(check
            .check(&view(Some("bob"), &rcpt))
            .await
            .unwrap()
            .is_empty());
        // The client IP is not the identity of a login.
        assert!(check.check(&view(None, &rcpt)).await.unwrap().is_empty());
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        let text = format!(
            "{MINIMAL}[ratelimit]\nrecipients_per_hour = 50\n[ratelimit.overrides]\nbig = {{ messages_per_day = 9000 }}\n\"Shop@Example.TEST\" = {{ messages_per_day = 1000 }}\n"
        );
        let config = Config::from_text(Path::new("gw.toml"), &text).unwrap();
        let r = config.ratelimit.unwrap();
        assert_eq!(r.limits("big"), (9000, 50));
        assert_eq!(r.limits("shop@example.test"), (1000, 50));
        assert_eq!(r.limits("small"), (500, 50));
        let err = Config::from_text(
            Path::new("gw.toml"),
            &format!("{MINIMAL}[ratelimit]\nmessages_per_hour = 5\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("gw.toml:7:1: unknown field `messages_per_hour`"),
            "{err}"
        );
    }
}
