//! The SPF/DKIM/DMARC evaluation of one message for the egress path: the
//! [`Authenticator`] of a configuration (resolver, caches, egress IPs,
//! signer) and what it asks mail-auth.

use super::cache::Caches;
use super::dmarc_walk::{self, Walk};
use super::outcome::{
    DkimEvaluation, DkimOutcome, DmarcEvaluation, DmarcOutcome, DmarcPolicy, Evaluation,
    SpfEvaluation, SpfOutcome,
};
use super::overlay::Overlay;
use super::sign::Signer;
use super::spf_syntax;
use super::spf_walk::{self, Identity};
use crate::config::{Config, ConfigError};
use mail_auth::common::to_a_label;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, DkimOutput, DkimResult, DmarcResult, MessageAuthenticator, SpfOutput,
    SpfResult,
};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The inputs of one evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The client's address (used when no egress IPs are configured).
    pub client_ip: IpAddr,
    /// The HELO name.
    pub helo: &'a str,
    /// The envelope sender, "" for `<>`.
    pub sender: &'a str,
    /// The message as received.
    pub message: &'a [u8],
}

/// The SPF/DKIM/DMARC engine of one configuration: resolver, caches, egress
/// IPs and signing keys.
pub struct Authenticator {
    pub(super) resolver: MessageAuthenticator,
    caches: Caches,
    spf_memo: spf_walk::SpfMemo,
    egress_ips: Vec<IpAddr>,
    pub(super) hostname: String,
    pub(super) signer: Option<Signer>,
    budget: Duration,
}

/// The one RFC 5322.From domain (A-label, lower case), as mail-auth takes
/// it; `None` when there is none or several (DMARC does not apply).
fn author_domain(parsed: &AuthenticatedMessage<'_>) -> Option<String> {
    let mut author: Option<String> = None;
    for from in parsed.froms() {
        let (_, domain) = from.rsplit_once('@')?;
        let domain = to_a_label(domain).into_owned();
        match &author {
            Some(a) if *a != domain => return None,
            Some(_) => {}
            None => author = Some(domain),
        }
    }
    author
}

/// DNS round trips one evaluation may wait for in the worst case before it
/// is cut short: SPF's includes, each DKIM key and the DMARC tree walk.
const BUDGET_LOOKUPS: u32 = 8;

impl Authenticator {
    /// Builds the resolver from `[dns]` (the system configuration when no
    /// nameservers are given), and loads `[dkim]` keys.
    pub fn new(config: &Config) -> Result<Authenticator, ConfigError> {
        let resolver = build_resolver(config)?;
        let signer = config
            .dkim
            .as_ref()
            .map(|d| Signer::load(config, &d.keys_dir, &d.headers))
            .transpose()?;
        Ok(Authenticator {
            resolver,
            caches: Caches::default(),
            spf_memo: spf_walk::SpfMemo::default(),
            egress_ips: config
                .outbound
                .as_ref()
                .map(|o| o.egress_ips.clone())
                .unwrap_or_default(),
            hostname: config.server.hostname.clone(),
            signer,
            budget: config
                .dns
                .timeout
                .0
                .saturating_mul(u32::try_from(config.dns.attempts.max(1)).unwrap_or(u32::MAX))
                .saturating_mul(BUDGET_LOOKUPS),
        })
    }

    /// The longest one evaluation may take: `[dns]` timeout × attempts ×
    /// 8 lookups. Past it the check fails and the message is tempfailed.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// True when a `[dkim]` key would sign mail From `domain`.
    pub fn signs_for(&self, domain: &str) -> bool {
        self.signer
            .as_ref()
            .is_some_and(|s| s.key_for(domain).is_some())
    }

    /// SPF for one IP: the MAIL FROM identity, or the HELO identity for the
    /// null sender (`sender` empty), as RFC 7208 §2.4 asks.
    pub async fn spf(&self, ip: IpAddr, helo: &str, sender: &str) -> SpfOutcome {
        SpfOutcome::from_result(self.check_spf(ip, helo, sender).await.0.result())
    }

