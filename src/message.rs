//! A received message parsed once (mail-parser) into what content rules
//! look at: decoded headers, text (HTML converted to text), URLs with their
//! link text, MIME parts, attachment names (also inside zip archives) and
//! MIME problems. Parsing never fails: broken MIME is itself a finding.

use mail_parser::{HeaderValue, MessageParser, MimeHeaders, PartType};
use std::borrow::Cow;

/// A URL found in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The URL as written.
    pub url: String,
    /// Its host, lowercase, without a trailing dot.
    pub host: String,
    /// For an HTML link, the visible text of the link.
    pub link_text: Option<String>,
}

/// An attachment (or any non-text part with a file name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The file name, when one was given.
    pub filename: Option<String>,
    /// `type/subtype`, lowercase.
    pub content_type: String,
    /// File names listed inside a zip archive.
    pub archived: Vec<String>,
}

/// The parsed message.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// Every header as (lowercase name, decoded value), in order.
    pub headers: Vec<(String, String)>,
    /// The decoded Subject.
    pub subject: Option<String>,
    /// The first From mailbox: (display name, address).
    pub from: Option<(Option<String>, Option<String>)>,
    /// The Message-ID, without angle brackets.
    pub message_id: Option<String>,
    /// All To and Cc addresses.
    pub to: Vec<String>,
    /// Decoded text/plain parts.
    pub text_parts: Vec<String>,
    /// text/html parts converted to text.
    pub html_text_parts: Vec<String>,
    /// Number of text/plain body parts.
    pub text_part_count: usize,
    /// Number of text/html body parts.
    pub html_part_count: usize,
    /// `<img` tags in HTML parts plus image parts.
    pub image_count: usize,
    /// URLs from text and HTML.
    pub urls: Vec<Url>,
    /// Every part's content type, lowercase.
    pub content_types: Vec<String>,
    /// Attachments.
    pub attachments: Vec<Attachment>,
    /// What is wrong with the MIME structure.
    pub mime_problems: Vec<String>,
    /// The whole message, in octets.
    pub size: usize,
    /// Offset of the body (after the header block) in the raw message.
    pub body_offset: usize,
}

impl Parsed {
    /// Parses `raw` (the message as received, CRLF line ends).
    pub fn parse(raw: &[u8]) -> Parsed {
        let mut parsed = Parsed {
            size: raw.len(),
            body_offset: body_offset(raw),
            ..Parsed::default()
        };
        let Some(message) = MessageParser::default().parse(raw) else {
            parsed.mime_problems.push("message cannot be parsed".into());
            return parsed;
        };
        for header in message.headers() {
            let name = header.name().to_ascii_lowercase();
            let value = header_text(header.value()).unwrap_or_else(|| {
                let start = header.offset_start() as usize;
                let end = (header.offset_end() as usize).min(raw.len());
                String::from_utf8_lossy(raw.get(start..end).unwrap_or_default())
                    .trim()
                    .to_string()
            });
            parsed.headers.push((name, value));
        }
        parsed.subject = message.subject().map(str::to_string);
        parsed.message_id = message.message_id().map(str::to_string);
        parsed.from = message.from().and_then(|a| a.first()).map(|a| {
            (
                a.name().map(str::to_string),
                a.address().map(str::to_string),
            )
        });
        for list in [message.to(), message.cc()].into_iter().flatten() {
            parsed
                .to
                .extend(list.iter().filter_map(|a| a.address()).map(str::to_string));
        }
        for (i, part) in message.parts.iter().enumerate() {
            let ctype = part.content_type().map_or_else(
                || "text/plain".to_string(),
                |c| match c.subtype() {
                    Some(sub) => format!("{}/{}", c.ctype(), sub).to_ascii_lowercase(),
                    None => c.ctype().to_ascii_lowercase(),
                },
            );
            if ctype.starts_with("multipart/") {
                let has_boundary = part
                    .content_type()
                    .is_some_and(|c| c.attribute("boundary").is_some_and(|b| !b.is_empty()));
                if !has_boundary {
                    parsed
                        .mime_problems
                        .push(format!("{ctype} without a boundary"));
                } else if !matches!(part.body, PartType::Multipart(ref sub) if !sub.is_empty()) {
                    parsed
                        .mime_problems
                        .push(format!("{ctype} with no parts (boundary not found)"));
                }
            }
            if part.is_encoding_problem {
                parsed
                    .mime_problems
                    .push(format!("part {i} ({ctype}): bad transfer encoding"));
            }
            parsed.content_types.push(ctype.clone());
            let is_body =
                message.text_body.contains(&(i as u32)) || message.html_body.contains(&(i as u32));
            match &part.body {
                PartType::Text(text) if is_body && !is_attachment(part) => {
                    parsed.text_part_count += 1;
                    urls_in_text(text, &mut parsed.urls);
                    parsed.text_parts.push(text.to_string());
                }
                PartType::Html(html) if !is_attachment(part) => {
                    parsed.html_part_count += 1;
                    parsed.image_count += scan_html(html, &mut parsed.urls);
                    parsed.html_text_parts.push(html_to_text(html));
                }
                PartType::Multipart(_) | PartType::Message(_) => {}
                body => {
                    if ctype.starts_with("image/") {
                        parsed.image_count += 1;
                    }
                    let filename = part.attachment_name().map(str::to_string);
                    if filename.is_some() || !ctype.starts_with("text/") {
                        let archived = match body {
                            PartType::Binary(data) | PartType::InlineBinary(data)
                                if looks_like_zip(&ctype, filename.as_deref(), data) =>
                            {
                                zip_names(data)
                            }
                            _ => Vec::new(),
                        };
                        parsed.attachments.push(Attachment {
                            filename,
                            content_type: ctype,
                            archived,
                        });
                    }
                }
            }
        }
        parsed
    }

