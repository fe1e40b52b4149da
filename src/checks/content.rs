//! Content: the rules of rules/*.toml run over the parsed message in one
//! pass per target, plus the findings that need code rather than a regex
//! (HTML without text, image-only body, a From display name showing another
//! address, link text showing another domain than its href, broken MIME).

use super::{Check, CheckFuture, Phase, View};
use crate::message::Parsed;
use crate::rules::content::ContentRules;
use crate::score::Hit;
use std::sync::Arc;

/// The content check.
pub struct ContentCheck {
    rules: Arc<ContentRules>,
}

impl ContentCheck {
    /// Over compiled `rules`.
    pub fn new(rules: Arc<ContentRules>) -> ContentCheck {
        ContentCheck { rules }
    }

    /// Every finding for `parsed` (of `raw`).
    pub fn scan(&self, parsed: &Parsed, raw: &[u8]) -> Vec<Hit> {
        let mut hits = self.rules.scan(parsed, raw);
        facts(parsed, &mut hits);
        identity(parsed, &self.rules, &mut hits);
        hits
    }
}

/// Symbols emitted by code (the rest come from rules with a `type`).
pub const SYMBOLS: &[&str] = &[
    "MIME_HTML_ONLY",
    "HTML_IMAGE_ONLY",
    "SPOOF_DISPLAY_NAME",
    "PHISHING",
    "MIME_BAD",
    "MIME_TOO_COMPLEX",
    "MIME_ENCRYPTED_ARCHIVE",
    "URI_MANY_DOMAINS",
    "HTML_FORM_PASSWORD",
    "HTML_FORM_HTTP",
    "URI_BRAND_LOOKALIKE",
    "URI_BRAND_FOREIGN",
    "FROM_NAME_BRAND",
    "FROM_EQ_TO",
    "REPLYTO_FREEMAIL",
];

/// Distinct link sites from which a message has "many".
const MANY_DOMAINS: usize = 10;

impl Check for ContentCheck {
    fn name(&self) -> &'static str {
        "content"
    }

    fn phase(&self) -> Phase {
        Phase::Data
    }

    fn symbols(&self) -> &'static [&'static str] {
        SYMBOLS
    }

    fn check<'a>(&'a self, view: &'a View<'a>) -> CheckFuture<'a> {
        let hits = match (view.parsed, view.message) {
            (Some(parsed), Some(raw)) => super::off_worker(raw.len(), || self.scan(parsed, raw)),
            _ => Vec::new(),
        };
        Box::pin(async move { Ok(hits) })
    }
}

fn facts(p: &Parsed, hits: &mut Vec<Hit>) {
    if p.html_part_count > 0 && p.text_part_count == 0 {
        hits.push(Hit {
            why: Default::default(),
            name: "MIME_HTML_ONLY".into(),
            options: Vec::new(),
        });
    }
    if p.image_count > 0 {
        let visible: usize = p
            .text_parts
            .iter()
            .chain(&p.html_text_parts)
            .map(|t| t.chars().filter(|c| c.is_alphanumeric()).count())
            .sum();
        if visible < 30 {
            hits.push(Hit::new(
                "HTML_IMAGE_ONLY",
                format!("{} image(s), {visible} characters of text", p.image_count),
            ));
        }
    }
    if let Some((Some(name), Some(address))) = &p.from {
        if let Some(shown) = address_in(name) {
            if !shown.eq_ignore_ascii_case(address) {
                hits.push(Hit::new(
                    "SPOOF_DISPLAY_NAME",
                    format!("name shows {shown}, address is {address}"),
                ));
            }
        }
    }
    for url in &p.urls {
        let Some(text) = &url.link_text else { continue };
        let Some(shown) = host_in_text(text) else {
            continue;
        };
        if !same_site(&shown, &url.host) {
            hits.push(Hit::new(
                "PHISHING",
                format!("link text shows {shown}, link goes to {}", url.host),
            ));
            break;
        }
    }
    if !p.mime_problems.is_empty() {
        hits.push(Hit::new("MIME_BAD", p.mime_problems.join("; ")));
    }
    if let Some(why) = &p.too_complex {
        hits.push(Hit::new("MIME_TOO_COMPLEX", why.clone()));
    }
    if let Some(a) = p.attachments.iter().find(|a| a.encrypted) {
        hits.push(Hit::new(
            "MIME_ENCRYPTED_ARCHIVE",
            a.filename.as_deref().unwrap_or("(unnamed archive)"),
        ));
    }
    let mut sites: Vec<&str> = p.urls.iter().map(|u| site(&u.host)).collect();
    sites.sort_unstable();
    sites.dedup();
    if sites.len() >= MANY_DOMAINS {
        hits.push(Hit::new(
            "URI_MANY_DOMAINS",
            format!("{} link domains: {}", sites.len(), sites[..5].join(", ")),
        ));
    }
    if let Some(f) = p.forms.iter().find(|f| f.password) {
        hits.push(Hit::new(
            "HTML_FORM_PASSWORD",
            format!("<form action=\"{}\"> with a password field", f.action),
        ));
    }
    if let Some(f) = p
        .forms
        .iter()
        .find(|f| f.action.len() > 7 && f.action[..7].eq_ignore_ascii_case("http://"))
    {
        hits.push(Hit::new(
            "HTML_FORM_HTTP",
            format!("<form action=\"{}\">", f.action),
        ));
    }
}

