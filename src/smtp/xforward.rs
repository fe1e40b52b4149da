//! XFORWARD and XCLIENT, pure (Postfix's XFORWARD_README and
//! XCLIENT_README): xtext (RFC 3461 §4), the attributes a client forwards
//! to us, and the lines we send to an upstream that offers them.

use std::net::IpAddr;

/// The attributes we offer in EHLO, in the order we list them.
pub const OFFERED: &str = "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE LOGIN";

/// Longest attribute value after decoding (XFORWARD_README, note 1).
const MAX_VALUE: usize = 255;
/// Longest command line we send (RFC 5321 §4.5.3.1.4).
const MAX_LINE: usize = 512;

/// One forwarded value: given, or one of the two special values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `[UNAVAILABLE]`: the forwarder does not know it.
    Unavailable,
    /// `[TEMPUNAVAIL]`: its lookup failed temporarily (NAME).
    TempUnavailable,
    /// A decoded value.
    Text(String),
}

/// What a forwarder told us so far; `None` is "not forwarded".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// NAME: the client's verified host name.
    pub name: Option<Value>,
    /// ADDR: the client's address (`None` inside: unavailable).
    pub addr: Option<Option<IpAddr>>,
    /// PORT.
    pub port: Option<Value>,
    /// PROTO: SMTP or ESMTP.
    pub proto: Option<Value>,
    /// HELO.
    pub helo: Option<Value>,
    /// IDENT: the forwarder's queue id.
    pub ident: Option<Value>,
    /// SOURCE: LOCAL or REMOTE.
    pub source: Option<Value>,
    /// LOGIN: the SASL login the forwarder authenticated.
    pub login: Option<Value>,
}

impl Forwarded {
    /// True when nothing was forwarded.
    pub fn is_empty(&self) -> bool {
        *self == Forwarded::default()
    }

    /// Adds the attributes of a later command (attributes accumulate; one
    /// given again replaces the earlier value).
    pub fn merge(&mut self, later: Forwarded) {
        fn take<T>(to: &mut Option<T>, from: Option<T>) {
            if from.is_some() {
                *to = from;
            }
        }
        take(&mut self.name, later.name);
        take(&mut self.addr, later.addr);
        take(&mut self.port, later.port);
        take(&mut self.proto, later.proto);
        take(&mut self.helo, later.helo);
        take(&mut self.ident, later.ident);
        take(&mut self.source, later.source);
        take(&mut self.login, later.login);
    }

    /// The forwarded text of an attribute, when given and available.
    pub fn text(value: &Option<Value>) -> Option<&str> {
        match value {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        }
    }
}

/// Why an XFORWARD line is refused (Postfix's 501 texts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XforwardError {
    /// No attribute, or one without `=`.
    Syntax,
    /// An attribute we do not know.
    Name(String),
    /// A value that does not decode, or is not what the attribute allows.
    Value(String),
}

/// Parses the arguments of one XFORWARD command: the attributes it gives.
pub fn parse(args: &str) -> Result<Forwarded, XforwardError> {
    let mut next = Forwarded::default();
    let mut any = false;
    for pair in args.split_ascii_whitespace() {
        let (key, raw) = pair.split_once('=').ok_or(XforwardError::Syntax)?;
        let value = decode_value(raw).ok_or_else(|| XforwardError::Value(key.to_string()))?;
        let key = key.to_ascii_uppercase();
        match key.as_str() {
            "NAME" => next.name = Some(value),
            "ADDR" => {
                next.addr = Some(match value {
                    Value::Text(t) => Some(parse_addr(&t).ok_or(XforwardError::Value(key))?),
                    _ => None,
                })
            }
            "PORT" => {
                if let Value::Text(t) = &value {
                    t.parse::<u16>().map_err(|_| XforwardError::Value(key))?;
                }
                next.port = Some(value)
            }
            "PROTO" => next.proto = Some(value),
            "HELO" => next.helo = Some(value),
            "IDENT" => next.ident = Some(value),
            "SOURCE" => next.source = Some(value),
            "LOGIN" => next.login = Some(value),
            _ => return Err(XforwardError::Name(key)),
        }
        any = true;
    }
    if !any {
        return Err(XforwardError::Syntax);
    }
    Ok(next)
}

