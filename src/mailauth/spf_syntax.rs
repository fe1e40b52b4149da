//! SPF record syntax (RFC 7208 §4.5, §4.6, §12 ABNF), checked before
//! mail-auth evaluates a record: mail-auth 0.13 evaluates some broken
//! records anyway (a `/33` CIDR, a duplicate `redirect=`, an unknown
//! mechanism), where receivers such as pyspf and libspf2 answer permerror.
//! The error names the broken term, so the customer's alert says exactly
//! what to repair. Pure: no DNS.

use std::fmt;
use std::net::Ipv6Addr;

/// What is wrong with an SPF record: the term and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfSyntaxError {
    /// The offending term as published (or a description of the record).
    pub term: String,
    /// Why it is invalid.
    pub why: String,
}

impl fmt::Display for SpfSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.term, self.why)
    }
}

impl std::error::Error for SpfSyntaxError {}

fn error(term: &str, why: impl Into<String>) -> SpfSyntaxError {
    SpfSyntaxError {
        term: term.to_string(),
        why: why.into(),
    }
}

/// True when a TXT record is an SPF record: `v=spf1` (any case) alone or
/// followed by a space (RFC 7208 §4.5).
pub fn is_spf_record(txt: &str) -> bool {
    let bytes = txt.as_bytes();
    bytes.len() >= 6
        && bytes[..6].eq_ignore_ascii_case(b"v=spf1")
        && bytes.get(6).is_none_or(|b| *b == b' ')
}

/// The one SPF record among a name's TXT records: `Ok(None)` when there is
/// none, an error when there are several (RFC 7208 §4.5: permerror).
pub fn select(records: &[String]) -> Result<Option<&str>, SpfSyntaxError> {
    let mut spf = records.iter().filter(|r| is_spf_record(r));
    let first = spf.next();
    let others = spf.count();
    if others > 0 {
        return Err(error(
            &format!("{} SPF records", others + 1),
            "a domain must publish exactly one TXT record starting with v=spf1",
        ));
    }
    Ok(first.map(String::as_str))
}

/// Checks one SPF record (which [`is_spf_record`] accepted) against the
/// RFC 7208 grammar.
pub fn validate(record: &str) -> Result<(), SpfSyntaxError> {
    if let Some(bad) = record.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(error(
            record,
            format!(
                "{:?} is not allowed in an SPF record (printable ASCII and spaces only)",
                bad
            ),
        ));
    }
    let mut redirect = false;
    let mut exp = false;
    for term in record[6..].split(' ').filter(|t| !t.is_empty()) {
        match term_kind(term)? {
            Term::Redirect => {
                if std::mem::replace(&mut redirect, true) {
                    return Err(error(term, "redirect= appears more than once"));
                }
            }
            Term::Exp => {
                if std::mem::replace(&mut exp, true) {
                    return Err(error(term, "exp= appears more than once"));
                }
            }
            Term::Other => {}
        }
    }
    Ok(())
}

enum Term {
    Redirect,
    Exp,
    Other,
}

/// Validates one term: a directive (`[qualifier] mechanism`) or a modifier
/// (`name=value`).
fn term_kind(term: &str) -> Result<Term, SpfSyntaxError> {
    if let Some(name) = modifier_name(term) {
        return modifier(term, name, &term[name.len() + 1..]);
    }
    let body = term.strip_prefix(['+', '-', '?', '~']).unwrap_or(term);
    let name_end = body
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(body.len());
    let (name, rest) = body.split_at(name_end);
    mechanism(term, &name.to_ascii_lowercase(), rest)?;
    Ok(Term::Other)
}

fn modifier(term: &str, name: &str, value: &str) -> Result<Term, SpfSyntaxError> {
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(error(term, "a modifier name must start with a letter"));
    }
    match name.to_ascii_lowercase().as_str() {
        "redirect" => {
            domain_spec(term, value, false)?;
            Ok(Term::Redirect)
        }
        "exp" => {
            domain_spec(term, value, false)?;
            Ok(Term::Exp)
        }
        _ => {
            macro_string(term, value, false)?;
            Ok(Term::Other)
        }
    }
}

