//! reject_unverified_sender: an SMTP callout to the sender domain's MX —
//! `MAIL FROM:<>`, `RCPT TO:<sender>`, `QUIT` — with results cached in the
//! store (accepted 31 days, refused 3 days, tempfails not cached) and at
//! most `callout_concurrency` callouts per destination at once. A 5xx is a
//! refusal (550 5.1.7); a 4xx, silence or no MX to reach is a tempfail
//! (450 4.1.7), never a refusal. A sender found deliverable is also kept
//! in this process for a minute, so that a busy sender's every MAIL does
//! not ask a shared store again for what it answered a moment ago.

use super::{Check, CheckError, CheckFuture, Phase, View};
use crate::config::{Config, OnError};
use crate::dns::Lookup;
use crate::score::{Hit, Why};
use crate::store::Store;
use dashmap::DashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

const KEEP_OK: Duration = Duration::from_secs(31 * 86_400);
const KEEP_BAD: Duration = Duration::from_secs(3 * 86_400);
/// How long this process trusts a deliverable sender without the store.
const MEMO_FOR: Duration = Duration::from_secs(60);

pub use crate::config::CalloutScope as Scope;

/// What the MX said.
enum Verdict {
    Accepted,
    Refused(String),
    Unknown(String),
}

/// The callout check.
pub struct CalloutCheck {
    dns: Arc<dyn Lookup>,
    store: Arc<dyn Store>,
    scope: Scope,
    local_domains: Arc<crate::maps::Domains>,
    port: u16,
    timeout: Duration,
    helo: String,
    per_destination: usize,
    busy: DashMap<String, Arc<Semaphore>>,
    on_error: OnError,
    /// Deliverable senders (their cache keys), each for [`MEMO_FOR`].
    memo: crate::dns::Expiring<String, ()>,
}

impl CalloutCheck {
    /// From `[envelope]`; `None` when the scope is "none".
    pub fn new(
        config: &Config,
        dns: &Arc<dyn Lookup>,
        store: &Arc<dyn Store>,
        local_domains: &Arc<crate::maps::Domains>,
    ) -> Option<CalloutCheck> {
        let env = &config.envelope;
        (env.reject_unverified_sender != Scope::None).then(|| CalloutCheck {
            dns: Arc::clone(dns),
            store: Arc::clone(store),
            scope: env.reject_unverified_sender,
            local_domains: Arc::clone(local_domains),
            port: env.callout_port,
            timeout: env.callout_timeout.0,
            helo: config.server.hostname.clone(),
            per_destination: env.callout_concurrency.max(1),
            busy: DashMap::new(),
            on_error: config.store.on_error,
            memo: crate::dns::Expiring::default(),
        })
    }

    /// True when `key`'s sender was found deliverable in the last minute.
    fn memo_holds(&self, key: &str) -> bool {
        self.memo.get(key).is_some()
    }

    fn remember_ok(&self, key: String) {
        self.memo.insert(key, (), Some(Instant::now() + MEMO_FOR));
    }

    /// True when `sender` is verified (its domain is not empty, and is
    /// ours when the scope is local).
    fn in_scope(&self, sender: &crate::address::Address) -> bool {
        let domain = sender.domain.trim_end_matches('.').to_ascii_lowercase();
        !domain.is_empty() && (self.scope != Scope::Local || self.local_domains.contains(&domain))
    }

    async fn verify(&self, sender: &str, domain: &str) -> Result<Verdict, CheckError> {
        let fail = |reason: String| CheckError::new("callout", reason);
        let mut hosts = match self.dns.mx(domain).await.map_err(|e| fail(e.to_string()))? {
            Some(mx) => mx,
            None => vec![(0, domain.to_string())],
        };
        hosts.sort();
        let Some((_, host)) = hosts.into_iter().find(|(_, h)| !h.is_empty()) else {
            return Ok(Verdict::Refused("null MX".into()));
        };
        let Some(ips) = self.dns.ips(&host).await.map_err(|e| fail(e.to_string()))? else {
            return Ok(Verdict::Unknown(format!("{host} has no address")));
        };
        let slot = self
            .busy
            .entry(host.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_destination)))
            .clone();
        let Ok(_permit) = tokio::time::timeout(self.timeout, slot.acquire_owned()).await else {
            return Ok(Verdict::Unknown(format!("too many callouts to {host}")));
        };
        let addr = SocketAddr::new(ips[0], self.port);
        match tokio::time::timeout(self.timeout, self.dialogue(addr, sender)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Ok(Verdict::Unknown(format!("{host}: {e}"))),
            Err(_) => Ok(Verdict::Unknown(format!("{host}: no answer in time"))),
        }
    }

    async fn dialogue(&self, addr: SocketAddr, sender: &str) -> std::io::Result<Verdict> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (rd, mut wr) = stream.into_split();
        let mut rd = BufReader::new(rd);
        let reply = async |rd: &mut BufReader<tokio::net::tcp::OwnedReadHalf>| -> std::io::Result<(u16, String)> {
            // A hostile MX may stream without newlines: 512 octets a line
            // (RFC 5321 §4.5.3.1.5), a little slack, 100 lines a reply.
            let mut text = String::new();
            for _ in 0..100 {
                let mut line = String::new();
                let n = (&mut *rd).take(2048).read_line(&mut line).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                if !line.ends_with('\n') {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "reply line too long",
                    ));
                }
                text.push_str(line.trim_end());
                if line.as_bytes().get(3) != Some(&b'-') {
                    let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                    return Ok((code, text));
                }
                text.push(' ');
            }
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "reply too long",
            ))
        };
        let (code, text) = reply(&mut rd).await?;
        if code != 220 {
            return Ok(classify(code, text));
        }
        for command in [
            format!("EHLO {}\r\n", self.helo),
            "MAIL FROM:<>\r\n".to_string(),
        ] {
            wr.write_all(command.as_bytes()).await?;
            let (code, text) = reply(&mut rd).await?;
            if code / 100 != 2 {
                return Ok(classify(code, text));
            }
        }
        wr.write_all(format!("RCPT TO:<{sender}>\r\n").as_bytes())
            .await?;
        let (code, text) = reply(&mut rd).await?;
        let _ = wr.write_all(b"QUIT\r\n").await;
        Ok(classify(code, text))
    }
}

