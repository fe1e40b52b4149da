//! HTML: the visible text of a part, its links and images.

use super::urls::url_host;
use super::Url;

/// One pass over the tags of an HTML part: `<a href>` links with their
/// visible text, and the number of `<img>` tags.
pub(super) fn scan_html(html: &str, out: &mut Vec<Url>) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_text_skips_tags_styles_and_decodes_entities() {
        let t = html_to_text("<html><head><style>p{x:y}</style></head><body><p>Fish&amp;chips</p><p>caf&#233; &lt;3 &bogus; a<br>b</p></body></html>");
        assert_eq!(
            t.split_whitespace().collect::<Vec<_>>().join(" "),
            "Fish&chips café <3 &bogus; a b"
        );
    }
}
