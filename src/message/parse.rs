//! Parsing a message into `Parsed`: headers, the MIME walk, body parts.

use super::html::scan_html;
use super::urls::urls_in_text;
use super::zip::{looks_like_zip, zip_names};
use super::{html_to_text, Attachment, Parsed};
use mail_parser::{HeaderValue, MessageParser, MimeHeaders, PartType};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Parsed;

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
}
