//! Content rules compiled for one pass per target: every regex of a target
//! in one `RegexSet`, literal word lists in one Aho-Corasick automaton,
//! URL domains in a hash set; brand names and freemail domains for the
//! identity findings. Composites are in `composite.rs`.

pub use super::composite::{Composites, Expr};
use crate::message::Parsed;
use crate::score::Hit;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::RegexSet;
use std::collections::{HashMap, HashSet};

/// What a content rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// A header's decoded value (`header`, with `regex` or `exists`).
    Header,
    /// Decoded text parts, HTML converted to text (`regex` or `words`).
    Body,
    /// The raw body after the header block (`regex`).
    Rawbody,
    /// URLs (`regex` on the URL, or `domains`).
    Uri,
    /// Part content types (`regex`) or attachment file names (`filename`).
    Mime,
    /// Message size (`min` / `max` octets).
    Size,
    /// A boolean expression over other symbols (`expression`).
    Composite,
}

/// One rule as written, before compiling (the symbol's match keys).
#[derive(Debug, Clone, Default)]
pub struct RuleSpec {
    /// The symbol it emits.
    pub symbol: String,
    /// What it looks at.
    pub kind: Option<RuleKind>,
    /// For header rules.
    pub header: Option<String>,
    /// A regular expression.
    pub regex: Option<String>,
    /// Literal words (case-insensitive).
    pub words: Vec<String>,
    /// For header rules: present (true) or absent (false).
    pub exists: Option<bool>,
    /// For uri rules: hosts (and their subdomains).
    pub domains: Vec<String>,
    /// For mime rules: a regex on attachment file names.
    pub filename: Option<String>,
    /// For size rules: at least this many octets.
    pub min: Option<usize>,
    /// For size rules: at most this many octets.
    pub max: Option<usize>,
    /// For composites.
    pub expression: Option<String>,
}

/// A regex set and the symbol of each pattern.
#[derive(Debug, Clone)]
struct Set {
    set: RegexSet,
    symbols: Vec<usize>,
    each: Vec<regex::Regex>,
}

impl Set {
    fn build(patterns: Vec<(String, usize)>) -> Result<Option<Set>, String> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let set = RegexSet::new(patterns.iter().map(|(p, _)| p)).map_err(|e| e.to_string())?;
        let each = patterns
            .iter()
            .map(|(p, _)| regex::Regex::new(p).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        Ok(Some(Set {
            set,
            each,
            symbols: patterns.into_iter().map(|(_, s)| s).collect(),
        }))
    }

    /// Like `matches`, with the matched text (found again by the one
    /// pattern that matched).
    fn matches_text<'t>(&self, text: &'t str, mut found: impl FnMut(usize, &'t str)) {
        for i in self.set.matches(text).iter() {
            let m = self.each[i].find(text).map_or("", |m| m.as_str());
            found(self.symbols[i], m);
        }
    }

    fn matches(&self, text: &str, mut found: impl FnMut(usize)) {
        for i in self.set.matches(text).iter() {
            found(self.symbols[i]);
        }
    }
}

#[derive(Debug, Clone)]
struct BytesSet {
    set: regex::bytes::RegexSet,
    symbols: Vec<usize>,
}

/// The compiled content rules.
#[derive(Debug, Clone, Default)]
pub struct ContentRules {
    names: Vec<String>,
    headers: Vec<(String, Set)>,
    header_exists: Vec<(String, bool, usize)>,
    body: Option<Set>,
    body_words: Option<(AhoCorasick, Vec<usize>)>,
    rawbody: Option<BytesSet>,
    uri: Option<Set>,
    uri_domains: HashMap<String, Vec<usize>>,
    mime: Option<Set>,
    filename: Option<Set>,
    size: Vec<(Option<usize>, Option<usize>, usize)>,
    brands: Vec<Brand>,
    /// Every brand name padded with spaces, in one automaton: the brand.
    brand_names: Option<(AhoCorasick, Vec<usize>)>,
    freemail: HashSet<String>,
}

/// A brand senders impersonate: its names (lowercase) and its domains.
#[derive(Debug, Clone, Default)]
pub struct Brand {
    /// Names as a display name shows them, lowercase, words joined by one
    /// space (`bank of america`, `сбербанк`).
    pub names: Vec<String>,
    /// Single-word names a host label may show (`paypal`).
    pub labels: Vec<String>,
    /// Domains (and their subdomains) that belong to the brand.
    pub domains: Vec<String>,
}

impl Brand {
    /// From the names and domains of a `[brand.X]` table.
    pub fn new(names: &[String], domains: &[String]) -> Brand {
        let names: Vec<String> = names.iter().map(|n| words(n)).collect();
        let labels = names
            .iter()
            .filter(|n| !n.contains(' ') && n.chars().all(|c| c.is_ascii_alphanumeric()))
            .cloned()
            .collect();
        Brand {
            names,
            labels,
            domains: domains
                .iter()
                .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
        }
    }

