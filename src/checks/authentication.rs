//! The DATA-phase SPF/DKIM/DMARC check: turns [`crate::mailauth::Evaluation`]
//! into rspamd's symbols, each carrying the domain it is about and, when
//! something must change, the exact DNS record to publish or edit.
//!
//! Options of each hit: SPF `[domain, "mailfrom"|"helo", ip..., broken
//! term (permerror), fix]`;
//! DKIM `["d:s", ...]` (then a fix); DMARC `[from domain, policy, fix]`.
//! The fix option always starts with "fix: ".

use super::{Check, CheckError, CheckFuture, Phase, View};
use crate::mailauth::{
    mechanism, Authenticator, DkimOutcome, DmarcOutcome, DmarcPolicy, Envelope, Evaluation,
    SpfOutcome,
};
use crate::score::Hit;
use std::sync::Arc;

/// Every symbol this check emits.
pub const SYMBOLS: &[&str] = &[
    "R_SPF_ALLOW",
    "R_SPF_FAIL",
    "R_SPF_SOFTFAIL",
    "R_SPF_NEUTRAL",
    "R_SPF_NA",
    "R_SPF_DNSFAIL",
    "R_SPF_PERMFAIL",
    "R_DKIM_ALLOW",
    "R_DKIM_REJECT",
    "R_DKIM_TEMPFAIL",
    "R_DKIM_PERMFAIL",
    "R_DKIM_NA",
    "DMARC_POLICY_ALLOW",
    "DMARC_POLICY_REJECT",
    "DMARC_POLICY_QUARANTINE",
    "DMARC_POLICY_SOFTFAIL",
    "DMARC_NA",
    "DMARC_DNSFAIL",
];

/// SPF, DKIM and DMARC predicted for the egress path.
pub struct AuthenticationCheck {
    auth: Arc<Authenticator>,
}

impl AuthenticationCheck {
    /// A check using `auth`.
    pub fn new(auth: Arc<Authenticator>) -> AuthenticationCheck {
        AuthenticationCheck { auth }
    }
}

impl Check for AuthenticationCheck {
    fn name(&self) -> &'static str {
        "authentication"
    }

    fn phase(&self) -> Phase {
        Phase::Data
    }

    fn symbols(&self) -> &'static [&'static str] {
        SYMBOLS
    }

    fn check<'a>(&'a self, view: &'a View<'a>) -> CheckFuture<'a> {
        Box::pin(async move {
            let Some(message) = view.message else {
                return Ok(Vec::new());
            };
            let sender = view.sender.map(|s| s.to_string()).unwrap_or_default();
            let evaluation = self.auth.evaluate(Envelope {
                client_ip: view.client_ip,
                helo: view.helo,
                sender: &sender,
                message,
            });
            // Many slow lookups (a message with dozens of signatures) must
            // not hold the client forever: past the budget, tempfail.
            let budget = self.auth.budget();
            match tokio::time::timeout(budget, evaluation).await {
                Ok(evaluation) => Ok(hits(&evaluation)),
                Err(_) => Err(CheckError::new(
                    "authentication",
                    format!("SPF/DKIM/DMARC took longer than {budget:?}"),
                )),
            }
        })
    }
}

/// The symbols of an evaluation: one SPF, one per DKIM result kind (or
/// R_DKIM_NA), one DMARC.
pub fn hits(e: &Evaluation) -> Vec<Hit> {
    let mut hits = vec![spf_hit(e)];
    hits.extend(dkim_hits(e));
    hits.push(dmarc_hit(e));
    hits
}

fn spf_hit(e: &Evaluation) -> Hit {
    let spf = &e.spf;
    let name = match spf.outcome {
        SpfOutcome::Pass => "R_SPF_ALLOW",
        SpfOutcome::Fail => "R_SPF_FAIL",
        SpfOutcome::SoftFail => "R_SPF_SOFTFAIL",
        SpfOutcome::Neutral => "R_SPF_NEUTRAL",
        SpfOutcome::None => "R_SPF_NA",
        SpfOutcome::TempError => "R_SPF_DNSFAIL",
        SpfOutcome::PermError => "R_SPF_PERMFAIL",
    };
    let mut hit = Hit::new(name, spf.domain.clone());
    hit.options.push(
        if spf.helo_identity {
            "helo"
        } else {
            "mailfrom"
        }
        .to_string(),
    );
    hit.options.extend(
        spf.ips
            .iter()
            .map(|(ip, o)| format!("{}={}", mechanism(*ip), o.keyword())),
    );
    hit.options.extend(spf.problem.clone());
    let missing = spf.unauthorised_mechanisms().join(" ");
    let fix = match spf.outcome {
        SpfOutcome::Fail | SpfOutcome::SoftFail | SpfOutcome::Neutral => {
            Some(format!("add {missing} to the SPF record of {}", spf.domain))
        }
        SpfOutcome::None if !spf.domain.is_empty() => Some(format!(
            "publish a TXT record at {}: \"v=spf1 {missing} -all\"",
            spf.domain
        )),
        SpfOutcome::PermError => Some(match &spf.problem {
            Some(problem) => format!("repair the SPF record of {}: {problem}", spf.domain),
            None => format!(
                "repair the SPF record of {}: it does not parse or needs more than 10 DNS lookups",
                spf.domain
            ),
        }),
        SpfOutcome::TempError => Some(format!(
            "make the nameservers of {} answer: the SPF lookup failed",
            spf.domain
        )),
        _ => None,
    };
    hit.options.extend(fix.map(|f| format!("fix: {f}")));
    hit
}