/// The domain of an address.
fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// A host label with look-alike characters replaced (paypa1 → paypal,
/// rnicrosoft → microsoft).
fn unconfuse(label: &str) -> String {
    let mapped: String = label
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' | '!' | '|' => 'l',
            '3' => 'e',
            '4' | '@' => 'a',
            '5' | '$' => 's',
            '7' => 't',
            '8' => 'b',
            c => c,
        })
        .collect();
    let mut mapped = mapped;
    for (pair, one) in [("rn", "m"), ("vv", "w")] {
        if mapped.contains(pair) {
            mapped = mapped.replace(pair, one);
        }
    }
    mapped
}

/// Brand impersonation, the sender's own address, freemail Reply-To.
fn identity(p: &Parsed, rules: &ContentRules, hits: &mut Vec<Hit>) {
    let brands = rules.brands();
    let (mut lookalike, mut foreign) = (None, None);
    for url in &p.urls {
        if lookalike.is_some() && foreign.is_some() {
            break;
        }
        let labels: Vec<&str> = url.host.split(['.', '-']).collect();
        // Each label unconfused once per link, not once per brand name.
        let unconfused: Vec<String> = labels.iter().map(|l| unconfuse(l)).collect();
        for brand in brands.iter().filter(|b| !b.owns(&url.host)) {
            for name in &brand.labels {
                if foreign.is_none() && labels.iter().any(|l| l == name) {
                    foreign = Some(format!("{} (shows {name})", url.url));
                } else if lookalike.is_none()
                    && labels
                        .iter()
                        .zip(&unconfused)
                        .any(|(l, u)| l != name && u == name)
                {
                    lookalike = Some(format!("{} (imitates {name})", url.url));
                }
            }
        }
    }
    if let Some(l) = lookalike {
        hits.push(Hit::new("URI_BRAND_LOOKALIKE", l));
    }
    if let Some(f) = foreign {
        hits.push(Hit::new("URI_BRAND_FOREIGN", f));
    }
    let Some((name, Some(address))) = &p.from else {
        return;
    };
    let from_domain = domain_of(address);
    if let Some(name) = name {
        let claimed = rules
            .brands_named(name)
            .into_iter()
            .find(|(b, _)| !b.owns(from_domain))
            .map(|(_, n)| n);
        if let Some(brand) = claimed {
            hits.push(Hit::new(
                "FROM_NAME_BRAND",
                format!("From: \"{name}\" <{address}> names {brand}, the address is not theirs"),
            ));
        }
    }
    if p.to.len() == 1 && p.to[0].eq_ignore_ascii_case(address) {
        hits.push(Hit::new(
            "FROM_EQ_TO",
            format!("From and To are both {address}"),
        ));
    }
    if let Some(reply) = &p.reply_to {
        let rd = domain_of(reply);
        if rules.is_freemail(rd) && !rd.eq_ignore_ascii_case(from_domain) {
            hits.push(Hit::new(
                "REPLYTO_FREEMAIL",
                format!("Reply-To: {reply} (From: {address})"),
            ));
        }
    }
}

/// An e-mail address written inside a display name.
fn address_in(name: &str) -> Option<String> {
    name.split(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '(' | ')' | '"' | '\'' | ','))
        .find(|w| {
            let mut parts = w.splitn(2, '@');
            let (local, domain) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        .map(str::to_string)
}

/// A host name the link text shows (`www.bank.test`, `https://bank.test/x`,
/// `bank.test`), if the text looks like a URL or a host at all.
fn host_in_text(text: &str) -> Option<String> {
    let t = text.trim();
    if t.contains(char::is_whitespace) {
        return None;
    }
    if let Some(host) = crate::message::url_host(t) {
        return Some(host);
    }
    let host = t
        .split(['/', '?', '#'])
        .next()?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let looks_like_host = labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    looks_like_host.then_some(host)
}

/// The last two labels (a cheap stand-in for the registrable domain).
fn site(host: &str) -> &str {
    let mut dots = host.rmatch_indices('.');
    dots.next();
    match dots.next() {
        Some((i, _)) => &host[i + 1..],
        None => host,
    }
}

fn same_site(a: &str, b: &str) -> bool {
    site(a).eq_ignore_ascii_case(site(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(raw: &[u8]) -> Vec<String> {
        let mut hits = Vec::new();
        facts(&Parsed::parse(raw), &mut hits);
        hits.into_iter().map(|h| h.name).collect()
    }

    #[test]
    fn html_only_and_image_only() {
        let raw = b"From: a@b.test\r\nContent-Type: text/html\r\n\r\n<html><body><img src=\"cid:x\"></body></html>\r\n";
        assert_eq!(names(raw), ["MIME_HTML_ONLY", "HTML_IMAGE_ONLY"]);
    }

    #[test]
    fn display_name_with_another_address() {
        let raw = b"From: \"support@bank.test\" <x@evil.test>\r\n\r\nhello there\r\n";
        assert_eq!(names(raw), ["SPOOF_DISPLAY_NAME"]);
        let ok = b"From: \"x@evil.test\" <X@evil.test>\r\n\r\nhello there\r\n";
        assert!(names(ok).is_empty());
    }

    #[test]
    fn link_text_with_another_domain() {
        let raw = b"Content-Type: text/html\r\n\r\n<a href=\"https://evil.test/\">https://www.bank.test</a> and <a href=\"https://www.shop.test/a\">shop.test</a> text text text text text\r\n";
        let n = names(raw);
        assert!(n.contains(&"PHISHING".to_string()), "{n:?}");
        let ok = b"Content-Type: text/html\r\n\r\n<a href=\"https://mail.shop.test/a\">www.shop.test</a> <a href=\"https://x.test\">click here</a>\r\n";
        assert!(!names(ok).contains(&"PHISHING".to_string()));
    }
}