fn mechanism(term: &str, name: &str, rest: &str) -> Result<(), SpfSyntaxError> {
    match name {
        "all" => none_after(term, rest),
        "include" | "exists" => match rest.strip_prefix(':') {
            Some(spec) => domain_spec(term, spec, false),
            None => Err(error(term, format!("{name} needs :<domain>"))),
        },
        "a" | "mx" => {
            let (spec, cidr) = split_cidr(rest);
            if let Some(spec) = spec.strip_prefix(':') {
                domain_spec(term, spec, false)?;
            } else if !spec.is_empty() {
                return Err(error(term, "expected :<domain> or /<CIDR length>"));
            }
            dual_cidr(term, cidr)
        }
        "ptr" => match rest.strip_prefix(':') {
            Some(spec) => domain_spec(term, spec, false),
            None => none_after(term, rest),
        },
        "ip4" => {
            let Some(network) = rest.strip_prefix(':') else {
                return Err(error(term, "ip4 needs :<IPv4 address>"));
            };
            let (addr, cidr) = network.split_once('/').unwrap_or((network, ""));
            if !ipv4_network(addr) {
                return Err(error(term, format!("{addr} is not an IPv4 address")));
            }
            if network.contains('/') {
                cidr_length(term, cidr, 32)?;
            }
            Ok(())
        }
        "ip6" => {
            let Some(network) = rest.strip_prefix(':') else {
                return Err(error(term, "ip6 needs :<IPv6 address>"));
            };
            let (addr, cidr) = network.split_once('/').unwrap_or((network, ""));
            if addr.parse::<Ipv6Addr>().is_err() {
                return Err(error(term, format!("{addr} is not an IPv6 address")));
            }
            if network.contains('/') {
                cidr_length(term, cidr, 128)?;
            }
            Ok(())
        }
        "" => Err(error(term, "not a mechanism or modifier")),
        other => Err(error(
            term,
            format!("unknown mechanism {other} (all, include, a, mx, ptr, ip4, ip6, exists)"),
        )),
    }
}

fn none_after(term: &str, rest: &str) -> Result<(), SpfSyntaxError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(error(term, format!("unexpected {rest:?}")))
    }
}

/// Splits what follows `a`/`mx` (`:domain/24//64`) into the domain part
/// and the CIDR suffix: the longest `/N`, `//N` or `/N//N` at the end. A
/// `/` elsewhere belongs to the domain (`a:foo:bar/baz.example.com` is a
/// valid macro-string).
pub fn split_cidr(rest: &str) -> (&str, &str) {
    // The index of the `/` of a `/digits` suffix of `s`.
    let slash_digits = |s: &str| {
        let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let slash = s.len() - digits;
        (digits > 0 && s[..slash].ends_with('/')).then(|| slash - 1)
    };
    let mut cut = rest.len();
    if let Some(slash) = slash_digits(rest) {
        cut = slash;
        if rest[..slash].ends_with('/') {
            cut = slash - 1;
            if let Some(v4) = slash_digits(&rest[..cut]) {
                cut = v4;
            }
        }
    }
    rest.split_at(cut)
}

/// The name of a modifier term (`redirect` of `redirect=x`), `None` for a
/// directive.
pub fn modifier_name(term: &str) -> Option<&str> {
    let name_end = term
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(term.len());
    term[name_end..].starts_with('=').then(|| &term[..name_end])
}

/// True when `domain` can be an SPF identity: at least two labels, none
/// empty or over 63 octets, 253 in all, no domain literal. Otherwise
/// check_host() returns "none" (RFC 7208 §4.3).
pub fn well_formed_identity(domain: &str) -> bool {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && domain.len() <= 253
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.len() <= 63 && !l.contains(['[', ']']))
}

/// `[ "/" ip4-length ] [ "//" ip6-length ]`.
fn dual_cidr(term: &str, cidr: &str) -> Result<(), SpfSyntaxError> {
    if cidr.is_empty() {
        return Ok(());
    }
    let Some(after) = cidr.strip_prefix('/') else {
        return Err(error(term, "bad CIDR length"));
    };
    if let Some(v6) = after.strip_prefix('/') {
        return cidr_length(term, v6, 128);
    }
    match after.split_once("//") {
        Some((v4, v6)) => {
            cidr_length(term, v4, 32)?;
            cidr_length(term, v6, 128)
        }
        None => cidr_length(term, after, 32),
    }
}

/// A decimal CIDR length without leading zeros, at most `max`.
fn cidr_length(term: &str, digits: &str, max: u32) -> Result<(), SpfSyntaxError> {
    let well_formed = !digits.is_empty()
        && digits.len() <= 3
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !well_formed {
        return Err(error(term, format!("/{digits} is not a CIDR length")));
    }
    let value: u32 = digits.parse().unwrap_or(u32::MAX);
    if value > max {
        return Err(error(term, format!("CIDR length over {max}")));
    }
    Ok(())
}

