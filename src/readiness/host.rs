//! The MX, FCrDNS and DNSBL lines of the readiness report: whether the
//! domain can receive (replies, bounces), whether each egress IP's reverse
//! DNS is forward-confirmed, and whether a blocklist of `[dnsbl]` lists an
//! egress IP (`client` zones) or the domain (`sender` zones).

use super::{all, no_egress, not_checked, Line};
use crate::app::App;
use crate::checks::envelope::reversed;
use crate::config::Zone;
use std::net::{IpAddr, Ipv4Addr};

/// PTR names followed at most per IP (as the envelope check does).
const PTR_NAMES: usize = 5;

/// The fix of a domain without a usable MX.
fn mx_fix(domain: &str) -> String {
    format!("publish an MX record at {domain}: 10 <the host that receives {domain}'s mail>")
}

/// MX: a null MX (RFC 7505) or no way to receive mail is a fail.
pub(super) async fn mx(app: &App, domain: &str) -> Line {
    let mut mx = match app.dns.mx(domain).await {
        Ok(Some(mx)) => mx,
        Ok(None) => return no_mx(app, domain).await,
        Err(e) => return not_checked("mx", &e.to_string()),
    };
    if mx.len() == 1 && mx[0].1.is_empty() {
        return Line::fail(
            "mx",
            format!(
                "{domain} publishes a null MX (RFC 7505): it accepts no mail, so recipients \
                 refuse mail from it (and so does this gateway: reject_unknown_sender_domain)"
            ),
            format!("replace the null MX: {}", mx_fix(domain)),
        );
    }
    mx.sort();
    let mut unresolved = Vec::new();
    let mut failed = None;
    let answers = all(mx.iter().map(|(_, host)| app.dns.ips(host)).collect()).await;
    for ((_, host), answer) in mx.iter().zip(answers) {
        match answer {
            Ok(Some(_)) => {}
            Ok(None) => unresolved.push(host.clone()),
            Err(e) => failed = Some(e.to_string()),
        }
    }
    let listed: Vec<String> = mx.iter().map(|(p, h)| format!("{p} {h}")).collect();
    let listed = listed.join(", ");
    if unresolved.len() == mx.len() {
        return Line::fail(
            "mx",
            format!("no MX host of {domain} has an address: MX {listed}"),
            format!(
                "publish an A/AAAA record for {}, or point the MX at a host that has one",
                unresolved.join(", ")
            ),
        );
    }
    if let Some(e) = failed {
        return not_checked("mx", &e);
    }
    if !unresolved.is_empty() {
        return Line::warn(
            "mx",
            format!("MX {listed}: {} has no address", unresolved.join(", ")),
            format!(
                "publish an A/AAAA record for {}, or remove it from the MX records",
                unresolved.join(", ")
            ),
        );
    }
    Line::ok("mx", format!("MX {listed}"))
}

/// No MX records: the address records are the implicit MX (RFC 5321
/// §5.1); without them the domain cannot receive.
async fn no_mx(app: &App, domain: &str) -> Line {
    match app.dns.ips(domain).await {
        Ok(Some(ips)) => {
            let ips: Vec<String> = ips.iter().map(ToString::to_string).collect();
            Line::warn(
                "mx",
                format!(
                    "{domain} has no MX record: mail to it goes to its address ({})",
                    ips.join(", ")
                ),
                mx_fix(domain),
            )
        }
        Ok(None) => Line::fail(
            "mx",
            format!(
                "{domain} has no MX and no A/AAAA record: recipients refuse mail from a domain \
                 that cannot receive replies or bounces"
            ),
            mx_fix(domain),
        ),
        Err(e) => not_checked("mx", &e.to_string()),
    }
}

/// `A` or `AAAA`, for `ip`.
fn address_type(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "A"
    } else {
        "AAAA"
    }
}

/// FCrDNS: one line per egress IP.
pub(super) async fn fcrdns(app: &App, ips: &[IpAddr]) -> Vec<Line> {
    if ips.is_empty() {
        return vec![no_egress("fcrdns")];
    }
    all(ips.iter().map(|ip| confirmed(app, *ip)).collect()).await
}

/// True for an address recipients can never see mail from (loopback,
/// private, link-local, unspecified).
fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || first & 0xfe00 == 0xfc00
                || first & 0xffc0 == 0xfe80
        }
    }
}

