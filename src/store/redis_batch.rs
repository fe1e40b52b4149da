//! [`Store::batch`](super::Store::batch) on Redis: one pipeline on a
//! server or a Sentinel's master; on a Cluster (no cross-slot pipeline)
//! one command per op, all sent at once. [`batch_then_get_many`]: the
//! batch and an MGET in one pipeline.

use super::redis::{millis, Conn, RedisStore};
use super::{StoreError, WriteOp};
use redis::{Pipeline, Value};

fn add(pipe: &mut Pipeline, store: &RedisStore, op: &WriteOp) {
    match op {
        WriteOp::Set(key, value, ttl) => {
            pipe.cmd("SET")
                .arg(store.key(key))
                .arg(value.as_slice())
                .arg("PX")
                .arg(millis(*ttl));
        }
        WriteOp::Append(key, value, ttl) => {
            let key = store.key(key);
            pipe.cmd("APPEND")
                .arg(&key)
                .arg(value.as_slice())
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(millis(*ttl));
        }
        WriteOp::Incr(key, by, ttl) => {
            // Between MULTI and EXEC (see `counters`): the key cannot expire
            // between SET NX and INCRBY (that would leave a counter without
            // expiry).
            let key = store.key(key);
            pipe.cmd("SET")
                .arg(&key)
                .arg(0)
                .arg("PX")
                .arg(millis(*ttl))
                .arg("NX")
                .cmd("INCRBY")
                .arg(&key)
                .arg(*by);
        }
    }
}

/// Adds `ops`: the sets and appends as they come, then every counter in
/// one MULTI/EXEC (one transaction for the batch, not one per counter).
fn add_all(pipe: &mut Pipeline, store: &RedisStore, ops: &[WriteOp]) {
    let is_counter = |op: &&WriteOp| matches!(op, WriteOp::Incr(..));
    for op in ops.iter().filter(|op| !is_counter(op)) {
        add(pipe, store, op);
    }
    let mut counters = ops.iter().filter(is_counter).peekable();
    if counters.peek().is_none() {
        return;
    }
    pipe.cmd("MULTI");
    for op in counters {
        add(pipe, store, op);
    }
    pipe.cmd("EXEC");
}

/// The batch, within the store's timeout.
pub(super) async fn batch(store: &RedisStore, ops: &[WriteOp]) -> Result<(), StoreError> {
    if ops.is_empty() {
        return Ok(());
    }
    store
        .run("batch", |mut c| async move {
            if let Conn::Cluster(cluster) = &c {
                let calls: Vec<_> = ops
                    .iter()
                    .map(|op| {
                        let mut pipe = redis::pipe();
                        add_all(&mut pipe, store, std::slice::from_ref(op));
                        let mut cluster = cluster.clone();
                        tokio::spawn(async move { pipe.query_async::<()>(&mut cluster).await })
                    })
                    .collect();
                for call in calls {
                    call.await.map_err(|e| {
                        redis::RedisError::from((redis::ErrorKind::Io, "batch task", e.to_string()))
                    })??;
                }
                return Ok(());
            }
            let mut pipe = redis::pipe();
            add_all(&mut pipe, store, ops);
            pipe.query_async::<()>(&mut c).await
        })
        .await
}

/// `ops` and then an MGET of `keys` in one pipeline (one round trip), so
/// that the read sees the writes; a write the server refused fails only
/// the writes. On a Cluster: the batch, then the read.
pub(super) async fn batch_then_get_many(
    store: &RedisStore,
    ops: &[WriteOp],
    keys: &[&str],
) -> Result<super::WrittenAndRead, StoreError> {
    use super::Store;
    if store.is_cluster() {
        let written = batch(store, ops).await;
        return Ok((written, store.get_many(keys).await?));
    }
    let keys: Vec<String> = keys.iter().map(|k| store.key(k)).collect();
    store
        .run("MGET after writes", |mut c| async move {
            let mut pipe = redis::pipe();
            add_all(&mut pipe, store, ops);
            pipe.cmd("MGET").arg(&keys);
            let mut replies: Vec<Value> = pipe.ignore_errors().query_async(&mut c).await?;
            let read = replies.pop().unwrap_or(Value::Nil);
            let refused = replies.iter().find_map(|r| match r {
                Value::ServerError(e) => Some(e.to_string()),
                Value::Array(items) => items.iter().find_map(|i| match i {
                    Value::ServerError(e) => Some(e.to_string()),
                    _ => None,
                }),
                _ => None,
            });
            let written = match refused {
                Some(e) => Err(StoreError(format!("redis batch: {e}"))),
                None => Ok(()),
            };
            Ok((written, redis::from_redis_value(read)?))
        })
        .await
}
