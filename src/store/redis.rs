//! The Redis (or Valkey) backend: state shared by every gateway node.
//!
//! URLs: `redis://` and `redis+unix://` (one server), `redis+sentinel://`
//! (the master of a Sentinel-monitored service) and `redis+cluster://` (a
//! Redis Cluster). The connection is made on first use, so a gateway starts
//! even while Redis is down: a [`ConnectionManager`] (a multiplexed
//! connection that reconnects by itself) for one server or a Sentinel master
//! (asked again after a failure, so a failover is followed), a cluster
//! connection (which follows the slot map) for a Cluster. Every operation is one round trip bounded by `store.timeout`;
//! multi-step updates are atomic (MULTI/EXEC or a Lua script). An outage is
//! logged once when it starts and once when it ends, not per operation.

use super::{GreylistOutcome, Greylisting, Increment, Store, StoreError, StoreFuture};
use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{AsyncCommands, Cmd, IntoConnectionInfo, Pipeline, RedisFuture, Script, Value};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
    if passed ~= '1' and now < first + delay then return {2, math.min(first + delay - now, delay)} end
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

/// One counter of [`Store::incr_many`] on a Cluster (each key atomic on
/// its own node). KEYS: the counter. ARGV: by, ttl in milliseconds.
const INCR_LUA: &str = r"
redis.call('SET', KEYS[1], 0, 'PX', ARGV[2], 'NX')
return redis.call('INCRBY', KEYS[1], ARGV[1])
";

/// Where the data lives.
enum Target {
    /// One server.
    Single(redis::Client),
    /// The master of a Sentinel-monitored service.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
    /// A Redis Cluster.
    Cluster(ClusterClient),
}

/// A connection to the target; commands go through it.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The Redis backend.
pub struct RedisStore {
    target: Target,
    conn: ArcSwapOption<Conn>,
    prefix: String,
    timeout: Duration,
    /// The URL without its password, for logs.
    shown_url: String,
    /// True while Redis is failing (so the outage is logged once).
    down: AtomicBool,
    greylist_script: Script,
}