/// `[UNAVAILABLE]`, `[TEMPUNAVAIL]` or an xtext value that decodes to
/// printable ASCII without spaces, at most 255 octets.
fn decode_value(raw: &str) -> Option<Value> {
    let decoded = xtext_decode(raw)?;
    match decoded.to_ascii_uppercase().as_str() {
        "[UNAVAILABLE]" => return Some(Value::Unavailable),
        "[TEMPUNAVAIL]" => return Some(Value::TempUnavailable),
        _ => {}
    }
    let printable = decoded.bytes().all(|b| b.is_ascii_graphic());
    (printable && !decoded.is_empty() && decoded.len() <= MAX_VALUE).then_some(Value::Text(decoded))
}

/// An ADDR value: IPv4, or IPv6 with or without the `IPV6:` prefix.
fn parse_addr(text: &str) -> Option<IpAddr> {
    let bare = match text.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("IPV6:") => &text[5..],
        _ => text,
    };
    bare.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Decodes xtext: `+XX` is the octet XX (upper-case hex).
pub fn xtext_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'+' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes xtext: `+`, `=`, controls, space and non-ASCII become `+XX`.
pub fn xtext_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// Who the client is, as we pass it on to the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The client's host name, when known.
    pub name: Option<String>,
    /// The client's address.
    pub addr: IpAddr,
    /// The client's port, when known.
    pub port: Option<u16>,
    /// True after EHLO.
    pub esmtp: bool,
    /// The HELO/EHLO name.
    pub helo: String,
    /// Our reference (IDENT).
    pub reference: String,
    /// SOURCE=LOCAL (a customer: trusted or authenticated) or REMOTE.
    pub local: bool,
}

impl Origin {
    /// The client attributes as `KEY=value` pairs, in Postfix's order.
    fn client_pairs(&self) -> Vec<(&'static str, String)> {
        let addr = match self.addr {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("IPV6:{v6}"),
        };
        let helo = if self.helo.is_empty() {
            "[UNAVAILABLE]".to_string()
        } else {
            xtext_encode(&self.helo)
        };
        vec![
            (
                "NAME",
                self.name
                    .as_deref()
                    .map_or("[UNAVAILABLE]".to_string(), xtext_encode),
            ),
            ("ADDR", addr),
            (
                "PORT",
                self.port
                    .map_or("[UNAVAILABLE]".to_string(), |p| p.to_string()),
            ),
            ("PROTO", if self.esmtp { "ESMTP" } else { "SMTP" }.into()),
            ("HELO", helo),
        ]
    }

    /// The XFORWARD commands for an upstream that offered `offered` (its
    /// EHLO keyword line's attribute names): the client first, then IDENT
    /// and SOURCE; LOGIN is never sent. Each line is at most 512 octets.
    pub fn xforward_lines(&self, offered: &[String]) -> Vec<String> {
        let has = |k: &str| offered.iter().any(|o| o.eq_ignore_ascii_case(k));
        let client: Vec<_> = self
            .client_pairs()
            .into_iter()
            .filter(|(k, _)| has(k))
            .collect();
        let mut message = Vec::new();
        if has("IDENT") && !self.reference.is_empty() {
            message.push(("IDENT", xtext_encode(&self.reference)));
        }
        if has("SOURCE") {
            let source = if self.local { "LOCAL" } else { "REMOTE" };
            message.push(("SOURCE", source.to_string()));
        }
        let mut lines = lines_of("XFORWARD", &client);
        lines.extend(lines_of("XFORWARD", &message));
        lines
    }

    /// The XCLIENT commands (XCLIENT_README) for an upstream that offered
    /// `offered`: the client attributes only, never LOGIN.
    pub fn xclient_lines(&self, offered: &[String]) -> Vec<String> {
        let has = |k: &str| offered.iter().any(|o| o.eq_ignore_ascii_case(k));
        let pairs: Vec<_> = self
            .client_pairs()
            .into_iter()
            .filter(|(k, _)| has(k))
            .collect();
        lines_of("XCLIENT", &pairs)
    }
}