    /// SPF for one IP, and what is broken when the result is permerror
    /// because of a record's syntax (see [`super::spf_walk`]).
    pub(super) async fn check_spf(
        &self,
        ip: IpAddr,
        helo: &str,
        sender: &str,
    ) -> (SpfOutput, Option<String>) {
        // An IPv4-mapped IPv6 client is its IPv4 address (RFC 7208 §5).
        let ip = ip.to_canonical();
        let (params, identity) = if sender.is_empty() {
            (
                SpfParameters::verify_ehlo(ip, helo, &self.hostname),
                Identity {
                    ip,
                    domain: helo,
                    helo,
                    host_domain: &self.hostname,
                    sender: format!("postmaster@{helo}"),
                },
            )
        } else {
            (
                SpfParameters::verify_mail_from(ip, helo, &self.hostname, sender),
                Identity {
                    ip,
                    domain: sender.rsplit_once('@').map_or(helo, |(_, d)| d),
                    helo,
                    host_domain: &self.hostname,
                    sender: sender.to_string(),
                },
            )
        };
        if !spf_syntax::well_formed_identity(identity.domain) {
            let output = SpfOutput::new(identity.domain.to_string()).with_result(SpfResult::None);
            return (output, None);
        }
        let mut overlay = Overlay::new(&self.caches.txt);
        let started = std::time::Instant::now();
        spf_walk::prepare(&self.resolver, &self.spf_memo, &identity, &mut overlay).await;
        let output = self
            .resolver
            .verify_spf(self.caches.params_with(&overlay, params))
            .await;
        let failed = output.result() == SpfResult::TempError;
        crate::metrics::dns("spf", started.elapsed(), failed);
        let problem = if output.result() == SpfResult::PermError {
            overlay.last_note()
        } else {
            None
        };
        (output, problem)
    }

    /// SPF, DKIM and DMARC as the recipients will see them.
    pub async fn evaluate(&self, env: Envelope<'_>) -> Evaluation {
        let spf_ips = if self.egress_ips.is_empty() {
            vec![env.client_ip]
        } else {
            self.egress_ips.clone()
        };
        let helo_identity = env.sender.is_empty();
        let mut worst: Option<(SpfOutput, Option<String>)> = None;
        let mut ips = Vec::with_capacity(spf_ips.len());
        for ip in spf_ips {
            let checked = self.check_spf(ip, env.helo, env.sender).await;
            let outcome = SpfOutcome::from_result(checked.0.result());
            ips.push((ip, outcome));
            if worst
                .as_ref()
                .is_none_or(|(w, _)| SpfOutcome::from_result(w.result()) < outcome)
            {
                worst = Some(checked);
            }
        }
        let (spf_output, problem) = worst.unwrap_or_default();
        let spf_domain = spf_output.domain().to_string();
        let spf = SpfEvaluation {
            outcome: SpfOutcome::from_result(spf_output.result()),
            domain: spf_domain.clone(),
            helo_identity,
            ips,
            problem,
        };

        // Signed as it will be delivered; delivery reuses the signature.
        let mut signing_key = None;
        let mut owned;
        let mut message = env.message;
        if let Some(signer) = &self.signer {
            let delivered = crate::message::as_delivered(&self.hostname, env.message);
            if let Some((key, header)) = signer.sign_and_keep(&delivered) {
                owned = header.into_bytes();
                owned.extend_from_slice(&delivered);
                message = &owned;
                signing_key = Some((key.domain.clone(), key.selector.clone(), key.record.clone()));
            }
        }
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            return Evaluation {
                spf,
                dkim: Vec::new(),
                dmarc: DmarcEvaluation {
                    outcome: DmarcOutcome::None,
                    from_domain: String::new(),
                    policy: DmarcPolicy::None,
                },
                signing_key,
            };
        };
        let started = std::time::Instant::now();
        let dkim_outputs = self.resolver.verify_dkim(self.caches.params(&parsed)).await;
        let failed = dkim_outputs
            .iter()
            .any(|o| matches!(o.result(), mail_auth::DkimResult::TempError(_)));
        crate::metrics::dns("dkim", started.elapsed(), failed);
        let dkim = dkim_outputs
            .iter()
            .filter_map(|o| {
                let sig = o.signature()?;
                let (outcome, reason) = match o.result() {
                    DkimResult::Pass => (DkimOutcome::Pass, String::new()),
                    DkimResult::Neutral(e) => (DkimOutcome::Neutral, e.to_string()),
                    DkimResult::Fail(e) => (DkimOutcome::Fail, e.to_string()),
                    DkimResult::PermError(e) => (DkimOutcome::PermError, e.to_string()),
                    DkimResult::TempError(e) => (DkimOutcome::TempError, e.to_string()),
                    DkimResult::None => return None,
                };
                let ours = signing_key
                    .as_ref()
                    .is_some_and(|(d, s, _)| d.eq_ignore_ascii_case(&sig.d) && s == &sig.s);
                Some(DkimEvaluation {
                    outcome,
                    domain: sig.d.to_ascii_lowercase(),
                    selector: sig.s.clone(),
                    ours,
                    reason,
                })
            })
            .collect();