/// Four decimal octets, no leading zeros (the ABNF's qnum).
fn ipv4_network(addr: &str) -> bool {
    let parts: Vec<&str> = addr.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && (*p == "0" || !p.starts_with('0'))
                && p.parse::<u16>().is_ok_and(|v| v <= 255)
        })
}

/// `domain-spec = macro-string domain-end`: it ends in a macro or in a
/// top label that is not all digits (RFC 7208 §7.1).
fn domain_spec(term: &str, spec: &str, exp: bool) -> Result<(), SpfSyntaxError> {
    if spec.is_empty() {
        return Err(error(term, "the domain is missing"));
    }
    macro_string(term, spec, exp)?;
    // A trailing dot after a macro (`%{d}.`) is taken as pyspf takes it.
    let trimmed = spec.strip_suffix('.').unwrap_or(spec);
    if ["}", "%%", "%_", "%-"]
        .iter()
        .any(|end| trimmed.ends_with(end))
    {
        return Ok(());
    }
    let Some((_, top)) = trimmed.rsplit_once('.') else {
        return Err(error(term, "the domain needs at least two labels"));
    };
    let toplabel = !top.is_empty()
        && top.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && top.bytes().any(|b| b.is_ascii_alphabetic())
        && !top.starts_with('-')
        && !top.ends_with('-');
    if toplabel {
        Ok(())
    } else {
        Err(error(
            term,
            format!("{top:?} is not a valid top-level label"),
        ))
    }
}

/// `macro-string = *( macro-expand / macro-literal )` (RFC 7208 §7.1);
/// `c`, `r` and `t` only in explanations.
fn macro_string(term: &str, text: &str, exp: bool) -> Result<(), SpfSyntaxError> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            if !(0x21..=0x7e).contains(&b) {
                return Err(error(term, "invalid character"));
            }
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'%' | b'_' | b'-') => i += 2,
            Some(b'{') => {
                let close = text[i..]
                    .find('}')
                    .ok_or_else(|| error(term, "unterminated macro %{"))?;
                macro_expand(term, &text[i + 2..i + close], exp)?;
                i += close + 1;
            }
            _ => {
                return Err(error(
                    term,
                    "a lone % (write %% for a percent sign, or %{letter})",
                ))
            }
        }
    }
    Ok(())
}