fn dkim_hits(e: &Evaluation) -> Vec<Hit> {
    if e.dkim.is_empty() {
        return vec![Hit::new("R_DKIM_NA", "")];
    }
    let mut hits: Vec<Hit> = Vec::new();
    for v in &e.dkim {
        let name = match v.outcome {
            DkimOutcome::Pass => "R_DKIM_ALLOW",
            // mail-auth reports a changed body as neutral; rspamd rejects it.
            DkimOutcome::Fail | DkimOutcome::Neutral => "R_DKIM_REJECT",
            DkimOutcome::TempError => "R_DKIM_TEMPFAIL",
            DkimOutcome::PermError => "R_DKIM_PERMFAIL",
        };
        let signature = format!("{}:{}", v.domain, v.selector);
        match hits.iter_mut().find(|h| h.name == name) {
            Some(hit) => hit.options.insert(fix_position(hit), signature),
            None => hits.push(Hit::new(name, signature)),
        }
        if v.outcome == DkimOutcome::Pass {
            continue;
        }
        let hit = hits
            .iter_mut()
            .find(|h| h.name == name)
            .expect("just pushed");
        let fix = match (&e.signing_key, v.ours) {
            (Some((d, s, record)), true) => format!(
                "publish selector {s} at {s}._domainkey.{d}: TXT \"{record}\""
            ),
            _ if v.outcome == DkimOutcome::TempError => format!(
                "make the nameservers of {} answer for {}._domainkey.{}",
                v.domain, v.selector, v.domain
            ),
            _ => format!(
                "signature d={} s={} does not verify ({}): check the key at {}._domainkey.{} and that nothing changes the message after signing",
                v.domain, v.selector, v.reason, v.selector, v.domain
            ),
        };
        if !hit.options.iter().any(|o| o.starts_with("fix: ")) {
            hit.options.push(format!("fix: {fix}"));
        }
    }
    hits
}

/// Where the next signature goes: before the fix option, if any.
fn fix_position(hit: &Hit) -> usize {
    hit.options
        .iter()
        .position(|o| o.starts_with("fix: "))
        .unwrap_or(hit.options.len())
}

fn dmarc_hit(e: &Evaluation) -> Hit {
    let d = &e.dmarc;
    let name = match (d.outcome, d.policy) {
        (DmarcOutcome::Pass, _) => "DMARC_POLICY_ALLOW",
        (DmarcOutcome::Fail, DmarcPolicy::Reject) => "DMARC_POLICY_REJECT",
        (DmarcOutcome::Fail, DmarcPolicy::Quarantine) => "DMARC_POLICY_QUARANTINE",
        (DmarcOutcome::Fail, DmarcPolicy::None) => "DMARC_POLICY_SOFTFAIL",
        (DmarcOutcome::TempError, _) => "DMARC_DNSFAIL",
        (DmarcOutcome::None, _) => "DMARC_NA",
    };
    let mut hit = Hit::new(name, d.from_domain.clone());
    if d.outcome == DmarcOutcome::Fail {
        hit.options.push(d.policy.tag().to_string());
        hit.options.push(format!("fix: {}", dmarc_fix(e)));
    }
    hit
}

/// What would make DMARC pass, most direct first: publish our selector;
/// authorise the egress IPs for an aligned envelope domain; else use an own
/// From domain or sign for this one.
fn dmarc_fix(e: &Evaluation) -> String {
    let from = &e.dmarc.from_domain;
    if let Some((d, s, record)) = &e.signing_key {
        if aligned(d, from) {
            return format!(
                "publish selector {s} at {s}._domainkey.{d}: TXT \"{record}\" (smtpgate signs for {d})"
            );
        }
    }
    if aligned(&e.spf.domain, from) && !e.spf.helo_identity {
        return format!(
            "add {} to the SPF record of {}, or sign with DKIM for {from}",
            e.spf.unauthorised_mechanisms().join(" "),
            e.spf.domain
        );
    }
    format!(
        "send From an address of your own domain, or sign with DKIM for {from} (a [dkim] key <selector>._domainkey.{from}.pem and its TXT record at <selector>._domainkey.{from})"
    )
}

/// Relaxed alignment, approximated without the public suffix list: equal,
/// or one a subdomain of the other.
fn aligned(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_symbol_has_a_rule() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let table = crate::rules::load_dir(&dir).expect("rules").symbols;
        for name in SYMBOLS {
            assert!(table.get(name).is_some(), "{name} has no rule");
        }
        let reject = table.get("DMARC_POLICY_REJECT").expect("rule");
        assert!(reject.score >= crate::score::Score(200), "spam on its own");
    }

    #[test]
    fn alignment_is_relaxed() {
        assert!(aligned("example.test", "example.test"));
        assert!(aligned("bounces.example.test", "Example.test"));
        assert!(!aligned("example.test", "other.test"));
        assert!(!aligned("badexample.test", "example.test"));
    }
}
