//! What a domain publishes and what smtpgate holds for it, read for the
//! readiness report: TXT records as published, the one SPF record among
//! them, SPF for one egress IP with the broken term named, and the DKIM key
//! of `[dkim] keys_dir` with the TXT record it needs.

use super::evaluate::Authenticator;
use super::outcome::SpfOutcome;
use super::spf_syntax;
use super::spf_walk::{self, Fetched};
use std::net::IpAddr;

/// The `[dkim]` key smtpgate signs a domain's mail with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// `d=`: the domain itself, or the closest parent with a key.
    pub domain: String,
    /// `s=`.
    pub selector: String,
    /// The TXT record to publish at `<selector>._domainkey.<domain>`
    /// (`v=DKIM1; k=rsa; p=…`).
    pub record: String,
}

impl SigningKey {
    /// `<selector>._domainkey.<domain>`.
    pub fn record_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }
}

/// The one SPF record among a name's TXT records: `Ok(None)` when there is
/// none; several (RFC 7208 §4.5: permerror) are an error saying so.
pub fn spf_record(records: &[String]) -> Result<Option<&str>, String> {
    spf_syntax::select(records).map_err(|e| e.to_string())
}

impl Authenticator {
    /// The TXT records of `name`, each record's strings joined; empty for
    /// NXDOMAIN or NODATA, an error (saying why) when DNS did not answer.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        let absolute = format!("{}.", name.trim_end_matches('.'));
        match spf_walk::fetch(&self.resolver, &absolute).await {
            Fetched::Records(records) => Ok(records),
            Fetched::Absent => Ok(Vec::new()),
            Fetched::Failed(why) => Err(format!("DNS lookup of TXT {name} failed: {why}")),
        }
    }

    /// SPF of mail from `postmaster@<domain>` sent from `ip` (HELO our host
    /// name), as a recipient evaluates it, and for a permerror over a
    /// record's syntax the broken term and why.
    pub async fn spf_for(&self, ip: IpAddr, domain: &str) -> (SpfOutcome, Option<String>) {
        let helo = self.hostname.clone();
        let (output, problem) = self
            .check_spf(ip, &helo, &format!("postmaster@{domain}"))
            .await;
        (SpfOutcome::from_result(output.result()), problem)
    }

    /// The key mail From `domain` is signed with, when `[dkim]` holds one
    /// (the domain's own, else the closest parent's).
    pub fn signing_key(&self, domain: &str) -> Option<SigningKey> {
        let key = self.signer.as_ref()?.key_for(domain)?;
        Some(SigningKey {
            domain: key.domain.clone(),
            selector: key.selector.clone(),
            record: key.record.clone(),
        })
    }
}
