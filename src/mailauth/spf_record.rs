//! mail-auth's form ([`Spf`]) of a record smtpgate has validated, built term
//! by term: mail-auth 0.13's parser refuses some valid records (an unknown
//! modifier such as `moo.cow-far_out=man:dog/cat`, a domain with `:` or `/`
//! such as `a:foo:bar/baz.example.com`), which RFC 7208 §6 and §12 accept.
//! Unknown modifiers are dropped (RFC 7208 §6: they MUST be ignored).

use super::spf_syntax::{modifier_name, split_cidr};
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::spf::{Directive, Macro, Mechanism, Spf};

/// mail-auth's parse of one term, alone in a record.
fn parse_alone(term: &str) -> Option<Spf> {
    Spf::parse(format!("v=spf1 {term}").as_bytes()).ok()
}

/// The directive of `term`, as mail-auth parses it, or built here for an
/// `a`/`mx` with a literal domain mail-auth's parser refuses.
fn directive(term: &str) -> Option<Directive> {
    if let Some(spf) = parse_alone(term) {
        if let [one] = &*spf.directives {
            return Some(one.clone());
        }
    }
    let body = term.trim_start_matches(['+', '-', '?', '~']);
    let qualifier = &term[..term.len() - body.len()];
    let (name, rest) = body.split_at(body.find(':')?);
    if !(name.eq_ignore_ascii_case("a") || name.eq_ignore_ascii_case("mx")) {
        return None;
    }
    let (spec, cidr) = split_cidr(rest);
    let domain = spec.strip_prefix(':')?;
    if domain.contains('%') {
        return None;
    }
    let spf = parse_alone(&format!("{qualifier}{name}:placeholder.invalid{cidr}"))?;
    let [one] = &*spf.directives else {
        return None;
    };
    let mut built = one.clone();
    match &mut built.mechanism {
        Mechanism::A { macro_string, .. } | Mechanism::Mx { macro_string, .. } => {
            *macro_string = Macro::Literal(domain.as_bytes().into());
        }
        _ => return None,
    }
    Some(built)
}

/// The record `record` (which passed [`super::spf_syntax::validate`]) as
/// mail-auth evaluates it; `None` when a term cannot be expressed.
pub(super) fn parse(record: &str) -> Option<Spf> {
    let mut spf = Spf::parse(b"v=spf1").ok()?;
    let mut directives = Vec::new();
    for term in record[6..].split(' ').filter(|t| !t.is_empty()) {
        match modifier_name(term).map(str::to_ascii_lowercase).as_deref() {
            Some("redirect") => spf.redirect = parse_alone(term)?.redirect,
            Some("exp") => spf.exp = parse_alone(term)?.exp,
            Some(_) => {}
            None => directives.push(directive(term)?),
        }
    }
    spf.directives = directives.into();
    Some(spf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_modifiers_are_dropped_and_odd_domains_kept() {
        let spf = parse("v=spf1 moo.cow-far_out=man:dog/cat ip4:1.2.3.4 -all").expect("parse");
        assert_eq!(spf.directives.len(), 2);
        let spf = parse("v=spf1 a:foo:bar/baz.example.com/24 -all").expect("parse");
        match &spf.directives[0].mechanism {
            Mechanism::A {
                macro_string,
                ip4_mask,
                ..
            } => {
                assert_eq!(
                    *macro_string,
                    Macro::Literal(b"foo:bar/baz.example.com".to_vec().into())
                );
                assert_eq!(*ip4_mask, u32::MAX << 8);
            }
            other => panic!("{other:?}"),
        }
        let spf = parse("v=spf1 ip4:1.2.3.4 redirect=t2.example.com").expect("parse");
        assert!(spf.redirect.is_some());
    }
}