/// `ip` → its PTR name → `ip`?
async fn confirmed(app: &App, ip: IpAddr) -> Line {
    if internal(ip) {
        return Line::fail(
            "fcrdns",
            format!(
                "{ip} is not a public address: recipients see mail from the MTA's public IP, \
                 and every line about the egress IPs judges the wrong address"
            ),
            "list the MTA's public IPs in [outbound] egress_ips",
        );
    }
    let names = match app.dns.ptr(ip).await {
        Ok(Some(names)) => names,
        Ok(None) => {
            return Line::fail(
                "fcrdns",
                format!(
                    "{ip} has no PTR record: many recipients refuse mail from an address \
                     without reverse DNS"
                ),
                format!(
                    "ask the owner of {ip} (its provider) to set its PTR record to the MTA's \
                     host name, and publish an {} record of that name: {ip}",
                    address_type(ip)
                ),
            )
        }
        Err(e) => return not_checked("fcrdns", &e.to_string()),
    };
    let mut failed = None;
    let named = &names[..names.len().min(PTR_NAMES)];
    let answers = all(named.iter().map(|name| app.dns.ips(name)).collect()).await;
    for (name, answer) in named.iter().zip(answers) {
        match answer {
            Ok(Some(found)) if found.contains(&ip) => {
                return Line::ok("fcrdns", format!("{ip} -> {name} -> {ip}"))
            }
            Ok(_) => {}
            Err(e) => failed = Some(e.to_string()),
        }
    }
    if let Some(e) = failed {
        return not_checked("fcrdns", &e);
    }
    let name = &names[0];
    Line::fail(
        "fcrdns",
        format!(
            "{ip} -> {} but {name} does not resolve to {ip}: the reverse DNS is not \
             forward-confirmed",
            names.join(", ")
        ),
        format!("publish an {} record at {name}: {ip}", address_type(ip)),
    )
}

/// A listing answer (127.0.0.0/8, the "query refused" codes
/// 127.255.255.252-255 aside), as the DNSBL check counts it.
fn is_listing(code: &Ipv4Addr) -> bool {
    let o = code.octets();
    o[0] == 127 && !(o[1] == 255 && o[2] == 255 && o[3] >= 252)
}

fn is_refusal(code: &Ipv4Addr) -> bool {
    let o = code.octets();
    o[0] == 127 && o[1] == 255 && o[2] == 255 && o[3] >= 252
}

/// DNSBL: each egress IP in the `client` zones, the domain in the `sender`
/// zones.
pub(super) async fn dnsbl(app: &App, domain: &str, ips: &[IpAddr]) -> Vec<Line> {
    let config = &app.config.dnsbl;
    let mut lines = Vec::new();
    if ips.is_empty() {
        lines.push(no_egress("dnsbl"));
    } else if config.client.is_empty() {
        lines.push(Line::warn(
            "dnsbl",
            "no [dnsbl] client zones configured: the egress IPs are not checked against \
             blocklists",
            "[dnsbl] client = [{ zone = \"zen.spamhaus.org\", name = \"SPAMHAUS_ZEN\" }]",
        ));
    }
    let mut asked = Vec::new();
    if !config.client.is_empty() {
        for ip in ips {
            asked.push((reversed(*ip), ip.to_string(), config.client.as_slice()));
        }
    }
    if !config.sender.is_empty() {
        asked.push((
            domain.to_string(),
            domain.to_string(),
            config.sender.as_slice(),
        ));
    }
    let found = all(asked
        .iter()
        .map(|(label, subject, zones)| listing(app, label, subject, zones))
        .collect())
    .await;
    lines.extend(found);
    if config.sender.is_empty() {
        lines.push(Line::warn(
            "dnsbl",
            format!(
                "no [dnsbl] sender zones configured: {domain} is not checked against domain \
                 blocklists"
            ),
            "[dnsbl] sender = [{ zone = \"dbl.spamhaus.org\", name = \"SPAMHAUS_DBL\" }]",
        ));
    }
    lines
}

/// `subject` (queried as `label.zone`) in each of `zones`.
async fn listing(app: &App, label: &str, subject: &str, zones: &[Zone]) -> Line {
    let mut listed = Vec::new();
    let mut refused = Vec::new();
    let mut failed = None;
    let names: Vec<&str> = zones.iter().map(|z| z.zone.trim_end_matches('.')).collect();
    let queries: Vec<String> = names.iter().map(|zone| format!("{label}.{zone}")).collect();
    let answers = all(queries.iter().map(|q| app.dns.a(q)).collect()).await;
    for (zone, answer) in names.iter().zip(answers) {
        match answer {
            Ok(Some(codes)) => {
                if let Some(code) = codes.iter().find(|c| is_listing(c)) {
                    listed.push(format!("{zone} ({code})"));
                } else if let Some(code) = codes.iter().find(|c| is_refusal(c)) {
                    refused.push(format!("{zone} ({code})"));
                }
            }
            Ok(None) => {}
            Err(e) => failed = Some(e.to_string()),
        }
    }
    if !listed.is_empty() {
        return Line::fail(
            "dnsbl",
            format!("{subject} is listed in {}", listed.join(", ")),
            format!(
                "find and stop what sent spam as {subject}, then ask each list's operator to \
                 remove it (their lookup page for {subject})"
            ),
        );
    }
    if !refused.is_empty() {
        return Line::warn(
            "dnsbl",
            format!(
                "{} refused to answer for {subject}: the list does not serve this resolver (a \
                 public or forwarding one?), so the listing is unknown",
                refused.join(", ")
            ),
            "query the lists through a resolver of your own ([dns] nameservers)",
        );
    }
    if let Some(e) = failed {
        return not_checked("dnsbl", &e);
    }
    Line::ok(
        "dnsbl",
        format!("{subject} is not listed in {}", names.join(", ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_told_apart() {
        for ip in [
            "127.0.0.5",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["203.0.113.10", "8.8.8.8", "2001:db8::25"] {
            assert!(!internal(ip.parse().unwrap()), "{ip}");
        }
    }
}
