//! The message as delivered: client copies of the headers only smtpgate
//! may set are stripped before relaying.

use std::borrow::Cow;

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

/// True for an `Authentication-Results` field whose authserv-id is
/// `hostname` (a client-supplied copy claiming to be ours).
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

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
}
