//! An HTTP response: status, content type, body, and the few header
//! fields every answer carries (length, connection, no caching of API
//! data, and a content security policy that lets the console load only
//! what this listener serves).

use serde::Serialize;

/// What the console may load: only this origin, no inline script, no
/// frames around it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    base-uri 'none'; frame-ancestors 'none'";

/// A response to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
    /// More header fields (`Allow`, `WWW-Authenticate`, `Cache-Control`).
    pub fields: Vec<(&'static str, String)>,
}

impl Response {
    /// A JSON body (`Cache-Control: no-store`: it is live data).
    pub fn json(status: u16, value: &impl Serialize) -> Response {
        match serde_json::to_vec_pretty(value) {
            Ok(body) => Response {
                status,
                content_type: "application/json",
                body,
                fields: vec![("Cache-Control", "no-store".into())],
            },
            Err(e) => Response::error(500, &format!("cannot encode the answer: {e}")),
        }
    }

    /// `{"error": message, "status": status}`.
    pub fn error(status: u16, message: &str) -> Response {
        let body = serde_json::json!({"error": message, "status": status});
        Response {
            status,
            content_type: "application/json",
            body: serde_json::to_vec_pretty(&body).unwrap_or_default(),
            fields: vec![("Cache-Control", "no-store".into())],
        }
    }

    /// 405 with the methods the path takes.
    pub fn method_not_allowed(allow: &str) -> Response {
        let mut r = Response::error(405, &format!("method not allowed here: use {allow}"));
        r.fields.push(("Allow", allow.to_string()));
        r
    }

    /// 401 asking for the bearer token.
    pub fn unauthorized(message: &str) -> Response {
        let mut r = Response::error(401, message);
        r.fields
            .push(("WWW-Authenticate", "Bearer realm=\"smtpgate\"".into()));
        r
    }

    /// A file of the console.
    pub fn asset(content_type: &'static str, body: &'static str) -> Response {
        Response {
            status: 200,
            content_type,
            body: body.as_bytes().to_vec(),
            fields: vec![("Cache-Control", "no-cache".into())],
        }
    }

    /// The whole response as sent; `head_only` for HEAD (the length of
    /// the body that GET would send, no body).
    pub fn encode(&self, keep_alive: bool, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n\
             X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
             Content-Security-Policy: {CONTENT_SECURITY_POLICY}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            if keep_alive { "keep-alive" } else { "close" },
        );
        for (name, value) in &self.fields {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// The reason phrase of a status code we send.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_json_with_its_status() {
        let r = Response::method_not_allowed("GET, HEAD");
        let text = String::from_utf8(r.encode(false, false)).unwrap();
        assert!(
            text.starts_with(
                "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\n"
            ),
            "{text}"
        );
        assert!(text.contains("\r\nAllow: GET, HEAD\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["status"], 405);
        assert_eq!(json["error"], "method not allowed here: use GET, HEAD");
    }

    #[test]
    fn head_sends_the_length_without_the_body() {
        let r = Response::asset("text/plain", "hello");
        let text = String::from_utf8(r.encode(true, true)).unwrap();
        assert!(text.contains("Content-Length: 5\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }
}
