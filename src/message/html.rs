//! HTML in one forward pass: the visible text, `<a href>` links with their
//! text, `<img>` count and `<form>`s (action, password field). Every byte
//! is looked at a bounded number of times: a tag ends at the next `>` (or
//! the end), a link's text is what was emitted since it opened, an
//! unclosed `<style>`/`<script>`/comment hides the rest once.

use super::urls::url_host;
use super::{Form, Url};

/// Visible text kept per part, in octets (links are still read beyond).
pub const MAX_TEXT: usize = 1 << 20;

/// What one pass over an HTML part found.
#[derive(Debug, Default)]
pub(super) struct HtmlScan {
    /// The visible text, whitespace collapsed.
    pub text: String,
    /// `<img>` tags.
    pub images: usize,
}

/// Appends `s` to `out` with every whitespace run as one space (at most
/// [`MAX_TEXT`] octets in all).
pub(super) fn push_collapsed(out: &mut Vec<u8>, s: &[u8]) {
    let room = MAX_TEXT.saturating_sub(out.len());
    let s = &s[..s.len().min(room)];
    let start = out.len();
    let mut last_space = out.last().is_none_or(|b| *b == b' ');
    // Written in place without a branch per octet: each octet (a space
    // for whitespace) goes at `n`, which moves on unless it is a space
    // after a space.
    out.resize(start + s.len(), 0);
    let dst = &mut out[start..];
    let mut n = 0;
    for &c in s {
        let space = c.is_ascii_whitespace();
        dst[n] = if space { b' ' } else { c };
        n += usize::from(!(space && last_space));
        last_space = space;
    }
    out.truncate(start + n);
}

/// Text as valid UTF-8 (cuts at [`MAX_TEXT`] may split a character).
pub(super) fn into_string(v: Vec<u8>) -> String {
    match String::from_utf8(v) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// One pass over `html`: text, links into `urls`, forms into `forms`.
pub(super) fn scan_html(html: &str, urls: &mut Vec<Url>, forms: &mut Vec<Form>) -> HtmlScan {
    let b = html.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(html.len().min(MAX_TEXT) / 2);
    let mut images = 0;
    let mut link: Option<(String, usize)> = None;
    let mut i = 0;
    while i < b.len() {
        let stop = b[i..]
            .iter()
            .position(|&c| c == b'<' || c == b'&')
            .map_or(b.len(), |p| i + p);
        push_collapsed(&mut out, &b[i..stop]);
        i = stop;
        if i >= b.len() {
            break;
        }
        if b[i] == b'&' {
            let end = b[i + 1..].iter().take(10).position(|&c| c == b';');
            match end.and_then(|e| entity(&html[i + 1..i + 1 + e]).map(|c| (e, c))) {
                Some((e, c)) => {
                    let mut buf = [0u8; 4];
                    push_collapsed(&mut out, c.encode_utf8(&mut buf).as_bytes());
                    i += e + 2;
                }
                None => {
                    push_collapsed(&mut out, b"&");
                    i += 1;
                }
            }
            continue;
        }
        if b[i..].starts_with(b"<!--") {
            i = find(&b[i + 4..], b"-->").map_or(b.len(), |e| i + 4 + e + 3);
            continue;
        }
        let tag_end = b[i + 1..]
            .iter()
            .position(|&c| c == b'>')
            .map_or(b.len(), |e| i + 1 + e);
        let inner = &html[i + 1..tag_end];
        let mut next = (tag_end + 1).min(b.len());
        let name_len = inner
            .bytes()
            .position(|c| c.is_ascii_whitespace() || c == b'/' && inner.as_bytes()[0] != b'/')
            .unwrap_or(inner.len());
        let (name, attrs) = inner.split_at(name_len);
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        if is("a") || is("/a") {
            close_link(&mut link, &out, urls);
            if is("a") {
                if let Some(href) = attribute(attrs, "href") {
                    link = Some((href, out.len()));
                }
            }
        } else if is("img") {
            images += 1;
        } else if is("form") {
            forms.push(Form {
                action: attribute(attrs, "action").unwrap_or_default(),
                password: false,
            });
        } else if is("input") {
            if attribute(attrs, "type").is_some_and(|t| t.eq_ignore_ascii_case("password")) {
                match forms.last_mut() {
                    Some(f) => f.password = true,
                    None => forms.push(Form {
                        action: String::new(),
                        password: true,
                    }),
                }
            }
        } else if is("style") || is("script") {
            let close: &[u8] = if is("style") { b"</style" } else { b"</script" };
            next = find_ci(&b[next..], close)
                .and_then(|c| {
                    let at = next + c;
                    b[at..].iter().position(|&g| g == b'>').map(|g| at + g + 1)
                })
                .unwrap_or(b.len());
        }
        push_collapsed(&mut out, b" ");
        i = next;
    }
    close_link(&mut link, &out, urls);
    HtmlScan {
        text: into_string(out),
        images,
    }
}

/// Ends the open link: its text is what was emitted since it opened.
fn close_link(link: &mut Option<(String, usize)>, out: &[u8], urls: &mut Vec<Url>) {
    let Some((href, start)) = link.take() else {
        return;
    };
    let Some(host) = url_host(&href) else {
        return;
    };
    let shown = &out[start.min(out.len())..];
    let shown = &shown[..shown.len().min(300)];
    let text = String::from_utf8_lossy(shown).trim().to_string();
    urls.push(Url {
        url: href,
        host,
        link_text: (!text.is_empty()).then_some(text),
    });
}

/// Position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Position of `needle` (ASCII, any case) in `haystack`.
fn find_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// The value of attribute `name` in a tag's attribute text, one pass.
fn attribute(attrs: &str, name: &str) -> Option<String> {
    let b = attrs.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'/') {
            i += 1;
        }
        let key = &attrs[start..i];
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = None;
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let (from, to) = match b.get(i) {
                Some(&q @ (b'"' | b'\'')) => {
                    let end = b[i + 1..]
                        .iter()
                        .position(|&c| c == q)
                        .map_or(b.len(), |e| i + 1 + e);
                    (i + 1, end)
                }
                _ => {
                    let end = b[i..]
                        .iter()
                        .position(|c| c.is_ascii_whitespace())
                        .map_or(b.len(), |e| i + e);
                    (i, end)
                }
            };
            value = Some(&attrs[from..to]);
            i = (to + 1).min(b.len()).max(to);
        }
        if key.eq_ignore_ascii_case(name) {
            return Some(decode_entities(value.unwrap_or("").trim()));
        }
        if start == i {
            i += 1;
        }
    }
    None
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
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&amp;", "&")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
}