    /// All values of header `name` (lowercase).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// True when header `name` (lowercase) is present.
    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n == name)
    }
}

/// Spam verdict headers only smtpgate may set: client-supplied copies are
/// removed before delivery.
fn is_our_header(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"x-spamd-result")
        || name.len() > 7 && name[..7].eq_ignore_ascii_case(b"x-spam-")
}

/// The message as smtpgate delivers it (before its own headers are
/// prepended): without client-supplied `X-Spamd-Result`, `X-Spam-*` and
/// `Authentication-Results` fields that claim our authserv-id `hostname`
/// (RFC 8601 §5). Borrowed when nothing is removed.
pub fn as_delivered<'a>(hostname: &str, message: &'a [u8]) -> Cow<'a, [u8]> {
    strip_fields(message, |field| {
        let name = &field[..field.iter().position(|&b| b == b':').unwrap_or(0)];
        is_our_header(name) || claims_to_be_ours(hostname, field)
    })
}

/// True when `field` is an `Authentication-Results` field whose authserv-id
/// is `hostname`: one a client forged in our name.
pub fn claims_to_be_ours(hostname: &str, field: &[u8]) -> bool {
    let Some(colon) = field.iter().position(|b| *b == b':') else {
        return false;
    };
    if !field[..colon].eq_ignore_ascii_case(b"Authentication-Results") {
        return false;
    }
    let value = String::from_utf8_lossy(&field[colon + 1..]);
    let authserv_id = value
        .split(';')
        .next()
        .and_then(|id| id.split_whitespace().next())
        .unwrap_or("");
    authserv_id.eq_ignore_ascii_case(hostname)
}

/// The end of the CRLF-terminated line starting at `pos` (or the end of
/// `message`).
fn line_end(message: &[u8], pos: usize) -> usize {
    message[pos..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(message.len(), |e| pos + e + 2)
}

/// The message without the header fields (each with its folded lines) for
/// which `drop` is true; the body is untouched; borrowed when nothing is
/// removed.
pub fn strip_fields(message: &[u8], drop: impl Fn(&[u8]) -> bool) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut start = 0;
    while start < message.len() {
        let mut end = line_end(message, start);
        if &message[start..end] == b"\r\n" {
            break;
        }
        while end < message.len() && matches!(message[end], b' ' | b'\t') {
            end = line_end(message, end);
        }
        let field = &message[start..end];
        if drop(field) {
            out.get_or_insert_with(|| message[..start].to_vec());
        } else if let Some(o) = out.as_mut() {
            o.extend_from_slice(field);
        }
        start = end;
    }
    match out {
        Some(mut o) => {
            o.extend_from_slice(&message[start..]);
            Cow::Owned(o)
        }
        None => Cow::Borrowed(message),
    }
}