/// The cache key of a sender's callout result.
fn cache_key(address: &str) -> String {
    format!("callout:{}", address.to_ascii_lowercase())
}

fn classify(code: u16, text: String) -> Verdict {
    match code / 100 {
        2 => Verdict::Accepted,
        5 => Verdict::Refused(text),
        _ => Verdict::Unknown(text),
    }
}

impl Check for CalloutCheck {
    fn name(&self) -> &'static str {
        "callout"
    }
    fn phase(&self) -> Phase {
        Phase::Mail
    }
    fn symbols(&self) -> &'static [&'static str] {
        &["reject_unverified_sender"]
    }
    fn reads(&self, view: &View<'_>) -> Vec<String> {
        match view.sender {
            Some(sender) if self.in_scope(sender) => {
                let key = cache_key(&sender.to_string());
                if self.memo_holds(&key) {
                    Vec::new()
                } else {
                    vec![key]
                }
            }
            _ => Vec::new(),
        }
    }
    fn check<'a>(&'a self, view: &'a View<'a>) -> CheckFuture<'a> {
        Box::pin(async move {
            let Some(sender) = view.sender.filter(|s| self.in_scope(s)) else {
                return Ok(Vec::new());
            };
            let domain = sender.domain.trim_end_matches('.').to_ascii_lowercase();
            let address = sender.to_string();
            let key = cache_key(&address);
            if self.memo_holds(&key) {
                return Ok(Vec::new());
            }
            let cached = match super::read(view, self.store.as_ref(), &key).await {
                Ok(v) => v,
                Err(_) if self.on_error == OnError::Accept => None,
                Err(e) => return Err(CheckError::store("callout", e)),
            };
            let hit = |subject: String| Hit::new("reject_unverified_sender", subject);
            match cached.as_deref() {
                Some(b"ok") => {
                    self.remember_ok(key);
                    return Ok(Vec::new());
                }
                Some(_) => return Ok(vec![hit(address)]),
                None => {}
            }
            match self.verify(&address, &domain).await? {
                Verdict::Accepted => {
                    let _ = self.store.set(&key, b"ok", KEEP_OK).await;
                    self.remember_ok(key);
                    Ok(Vec::new())
                }
                Verdict::Refused(why) => {
                    tracing::info!(sender = %address, reply = %why, "callout: sender refused");
                    let _ = self.store.set(&key, b"bad", KEEP_BAD).await;
                    Ok(vec![hit(address)])
                }
                Verdict::Unknown(why) => {
                    tracing::info!(sender = %address, reason = %why, "callout: no verdict");
                    Ok(vec![hit(address).because(Why::Temporary)])
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Address;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn a_deliverable_sender_is_not_read_from_the_store_again_within_the_minute() {
        let text = "[server]\nhostname = \"gw.test\"\nlisten = [\"127.0.0.1:2525\"]\n\
                    [upstream]\naddress = \"127.0.0.1:10025\"\n\
                    [dns]\nnameservers = [\"127.0.0.1:9\"]\n\
                    [envelope]\nreject_unverified_sender = \"all\"\n";
        let config = Config::from_text(std::path::Path::new("gw.toml"), text).unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let dns: Arc<dyn Lookup> =
            Arc::new(crate::dns::HickoryLookup::new(&config, false).unwrap());
        let domains = Arc::new(crate::maps::Domains::new(&[], None).unwrap());
        let check = CalloutCheck::new(&config, &dns, &store, &domains).unwrap();
        let day = Duration::from_secs(86_400);
        store
            .set("callout:good@example.test", b"ok", day)
            .await
            .unwrap();
        store
            .set("callout:bad@example.test", b"bad", day)
            .await
            .unwrap();
        let (good, bad) = (
            Address {
                local: "Good".into(),
                domain: "example.test".into(),
            },
            Address {
                local: "bad".into(),
                domain: "example.test".into(),
            },
        );
        let client = View::new(
            "192.0.2.1".parse().unwrap(),
            "client.example.test",
            false,
            None,
            &config.relay,
        );
        let (good_view, bad_view) = (
            client.with_transaction(&good, &[]),
            client.with_transaction(&bad, &[]),
        );
        assert_eq!(check.reads(&good_view), ["callout:good@example.test"]);
        assert!(check.check(&good_view).await.unwrap().is_empty());
        // Known deliverable: the phase reads nothing for it now, and the
        // check answers from the memo even when the store says otherwise.
        assert!(check.reads(&good_view).is_empty());
        store
            .set("callout:good@example.test", b"bad", day)
            .await
            .unwrap();
        assert!(check.check(&good_view).await.unwrap().is_empty());
        // A refused sender is never kept here: the store decides each time.
        let hits = check.check(&bad_view).await.unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].name, "reject_unverified_sender");
        assert_eq!(check.reads(&bad_view), ["callout:bad@example.test"]);
    }
}
