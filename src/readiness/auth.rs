//! The SPF, DKIM and DMARC lines of the readiness report: the records the
//! domain publishes, judged with the egress IPs and the `[dkim]` key, and
//! the exact record to publish when one is missing or wrong.

use super::{no_egress, not_checked, txt_fix, Line};
use crate::app::App;
use crate::mailauth::{mechanism, spf_record, SpfOutcome};
use std::net::IpAddr;

/// A line and what DMARC's alignment needs from it.
pub(super) struct Found<T> {
    /// The finding.
    pub(super) line: Line,
    /// SPF: `Some(true)` when every egress IP is authorised; DKIM: the
    /// `d=` domain whose published key matches ours. Unknown: the default.
    pub(super) aligned: T,
}

impl<T: Default> Found<T> {
    /// A line that says nothing about alignment.
    pub(super) fn unknown(line: Line) -> Found<T> {
        Found {
            line,
            aligned: T::default(),
        }
    }
}

/// `record` with `mechanisms` inserted before its `all` term (else before
/// `redirect=`, else at the end): the same policy, plus the egress IPs.
pub(super) fn with_mechanisms(record: &str, mechanisms: &[String]) -> String {
    let mut terms: Vec<&str> = record.split_whitespace().collect();
    let is_all = |t: &&str| {
        t.trim_start_matches(['+', '-', '~', '?'])
            .eq_ignore_ascii_case("all")
    };
    let is_redirect = |t: &&str| t.to_ascii_lowercase().starts_with("redirect=");
    let at = terms
        .iter()
        .position(is_all)
        .or_else(|| terms.iter().position(is_redirect))
        .unwrap_or(terms.len());
    for (i, m) in mechanisms.iter().enumerate() {
        terms.insert(at + i, m);
    }
    terms.join(" ")
}

/// SPF: does the domain's record authorise every egress IP?
pub(super) async fn spf(app: &App, domain: &str, ips: &[IpAddr]) -> Found<Option<bool>> {
    if ips.is_empty() {
        return Found::unknown(no_egress("spf"));
    }
    let mechanisms: Vec<String> = ips.iter().map(|ip| mechanism(*ip)).collect();
    let records = match app.auth.txt(domain).await {
        Ok(records) => records,
        Err(e) => return Found::unknown(not_checked("spf", &e)),
    };
    let record = match spf_record(&records) {
        Ok(Some(record)) => record.to_string(),
        Ok(None) => {
            return Found {
                line: Line::fail(
                    "spf",
                    format!(
                        "{domain} publishes no SPF record: recipients cannot tell that the \
                         egress IPs may send its mail"
                    ),
                    txt_fix(domain, &format!("v=spf1 {} -all", mechanisms.join(" "))),
                ),
                aligned: Some(false),
            }
        }
        Err(e) => {
            return Found {
                line: Line::fail(
                    "spf",
                    format!("{domain}: {e} (recipients see spf=permerror)"),
                    format!(
                        "merge them into one record that includes {}, and remove the others",
                        mechanisms.join(" ")
                    ),
                ),
                aligned: Some(false),
            }
        }
    };
    let mut missing = Vec::new();
    let mut broken = None;
    let mut unknown = None;
    let results = super::all(ips.iter().map(|ip| app.auth.spf_for(*ip, domain)).collect()).await;
    for (ip, result) in ips.iter().zip(results) {
        match result {
            (SpfOutcome::Pass, _) => {}
            (SpfOutcome::TempError, _) => unknown = Some(*ip),
            (SpfOutcome::PermError, problem) => {
                broken = Some(problem.unwrap_or_else(|| {
                    "an included record is missing or broken, or the record needs more than \
                     10 DNS lookups"
                        .to_string()
                }))
            }
            (outcome, _) => missing.push((*ip, outcome)),
        }
    }
    if let Some(problem) = broken {
        let line = Line::fail(
            "spf",
            format!("the SPF record of {domain} is broken (spf=permerror): {problem}: {record}"),
            format!(
                "correct the record at {domain} ({problem}); it must authorise {}",
                mechanisms.join(" ")
            ),
        );
        return Found {
            line,
            aligned: Some(false),
        };
    }
    if !missing.is_empty() {
        let named: Vec<String> = missing
            .iter()
            .map(|(ip, outcome)| format!("{ip} (spf={})", outcome.keyword()))
            .collect();
        let add: Vec<String> = missing.iter().map(|(ip, _)| mechanism(*ip)).collect();
        let line = Line::fail(
            "spf",
            format!(
                "the SPF record of {domain} does not authorise {}: {record}",
                named.join(", ")
            ),
            txt_fix(domain, &with_mechanisms(&record, &add)),
        );
        return Found {
            line,
            aligned: Some(false),
        };
    }
    if let Some(ip) = unknown {
        return Found::unknown(not_checked(
            "spf",
            &format!("the SPF evaluation of {ip} for {domain} got a DNS temporary error"),
        ));
    }
    let shown: Vec<String> = ips.iter().map(ToString::to_string).collect();
    Found {
        line: Line::ok(
            "spf",
            format!(
                "the SPF record of {domain} authorises {}: {record}",
                shown.join(", ")
            ),
        ),
        aligned: Some(true),
    }
}

