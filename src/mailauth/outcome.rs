//! What SPF, DKIM and DMARC found, as plain values: the outcomes the rest
//! of smtpgate reads (checks turn them into symbols), free of mail-auth's
//! types.

use mail_auth::SpfResult;
use std::net::IpAddr;

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
    pub(super) fn from_result(r: SpfResult) -> SpfOutcome {
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

/// The SPF evaluation of the egress path: the worst result over the egress
/// IPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfEvaluation {
    /// The worst result.
    pub outcome: SpfOutcome,
    /// The domain checked (MAIL FROM domain, or the HELO name for `<>`).
    pub domain: String,
    /// True when the identity is the HELO name (null sender).
    pub helo_identity: bool,
    /// Every IP evaluated with its result.
    pub ips: Vec<(IpAddr, SpfOutcome)>,
    /// For a permerror over a record's syntax: the broken term and why
    /// (`ip4:192.0.2.1/33: CIDR length over 32`).
    pub problem: Option<String>,
}

impl SpfEvaluation {
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

/// One DKIM signature's evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimEvaluation {
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

/// The DMARC evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcEvaluation {
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
    pub spf: SpfEvaluation,
    /// Each DKIM signature, ours first when we sign.
    pub dkim: Vec<DkimEvaluation>,
    /// DMARC.
    pub dmarc: DmarcEvaluation,
    /// The key smtpgate signs with for this From domain, if any:
    /// (domain, selector, TXT record to publish).
    pub signing_key: Option<(String, String, String)>,
}
