//! [`Store::batch`](super::Store::batch) on Redis: one pipeline on a
//! server or a Sentinel's master; on a Cluster (no cross-slot pipeline)
//! one command per op, all sent at once.

use super::redis::{millis, Conn, RedisStore};
use super::{StoreError, WriteOp};
use redis::Pipeline;

fn add(pipe: &mut Pipeline, store: &RedisStore, op: &WriteOp) {
    match op {
        WriteOp::Set(key, value, ttl) => {
            pipe.cmd("SET")
                .arg(store.key(key))
                .arg(value.as_slice())
                .arg("PX")
                .arg(millis(*ttl))
                .ignore();
        }
        WriteOp::Append(key, value, ttl) => {
            let key = store.key(key);
            pipe.cmd("APPEND")
                .arg(&key)
                .arg(value.as_slice())
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(millis(*ttl))
                .ignore();
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
                .ignore()
                .cmd("INCRBY")
                .arg(&key)
                .arg(*by)
                .ignore();
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
    pipe.cmd("MULTI").ignore();
    for op in counters {
        add(pipe, store, op);
    }
    pipe.cmd("EXEC").ignore();
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
