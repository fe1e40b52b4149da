//! An HTTP/1.1 request head, parsed purely: the request line, the header
//! fields (names lowercased), the query's `name=value` pairs decoded, and
//! what the body and the connection will be. Bounded: the head is at most
//! [`MAX_HEAD`] octets, the body is whatever `Content-Length` says (the
//! reader holds it to `[http] max_body`); chunked bodies are refused.

/// The longest request head (request line and header fields).
pub const MAX_HEAD: usize = 16 * 1024;

/// Most header fields in one head.
const MAX_FIELDS: usize = 100;

/// A request that cannot be served, with the status it is answered with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not HTTP/1.x, or malformed: 400.
    #[error("{0}")]
    Bad(String),
    /// The head is longer than [`MAX_HEAD`]: 431.
    #[error("the request head is longer than {MAX_HEAD} octets")]
    HeadTooLarge,
    /// The body is longer than `[http] max_body`: 413.
    #[error("the body is {given} octets, longer than http.max_body ({max})")]
    BodyTooLarge {
        /// Content-Length.
        given: u64,
        /// The limit.
        max: usize,
    },
    /// A chunked body (the API wants its length up front): 411.
    #[error("chunked bodies are not accepted: send Content-Length")]
    LengthRequired,
    /// The request did not arrive within `[http] read_timeout`: 408.
    #[error("the request did not arrive within http.read_timeout")]
    Timeout,
}

impl RequestError {
    /// The status code this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::Bad(_) => 400,
            RequestError::HeadTooLarge => 431,
            RequestError::BodyTooLarge { .. } => 413,
            RequestError::LengthRequired => 411,
            RequestError::Timeout => 408,
        }
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `GET`, `POST`, ... as sent (methods are case-sensitive).
    pub method: String,
    /// The path, still percent-encoded (split it with [`Head::segments`]).
    pub path: String,
    /// The query's pairs, decoded, in order (a name may repeat).
    pub query: Vec<(String, String)>,
    /// Header fields, names lowercased, values trimmed.
    pub fields: Vec<(String, String)>,
    /// The body's length (0 without Content-Length).
    pub content_length: u64,
    /// True when the connection stays open after the response.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a 100 before the body.
    pub expect_continue: bool,
}

impl Head {
    /// The first value of header field `name` (lowercase).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path's segments, percent-decoded (`/api/messages/K3F9` →
    /// `["api", "messages", "K3F9"]`); an empty last segment is dropped.
    pub fn segments(&self) -> Result<Vec<String>, RequestError> {
        let trimmed = self.path.strip_prefix('/').unwrap_or(&self.path);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Ok(Vec::new());
        }
        trimmed.split('/').map(|s| decode(s, false)).collect()
    }
}

/// Where the head ends: the offset just past its blank line.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Parses a complete head (up to and including its blank line).
pub fn parse_head(head: &[u8]) -> Result<Head, RequestError> {
    if head.len() > MAX_HEAD {
        return Err(RequestError::HeadTooLarge);
    }
    let bad = |m: &str| RequestError::Bad(m.to_string());
    let text = std::str::from_utf8(head).map_err(|_| bad("the request head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(
            "expected a request line like `GET /api/history HTTP/1.1`",
        ));
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(bad("expected HTTP/1.1 or HTTP/1.0")),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad("expected a method like GET or POST"));
    }
    if !target.starts_with('/') {
        return Err(bad("expected a path starting with /"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut fields = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("a header field without a colon"));
        };
        if name.is_empty() || name.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("a header field name with spaces or controls"));
        }
        fields.push((name.to_ascii_lowercase(), value.trim().to_string()));
        if fields.len() > MAX_FIELDS {
            return Err(bad("more than 100 header fields"));
        }
    }
    let field = |name: &'static str| fields.iter().filter(move |(n, _)| n == name);
    if field("transfer-encoding").next().is_some() {
        return Err(RequestError::LengthRequired);
    }
    let mut lengths = field("content-length").map(|(_, v)| v.parse::<u64>());
    let content_length = match (lengths.next(), lengths.next()) {
        (None, _) => 0,
        (Some(Ok(n)), None) => n,
        _ => return Err(bad("expected one Content-Length, a number")),
    };
    let connection = field("connection")
        .map(|(_, v)| v.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(",");
    let has = |token: &str| connection.split(',').any(|t| t.trim() == token);
    let keep_alive = if http11 {
        !has("close")
    } else {
        has("keep-alive")
    };
    let expect_continue = field("expect").any(|(_, v)| v.eq_ignore_ascii_case("100-continue"));
    Ok(Head {
        method: method.to_string(),
        path: path.to_string(),
        query: query_pairs(query)?,
        fields,
        content_length,
        keep_alive,
        expect_continue,
    })
}

