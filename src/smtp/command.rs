//! Pure parser for SMTP command lines (RFC 5321 §4.1, RFC 1870, RFC 6152,
//! RFC 6531). Turns a line into a [`Command`] or says what is wrong with it.

pub use crate::address::Address;
use crate::address::{parse_address, AddressError};
use crate::smtp::xforward::{self, Forwarded, XforwardError};

/// MAIL FROM parameters we understand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// SIZE= (RFC 1870).
    pub size: Option<u64>,
    /// BODY=8BITMIME or 7BIT (RFC 6152).
    pub body: Option<String>,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
}

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// EHLO with the client's name.
    Ehlo(String),
    /// HELO with the client's name.
    Helo(String),
    /// MAIL FROM.
    Mail(Address, MailParams),
    /// RCPT TO.
    Rcpt(Address),
    /// DATA.
    Data,
    /// RSET.
    Rset,
    /// NOOP.
    Noop,
    /// QUIT.
    Quit,
    /// VRFY (always 252).
    Vrfy,
    /// HELP.
    Help,
    /// STARTTLS.
    StartTls,
    /// AUTH with the mechanism and the optional initial response.
    Auth(String, Option<String>),
    /// XFORWARD with the attributes this line gives (XFORWARD_README).
    Xforward(Forwarded),
}

/// Why a line is not a valid command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Not a verb we know.
    Unknown,
    /// Known verb, bad arguments; says what was expected.
    Syntax(&'static str),
    /// The address inside `<>` is malformed.
    Address(String),
    /// An ESMTP parameter we do not support.
    Parameter(String),
    /// An XFORWARD attribute we do not know, or a value it does not allow.
    Xforward(XforwardError),
}

impl From<AddressError> for CommandError {
    fn from(e: AddressError) -> CommandError {
        CommandError::Address(e.0)
    }
}

/// AUTH command and response lines (RFC 4954 §4).
pub const AUTH_LINE_LIMIT: usize = 12_288;

/// The line-length limit for a command line, by its verb (DESIGN §1):
/// MAIL and RCPT may carry parameters up to 1,000 octets, AUTH up to 12,288.
pub fn line_limit(line: &[u8]) -> usize {
    let verb: Vec<u8> = line
        .iter()
        .take(4)
        .map(|b| b.to_ascii_uppercase())
        .collect();
    match verb.as_slice() {
        b"MAIL" | b"RCPT" => 1000,
        b"AUTH" => AUTH_LINE_LIMIT,
        _ => 512,
    }
}

/// Parses one command line (without its CRLF).
pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
    let line =
        std::str::from_utf8(line).map_err(|_| CommandError::Syntax("command must be UTF-8"))?;
    let (verb, args) = match line.find(' ') {
        Some(i) => (&line[..i], line[i + 1..].trim()),
        None => (line, ""),
    };
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" => hostname_arg(args, "EHLO hostname").map(Command::Ehlo),
        "HELO" => hostname_arg(args, "HELO hostname").map(Command::Helo),
        "MAIL" => parse_mail(args),
        "RCPT" => parse_rcpt(args),
        "DATA" => no_args(args, Command::Data, "DATA"),
        "RSET" => no_args(args, Command::Rset, "RSET"),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(args, Command::Quit, "QUIT"),
        "VRFY" => Ok(Command::Vrfy),
        "HELP" => Ok(Command::Help),
        "STARTTLS" => no_args(args, Command::StartTls, "STARTTLS"),
        "AUTH" => {
            let mut parts = args.split_whitespace();
            let mechanism = parts
                .next()
                .ok_or(CommandError::Syntax("AUTH mechanism [initial-response]"))?;
            let initial = parts.next().map(str::to_string);
            if parts.next().is_some() {
                return Err(CommandError::Syntax("AUTH mechanism [initial-response]"));
            }
            Ok(Command::Auth(mechanism.to_ascii_uppercase(), initial))
        }
        "XFORWARD" => xforward::parse(args)
            .map(Command::Xforward)
            .map_err(CommandError::Xforward),
        _ => Err(CommandError::Unknown),
    }
}

fn no_args(args: &str, cmd: Command, usage: &'static str) -> Result<Command, CommandError> {
    if args.is_empty() {
        Ok(cmd)
    } else {
        Err(CommandError::Syntax(usage))
    }
}

fn hostname_arg(args: &str, usage: &'static str) -> Result<String, CommandError> {
    let name = args.split_whitespace().next().unwrap_or("");
    // Control characters never make a host name, and the name goes into
    // our Received header.
    if name.is_empty() || name.chars().any(char::is_control) {
        Err(CommandError::Syntax(usage))
    } else {
        Ok(name.to_string())
    }
}