/// The `tag=value` pairs of a DKIM or DMARC record, tags lower case.
fn tags(record: &str) -> Vec<(String, String)> {
    record
        .split(';')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

fn tag<'a>(tags: &'a [(String, String)], name: &str) -> Option<&'a str> {
    tags.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// True when the published key record carries the key of `ours`: the same
/// `k=` (default rsa) and `p=` (whitespace aside).
fn same_key(published: &str, ours: &str) -> bool {
    let (theirs, ours) = (tags(published), tags(ours));
    let key =
        |t: &[(String, String)]| tag(t, "p").map(|p| p.split_whitespace().collect::<String>());
    let kind = |t: &[(String, String)]| tag(t, "k").unwrap_or("rsa").to_ascii_lowercase();
    key(&theirs).is_some_and(|p| !p.is_empty())
        && key(&theirs) == key(&ours)
        && kind(&theirs) == kind(&ours)
}

/// How to make a key for `domain` in `keys_dir`.
fn make_key(keys_dir: &str, domain: &str) -> String {
    format!(
        "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out \
         {keys_dir}/s1._domainkey.{domain}.pem, reload smtpgate, then publish the TXT record \
         this report shows"
    )
}

/// DKIM: a key for the domain in `[dkim] keys_dir`, and its TXT record as
/// published.
pub(super) async fn dkim(app: &App, domain: &str) -> Found<Option<String>> {
    let Some(config) = &app.config.dkim else {
        return Found::unknown(Line::warn(
            "dkim",
            format!(
                "no [dkim] section: mail From {domain} through us is not signed, so DMARC \
                 rests on SPF alone"
            ),
            format!(
                "add [dkim] keys_dir = \"config/dkim\" to the configuration; {}",
                make_key("config/dkim", domain)
            ),
        ));
    };
    let keys_dir = config.keys_dir.display().to_string();
    let Some(key) = app.auth.signing_key(domain) else {
        return Found::unknown(Line::warn(
            "dkim",
            format!(
                "no DKIM key for {domain} in {keys_dir}: mail From it through us is not \
                 signed, so DMARC rests on SPF alone"
            ),
            make_key(&keys_dir, domain),
        ));
    };
    let name = key.record_name();
    let fix = txt_fix(&name, &key.record);
    let records = match app.auth.txt(&name).await {
        Ok(records) => records,
        Err(e) => return Found::unknown(not_checked("dkim", &e)),
    };
    let ours = format!(
        "{keys_dir} has a key for {} (selector {})",
        key.domain, key.selector
    );
    if records.is_empty() {
        return Found::unknown(Line::fail(
            "dkim",
            format!(
                "{ours} but {name} publishes no TXT record: recipients cannot verify our \
                 signatures (dkim=permerror)"
            ),
            fix,
        ));
    }
    if !records.iter().any(|r| same_key(r, &key.record)) {
        let revoked = records
            .iter()
            .any(|r| tag(&tags(r), "p").is_some_and(str::is_empty));
        let why = if revoked {
            "a revoked key (empty p=)".to_string()
        } else {
            format!("another key: {}", records.join(" | "))
        };
        return Found::unknown(Line::fail(
            "dkim",
            format!("{ours} but {name} publishes {why}: recipients see dkim=fail"),
            fix,
        ));
    }
    let kind = tag(&tags(&key.record), "k").unwrap_or("rsa").to_string();
    let parent = if key.domain == domain {
        String::new()
    } else {
        format!(" (d={}: relaxed alignment only)", key.domain)
    };
    Found {
        line: Line::ok(
            "dkim",
            format!("{name} publishes the {kind} key we sign {domain} with{parent}"),
        ),
        aligned: Some(key.domain),
    }
}