    /// True when `host` is one of the brand's domains or below one.
    pub fn owns(&self, host: &str) -> bool {
        self.domains.iter().any(|d| under(host, d))
    }
}

/// `host` is `domain` or a subdomain of it.
pub fn under(host: &str, domain: &str) -> bool {
    let host = host.trim_end_matches('.');
    host.eq_ignore_ascii_case(domain)
        || host.len() > domain.len()
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
            && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain)
}

/// Lowercase words of `s` joined by single spaces (anything not a letter or
/// digit separates words).
pub fn words(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for w in s
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(w.chars().flat_map(char::to_lowercase));
    }
    out
}

/// A compile error: which symbol, which key, what is wrong.
#[derive(Debug)]
pub struct RuleError {
    /// The symbol.
    pub symbol: String,
    /// The key at fault.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

fn err(symbol: &str, key: &'static str, message: impl Into<String>) -> RuleError {
    RuleError {
        symbol: symbol.to_string(),
        key,
        message: message.into(),
    }
}

impl ContentRules {
    /// Compiles the non-composite rules.
    pub fn compile(specs: &[RuleSpec]) -> Result<ContentRules, RuleError> {
        let mut rules = ContentRules::default();
        let mut headers: Vec<(String, Vec<(String, usize)>)> = Vec::new();
        let mut body = Vec::new();
        let mut words: Vec<(String, usize)> = Vec::new();
        let mut raw = Vec::new();
        let mut uri = Vec::new();
        let mut mime = Vec::new();
        let mut filename = Vec::new();
        for spec in specs {
            let Some(kind) = spec.kind else { continue };
            if kind == RuleKind::Composite {
                continue;
            }
            let idx = rules.names.len();
            rules.names.push(spec.symbol.clone());
            let s = &spec.symbol;
            if let Some(re) = &spec.regex {
                regex::Regex::new(re)
                    .map_err(|e| err(s, "regex", format!("invalid regex: {e}")))?;
            }
            if let Some(re) = &spec.filename {
                regex::Regex::new(re)
                    .map_err(|e| err(s, "filename", format!("invalid regex: {e}")))?;
            }
            match kind {
                RuleKind::Header => {
                    let name = spec
                        .header
                        .as_ref()
                        .ok_or_else(|| err(s, "type", "a header rule needs `header`"))?
                        .to_ascii_lowercase();
                    match (&spec.regex, spec.exists) {
                        (Some(re), None) => match headers.iter_mut().find(|(h, _)| *h == name) {
                            Some((_, v)) => v.push((re.clone(), idx)),
                            None => headers.push((name, vec![(re.clone(), idx)])),
                        },
                        (None, Some(exists)) => rules.header_exists.push((name, exists, idx)),
                        _ => {
                            return Err(err(
                                s,
                                "type",
                                "a header rule needs exactly one of `regex` or `exists`",
                            ))
                        }
                    }
                }
                RuleKind::Body => {
                    if spec.regex.is_none() && spec.words.is_empty() {
                        return Err(err(s, "type", "a body rule needs `regex` or `words`"));
                    }
                    if let Some(re) = &spec.regex {
                        body.push((re.clone(), idx));
                    }
                    words.extend(spec.words.iter().map(|w| (w.clone(), idx)));
                }
                RuleKind::Rawbody => {
                    let re = spec
                        .regex
                        .as_ref()
                        .ok_or_else(|| err(s, "type", "a rawbody rule needs `regex`"))?;
                    raw.push((re.clone(), idx));
                }
                RuleKind::Uri => {
                    if spec.regex.is_none() && spec.domains.is_empty() {
                        return Err(err(s, "type", "a uri rule needs `regex` or `domains`"));
                    }
                    if let Some(re) = &spec.regex {
                        uri.push((re.clone(), idx));
                    }
                    for d in &spec.domains {
                        let d = d.trim_end_matches('.').to_ascii_lowercase();
                        rules.uri_domains.entry(d).or_default().push(idx);
                    }
                }
                RuleKind::Mime => {
                    match (&spec.regex, &spec.filename) {
                        (Some(re), None) => mime.push((re.clone(), idx)),
                        (None, Some(re)) => filename.push((re.clone(), idx)),
                        _ => return Err(err(
                            s,
                            "type",
                            "a mime rule needs exactly one of `regex` (content type) or `filename`",
                        )),
                    }
                }
                RuleKind::Size => {
                    if spec.min.is_none() && spec.max.is_none() {
                        return Err(err(s, "type", "a size rule needs `min` or `max`"));
                    }
                    rules.size.push((spec.min, spec.max, idx));
                }
                RuleKind::Composite => unreachable!("skipped above"),
            }
        }
        let set_err = |key| move |m: String| err("", key, m);
        for (name, patterns) in headers {
            if let Some(set) = Set::build(patterns).map_err(set_err("regex"))? {
                rules.headers.push((name, set));
            }
        }
        rules.body = Set::build(body).map_err(set_err("regex"))?;
        rules.uri = Set::build(uri).map_err(set_err("regex"))?;
        rules.mime = Set::build(mime).map_err(set_err("regex"))?;
        rules.filename = Set::build(filename).map_err(set_err("filename"))?;
        if !raw.is_empty() {
            let set = regex::bytes::RegexSet::new(raw.iter().map(|(p, _)| p))
                .map_err(|e| err("", "regex", e.to_string()))?;
            rules.rawbody = Some(BytesSet {
                set,
                symbols: raw.into_iter().map(|(_, s)| s).collect(),
            });
        }
        if !words.is_empty() {
            // ASCII case is folded by the automaton; other scripts get their
            // lowercase, Capitalised and UPPERCASE forms.
            let mut variants = Vec::with_capacity(words.len());
            for (w, s) in words {
                if w.is_ascii() {
                    variants.push((w, s));
                    continue;
                }
                let lower = w.to_lowercase();
                let mut cap: String = lower.chars().take(1).flat_map(char::to_uppercase).collect();
                cap.extend(lower.chars().skip(1));
                for v in [w.to_uppercase(), cap, lower, w] {
                    if !variants.iter().any(|(x, _)| *x == v) {
                        variants.push((v, s));
                    }
                }
            }
            let words = variants;
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostFirst)
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                // Words start with the common letters of text: a prefilter
                // stops at nearly every byte and costs more than the DFA.
                .prefilter(false)
                .build(words.iter().map(|(w, _)| w))
                .map_err(|e| err("", "words", e.to_string()))?;
            rules.body_words = Some((ac, words.into_iter().map(|(_, s)| s).collect()));
        }
        Ok(rules)
    }