/// The pairs of a query string (`from=a%40b.test&limit=5`), decoded; `+`
/// is a space; a name without `=` has the empty value.
pub fn query_pairs(query: &str) -> Result<Vec<(String, String)>, RequestError> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name, true)?, decode(value, true)?))
        })
        .collect()
}

/// Percent-decodes `text` (and `+` as a space when `plus_is_space`); the
/// result must be UTF-8.
pub fn decode(text: &str, plus_is_space: bool) -> Result<String, RequestError> {
    let bad = || RequestError::Bad(format!("bad percent-encoding in `{text}`"));
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Head, RequestError> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn a_get_with_a_query_is_split_and_decoded() {
        let h = head("GET /api/history?from=a%40b.test&rcpt=x+y&since=2h&flag HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer abc \r\n\r\n").unwrap();
        assert_eq!(h.method, "GET");
        assert_eq!(h.path, "/api/history");
        assert_eq!(
            h.query,
            [
                ("from".into(), "a@b.test".into()),
                ("rcpt".into(), "x y".into()),
                ("since".into(), "2h".into()),
                ("flag".into(), String::new()),
            ]
        );
        assert_eq!(h.field("authorization"), Some("Bearer abc"));
        assert_eq!(h.field("host"), Some("gw"));
        assert!(h.keep_alive);
        assert_eq!(h.content_length, 0);
        assert_eq!(
            h.segments().unwrap(),
            ["api".to_string(), "history".to_string()]
        );
    }

    #[test]
    fn path_segments_are_decoded_one_by_one() {
        let h = head("GET /message/K3F9%2FQ2/ HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(h.segments().unwrap(), ["message", "K3F9/Q2"]);
        let h = head("GET / HTTP/1.1\r\n\r\n").unwrap();
        assert!(h.segments().unwrap().is_empty());
        let h = head("GET /a%ZZ HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(
            h.segments(),
            Err(RequestError::Bad("bad percent-encoding in `a%ZZ`".into()))
        );
    }

    #[test]
    fn connection_and_body_framing() {
        let h = head("POST /api/check HTTP/1.1\r\nContent-Length: 42\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n").unwrap();
        assert_eq!(
            (h.content_length, h.keep_alive, h.expect_continue),
            (42, false, true)
        );
        let h = head("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
        let h = head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(h.keep_alive);
        assert_eq!(
            head("POST /api/check HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(RequestError::LengthRequired)
        );
        for two in [
            "Content-Length: 1\r\nContent-Length: 2\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: 1e3\r\n",
        ] {
            let e = head(&format!("POST / HTTP/1.1\r\n{two}\r\n")).unwrap_err();
            assert_eq!(e.status(), 400, "{two}");
        }
    }

    #[test]
    fn malformed_heads_are_400_with_what_was_expected() {
        for (text, why) in [
            (
                "GET /\r\n\r\n",
                "expected a request line like `GET /api/history HTTP/1.1`",
            ),
            ("GET / HTTP/2\r\n\r\n", "expected HTTP/1.1 or HTTP/1.0"),
            (
                "get / HTTP/1.1\r\n\r\n",
                "expected a method like GET or POST",
            ),
            (
                "GET api HTTP/1.1\r\n\r\n",
                "expected a path starting with /",
            ),
            (
                "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
                "a header field without a colon",
            ),
            (
                "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
                "a header field name with spaces or controls",
            ),
            (
                "GET /?a=%C3%28 HTTP/1.1\r\n\r\n",
                "bad percent-encoding in `%C3%28`",
            ),
            (
                "EHLO client.test\r\n\r\n",
                "expected a request line like `GET /api/history HTTP/1.1`",
            ),
        ] {
            assert_eq!(head(text), Err(RequestError::Bad(why.into())), "{text:?}");
        }
        assert_eq!(
            parse_head(b"GET /\xff HTTP/1.1\r\n\r\n"),
            Err(RequestError::Bad("the request head is not UTF-8".into()))
        );
        let many: String = (0..101).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            head(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            Err(RequestError::Bad("more than 100 header fields".into()))
        );
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(head(&long), Err(RequestError::HeadTooLarge));
        assert_eq!(RequestError::HeadTooLarge.status(), 431);
    }

    #[test]
    fn the_head_ends_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