/// What the DMARC lookup found.
pub(super) enum DmarcFound {
    /// One record at `name` (`inherited`: above the domain).
    Record {
        name: String,
        record: String,
        inherited: bool,
    },
    /// Several records at `name`.
    Several { name: String, count: usize },
    /// None at the domain nor above.
    Absent,
    /// The domain's own lookup failed.
    Failed(String),
}

/// True for a record that starts `v=DMARC1` (then `;` or nothing).
fn is_dmarc(record: &str) -> bool {
    let r = record.trim_start();
    let rest = r.get(8..).unwrap_or("").trim_start();
    r.get(..8)
        .is_some_and(|v| v.eq_ignore_ascii_case("v=DMARC1"))
        && (rest.is_empty() || rest.starts_with(';'))
}

/// The `_dmarc` record of `domain`, else of its closest parent (at least
/// two labels). A failed lookup above the domain is "no record there"
/// (RFC 9989 §4.10.1), as the evaluation treats it.
pub(super) async fn dmarc_record(app: &App, domain: &str) -> DmarcFound {
    let labels: Vec<&str> = domain.split('.').collect();
    for start in 0..labels.len().saturating_sub(1) {
        let name = format!("_dmarc.{}", labels[start..].join("."));
        let records = match app.auth.txt(&name).await {
            Ok(records) => records,
            Err(e) if start == 0 => return DmarcFound::Failed(e),
            Err(_) => continue,
        };
        let found: Vec<&String> = records.iter().filter(|r| is_dmarc(r)).collect();
        match found.as_slice() {
            [] => continue,
            [one] => {
                return DmarcFound::Record {
                    name,
                    record: one.to_string(),
                    inherited: start > 0,
                }
            }
            several => {
                return DmarcFound::Several {
                    name,
                    count: several.len(),
                }
            }
        }
    }
    DmarcFound::Absent
}

