//! The `Authentication-Results:` header (RFC 8601) smtpgate adds to mail it
//! passes, written from the authentication symbols of the breakdown.

use crate::score::Breakdown;

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
}