fn is_attachment(part: &mail_parser::MessagePart<'_>) -> bool {
    part.content_disposition()
        .is_some_and(|d| d.is_attachment())
}

/// A header value as text, when mail-parser decoded it to something textual.
fn header_text(value: &HeaderValue<'_>) -> Option<String> {
    match value {
        HeaderValue::Text(t) => Some(t.to_string()),
        HeaderValue::TextList(list) => Some(list.join(", ")),
        HeaderValue::Address(addr) => Some(
            addr.iter()
                .map(|a| match (a.name(), a.address()) {
                    (Some(n), Some(ad)) => format!("{n} <{ad}>"),
                    (None, Some(ad)) => ad.to_string(),
                    (Some(n), None) => n.to_string(),
                    (None, None) => String::new(),
                })
                .collect::<Vec<_>>()
                .join(", "),
        ),
        _ => None,
    }
}

/// Where the body starts: after the first empty line.
fn body_offset(raw: &[u8]) -> usize {
    if raw.starts_with(b"\r\n") {
        return 2;
    }
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |p| p + 4)
}

/// The host of a URL (`scheme://host...` or `www.host...`), lowercase.
pub fn url_host(url: &str) -> Option<String> {
    let rest = match url.find("://") {
        Some(i) => &url[i + 3..],
        None if url.len() > 4 && url.as_bytes()[..4].eq_ignore_ascii_case(b"www.") => url,
        None => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if host_port.starts_with('[') {
        host_port.split(']').next()?.trim_start_matches('[')
    } else {
        host_port.split(':').next()?
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

fn is_url_char(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(
            c,
            '<' | '>' | '"' | '\'' | '`' | '{' | '}' | '|' | '\\' | '^'
        )
}

/// One automaton for URL starts, built once.
fn url_starts() -> &'static aho_corasick::AhoCorasick {
    static AC: std::sync::OnceLock<aho_corasick::AhoCorasick> = std::sync::OnceLock::new();
    AC.get_or_init(|| {
        aho_corasick::AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(["http://", "https://", "www."])
            .expect("literal patterns")
    })
}

/// URLs in plain text: `http://`, `https://` and `www.` forms, one pass.
fn urls_in_text(text: &str, out: &mut Vec<Url>) {
    let bytes = text.as_bytes();
    let mut next_free = 0;
    for m in url_starts().find_iter(text) {
        let start = m.start();
        if start < next_free {
            continue;
        }
        // "www." inside a longer word (e.g. "awww.") is not a URL start.
        if start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
            continue;
        }
        let end = text[start..]
            .find(|c: char| !is_url_char(c))
            .map_or(text.len(), |e| start + e);
        next_free = end;
        let url = text[start..end].trim_end_matches(['.', ',', ';', ':', ')', ']', '!', '?']);
        if let Some(host) = url_host(url) {
            out.push(Url {
                url: url.to_string(),
                host,
                link_text: None,
            });
        }
    }
}

/// One pass over the tags of an HTML part: `<a href>` links with their
/// visible text, and the number of `<img>` tags.
fn scan_html(html: &str, out: &mut Vec<Url>) -> usize {
    let bytes = html.as_bytes();
    let mut images = 0;
    let mut skip_to = 0;
    for (at, _) in html.match_indices('<') {
        if at < skip_to {
            continue;
        }
        let rest = &bytes[at + 1..];
        let is = |name: &[u8]| {
            rest.len() > name.len()
                && rest[..name.len()].eq_ignore_ascii_case(name)
                && (rest[name.len()].is_ascii_whitespace()
                    || rest[name.len()] == b'>'
                    || rest[name.len()] == b'/')
        };
        if is(b"img") {
            images += 1;
            continue;
        }
        if !is(b"a") {
            continue;
        }
        let Some(tag_end) = html[at..].find('>').map(|e| at + e) else {
            break;
        };
        let Some(href) = attribute(&html[at + 2..tag_end], "href") else {
            continue;
        };
        let close = find_ci(&bytes[tag_end..], b"</a").map_or(html.len(), |e| tag_end + e);
        let inner = strip_tags(&html[tag_end + 1..close.max(tag_end + 1)]);
        let text = inner.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some(host) = url_host(&href) {
            out.push(Url {
                url: href,
                host,
                link_text: (!text.is_empty()).then_some(text),
            });
        }
        skip_to = tag_end;
    }
    images
}

/// Position of `needle` (ASCII, any case) in `haystack`.
fn find_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    let mut i = 0;
    while i + needle.len() <= haystack.len() {
        let p = haystack[i..]
            .iter()
            .position(|b| b.eq_ignore_ascii_case(&first))?;
        let at = i + p;
        if haystack.len() >= at + needle.len()
            && haystack[at..at + needle.len()].eq_ignore_ascii_case(needle)
        {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

/// The value of attribute `name` in the inside of a tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find(name) {
        let pos = from + at;
        from = pos + name.len();
        let before_ok = pos == 0 || lower.as_bytes()[pos - 1].is_ascii_whitespace();
        let rest = tag[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let value = rest[1..].trim_start();
        let v = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value
                .split(|c: char| c.is_whitespace())
                .next()
                .unwrap_or(""),
        };
        return Some(decode_entities(v.trim()));
    }
    None
}

/// The visible text of an HTML part: tags dropped (each becomes a space),
/// `<style>`/`<script>`/`<head>` contents skipped, common entities decoded.
pub fn html_to_text(html: &str) -> String {
    let bytes = html.as_bytes();
    let mut out = String::with_capacity(html.len() / 2);
    let mut i = 0;
    let mut last_space = true;
    while i < bytes.len() {
        let Some(p) = bytes[i..].iter().position(|&b| b == b'<' || b == b'&') else {
            out.push_str(&html[i..]);
            break;
        };
        out.push_str(&html[i..i + p]);
        if p > 0 {
            last_space = bytes[i + p - 1].is_ascii_whitespace();
        }
        i += p;
        if bytes[i] == b'&' {
            let end = bytes[i..].iter().take(10).position(|&b| b == b';');
            let decoded = end.and_then(|e| entity(&html[i + 1..i + e]));
            match (end, decoded) {
                (Some(e), Some(c)) => {
                    out.push(c);
                    i += e + 1;
                }
                _ => {
                    out.push('&');
                    i += 1;
                }
            }
            last_space = false;
            continue;
        }
        let rest = &bytes[i + 1..];
        let skip_block = [&b"style"[..], b"script", b"head"].into_iter().find(|n| {
            rest.len() > n.len()
                && rest[..n.len()].eq_ignore_ascii_case(n)
                && !rest[n.len()].is_ascii_alphanumeric()
        });
        let end = match skip_block {
            Some(name) => {
                let mut close = b"</".to_vec();
                close.extend_from_slice(name);
                find_ci(&bytes[i..], &close).and_then(|c| {
                    bytes[i + c..]
                        .iter()
                        .position(|&b| b == b'>')
                        .map(|g| i + c + g + 1)
                })
            }
            None => bytes[i..]
                .iter()
                .position(|&b| b == b'>')
                .map(|g| i + g + 1),
        };
        i = end.unwrap_or(bytes.len());
        if !last_space {
            out.push(' ');
            last_space = true;
        }
    }
    out
}

fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

fn decode_entities(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    decode_entities(&out)
}

fn looks_like_zip(ctype: &str, filename: Option<&str>, data: &[u8]) -> bool {
    data.starts_with(b"PK\x03\x04")
        || ctype.contains("zip")
        || filename.is_some_and(|f| f.to_ascii_lowercase().ends_with(".zip"))
}

/// File names from a zip archive's central directory (cheap: no
/// decompression); at most 1,000 names.
pub fn zip_names(data: &[u8]) -> Vec<String> {
    const CENTRAL: &[u8] = b"PK\x01\x02";
    let mut names = Vec::new();
    let mut i = 0;
    while names.len() < 1000 {
        let Some(at) = data[i..].windows(4).position(|w| w == CENTRAL) else {
            break;
        };
        let h = i + at;
        if h + 46 > data.len() {
            break;
        }
        let len = u16::from_le_bytes([data[h + 28], data[h + 29]]) as usize;
        let Some(name) = data.get(h + 46..h + 46 + len) else {
            break;
        };
        names.push(String::from_utf8_lossy(name).to_string());
        i = h + 46 + len;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_delivered_strips_our_verdict_headers_with_folds() {
        let m = b"Subject: a\r\nX-Spam-Flag: YES\r\nX-Spamd-Result: x;\r\n\tSYM(1.00)\r\nTo: b\r\n\r\nX-Spam-Flag: body\r\n";
        assert_eq!(
            &as_delivered("gw.example.test", m)[..],
            b"Subject: a\r\nTo: b\r\n\r\nX-Spam-Flag: body\r\n"
        );
        let clean = b"Subject: a\r\n\r\nbody\r\n";
        assert!(matches!(
            as_delivered("gw.example.test", clean),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn only_results_claiming_our_authserv_id_are_removed() {
        let message = b"Authentication-Results: GW.example.test;\r\n\tdkim=pass header.d=mail.ru\r\nSubject: x\r\nAuthentication-Results: mx.other.test; spf=pass\r\nauthentication-results: gw.example.test 1; none\r\n\r\nAuthentication-Results: gw.example.test; in the body\r\n";
        assert_eq!(
            as_delivered("gw.example.test", message).as_ref(),
            b"Subject: x\r\nAuthentication-Results: mx.other.test; spf=pass\r\n\r\nAuthentication-Results: gw.example.test; in the body\r\n"
        );
    }

    #[test]
    fn text_and_html_urls_with_link_text() {
        let raw = b"From: \"Bank\" <a@example.test>\r\nSubject: =?UTF-8?B?SGVsbG8=?=\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee https://www.example.test/x, and www.other.test.\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>Hi <a class=x href=\"https://evil.test/login\">www.bank.test</a><img src=a.png></p>\r\n--b--\r\n";
        let p = Parsed::parse(raw);
        assert_eq!(p.subject.as_deref(), Some("Hello"));
        assert_eq!(
            p.from,
            Some((Some("Bank".into()), Some("a@example.test".into())))
        );
        assert_eq!(
            (p.text_part_count, p.html_part_count, p.image_count),
            (1, 1, 1)
        );
        let hosts: Vec<&str> = p.urls.iter().map(|u| u.host.as_str()).collect();
        assert_eq!(hosts, ["www.example.test", "www.other.test", "evil.test"]);
        assert_eq!(p.urls[2].link_text.as_deref(), Some("www.bank.test"));
        assert!(p.mime_problems.is_empty(), "{:?}", p.mime_problems);
        assert!(p.html_text_parts[0].contains("Hi"));
    }

    #[test]
    fn attachments_and_zip_names() {
        // A minimal zip central directory entry naming "run.exe".
        let mut zip = b"PK\x03\x04".to_vec();
        zip.extend_from_slice(&[0u8; 26]);
        zip.extend_from_slice(b"PK\x01\x02");
        let mut central = [0u8; 42];
        central[24] = 7; // file name length at offset 28 from the signature
        zip.extend_from_slice(&central);
        zip.extend_from_slice(b"run.exe");
        assert_eq!(zip_names(&zip), ["run.exe"]);
    }

    #[test]
    fn multipart_without_boundary_is_a_problem() {
        let p = Parsed::parse(b"Subject: x\r\nContent-Type: multipart/mixed\r\n\r\nbody\r\n");
        assert!(
            p.mime_problems
                .iter()
                .any(|m| m.contains("without a boundary")),
            "{:?}",
            p.mime_problems
        );
    }

    #[test]
    fn html_text_skips_tags_styles_and_decodes_entities() {
        let t = html_to_text("<html><head><style>p{x:y}</style></head><body><p>Fish&amp;chips</p><p>caf&#233; &lt;3 &bogus; a<br>b</p></body></html>");
        assert_eq!(
            t.split_whitespace().collect::<Vec<_>>().join(" "),
            "Fish&chips café <3 &bogus; a b"
        );
    }

    #[test]
    fn url_hosts() {
        assert_eq!(
            url_host("https://User@Example.TEST:8080/p?q").as_deref(),
            Some("example.test")
        );
        assert_eq!(url_host("www.x.test/a").as_deref(), Some("www.x.test"));
        assert_eq!(url_host("mailto:a@b"), None);
        // Link texts are any text: a multi-byte character at byte 4 is not
        // a place to cut.
        assert_eq!(url_host("Café"), None);
        assert_eq!(url_host("点击这里"), None);
        assert_eq!(url_host("www.é.test").as_deref(), Some("www.é.test"));
    }
}