/// The visible text of an HTML part (see [`scan_html`]).
pub fn html_to_text(html: &str) -> String {
    scan_html(html, &mut Vec::new(), &mut Vec::new()).text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_runs_collapse_to_one_space_across_calls_and_within_the_bound() {
        let mut out = Vec::new();
        push_collapsed(&mut out, b"  La\r\n\r\nla \t la  ");
        assert_eq!(out, b"La la la ");
        push_collapsed(&mut out, b"\n end");
        assert_eq!(out, b"La la la end", "the space before was kept");
        let mut full = vec![b'x'; MAX_TEXT - 2];
        push_collapsed(&mut full, b"a   bcdef");
        assert_eq!(
            &full[MAX_TEXT - 2..],
            b"a ",
            "cut at MAX_TEXT, then collapsed"
        );
    }
    use std::time::Instant;

    #[test]
    fn html_text_skips_tags_styles_and_decodes_entities() {
        let t = html_to_text("<html><head><style>p{x:y}</style></head><body><p>Fish&amp;chips</p><!-- hidden --><p>caf&#233; &lt;3 &bogus; a<br>b</p><script>x()</script></body></html>");
        assert_eq!(t.trim(), "Fish&chips café <3 &bogus; a b");
    }

    #[test]
    fn links_forms_and_images() {
        let (mut urls, mut forms) = (Vec::new(), Vec::new());
        let s = scan_html("<a class=x href=\"https://evil.test/l\">www.<b>bank</b>.test</a><img src=a><a name=top>t</a> <form action='http://x.test/p'><input type=\"password\"></form><a href=http://a.b>open", &mut urls, &mut forms);
        assert_eq!(s.images, 1);
        assert_eq!(urls.len(), 2);
        assert_eq!(urls[0].link_text.as_deref(), Some("www. bank .test"));
        assert_eq!(urls[1].link_text.as_deref(), Some("open"));
        assert_eq!(
            forms,
            [Form {
                action: "http://x.test/p".into(),
                password: true
            }]
        );
    }

    /// Issue 17: inputs that made the old scanner quadratic.
    #[test]
    fn pathological_html_is_linear() {
        let links = "<a href=http://a.b>x".repeat(50_000);
        let mut attrs = "<a x".repeat(250_000);
        attrs.push('>');
        for input in [links, attrs] {
            let start = Instant::now();
            let mut urls = Vec::new();
            scan_html(&input, &mut urls, &mut Vec::new());
            assert!(start.elapsed().as_secs() < 2, "{:?}", start.elapsed());
        }
    }
}
