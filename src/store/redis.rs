//! The Redis (or Valkey) backend: state shared by every gateway node.
//!
//! One [`ConnectionManager`] (a multiplexed connection that reconnects by
//! itself) is created on first use, so a gateway starts even while Redis is
//! down. Every operation is one round trip bounded by `store.timeout`;
//! multi-step updates are atomic (MULTI/EXEC or a Lua script). An outage is
//! logged once when it starts and once when it ends, not per operation.

use super::{GreylistOutcome, Greylisting, Store, StoreError, StoreFuture};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Most keys one SCAN call is asked to look at.
const SCAN_BATCH: usize = 512;

/// The greylisting decision of [`super::Greylisting`], server-side.
/// KEYS: triplet, client counter. ARGV: now, delay, retry_window, max_age,
/// auto_whitelist_after. Returns {0, 0} whitelisted, {1, passes} passed,
/// {2, seconds} wait.
const GREYLIST_LUA: &str = r"
local count = tonumber(redis.call('GET', KEYS[2]) or '0')
if count == nil then return redis.error_reply('client counter is not an integer') end
local now = tonumber(ARGV[1])
local delay = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local max_age = tonumber(ARGV[4])
local awl = tonumber(ARGV[5])
if awl > 0 and count >= awl then return {0, 0} end
local v = redis.call('GET', KEYS[1])
if v then
  local first_text, passed = string.match(v, '^(%d+):([01])$')
  if first_text then
    local first = tonumber(first_text)
    if passed ~= '1' and now < first + delay then return {2, first + delay - now} end
    if passed == '1' or now - first <= window then
      redis.call('SET', KEYS[1], first_text .. ':1', 'EX', max_age)
      local c = redis.call('INCR', KEYS[2])
      redis.call('EXPIRE', KEYS[2], max_age)
      return {1, c}
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':0', 'EX', window)
return {2, delay}
";

/// The Redis backend.
pub struct RedisStore {
    client: redis::Client,
    manager: OnceLock<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    /// The URL without its password, for logs.
    shown_url: String,
    /// True while Redis is failing (so the outage is logged once).
    down: AtomicBool,
    greylist_script: Script,
}

impl RedisStore {
    /// A store on `url` (`redis://[user:password@]host:port[/db]` or
    /// `redis+unix:///path`); nothing is connected yet. Errors say what is
    /// wrong with the URL.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<RedisStore, String> {
        let client = redis::Client::open(url).map_err(|e| {
            format!(
                "invalid Redis URL `{}`: {e}; expected redis://host:port/db or redis+unix:///path",
                redact(url)
            )
        })?;
        Ok(RedisStore {
            client,
            manager: OnceLock::new(),
            prefix: prefix.to_string(),
            timeout,
            shown_url: redact(url),
            down: AtomicBool::new(false),
            greylist_script: Script::new(GREYLIST_LUA),
        })
    }

    /// True while the last operation failed.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// The shared connection, created (not yet connected) on first use.
    fn connection(&self) -> Result<ConnectionManager, redis::RedisError> {
        if let Some(m) = self.manager.get() {
            return Ok(m.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(0)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(self.timeout);
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        // Two first uses at once: one manager wins, the other is dropped.
        let _ = self.manager.set(manager);
        Ok(self.manager.get().cloned().expect("set above"))
    }

    /// Runs one operation within the timeout and keeps the outage state.
    async fn run<T, F>(
        &self,
        op: &str,
        work: impl FnOnce(ConnectionManager) -> F,
    ) -> Result<T, StoreError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let result = match self.connection() {
            Ok(conn) => match tokio::time::timeout(self.timeout, work(conn)).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {:?}", self.timeout)),
            },
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(value) => {
                if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed) {
                    tracing::warn!(url = %self.shown_url, "store: Redis is reachable again");
                }
                Ok(value)
            }
            Err(reason) => {
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        url = %self.shown_url,
                        op,
                        error = %reason,
                        "store: Redis failed; checks using it follow store.on_error until it is back \
                         (logged once per outage)"
                    );
                }
                Err(StoreError(format!("redis {op}: {reason}")))
            }
        }
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Milliseconds for PX/PEXPIRE, at least 1.
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Escapes SCAN MATCH glob characters.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let key = self.key(key);
        Box::pin(async move {
            self.run("GET", |mut c| async move { c.get(key).await })
                .await
        })
    }

    fn set<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()> {
        let key = self.key(key);
        Box::pin(async move {
            self.run("SET", |mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("PX")
                    .arg(millis(ttl))
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        let key = self.key(key);
        Box::pin(async move {
            self.run("DEL", |mut c| async move {
                let n: i64 = c.del(key).await?;
                Ok(n > 0)
            })
            .await
        })
    }

    fn incr<'a>(&'a self, key: &'a str, by: i64, ttl: Duration) -> StoreFuture<'a, i64> {
        let key = self.key(key);
        Box::pin(async move {
            self.run("INCRBY", |mut c| async move {
                // Start the window only for a new key; one MULTI/EXEC.
                let (n,): (i64,) = redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg(&key)
                    .arg(0)
                    .arg("PX")
                    .arg(millis(ttl))
                    .arg("NX")
                    .ignore()
                    .cmd("INCRBY")
                    .arg(&key)
                    .arg(by)
                    .query_async(&mut c)
                    .await?;
                Ok(n)
            })
            .await
        })
    }

    fn keys<'a>(&'a self, prefix: &'a str, limit: usize) -> StoreFuture<'a, Vec<String>> {
        let pattern = format!("{}*", glob_escape(&self.key(prefix)));
        let strip = self.prefix.len();
        Box::pin(async move {
            self.run("SCAN", |mut c| async move {
                let mut found = Vec::new();
                let mut cursor: u64 = 0;
                loop {
                    let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(SCAN_BATCH)
                        .query_async(&mut c)
                        .await?;
                    found.extend(
                        batch
                            .iter()
                            .filter_map(|k| k.get(strip..))
                            .map(str::to_string),
                    );
                    if next == 0 || found.len() >= limit {
                        break;
                    }
                    cursor = next;
                }
                found.sort();
                found.dedup();
                found.truncate(limit);
                Ok(found)
            })
            .await
        })
    }

    fn greylist<'a>(&'a self, r: &'a Greylisting<'a>) -> StoreFuture<'a, GreylistOutcome> {
        let triplet = self.key(r.triplet_key);
        let client = self.key(r.client_key);
        Box::pin(async move {
            self.run("greylist script", |mut c| async move {
                let (kind, n): (i64, i64) = self
                    .greylist_script
                    .key(triplet)
                    .key(client)
                    .arg(r.now)
                    .arg(r.delay)
                    .arg(r.retry_window)
                    .arg(r.max_age)
                    .arg(r.auto_whitelist_after)
                    .invoke_async(&mut c)
                    .await?;
                let n = u64::try_from(n).unwrap_or(0);
                Ok(match kind {
                    0 => GreylistOutcome::Whitelisted,
                    1 => GreylistOutcome::Passed(n),
                    _ => GreylistOutcome::Wait(n),
                })
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_passwords_hidden() {
        assert!(RedisStore::new("redis://127.0.0.1:6379/0", "p:", Duration::from_secs(1)).is_ok());
        let err = RedisStore::new("http://127.0.0.1", "p:", Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(
            err.starts_with("invalid Redis URL `http://127.0.0.1`"),
            "{err}"
        );
        assert_eq!(redact("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn scan_patterns_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]"), "a\\*b\\?\\[c\\]");
    }
}