/// DMARC: the record, its policy, and whether mail through us aligns
/// (SPF: every egress IP authorised; DKIM: our key published, for the
/// domain or, relaxed, a parent).
pub(super) fn dmarc(
    domain: &str,
    ips: &[IpAddr],
    found: DmarcFound,
    spf: Option<bool>,
    dkim: Option<&str>,
) -> Line {
    let suggested = txt_fix(
        &format!("_dmarc.{domain}"),
        &format!("v=DMARC1; p=none; rua=mailto:postmaster@{domain}"),
    );
    let (name, record, inherited) = match found {
        DmarcFound::Failed(e) => return not_checked("dmarc", &e),
        DmarcFound::Several { name, count } => {
            return Line::fail(
                "dmarc",
                format!("{name} publishes {count} DMARC records: recipients apply none"),
                format!("keep one of them; for example {suggested}"),
            )
        }
        DmarcFound::Absent => {
            return Line::warn(
                "dmarc",
                format!(
                    "no DMARC record at _dmarc.{domain}: recipients apply no policy, and large \
                     mailbox providers ask bulk senders for one"
                ),
                suggested,
            )
        }
        DmarcFound::Record {
            name,
            record,
            inherited,
        } => (name, record, inherited),
    };
    let t = tags(&record);
    let policy = if inherited {
        tag(&t, "sp").or_else(|| tag(&t, "p"))
    } else {
        tag(&t, "p")
    }
    .map(str::to_ascii_lowercase);
    let Some(policy) = policy.filter(|p| matches!(p.as_str(), "none" | "quarantine" | "reject"))
    else {
        return Line::fail(
            "dmarc",
            format!("{name} has no valid p= tag (none, quarantine or reject): {record}"),
            format!("publish instead {suggested}"),
        );
    };
    let strict_dkim = tag(&t, "adkim").is_some_and(|v| v.eq_ignore_ascii_case("s"));
    let dkim_aligns =
        dkim.is_some_and(|d| d == domain || (!strict_dkim && domain.ends_with(&format!(".{d}"))));
    let mut via = Vec::new();
    if spf == Some(true) {
        via.push("SPF");
    }
    if dkim_aligns {
        via.push("DKIM");
    }
    let from = if inherited { " (inherited)" } else { "" };
    if !via.is_empty() {
        return Line::ok(
            "dmarc",
            format!(
                "{name}{from}: p={policy}; mail through us aligns ({})",
                via.join(" and ")
            ),
        );
    }
    let fix = "authorise the egress IPs in the SPF record, or publish the DKIM key: the fixes \
               of the spf and dkim lines";
    if spf.is_none() && dkim.is_none() {
        let why = if ips.is_empty() {
            "no [outbound] egress_ips configured and no published DKIM key"
        } else {
            "SPF was not checked and there is no published DKIM key"
        };
        return Line::warn(
            "dmarc",
            format!("{name}{from}: p={policy}; cannot tell whether mail through us aligns: {why}"),
            fix,
        );
    }
    let what = format!("{name}{from}: p={policy}, and mail through us aligns neither SPF nor DKIM");
    match policy.as_str() {
        "reject" => Line::fail("dmarc", format!("{what}: recipients will reject it"), fix),
        "quarantine" => Line::fail(
            "dmarc",
            format!("{what}: recipients will file it as spam"),
            fix,
        ),
        _ => Line::warn(
            "dmarc",
            format!("{what}: recipients deliver it, but as unauthenticated"),
            fix,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_mechanisms_go_before_all_else_before_redirect() {
        let add = ["ip4:192.0.2.1".to_string(), "ip6:2001:db8::1".to_string()];
        assert_eq!(
            with_mechanisms("v=spf1 mx include:_spf.example.test ~all", &add),
            "v=spf1 mx include:_spf.example.test ip4:192.0.2.1 ip6:2001:db8::1 ~all"
        );
        assert_eq!(
            with_mechanisms("v=spf1 a redirect=_spf.example.test", &add[..1]),
            "v=spf1 a ip4:192.0.2.1 redirect=_spf.example.test"
        );
        assert_eq!(
            with_mechanisms("v=spf1 mx", &add[..1]),
            "v=spf1 mx ip4:192.0.2.1"
        );
        assert_eq!(
            with_mechanisms("v=spf1  -ALL  exp=why.example.test", &add[..1]),
            "v=spf1 ip4:192.0.2.1 -ALL exp=why.example.test"
        );
    }

    #[test]
    fn published_keys_compare_by_kind_and_key() {
        let ours = "v=DKIM1; k=rsa; p=MIIBabc";
        assert!(same_key("v=DKIM1; p=MIIB abc", ours));
        assert!(same_key("v=DKIM1;k=rsa;p=MIIBabc;t=s", ours));
        assert!(!same_key("v=DKIM1; k=rsa; p=MIIBxyz", ours));
        assert!(!same_key("v=DKIM1; k=ed25519; p=MIIBabc", ours));
        assert!(!same_key("v=DKIM1; k=rsa; p=", "v=DKIM1; k=rsa; p="));
    }

    #[test]
    fn dmarc_records_are_recognised() {
        assert!(is_dmarc("v=DMARC1; p=reject"));
        assert!(is_dmarc("V=dmarc1;p=none"));
        assert!(is_dmarc("v=DMARC1"));
        assert!(!is_dmarc("v=DMARC10; p=none"));
        assert!(!is_dmarc("v=spf1 -all"));
    }
}
