//! SPF (RFC 7208), DKIM (RFC 6376) and DMARC (RFC 7489) for the egress path,
//! DKIM signing and the Authentication-Results header (RFC 8601). The only
//! importer of `mail_auth`: the rest of smtpgate sees plain values.
//!
//! Recipients judge a message from the upstream MTA's egress IPs, not from
//! the customer's address, so SPF is evaluated for each `[outbound]
//! egress_ips` address (the client IP when empty) and DMARC from the worst of
//! those results plus the DKIM signatures present — including the one
//! smtpgate will add when `[dkim]` holds a key for the From domain.

use crate::base64::encode as base64;
use crate::config::{Config, ConfigError};
use crate::score::Breakdown;
use dashmap::DashMap;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, Parameters, RecordSet,
    ResolverCache, SpfOutput, SpfResult, Txt, MX,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An SPF result (RFC 7208 §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SpfOutcome {
    /// The IP is authorised.
    Pass,
    /// No SPF record.
    None,
    /// `?` matched.
    Neutral,
    /// `~` matched.
    SoftFail,
    /// The record is broken (syntax, too many lookups).
    PermError,
    /// `-` matched: not authorised.
    Fail,
    /// A DNS failure: try again later.
    TempError,
}

impl SpfOutcome {
    fn from_result(r: SpfResult) -> SpfOutcome {
        match r {
            SpfResult::Pass => SpfOutcome::Pass,
            SpfResult::Fail => SpfOutcome::Fail,
            SpfResult::SoftFail => SpfOutcome::SoftFail,
            SpfResult::Neutral => SpfOutcome::Neutral,
            SpfResult::TempError => SpfOutcome::TempError,
            SpfResult::PermError => SpfOutcome::PermError,
            SpfResult::None => SpfOutcome::None,
        }
    }

    /// The RFC 8601 result keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            SpfOutcome::Pass => "pass",
            SpfOutcome::None => "none",
            SpfOutcome::Neutral => "neutral",
            SpfOutcome::SoftFail => "softfail",
            SpfOutcome::PermError => "permerror",
            SpfOutcome::Fail => "fail",
            SpfOutcome::TempError => "temperror",
        }
    }
}

/// The SPF verdict for the egress path: the worst result over the egress
/// IPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfVerdict {
    /// The worst result.
    pub outcome: SpfOutcome,
    /// The domain checked (MAIL FROM domain, or the HELO name for `<>`).
    pub domain: String,
    /// True when the identity is the HELO name (null sender).
    pub helo_identity: bool,
    /// Every IP evaluated with its result.
    pub ips: Vec<(IpAddr, SpfOutcome)>,
}

impl SpfVerdict {
    /// The IPs that did not pass, in `ip4:`/`ip6:` mechanism form.
    pub fn unauthorised_mechanisms(&self) -> Vec<String> {
        self.ips
            .iter()
            .filter(|(_, o)| *o != SpfOutcome::Pass)
            .map(|(ip, _)| mechanism(*ip))
            .collect()
    }
}

/// `ip4:192.0.2.1` / `ip6:2001:db8::1`.
pub fn mechanism(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip4:{v4}"),
        IpAddr::V6(v6) => format!("ip6:{v6}"),
    }
}

/// A DKIM result for one signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimOutcome {
    /// Verified.
    Pass,
    /// Bad signature or body hash.
    Fail,
    /// Unusable signature or key record (missing, malformed, revoked).
    PermError,
    /// A DNS failure.
    TempError,
    /// The body hash does not match (the body changed after signing);
    /// mail-auth reports it as neutral, before looking up the key.
    Neutral,
}

/// One DKIM signature's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimVerdict {
    /// The result.
    pub outcome: DkimOutcome,
    /// `d=`.
    pub domain: String,
    /// `s=`.
    pub selector: String,
    /// True for the signature smtpgate will add.
    pub ours: bool,
    /// Why it did not pass ("" when it passed).
    pub reason: String,
}