/// The inside of `%{...}`: a letter, digits, `r`, delimiters.
fn macro_expand(term: &str, inner: &str, exp: bool) -> Result<(), SpfSyntaxError> {
    let mut chars = inner.chars();
    let letter = chars.next().map(|c| c.to_ascii_lowercase());
    match letter {
        Some('s' | 'l' | 'o' | 'd' | 'i' | 'p' | 'h' | 'v') => {}
        Some('c' | 'r' | 't') if exp => {}
        Some(c @ ('c' | 'r' | 't')) => {
            return Err(error(
                term,
                format!("macro %{{{c}}} is allowed only in exp= explanations"),
            ))
        }
        _ => return Err(error(term, format!("unknown macro %{{{inner}}}"))),
    }
    let rest = chars.as_str();
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let digits = &rest[..digits_end];
    if !digits.is_empty() && digits.parse::<u32>().is_ok_and(|n| n == 0) {
        return Err(error(term, format!("%{{{inner}}}: zero labels")));
    }
    let rest = &rest[digits_end..];
    let rest = rest
        .strip_prefix('r')
        .or_else(|| rest.strip_prefix('R'))
        .unwrap_or(rest);
    if let Some(bad) = rest
        .chars()
        .find(|c| !matches!(c, '.' | '-' | '+' | ',' | '/' | '_' | '='))
    {
        return Err(error(
            term,
            format!("%{{{inner}}}: {bad:?} is not a macro delimiter"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(record: &str) -> String {
        validate(record).expect_err(record).to_string()
    }

    #[test]
    fn valid_records_pass() {
        for record in [
            "v=spf1",
            "v=spf1 -all",
            "V=SPF1 +A MX/24 -ALL",
            "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all",
            "v=spf1 a:mail.example.com/24//64 mx//0 ptr ptr:example.com ?all",
            "v=spf1 include:_spf.example.com exists:%{ir}.%{v}._spf.%{d2} -all",
            "v=spf1 redirect=_spf.example.com",
            "v=spf1 -all exp=explain.%{d}",
            "v=spf1 moo.cow-far_out=man:dog/cat ip4:1.2.3.4",
            "v=spf1 a:%{l1r-}.example.com include:%{d}. -all",
            "v=spf1  ip4:1.2.3.4   -all  ",
            "v=spf1 a:example.com. -all",
            "v=spf1 foo=%% bar=%{d}",
        ] {
            assert_eq!(validate(record), Ok(()), "{record}");
        }
    }

    #[test]
    fn broken_terms_are_named() {
        for (record, expected) in [
            (
                "v=spf1 ip4:1.2.3.4/33 -all",
                "ip4:1.2.3.4/33: CIDR length over 32",
            ),
            ("v=spf1 ip6:::1/129", "ip6:::1/129: CIDR length over 128"),
            ("v=spf1 a/33", "a/33: CIDR length over 32"),
            ("v=spf1 mx//129", "mx//129: CIDR length over 128"),
            ("v=spf1 a/024", "a/024: /024 is not a CIDR length"),
            (
                "v=spf1 ip4:1.2.3/8",
                "ip4:1.2.3/8: 1.2.3 is not an IPv4 address",
            ),
            (
                "v=spf1 ip4:1.2.3.04",
                "ip4:1.2.3.04: 1.2.3.04 is not an IPv4 address",
            ),
            (
                "v=spf1 ip6:1.2.3.4",
                "ip6:1.2.3.4: 1.2.3.4 is not an IPv6 address",
            ),
            (
                "v=spf1 redirect=a.test redirect=b.test",
                "redirect=b.test: redirect= appears more than once",
            ),
            (
                "v=spf1 exp=a.test exp=b.test",
                "exp=b.test: exp= appears more than once",
            ),
            (
                "v=spf1 foo:bar -all",
                "foo:bar: unknown mechanism foo (all, include, a, mx, ptr, ip4, ip6, exists)",
            ),
            ("v=spf1 include", "include: include needs :<domain>"),
            ("v=spf1 -all:foo", "-all:foo: unexpected \":foo\""),
            (
                "v=spf1 a:museum",
                "a:museum: the domain needs at least two labels",
            ),
            (
                "v=spf1 a:foo.1.2.3",
                "a:foo.1.2.3: \"3\" is not a valid top-level label",
            ),
            (
                "v=spf1 include:%{x}.example.com",
                "include:%{x}.example.com: unknown macro %{x}",
            ),
            (
                "v=spf1 exists:%{r}.example.com",
                "exists:%{r}.example.com: macro %{r} is allowed only in exp= explanations",
            ),
            (
                "v=spf1 a:100%.example.com",
                "a:100%.example.com: a lone % (write %% for a percent sign, or %{letter})",
            ),
            (
                "v=spf1 a:%{d.example.com",
                "a:%{d.example.com: unterminated macro %{",
            ),
            (
                "v=spf1 =foo",
                "=foo: a modifier name must start with a letter",
            ),
            ("v=spf1 redirect=", "redirect=: the domain is missing"),
        ] {
            assert_eq!(why(record), expected, "{record}");
        }
    }

    #[test]
    fn cidr_suffixes_split_from_the_domain() {
        assert_eq!(split_cidr(":foo.test/24//64"), (":foo.test", "/24//64"));
        assert_eq!(split_cidr("//64"), ("", "//64"));
        assert_eq!(split_cidr("/24"), ("", "/24"));
        assert_eq!(split_cidr("/24/64"), ("/24", "/64"));
        assert_eq!(
            split_cidr(":foo:bar/baz.example.com"),
            (":foo:bar/baz.example.com", "")
        );
        assert_eq!(validate("v=spf1 a:foo:bar/baz.example.com"), Ok(()));
        assert!(validate("v=spf1 a/24/64").is_err());
    }

    #[test]
    fn identities_must_be_multi_label_names() {
        assert!(well_formed_identity("example.com"));
        assert!(well_formed_identity("example.com."));
        assert!(!well_formed_identity("A...example.com"));
        assert!(!well_formed_identity("[1.2.3.5]"));
        assert!(!well_formed_identity("localhost"));
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(validate("v=spf1 -all\t").is_err());
        assert!(validate("v=spf1 ip4:1.2.3.4\u{e9}").is_err());
    }

    #[test]
    fn one_record_is_selected() {
        let records = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(select(&records(&["hello", "v=spf10 -all"])), Ok(None));
        let one = records(&["google-site-verification=x", "v=spf1 -all"]);
        assert_eq!(select(&one), Ok(Some("v=spf1 -all")));
        let two = records(&["v=spf1 -all", "V=SPF1 +all"]);
        assert_eq!(
            select(&two).expect_err("two").to_string(),
            "2 SPF records: a domain must publish exactly one TXT record starting with v=spf1"
        );
        assert!(is_spf_record("v=spf1"));
        assert!(!is_spf_record("v=spf1-all"));
    }
}
