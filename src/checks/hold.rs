//! The anomaly hold at MAIL: a held identity (the login, else the client
//! IP) gets ANOMALY_HOLD, a forced tempfail, so its mail waits in its own
//! queue. One store read, in the MAIL phase's one round trip (which also
//! carries the queued writes); none for a trusted identity. Never answered
//! from a node's memo: a hold placed on one node holds on every node at
//! once.

use super::{ratelimit::identity, Check, CheckError, CheckFuture, Phase, View};
use crate::anomaly::{Anomaly, ANOMALY_HOLD};
use crate::config::{Config, OnError};
use crate::score::Hit;
use crate::store::Store;
use std::sync::Arc;

/// The hold check (MAIL phase).
pub struct HoldCheck {
    anomaly: Anomaly,
    on_error: OnError,
}

impl HoldCheck {
    /// The check, when `[anomaly] enabled`.
    pub fn from_config(config: &Config, store: Arc<dyn Store>) -> Option<HoldCheck> {
        config.anomaly.enabled.then(|| HoldCheck {
            anomaly: Anomaly::new(&config.anomaly, store),
            on_error: config.store.on_error,
        })
    }
}

impl Check for HoldCheck {
    fn name(&self) -> &'static str {
        "anomaly_hold"
    }

    fn phase(&self) -> Phase {
        Phase::Mail
    }

    fn symbols(&self) -> &'static [&'static str] {
        &[ANOMALY_HOLD]
    }

    fn reads(&self, view: &View<'_>) -> Vec<String> {
        let who = crate::anomaly::identity(&identity(view));
        self.anomaly.held_key(&who).into_iter().collect()
    }

    fn check<'a>(&'a self, view: &'a View<'a>) -> CheckFuture<'a> {
        Box::pin(async move {
            let who = crate::anomaly::identity(&identity(view));
            let held = match self.anomaly.held_key(&who) {
                None => Ok(None),
                Some(key) => super::read(view, self.anomaly.store().as_ref(), &key)
                    .await
                    .map(|value| crate::anomaly::held_from(&who, value.as_deref())),
            };
            match held {
                Ok(Some(hold)) => Ok(vec![Hit {
                    name: ANOMALY_HOLD.to_string(),
                    options: vec![who, hold.reason, hold.reference],
                    why: crate::score::Why::Plain,
                }]),
                Ok(None) => Ok(Vec::new()),
                Err(_) if self.on_error == OnError::Accept => Ok(Vec::new()),
                Err(e) => Err(CheckError::store("anomaly_hold", e)),
            }
        })
    }
}