/// A DMARC result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcOutcome {
    /// Aligned SPF or DKIM passed.
    Pass,
    /// Neither aligned SPF nor aligned DKIM passed.
    Fail,
    /// A DNS failure.
    TempError,
    /// No DMARC record, or no single From domain.
    None,
}

/// The DMARC policy published by the From domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcPolicy {
    /// `p=reject`.
    Reject,
    /// `p=quarantine`.
    Quarantine,
    /// `p=none` (or no record).
    None,
}

impl DmarcPolicy {
    /// The tag as published.
    pub fn tag(self) -> &'static str {
        match self {
            DmarcPolicy::Reject => "p=reject",
            DmarcPolicy::Quarantine => "p=quarantine",
            DmarcPolicy::None => "p=none",
        }
    }
}

/// The DMARC verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcVerdict {
    /// The result.
    pub outcome: DmarcOutcome,
    /// The RFC 5322 From domain ("" when there is none).
    pub from_domain: String,
    /// Its policy.
    pub policy: DmarcPolicy,
}

/// Everything [`Authenticator::evaluate`] found about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// SPF over the egress IPs.
    pub spf: SpfVerdict,
    /// Each DKIM signature, ours first when we sign.
    pub dkim: Vec<DkimVerdict>,
    /// DMARC.
    pub dmarc: DmarcVerdict,
    /// The key smtpgate signs with for this From domain, if any:
    /// (domain, selector, TXT record to publish).
    pub signing_key: Option<(String, String, String)>,
}

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
    resolver: MessageAuthenticator,
    caches: Caches,
    egress_ips: Vec<IpAddr>,
    hostname: String,
    signer: Option<Signer>,
    budget: Duration,
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
        SpfOutcome::from_result(self.check_spf(ip, helo, sender).await.result())
    }

    async fn check_spf(&self, ip: IpAddr, helo: &str, sender: &str) -> SpfOutput {
        let params = if sender.is_empty() {
            SpfParameters::verify_ehlo(ip, helo, &self.hostname)
        } else {
            SpfParameters::verify_mail_from(ip, helo, &self.hostname, sender)
        };
        self.resolver.verify_spf(self.caches.params(params)).await
    }

    /// SPF, DKIM and DMARC as the recipients will see them.
    pub async fn evaluate(&self, env: Envelope<'_>) -> Evaluation {
        let spf_ips = if self.egress_ips.is_empty() {
            vec![env.client_ip]
        } else {
            self.egress_ips.clone()
        };
        let helo_identity = env.sender.is_empty();
        let mut worst: Option<SpfOutput> = None;
        let mut ips = Vec::with_capacity(spf_ips.len());
        for ip in spf_ips {
            let output = self.check_spf(ip, env.helo, env.sender).await;
            let outcome = SpfOutcome::from_result(output.result());
            ips.push((ip, outcome));
            if worst
                .as_ref()
                .is_none_or(|w| SpfOutcome::from_result(w.result()) < outcome)
            {
                worst = Some(output);
            }
        }
        let spf_output = worst.unwrap_or_default();
        let spf_domain = spf_output.domain().to_string();
        let spf = SpfVerdict {
            outcome: SpfOutcome::from_result(spf_output.result()),
            domain: spf_domain.clone(),
            helo_identity,
            ips,
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
                dmarc: DmarcVerdict {
                    outcome: DmarcOutcome::None,
                    from_domain: String::new(),
                    policy: DmarcPolicy::None,
                },
                signing_key,
            };
        };
        let dkim_outputs = self.resolver.verify_dkim(self.caches.params(&parsed)).await;
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
                Some(DkimVerdict {
                    outcome,
                    domain: sig.d.to_ascii_lowercase(),
                    selector: sig.s.clone(),
                    ours,
                    reason,
                })
            })
            .collect();

        let dmarc_params = DmarcParameters::new(&parsed, &dkim_outputs, &spf_domain, &spf_output);
        let dmarc_output = self
            .resolver
            .verify_dmarc(self.caches.params(dmarc_params))
            .await;
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
        Evaluation {
            spf,
            dkim,
            dmarc: DmarcVerdict {
                outcome,
                from_domain: dmarc_output.domain().to_string(),
                policy,
            },
            signing_key,
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

/// The `Authentication-Results: ...\r\n` header (RFC 8601) for the
/// authentication symbols in `breakdown`, or `None` when there are none.
/// Each symbol's first option is the domain it is about (DKIM: `d:s`).
pub fn authentication_results(hostname: &str, breakdown: &Breakdown) -> Option<String> {
    let mut spf = None;
    let mut dkim = Vec::new();
    let mut dmarc = None;
    for s in breakdown.symbols() {
        let hit = &s.hit;
        let name = hit.name.as_str();
        if let Some(result) = name.strip_prefix("R_SPF_") {
            let keyword = match result {
                "ALLOW" => "pass",
                "FAIL" => "fail",
                "SOFTFAIL" => "softfail",
                "NEUTRAL" => "neutral",
                "NA" => "none",
                "DNSFAIL" => "temperror",
                "PERMFAIL" => "permerror",
                _ => continue,
            };
            let property = match hit.options.get(1).map(String::as_str) {
                Some("helo") => "smtp.helo",
                _ => "smtp.mailfrom",
            };
            spf = Some(format!("spf={keyword} {property}={}", hit.subject()));
        } else if let Some(result) = name.strip_prefix("R_DKIM_") {
            let keyword = match result {
                "ALLOW" => "pass",
                "REJECT" => "fail",
                "TEMPFAIL" => "temperror",
                "PERMFAIL" => "permerror",
                "NA" => {
                    dkim.push("dkim=none".to_string());
                    continue;
                }
                _ => continue,
            };
            for signature in hit
                .options
                .iter()
                .filter(|o| !o.starts_with("fix: ") && o.contains(':'))
            {
                let (d, sel) = signature.split_once(':').unwrap_or((signature, ""));
                dkim.push(format!("dkim={keyword} header.d={d} header.s={sel}"));
            }
        } else if let Some(result) = name.strip_prefix("DMARC_") {
            let keyword = match result {
                "POLICY_ALLOW" => "pass",
                "POLICY_REJECT" | "POLICY_QUARANTINE" | "POLICY_SOFTFAIL" => "fail",
                "NA" => "none",
                "DNSFAIL" => "temperror",
                _ => continue,
            };
            dmarc = Some(if hit.subject().is_empty() {
                format!("dmarc={keyword}")
            } else {
                format!("dmarc={keyword} header.from={}", hit.subject())
            });
        }
    }
    if spf.is_none() && dkim.is_empty() && dmarc.is_none() {
        return None;
    }
    let mut parts = vec![hostname.to_string()];
    parts.extend(spf);
    parts.extend(dkim);
    parts.extend(dmarc);
    Some(format!(
        "Authentication-Results: {}\r\n",
        parts.join(";\r\n\t")
    ))
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

/// A signing key from `[dkim].keys_dir`.
struct DkimKey {
    domain: String,
    selector: String,
    /// The TXT record to publish at `<selector>._domainkey.<domain>`.
    record: String,
    signer: KeySigner,
}

enum KeySigner {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// The `[dkim]` keys, and the signatures made while evaluating messages
/// that delivery has not taken yet (so a message is signed once: RSA
/// signing is the most expensive thing smtpgate does).
struct Signer {
    keys: Vec<DkimKey>,
    pending: Mutex<VecDeque<(u64, String)>>,
    hasher: RandomState,
    made: AtomicU64,
}

/// Signatures kept for delivery; older ones (messages refused after
/// evaluation) are dropped first.
const PENDING_SIGNATURES: usize = 256;

impl Signer {
    /// Loads every `<selector>._domainkey.<domain>.pem` in `dir`.
    fn load(config: &Config, dir: &Path, headers: &[String]) -> Result<Signer, ConfigError> {
        let error = |message: String| config.source.error_at_key("dkim", "keys_dir", message);
        let entries = std::fs::read_dir(dir)
            .map_err(|e| error(format!("dkim.keys_dir: cannot read {}: {e}", dir.display())))?;
        let mut keys = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| error(format!("dkim.keys_dir: {}: {e}", dir.display())))?
                .path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(stem) = name.strip_suffix(".pem") else {
                continue;
            };
            let Some((selector, domain)) = stem.split_once("._domainkey.") else {
                return Err(error(format!(
                    "dkim.keys_dir: {}: expected a name like s1._domainkey.example.com.pem",
                    path.display()
                )));
            };
            let pem = std::fs::read(&path).map_err(|e| {
                error(format!(
                    "dkim.keys_dir: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            let key = DkimKey::from_pem(&pem, domain, selector, headers)
                .map_err(|why| error(format!("dkim.keys_dir: {}: {why}", path.display())))?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(error(format!(
                "dkim.keys_dir: no <selector>._domainkey.<domain>.pem file in {}",
                dir.display()
            )));
        }
        // Deterministic choice when a domain has several selectors.
        keys.sort_by(|a, b| (&a.domain, &a.selector).cmp(&(&b.domain, &b.selector)));
        Ok(Signer {
            keys,
            pending: Mutex::new(VecDeque::new()),
            hasher: RandomState::new(),
            made: AtomicU64::new(0),
        })
    }

    /// The key for `domain`: its own, else the closest parent domain's
    /// (relaxed alignment still holds).
    fn key_for(&self, domain: &str) -> Option<&DkimKey> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut candidate = domain.as_str();
        loop {
            if let Some(key) = self.keys.iter().find(|k| k.domain == candidate) {
                return Some(key);
            }
            let (_, parent) = candidate.split_once('.')?;
            if !parent.contains('.') {
                return None;
            }
            candidate = parent;
        }
    }

    fn digest(&self, message: &[u8]) -> u64 {
        self.hasher.hash_one(message)
    }

    /// Signs `message` (as it will be delivered) and keeps the signature
    /// for [`Signer::take_or_sign`].
    fn sign_and_keep(&self, message: &[u8]) -> Option<(&DkimKey, String)> {
        let (key, header) = self.sign(message)?;
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() >= PENDING_SIGNATURES {
            pending.pop_front();
        }
        pending.push_back((self.digest(message), header.clone()));
        Some((key, header))
    }

    /// The signature made for `message` during its evaluation, else a new
    /// one.
    fn take_or_sign(&self, message: &[u8]) -> Option<String> {
        let digest = self.digest(message);
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = pending.iter().position(|(d, _)| *d == digest) {
                return pending.remove(i).map(|(_, header)| header);
            }
        }
        self.sign(message).map(|(_, header)| header)
    }

    /// Signs `message` with the key of its From domain.
    fn sign(&self, message: &[u8]) -> Option<(&DkimKey, String)> {
        let parsed = AuthenticatedMessage::parse(message)?;
        let from = parsed.from.first()?;
        let (_, domain) = from.rsplit_once('@')?;
        let key = self.key_for(domain)?;
        self.made.fetch_add(1, Ordering::Relaxed);
        let signature = match &key.signer {
            KeySigner::Rsa(s) => s.sign(message),
            KeySigner::Ed25519(s) => s.sign(message),
        };
        match signature {
            Ok(sig) => Some((key, sig.to_header())),
            Err(e) => {
                tracing::warn!(domain = %key.domain, selector = %key.selector, error = %e, "DKIM signing failed; sending unsigned");
                None
            }
        }
    }
}

impl DkimKey {
    fn from_pem(
        pem: &[u8],
        domain: &str,
        selector: &str,
        headers: &[String],
    ) -> Result<DkimKey, String> {
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| format!("not a PEM private key: {e}"))?;
        let domain = domain.to_ascii_lowercase();
        let (signer, record) = match &der {
            PrivateKeyDer::Pkcs1(_) => rsa_signer(der.clone_key(), &domain, selector, headers)?,
            PrivateKeyDer::Pkcs8(pkcs8) => {
                match Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der()) {
                    Ok(key) => {
                        let record = format!("v=DKIM1; k=ed25519; p={}", base64(&key.public_key()));
                        let signer = DkimSigner::from_key(key)
                            .domain(domain.clone())
                            .selector(selector)
                            .headers(headers.iter().cloned());
                        (KeySigner::Ed25519(signer), record)
                    }
                    Err(_) => rsa_signer(der.clone_key(), &domain, selector, headers)?,
                }
            }
            _ => return Err("expected an RSA or Ed25519 private key".into()),
        };
        Ok(DkimKey {
            domain,
            selector: selector.to_string(),
            record,
            signer,
        })
    }
}

fn rsa_signer(
    der: PrivateKeyDer<'static>,
    domain: &str,
    selector: &str,
    headers: &[String],
) -> Result<(KeySigner, String), String> {
    let key = RsaKey::<Sha256>::from_key_der(der).map_err(|e| format!("bad RSA key: {e}"))?;
    let record = format!("v=DKIM1; k=rsa; p={}", base64(&rsa_spki(&key.public_key())));
    let signer = DkimSigner::from_key(key)
        .domain(domain.to_string())
        .selector(selector)
        .headers(headers.iter().cloned());
    Ok((KeySigner::Rsa(signer), record))
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo, the form DKIM
/// records publish (RFC 6376 §3.6.1).
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    const ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0u8];
    bit_string.extend_from_slice(pkcs1);
    let mut body = ALGORITHM.to_vec();
    body.extend(der_tlv(0x03, &bit_string));
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

/// Entries a cache holds at most; past that it starts over (a bound, not
/// an LRU: the records of the next messages refill it quickly).
const CACHE_LIMIT: usize = 50_000;

/// A TTL cache for mail-auth's parsed records.
struct TtlCache<K: Hash + Eq, V> {
    entries: DashMap<K, (V, Instant)>,
}

impl<K: Hash + Eq, V> Default for TtlCache<K, V> {
    fn default() -> Self {
        TtlCache {
            entries: DashMap::new(),
        }
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for TtlCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entry = self.entries.get(name)?;
        if entry.1 > Instant::now() {
            Some(entry.0.clone())
        } else {
            drop(entry);
            self.entries.remove(name);
            None
        }
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.remove(name).map(|(_, (v, _))| v)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        if self.entries.len() >= CACHE_LIMIT {
            self.entries.clear();
        }
        self.entries.insert(key, (value, valid_until));
    }
}

/// What a lookup of a name that cannot exist in DNS (an empty label, a
/// label over 63 octets, over 255 in all) answers. mail-auth 0.13 turns the
/// resolver's refusal to build such a query into a *temporary* error, which
/// would tempfail a customer's mail forever over a typo in an SPF record;
/// the name caches answer first: TXT → a parse error (SPF permerror), A,
/// AAAA and MX → no records (the mechanism does not match).
trait UnresolvableName: Sized {
    fn unresolvable() -> Self;
}

impl UnresolvableName for Txt {
    fn unresolvable() -> Self {
        Txt::Error(mail_auth::Error::ParseError)
    }
}

impl<T> UnresolvableName for RecordSet<T> {
    fn unresolvable() -> Self {
        RecordSet {
            rrset: std::sync::Arc::from(Vec::new()),
            dnssec_status: mail_auth::DnssecStatus::Indeterminate,
        }
    }
}

/// Collects what a key feeds its Hasher. mail-auth asks the caches with a
/// generic `&Q`; for a `str` that is the name's bytes then 0xff, which is
/// how [`NameCache`] sees the name without a `str` bound on the trait.
#[derive(Default)]
struct KeyBytes(Vec<u8>);

impl std::hash::Hasher for KeyBytes {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

/// True when hickory can build a query for `name`.
fn resolvable(name: &str) -> bool {
    mail_auth::hickory_resolver::proto::rr::Name::from_str_relaxed(name).is_ok()
}

/// A [`TtlCache`] keyed by DNS names that answers names that cannot exist
/// (see [`UnresolvableName`]) without asking the resolver.
struct NameCache<V>(TtlCache<Box<str>, V>);

impl<V> Default for NameCache<V> {
    fn default() -> Self {
        NameCache(TtlCache::default())
    }
}

impl<V: Clone + UnresolvableName> ResolverCache<Box<str>, V> for NameCache<V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut key = KeyBytes::default();
        name.hash(&mut key);
        let bytes = key.0.strip_suffix(&[0xff]).unwrap_or(&key.0);
        if std::str::from_utf8(bytes).is_ok_and(|n| !resolvable(n)) {
            return Some(V::unresolvable());
        }
        self.0.get(name)
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.remove(name)
    }

    fn insert(&self, key: Box<str>, value: V, valid_until: Instant) {
        self.0.insert(key, value, valid_until);
    }
}

