//! The AUTH lockout: failed logins counted per client (an IPv4 address or
//! an IPv6 /64) in the Store, so every node agrees; past `auth.max_failures`
//! the client is locked out for `auth.lockout`, even with the right
//! password. The session asks; the keys live here.

use crate::admission::ClientKey;
use crate::config::AuthConfig;
use crate::store::{Store, StoreError};
use std::net::IpAddr;

/// One client's lockout state in the store.
pub struct Lockout<'a> {
    store: &'a dyn Store,
    config: &'a AuthConfig,
    /// Whom failures are counted against.
    pub client: String,
}

/// What a reserved attempt allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Check the password; this is attempt `n`.
    Allowed(i64),
    /// Over the limit already.
    LockedOut,
}

impl<'a> Lockout<'a> {
    /// The lockout of the client at `ip`.
    pub fn new(store: &'a dyn Store, config: &'a AuthConfig, ip: IpAddr) -> Lockout<'a> {
        Lockout {
            store,
            config,
            // The same key as the per-client connection limits.
            client: ClientKey::of(ip).to_string(),
        }
    }

    fn lock_key(&self) -> String {
        format!("authlock:{}", self.client)
    }

    fn count_key(&self) -> String {
        format!("authfail:{}", self.client)
    }

    /// Whether the client is locked out now.
    pub async fn locked(&self) -> Result<bool, StoreError> {
        Ok(self.store.get(&self.lock_key()).await?.is_some())
    }

    /// Reserves an attempt before the hash is checked, so parallel guesses
    /// (several connections staging them) can never exceed max_failures.
    pub async fn reserve(&self) -> Result<Attempt, StoreError> {
        let n = self
            .store
            .incr(&self.count_key(), 1, self.config.lockout.0)
            .await?;
        Ok(if n > self.config.max_failures {
            Attempt::LockedOut
        } else {
            Attempt::Allowed(n)
        })
    }

    /// A successful login: the reservation is given back.
    pub async fn succeeded(&self) {
        let key = self.count_key();
        if let Ok(n) = self.store.incr(&key, -1, self.config.lockout.0).await {
            if n <= 0 {
                let _ = self.store.delete(&key).await;
            }
        }
    }

    /// A failed attempt `n`: true when it locks the client out (stored for
    /// `auth.lockout`).
    pub async fn failed(&self, n: i64) -> bool {
        if n < self.config.max_failures {
            return false;
        }
        if let Err(e) = self
            .store
            .set(&self.lock_key(), b"1", self.config.lockout.0)
            .await
        {
            tracing::warn!(client = %self.client, error = %e, "AUTH: lockout not stored");
        }
        tracing::warn!(client = %self.client, failures = n, lockout_secs = self.config.lockout.0.as_secs(), "AUTH lockout: too many failed attempts");
        true
    }
}
