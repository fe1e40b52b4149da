//! A mailbox address (RFC 5321 §4.1.2) and its pure parser, shared by the
//! protocol, the checks and the command line.

use std::fmt;

/// A mailbox address split at its last `@`. The null reverse-path is
/// represented by an empty local part and domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// Everything before the last `@`, as sent (quotes kept).
    pub local: String,
    /// The domain, lower-cased (empty for the null sender and for `postmaster`).
    pub domain: String,
}

impl Address {
    /// The null reverse-path `<>`.
    pub fn null() -> Address {
        Address {
            local: String::new(),
            domain: String::new(),
        }
    }

    /// True for `<>`.
    pub fn is_null(&self) -> bool {
        self.local.is_empty() && self.domain.is_empty()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.domain.is_empty() {
            write!(f, "{}", self.local)
        } else {
            write!(f, "{}@{}", self.local, self.domain)
        }
    }
}

/// Why a text is not a mailbox address; says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AddressError(pub String);

/// Parses the mailbox inside `<>`; `allow_null` for MAIL FROM.
pub fn parse_address(path: &str, allow_null: bool) -> Result<Address, AddressError> {
    if path.is_empty() {
        return if allow_null {
            Ok(Address::null())
        } else {
            Err(AddressError("empty address".into()))
        };
    }
    if path
        .chars()
        .any(|c| c.is_control() || c == ' ' && !path.starts_with('"'))
    {
        return Err(AddressError(format!("<{path}>: invalid character")));
    }
    if path.eq_ignore_ascii_case("postmaster") {
        return Ok(Address {
            local: path.to_string(),
            domain: String::new(),
        });
    }
    let at = path
        .rfind('@')
        .ok_or_else(|| AddressError(format!("<{path}>: missing @domain")))?;
    let (local, domain) = (&path[..at], &path[at + 1..]);
    if local.is_empty() {
        return Err(AddressError(format!("<{path}>: empty local part")));
    }
    if domain.is_empty() {
        return Err(AddressError(format!("<{path}>: empty domain")));
    }
    Ok(Address {
        local: local.to_string(),
        domain: domain.to_ascii_lowercase(),
    })
}

/// An address as a person types it on a command line or in a file:
/// bare (`a@b.test`), in angle brackets (`<a@b.test>`), or `<>` for the
/// null sender when `allow_null`.
pub fn parse_typed(text: &str, allow_null: bool) -> Result<Address, AddressError> {
    let text = text.trim();
    let bare = match text.strip_prefix('<') {
        Some(rest) => rest
            .strip_suffix('>')
            .ok_or_else(|| AddressError(format!("{text}: missing >")))?,
        None if text.ends_with('>') => return Err(AddressError(format!("{text}: missing <"))),
        None => text,
    };
    parse_address(bare, allow_null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_addresses_bare_bracketed_and_null() {
        for text in [
            "support@goodco.test",
            "<support@goodco.test>",
            " <support@GoodCo.test> ",
        ] {
            let a = parse_typed(text, false).unwrap();
            assert_eq!(
                (a.local.as_str(), a.domain.as_str()),
                ("support", "goodco.test"),
                "{text}"
            );
        }
        assert!(parse_typed("<>", true).unwrap().is_null());
        assert!(parse_typed("<>", false).is_err());
        assert!(parse_typed("<a@b.test", false).is_err());
        assert!(parse_typed("a@b.test>", false).is_err());
    }
}