    /// Sets the brands and freemail domains identity findings use.
    pub fn set_identity(&mut self, brands: Vec<Brand>, freemail: Vec<String>) {
        let mut padded = Vec::new();
        for (i, b) in brands.iter().enumerate() {
            padded.extend(b.names.iter().map(|n| (format!(" {n} "), i)));
        }
        self.brand_names = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .build(padded.iter().map(|(n, _)| n))
            .ok()
            .map(|ac| (ac, padded.into_iter().map(|(_, i)| i).collect()));
        self.brands = brands;
        self.freemail = freemail
            .into_iter()
            .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
            .collect();
    }

    /// The brands of `[brand.*]`.
    pub fn brands(&self) -> &[Brand] {
        &self.brands
    }

    /// Brands whose name `display` (a display name) shows, with the name.
    pub fn brands_named(&self, display: &str) -> Vec<(&Brand, String)> {
        let Some((ac, idx)) = &self.brand_names else {
            return Vec::new();
        };
        let shown = format!(" {} ", words(display));
        ac.find_overlapping_iter(&shown)
            .map(|m| {
                (
                    &self.brands[idx[m.pattern().as_usize()]],
                    shown[m.range()].trim().to_string(),
                )
            })
            .collect()
    }

    /// True when `domain` is a freemail provider of `[freemail]`.
    pub fn is_freemail(&self, domain: &str) -> bool {
        self.freemail
            .contains(&domain.trim_end_matches('.').to_ascii_lowercase())
    }