/// `verb k=v k=v`, split so that no line (with CRLF) passes 512 octets.
fn lines_of(verb: &str, pairs: &[(&str, String)]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for (k, v) in pairs {
        let pair = format!(" {k}={v}");
        if !line.is_empty() && line.len() + pair.len() + 2 > MAX_LINE {
            lines.push(std::mem::take(&mut line));
        }
        if line.is_empty() {
            line.push_str(verb);
        }
        line.push_str(&pair);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_round_trips_specials() {
        assert_eq!(xtext_encode("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(xtext_decode("a+2Bb+3Dc+20d").as_deref(), Some("a+b=c d"));
        assert_eq!(xtext_decode("bad+4"), None);
        assert_eq!(xtext_decode("bad+ZZ"), None);
    }

    #[test]
    fn attributes_accumulate_and_special_values_are_kept() {
        let mut f = parse("NAME=spike.porcupine.org ADDR=168.100.189.2").unwrap();
        f.merge(parse("proto=ESMTP HELO=[UNAVAILABLE] LOGIN=joe").unwrap());
        f.merge(parse("NAME=[TEMPUNAVAIL] ADDR=IPV6:2001:db8::1").unwrap());
        assert_eq!(f.name, Some(Value::TempUnavailable));
        assert_eq!(f.addr, Some(Some("2001:db8::1".parse().unwrap())));
        assert_eq!(Forwarded::text(&f.proto), Some("ESMTP"));
        assert_eq!(f.helo, Some(Value::Unavailable));
        assert_eq!(Forwarded::text(&f.login), Some("joe"));
        f.merge(parse("ADDR=[UNAVAILABLE]").unwrap());
        assert_eq!(f.addr, Some(None));
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert_eq!(parse(""), Err(XforwardError::Syntax));
        assert_eq!(parse("NAME"), Err(XforwardError::Syntax));
        assert_eq!(
            parse("NAME=a COLOR=red"),
            Err(XforwardError::Name("COLOR".into()))
        );
        assert_eq!(
            parse("ADDR=not-an-ip"),
            Err(XforwardError::Value("ADDR".into()))
        );
        assert_eq!(
            parse("HELO=a+0Ab"),
            Err(XforwardError::Value("HELO".into()))
        );
        assert_eq!(
            parse("PORT=70000"),
            Err(XforwardError::Value("PORT".into()))
        );
    }

    fn origin() -> Origin {
        Origin {
            name: None,
            addr: "192.0.2.7".parse().unwrap(),
            port: Some(40123),
            esmtp: true,
            helo: "web1.customer.test".into(),
            reference: "K3F9Q2ZP".into(),
            local: false,
        }
    }

    #[test]
    fn xforward_sends_what_is_offered_and_never_login() {
        let offered: Vec<String> = "NAME ADDR PORT PROTO HELO IDENT SOURCE LOGIN"
            .split(' ')
            .map(String::from)
            .collect();
        assert_eq!(
            origin().xforward_lines(&offered),
            [
                "XFORWARD NAME=[UNAVAILABLE] ADDR=192.0.2.7 PORT=40123 PROTO=ESMTP HELO=web1.customer.test",
                "XFORWARD IDENT=K3F9Q2ZP SOURCE=REMOTE",
            ]
        );
        let few: Vec<String> = vec!["ADDR".into(), "IDENT".into()];
        assert_eq!(
            origin().xforward_lines(&few),
            ["XFORWARD ADDR=192.0.2.7", "XFORWARD IDENT=K3F9Q2ZP"]
        );
        assert_eq!(
            origin().xclient_lines(&offered),
            ["XCLIENT NAME=[UNAVAILABLE] ADDR=192.0.2.7 PORT=40123 PROTO=ESMTP HELO=web1.customer.test"]
        );
    }

    #[test]
    fn long_values_are_split_over_lines_of_at_most_512() {
        let mut o = origin();
        o.name = Some("n".repeat(250));
        o.helo = "h=".repeat(120);
        let offered: Vec<String> = vec!["NAME".into(), "HELO".into(), "ADDR".into()];
        let lines = o.xforward_lines(&offered);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines.iter().all(|l| l.len() + 2 <= 512));
        assert!(lines[1].starts_with("XFORWARD HELO=h+3Dh+3D"));
    }
}