impl RedisStore {
    /// A store on `url`: `redis://[user:password@]host:port[/db]`,
    /// `redis+unix:///path`, `redis+sentinel://[user:password@]host:port[,host:port…]/service[/db]`
    /// or `redis+cluster://[user:password@]host:port[,host:port…]`; nothing is
    /// connected yet. Errors say what is wrong with the URL.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<RedisStore, String> {
        let invalid = |e: &dyn std::fmt::Display| {
            format!(
                "invalid Redis URL `{}`: {e}; expected redis://host:port/db, redis+unix:///path, \
                 redis+sentinel://host:port,host:port/service or redis+cluster://host:port,host:port",
                redact(url)
            )
        };
        let target = if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            let (nodes, path) = split_nodes(rest);
            let mut path = path.split('/').filter(|p| !p.is_empty());
            let service = path
                .next()
                .ok_or_else(|| invalid(&"no service name after the sentinel addresses"))?;
            let db = match path.next() {
                Some(db) => db
                    .parse::<i64>()
                    .map_err(|_| invalid(&"the database is not a number"))?,
                None => 0,
            };
            let (userinfo, hosts) = nodes;
            // The sentinels themselves are asked without credentials; the
            // credentials and database are the data nodes'.
            let sentinels: Vec<String> = hosts.iter().map(|h| format!("redis://{h}")).collect();
            let first = format!("redis://{userinfo}{}/{db}", hosts[0]);
            let info = first.into_connection_info().map_err(|e| invalid(&e))?;
            let node = SentinelNodeConnectionInfo::default()
                .set_redis_connection_info(info.redis_settings().clone());
            let client = SentinelClient::build(
                sentinels,
                service.to_string(),
                Some(node),
                SentinelServerType::Master,
            )
            .map_err(|e| invalid(&e))?;
            Target::Sentinel(tokio::sync::Mutex::new(client))
        } else if let Some(rest) = url.strip_prefix("redis+cluster://") {
            let ((userinfo, hosts), path) = split_nodes(rest);
            if !path.trim_matches('/').is_empty() {
                return Err(invalid(&"a Cluster has only database 0; remove the path"));
            }
            let nodes: Vec<String> = hosts
                .iter()
                .map(|h| format!("redis://{userinfo}{h}"))
                .collect();
            let client = ClusterClient::builder(nodes)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(1)
                .build()
                .map_err(|e| invalid(&e))?;
            Target::Cluster(client)
        } else {
            Target::Single(redis::Client::open(url).map_err(|e| invalid(&e))?)
        };
        Ok(RedisStore {
            target,
            conn: ArcSwapOption::empty(),
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

    /// True for a Redis Cluster (no pipeline across its nodes).
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    pub(super) fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    fn manager(&self, client: redis::Client) -> redis::RedisResult<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(0)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(self.timeout);
        ConnectionManager::new_lazy_with_config(client, config)
    }

    /// The shared connection, made on first use (and, for Sentinel, again
    /// after a failure).
    async fn connection(&self) -> redis::RedisResult<Conn> {
        if let Some(c) = self.conn.load_full() {
            return Ok((*c).clone());
        }
        let conn = match &self.target {
            Target::Single(client) => Conn::Single(self.manager(client.clone())?),
            Target::Sentinel(sentinel) => {
                let master = sentinel.lock().await.async_get_client().await?;
                Conn::Single(self.manager(master)?)
            }
            Target::Cluster(client) => Conn::Cluster(client.get_async_connection().await?),
        };
        // Two first uses at once: the later one wins, both work.
        self.conn.store(Some(Arc::new(conn.clone())));
        Ok(conn)
    }

    /// Runs one operation within the timeout and keeps the outage state.
    pub(super) async fn run<T, F>(
        &self,
        op: &str,
        work: impl FnOnce(Conn) -> F,
    ) -> Result<T, StoreError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let conn = self.connection().await?;
            work(conn).await
        };
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        };
        match result {
            Ok(value) => {
                if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed) {
                    tracing::warn!(url = %self.shown_url, "store: Redis is reachable again");
                }
                Ok(value)
            }
            Err(reason) => {
                if matches!(self.target, Target::Sentinel(_)) {
                    // Ask the sentinels for the master again: it may have moved.
                    self.conn.store(None);
                }
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

/// `[userinfo@]host:port,host:port[/path]` → ((`userinfo@`, hosts), path).
fn split_nodes(rest: &str) -> ((String, Vec<String>), String) {
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], rest[slash..].to_string()),
        None => (rest, String::new()),
    };
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (authority[..=at].to_string(), &authority[at + 1..]),
        None => (String::new(), authority),
    };
    let hosts = hosts.split(',').map(str::to_string).collect();
    ((userinfo, hosts), path)
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
pub(super) fn millis(ttl: Duration) -> u64 {
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

    fn is_down(&self) -> bool {
        RedisStore::is_down(self)
    }

    fn batch<'a>(&'a self, ops: &'a [super::WriteOp]) -> StoreFuture<'a, ()> {
        Box::pin(super::redis_batch::batch(self, ops))
    }

    fn batch_then_get_many<'a>(
        &'a self,
        ops: &'a [super::WriteOp],
        keys: &'a [&'a str],
    ) -> StoreFuture<'a, super::WrittenAndRead> {
        Box::pin(super::redis_batch::batch_then_get_many(self, ops, keys))
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let key = self.key(key);
        Box::pin(async move {
            self.run("GET", |mut c| async move { c.get(key).await })
                .await
        })
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            self.run("MGET", |mut c| async move {
                // (a Cluster connection splits it by slot and merges the answers)
                redis::cmd("MGET").arg(&keys).query_async(&mut c).await
            })
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

    fn incr_many<'a>(&'a self, increments: &'a [Increment<'a>]) -> StoreFuture<'a, Vec<i64>> {
        let keys: Vec<String> = increments.iter().map(|i| self.key(i.key)).collect();
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            self.run("INCRBY batch", |mut c| async move {
                if let Conn::Cluster(cluster) = &c {
                    // Keys on several nodes, which take no cross-slot
                    // pipeline: one script per key, all sent at once.
                    let calls: Vec<_> = keys
                        .iter()
                        .zip(increments)
                        .map(|(key, i)| {
                            let mut cluster = cluster.clone();
                            let mut eval = redis::cmd("EVAL");
                            eval.arg(INCR_LUA)
                                .arg(1)
                                .arg(key)
                                .arg(i.by)
                                .arg(millis(i.ttl));
                            tokio::spawn(async move { eval.query_async::<i64>(&mut cluster).await })
                        })
                        .collect();
                    let mut values = Vec::with_capacity(calls.len());
                    for call in calls {
                        let value = call.await.map_err(|e| {
                            redis::RedisError::from((
                                redis::ErrorKind::Io,
                                "INCRBY batch task",
                                e.to_string(),
                            ))
                        })??;
                        values.push(value);
                    }
                    return Ok(values);
                }
                // One MULTI/EXEC: each window starts only for a new key.
                let mut pipe = redis::pipe();
                pipe.atomic();
                for (key, i) in keys.iter().zip(increments) {
                    pipe.cmd("SET")
                        .arg(key)
                        .arg(0)
                        .arg("PX")
                        .arg(millis(i.ttl))
                        .arg("NX")
                        .ignore()
                        .cmd("INCRBY")
                        .arg(key)
                        .arg(i.by);
                }
                pipe.query_async(&mut c).await
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
                if let Conn::Cluster(cluster) = &mut c {
                    // Every primary's keys (SCAN would see one node only).
                    let all = RoutingInfo::MultiNode((
                        MultipleNodeRoutingInfo::AllMasters,
                        Some(ResponsePolicy::CombineArrays),
                    ));
                    let mut keys = redis::cmd("KEYS");
                    keys.arg(&pattern);
                    let value = cluster.route_command(keys, all).await?;
                    let batch: Vec<String> = redis::from_redis_value(value)?;
                    found.extend(
                        batch
                            .iter()
                            .filter_map(|k| k.get(strip..))
                            .map(str::to_string),
                    );
                    found.sort();
                    found.truncate(limit);
                    return Ok(found);
                }
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
