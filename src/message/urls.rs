//! URLs: hosts of URLs and URLs written in plain text.

use super::Url;

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
pub(super) fn urls_in_text(text: &str, out: &mut Vec<Url>) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