        let dmarc = self
            .dmarc(&parsed, &dkim_outputs, &spf_domain, &spf_output)
            .await;
        Evaluation {
            spf,
            dkim,
            dmarc,
            signing_key,
        }
    }

    /// DMARC for the From domain of `parsed`, after our own walk of its
    /// tree (see [`super::dmarc_walk`]).
    async fn dmarc(
        &self,
        parsed: &AuthenticatedMessage<'_>,
        dkim_outputs: &[DkimOutput<'_>],
        spf_domain: &str,
        spf_output: &SpfOutput,
    ) -> DmarcEvaluation {
        let mut overlay = Overlay::new(&self.caches.txt);
        if let Some(author) = author_domain(parsed) {
            if let Walk::AuthorFailed(why) =
                dmarc_walk::prepare(&self.resolver, &self.caches, &author, &mut overlay).await
            {
                tracing::debug!(author, error = %why, "DMARC lookup failed");
                return DmarcEvaluation {
                    outcome: DmarcOutcome::TempError,
                    from_domain: author,
                    policy: DmarcPolicy::None,
                };
            }
        }
        let dmarc_params = DmarcParameters::new(parsed, dkim_outputs, spf_domain, spf_output);
        let started = std::time::Instant::now();
        let dmarc_output = self
            .resolver
            .verify_dmarc(self.caches.params_with(&overlay, dmarc_params))
            .await;
        let failed = matches!(dmarc_output.result(), mail_auth::DmarcResult::TempError(_));
        crate::metrics::dns("dmarc", started.elapsed(), failed);
        let policy = match dmarc_output.policy() {
            Policy::Reject => DmarcPolicy::Reject,
            Policy::Quarantine => DmarcPolicy::Quarantine,
            Policy::None | Policy::Unspecified => DmarcPolicy::None,
        };
        let outcome = if dmarc_output.domain().is_empty() {
            DmarcOutcome::None
        } else {
            match dmarc_output.result() {
                DmarcResult::Pass => DmarcOutcome::Pass,
                DmarcResult::TempError(_) => DmarcOutcome::TempError,
                DmarcResult::None => DmarcOutcome::None,
                DmarcResult::Fail(_) | DmarcResult::PermError(_)
                    if dmarc_output.dmarc_record().is_some() =>
                {
                    DmarcOutcome::Fail
                }
                DmarcResult::Fail(_) | DmarcResult::PermError(_) => DmarcOutcome::None,
            }
        };
        DmarcEvaluation {
            outcome,
            from_domain: dmarc_output.domain().to_string(),
            policy,
        }
    }

    /// The `DKIM-Signature: ...\r\n` header smtpgate adds to `message` (as
    /// delivered), when `[dkim]` has a key for its From domain: the one made
    /// while evaluating it, else a new one. A signing failure is logged and
    /// the message goes unsigned (never lost).
    pub fn sign(&self, message: &[u8]) -> Option<String> {
        self.signer.as_ref().and_then(|s| s.take_or_sign(message))
    }

    /// How many DKIM signatures this configuration has computed.
    pub fn signatures_made(&self) -> u64 {
        self.signer
            .as_ref()
            .map_or(0, |s| s.made.load(Ordering::Relaxed))
    }
}

/// The resolver of `[dns]`: its nameservers (UDP and TCP) with its timeout
/// and attempts, or the system configuration when none are listed.
fn build_resolver(config: &Config) -> Result<MessageAuthenticator, ConfigError> {
    // Without `[outbound]` nothing resolves: an unreadable system
    // configuration is no reason to refuse to start.
    let (resolver_config, opts) = crate::dns::resolver_config(config, config.outbound.is_some())?;
    MessageAuthenticator::new(resolver_config, opts).map_err(|e| {
        config.source.error_at_key(
            "dns",
            "nameservers",
            format!("dns: cannot build the resolver: {e}"),
        )
    })
}