    /// Number of compiled rules.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there is no content rule.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The symbols of every content rule.
    pub fn symbols(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Runs every rule over `msg`; one hit per symbol, with what matched.
    pub fn scan(&self, msg: &Parsed, raw: &[u8]) -> Vec<Hit> {
        let mut found: Vec<Option<String>> = vec![None; self.names.len()];
        let mut mark = |idx: usize, what: &str| {
            if found[idx].is_none() {
                found[idx] = Some(shorten(what));
            }
        };
        for (name, set) in &self.headers {
            for value in msg.header_values(name) {
                set.matches(value, |i| mark(i, value));
            }
        }
        for (name, exists, idx) in &self.header_exists {
            if msg.has_header(name) == *exists {
                mark(*idx, "");
            }
        }
        let texts = msg.text_parts.iter().chain(&msg.html_text_parts);
        for text in texts {
            if let Some(set) = &self.body {
                set.matches_text(text, &mut mark);
            }
            if let Some((ac, symbols)) = &self.body_words {
                for m in ac.find_iter(text.as_str()) {
                    mark(symbols[m.pattern().as_usize()], &text[m.range()]);
                }
            }
        }
        if let Some(raw_set) = &self.rawbody {
            let body = raw.get(msg.body_offset..).unwrap_or_default();
            for i in raw_set.set.matches(body).iter() {
                mark(raw_set.symbols[i], "");
            }
        }
        for url in &msg.urls {
            if let Some(set) = &self.uri {
                set.matches(&url.url, |i| mark(i, &url.url));
            }
            if !self.uri_domains.is_empty() {
                let mut host = url.host.as_str();
                loop {
                    if let Some(idxs) = self.uri_domains.get(host) {
                        for &i in idxs {
                            mark(i, &url.host);
                        }
                    }
                    match host.find('.') {
                        Some(dot) => host = &host[dot + 1..],
                        None => break,
                    }
                }
            }
        }
        if let Some(set) = &self.mime {
            for ct in &msg.content_types {
                set.matches(ct, |i| mark(i, ct));
            }
        }
        if let Some(set) = &self.filename {
            for a in &msg.attachments {
                let outer = a.filename.as_deref().unwrap_or("(unnamed)");
                if let Some(name) = &a.filename {
                    set.matches(name, |i| mark(i, name));
                }
                for name in &a.archived {
                    let shown = format!("{outer} contains {name}");
                    set.matches(name, |i| mark(i, &shown));
                }
            }
        }
        for (min, max, idx) in &self.size {
            if min.is_none_or(|m| msg.size >= m) && max.is_none_or(|m| msg.size <= m) {
                mark(*idx, &msg.size.to_string());
            }
        }
        found
            .into_iter()
            .enumerate()
            .filter_map(|(i, f)| {
                f.map(|what| Hit {
                    why: Default::default(),
                    name: self.names[i].clone(),
                    options: if what.is_empty() {
                        Vec::new()
                    } else {
                        vec![what]
                    },
                })
            })
            .collect()
    }
}

/// At most 120 characters of what matched, for the breakdown.
fn shorten(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= 120 {
        return s.to_string();
    }
    let mut out: String = s.chars().take(117).collect();
    out.push_str("...");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(symbol: &str, kind: RuleKind) -> RuleSpec {
        RuleSpec {
            symbol: symbol.into(),
            kind: Some(kind),
            ..RuleSpec::default()
        }
    }

    #[test]
    fn expressions_parse_and_evaluate() {
        let e = Expr::parse("A & !(B | C)").unwrap();
        let set = |v: &[&'static str]| v.iter().copied().collect::<HashSet<&str>>();
        assert!(e.eval(&set(&["A"])));
        assert!(!e.eval(&set(&["A", "C"])));
        assert!(!e.eval(&set(&["B"])));
        assert!(Expr::parse("A &").is_err());
        assert!(Expr::parse("A $ B").is_err());
        assert!(Expr::parse("(A | B").is_err());
    }

    #[test]
    fn one_pass_scan_over_targets() {
        let mut caps = spec("SUBJ_ALL_CAPS", RuleKind::Header);
        caps.header = Some("Subject".into());
        caps.regex = Some("^[^a-z]*[A-Z]{3,}[^a-z]*$".into());
        let mut no_date = spec("MISSING_DATE", RuleKind::Header);
        no_date.header = Some("Date".into());
        no_date.exists = Some(false);
        let mut short = spec("URL_SHORTENER", RuleKind::Uri);
        short.domains = vec!["bit.ly".into()];
        let mut exe = spec("EXE", RuleKind::Mime);
        exe.filename = Some(r"(?i)\.exe$".into());
        let mut word = spec("VIAGRA", RuleKind::Body);
        word.words = vec!["viagra".into()];
        let mut big = spec("BIG", RuleKind::Size);
        big.min = Some(1_000_000);
        let rules = ContentRules::compile(&[caps, no_date, short, exe, word, big]).unwrap();
        let raw =
            b"Subject: BUY NOW\r\nFrom: a@b.test\r\n\r\nCheap VIAGRA at https://x.bit.ly/abc\r\n";
        let p = Parsed::parse(raw);
        let mut names: Vec<String> = rules.scan(&p, raw).into_iter().map(|h| h.name).collect();
        names.sort();
        assert_eq!(
            names,
            ["MISSING_DATE", "SUBJ_ALL_CAPS", "URL_SHORTENER", "VIAGRA"]
        );
    }

    #[test]
    fn bad_rules_name_the_key() {
        let mut bad = spec("X", RuleKind::Header);
        bad.header = Some("Subject".into());
        bad.regex = Some("(".into());
        let e = ContentRules::compile(&[bad]).unwrap_err();
        assert_eq!((e.symbol.as_str(), e.key), ("X", "regex"));
        let e = ContentRules::compile(&[spec("Y", RuleKind::Size)]).unwrap_err();
        assert_eq!((e.symbol.as_str(), e.key), ("Y", "type"));
    }
}