/// The record caches shared by every message of one configuration.
#[derive(Default)]
struct Caches {
    txt: NameCache<Txt>,
    mx: NameCache<RecordSet<MX>>,
    ptr: TtlCache<IpAddr, RecordSet<Box<str>>>,
    ipv4: NameCache<RecordSet<Ipv4Addr>>,
    ipv6: NameCache<RecordSet<Ipv6Addr>>,
}

type CachedParameters<'x, P> = Parameters<
    'x,
    P,
    NameCache<Txt>,
    NameCache<RecordSet<MX>>,
    NameCache<RecordSet<Ipv4Addr>>,
    NameCache<RecordSet<Ipv6Addr>>,
    TtlCache<IpAddr, RecordSet<Box<str>>>,
>;

impl Caches {
    fn params<'x, P>(&'x self, params: P) -> CachedParameters<'x, P> {
        Parameters::new(params)
            .with_txt_cache(&self.txt)
            .with_mx_cache(&self.mx)
            .with_ptr_cache(&self.ptr)
            .with_ipv4_cache(&self.ipv4)
            .with_ipv6_cache(&self.ipv6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentication_results_from_symbols() {
        use crate::score::{Hit, SymbolTable};
        let table = SymbolTable::default();
        let mut b = Breakdown::default();
        let mut spf = Hit::new("R_SPF_ALLOW", "example.test");
        spf.options.push("mailfrom".into());
        b.add(&table, spf);
        let mut dkim = Hit::new("R_DKIM_ALLOW", "example.test:s1");
        dkim.options.push("other.test:s2".into());
        dkim.options.push("fix: not a signature".into());
        b.add(&table, dkim);
        b.add(&table, Hit::new("DMARC_POLICY_ALLOW", "example.test"));
        assert_eq!(
            authentication_results("gw.example.test", &b).as_deref(),
            Some(
                "Authentication-Results: gw.example.test;\r\n\tspf=pass smtp.mailfrom=example.test;\r\n\tdkim=pass header.d=example.test header.s=s1;\r\n\tdkim=pass header.d=other.test header.s=s2;\r\n\tdmarc=pass header.from=example.test\r\n"
            )
        );
        assert_eq!(authentication_results("gw", &Breakdown::default()), None);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn der_lengths_use_long_form_past_127() {
        assert_eq!(der_tlv(0x04, &[1, 2]), [0x04, 2, 1, 2]);
        let long = der_tlv(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }
}