/// Splits `KEYWORD:<path> params` into the path and the parameter text.
/// Accepts a space after the colon, as Postfix does for broken clients.
fn path_and_params<'a>(
    args: &'a str,
    keyword: &str,
    usage: &'static str,
) -> Result<(&'a str, &'a str), CommandError> {
    let head = args
        .get(..keyword.len())
        .ok_or(CommandError::Syntax(usage))?;
    if !head.eq_ignore_ascii_case(keyword) {
        return Err(CommandError::Syntax(usage));
    }
    let rest = args[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<').ok_or(CommandError::Syntax(usage))?;
    let close = closing_bracket(rest).ok_or(CommandError::Syntax(usage))?;
    Ok((&rest[..close], rest[close + 1..].trim()))
}

/// The index of the `>` that closes a path, skipping quoted strings.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_mail(args: &str) -> Result<Command, CommandError> {
    let (path, params) = path_and_params(args, "FROM:", "MAIL FROM:<address>")?;
    let address = parse_address(path, true).map_err(CommandError::from)?;
    let mut parsed = MailParams::default();
    for param in params.split_whitespace() {
        let (key, value) = match param.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (param, None),
        };
        match (key.to_ascii_uppercase().as_str(), value) {
            ("SIZE", Some(v)) => {
                parsed.size = Some(
                    v.parse()
                        .map_err(|_| CommandError::Syntax("SIZE=<number>"))?,
                );
            }
            ("BODY", Some(v))
                if v.eq_ignore_ascii_case("8BITMIME") || v.eq_ignore_ascii_case("7BIT") =>
            {
                parsed.body = Some(v.to_ascii_uppercase());
            }
            ("SMTPUTF8", None) => parsed.smtputf8 = true,
            _ => return Err(CommandError::Parameter(param.to_string())),
        }
    }
    Ok(Command::Mail(address, parsed))
}

fn parse_rcpt(args: &str) -> Result<Command, CommandError> {
    let (path, params) = path_and_params(args, "TO:", "RCPT TO:<address>")?;
    if let Some(param) = params.split_whitespace().next() {
        return Err(CommandError::Parameter(param.to_string()));
    }
    Ok(Command::Rcpt(
        parse_address(path, false).map_err(CommandError::from)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(local: &str, domain: &str) -> Address {
        Address {
            local: local.into(),
            domain: domain.into(),
        }
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(
            parse(b"ehlo client.test"),
            Ok(Command::Ehlo("client.test".into()))
        );
        assert_eq!(parse(b"QuIt"), Ok(Command::Quit));
        assert_eq!(parse(b"STARTTLS"), Ok(Command::StartTls));
    }

    #[test]
    fn mail_with_parameters() {
        let cmd = parse(b"MAIL FROM:<a@Example.TEST> SIZE=1000 BODY=8BITMIME SMTPUTF8").unwrap();
        let params = MailParams {
            size: Some(1000),
            body: Some("8BITMIME".into()),
            smtputf8: true,
        };
        assert_eq!(cmd, Command::Mail(addr("a", "example.test"), params));
    }

    #[test]
    fn null_sender_and_space_after_colon() {
        assert_eq!(
            parse(b"MAIL FROM: <>"),
            Ok(Command::Mail(Address::null(), MailParams::default()))
        );
    }

    #[test]
    fn rcpt_parses_and_refuses_null() {
        assert_eq!(
            parse(b"RCPT TO:<b@x.test>"),
            Ok(Command::Rcpt(addr("b", "x.test")))
        );
        assert!(matches!(
            parse(b"RCPT TO:<>"),
            Err(CommandError::Address(_))
        ));
    }

    #[test]
    fn quoted_local_part_may_hold_brackets() {
        assert_eq!(
            parse(br#"RCPT TO:<"a>b"@x.test>"#),
            Ok(Command::Rcpt(addr(r#""a>b""#, "x.test")))
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(parse(b"FOO"), Err(CommandError::Unknown));
        assert_eq!(
            parse(b"MAIL TO:<a@b>"),
            Err(CommandError::Syntax("MAIL FROM:<address>"))
        );
        assert_eq!(
            parse(b"MAIL FROM:<a@b> XYZ=1"),
            Err(CommandError::Parameter("XYZ=1".into()))
        );
        assert_eq!(parse(b"EHLO"), Err(CommandError::Syntax("EHLO hostname")));
        assert_eq!(
            parse(b"EHLO a\x1b[31m.test"),
            Err(CommandError::Syntax("EHLO hostname"))
        );
        assert!(matches!(
            parse(b"MAIL FROM:<nodomain>"),
            Err(CommandError::Address(_))
        ));
    }

    #[test]
    fn xforward_carries_its_attributes() {
        let Ok(Command::Xforward(f)) = parse(b"xforward ADDR=192.0.2.7 HELO=web1.test") else {
            panic!("not parsed");
        };
        assert_eq!(f.addr, Some(Some("192.0.2.7".parse().unwrap())));
        assert_eq!(Forwarded::text(&f.helo), Some("web1.test"));
        assert_eq!(
            parse(b"XFORWARD"),
            Err(CommandError::Xforward(XforwardError::Syntax))
        );
    }

    #[test]
    fn limits_by_verb() {
        assert_eq!(line_limit(b"mail FROM:<>"), 1000);
        assert_eq!(line_limit(b"AUTH PLAIN x"), 12_288);
        assert_eq!(line_limit(b"NOOP"), 512);
    }
}
