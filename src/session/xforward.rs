//! XFORWARD from a trusted forwarder (a Postfix in front with
//! `smtpd_proxy_filter`, listed in the listener's `xforward_from`): what
//! it forwards stands for the client — in checks, Received and logs —
//! until the end of the next mail transaction (XFORWARD_README). Also the
//! client as we pass it on to the upstream ([`Origin`]).

use crate::session::{Flow, Session};
use crate::smtp::command::CommandError;
use crate::smtp::reply::{self, Reply};
use crate::smtp::xforward::{Forwarded, Origin, XforwardError};
use std::net::IpAddr;

/// The client the current transaction is about: the connection's, or
/// what a forwarder told us.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The client's address.
    pub ip: IpAddr,
    /// Its port, when known.
    pub port: Option<u16>,
    /// Its host name, when a forwarder gave it.
    pub name: Option<&'a str>,
    /// The HELO/EHLO name.
    pub helo: Option<&'a str>,
    /// The SMTP AUTH login.
    pub login: Option<&'a str>,
    /// True after EHLO (PROTO=ESMTP).
    pub esmtp: bool,
    /// A forwarder spoke without a usable ADDR (none, or [UNAVAILABLE]):
    /// the client is not trusted, whatever the connection's address.
    pub addr_unknown: bool,
    /// The forwarder's address, when this client was forwarded.
    pub forwarded_by: Option<IpAddr>,
}

impl Session {
    /// XFORWARD: taken only from `xforward_from`, outside a transaction.
    pub(crate) fn xforward(&mut self, attributes: Forwarded) -> Flow {
        if !self.xforward_allowed {
            return self.protocol_error(reply::xforward_denied());
        }
        if self.txn.is_some() {
            return self.protocol_error(reply::bad_sequence("MAIL transaction in progress"));
        }
        self.forwarded.merge(attributes);
        self.reply_ok(reply::ok())
    }

    /// The reply to an XFORWARD line that does not parse.
    pub(crate) fn xforward_error(&mut self, error: &CommandError) -> Flow {
        let reply: Reply = match error {
            _ if !self.xforward_allowed => reply::xforward_denied(),
            CommandError::Xforward(XforwardError::Name(n)) => reply::xforward_syntax(Some(n), true),
            CommandError::Xforward(XforwardError::Value(n)) => {
                reply::xforward_syntax(Some(n), false)
            }
            _ => reply::xforward_syntax(None, false),
        };
        self.protocol_error(reply)
    }

    /// The client as every decision sees it.
    pub fn client(&self) -> Client<'_> {
        let f = &self.forwarded;
        let own = Client {
            ip: self.peer.ip(),
            port: Some(self.peer.port()),
            name: None,
            helo: self.helo.as_deref(),
            login: self.login.as_deref(),
            esmtp: self.esmtp,
            addr_unknown: false,
            forwarded_by: None,
        };
        if f.is_empty() {
            return own;
        }
        // Once a forwarder speaks, what it did not forward is unknown, not
        // the forwarder's own (Postfix's smtpd_xforward_preset).
        Client {
            ip: f.addr.flatten().unwrap_or(own.ip),
            port: Forwarded::text(&f.port).and_then(|p| p.parse().ok()),
            name: Forwarded::text(&f.name),
            helo: Forwarded::text(&f.helo),
            login: Forwarded::text(&f.login),
            esmtp: match Forwarded::text(&f.proto) {
                Some(p) => !p.eq_ignore_ascii_case("SMTP"),
                None => own.esmtp,
            },
            addr_unknown: f.addr.is_none_or(|a| a.is_none()),
            forwarded_by: Some(own.ip),
        }
    }

    /// The client as we tell the upstream (XFORWARD, XCLIENT).
    pub(crate) fn origin(&self, reference: &str) -> Origin {
        let client = self.client();
        let trusted = !client.addr_unknown && self.app.config.relay.is_trusted(client.ip);
        Origin {
            name: client.name.map(str::to_string),
            addr: client.ip,
            port: client.port,
            esmtp: client.esmtp,
            helo: client.helo.unwrap_or("").to_string(),
            reference: reference.to_string(),
            local: trusted || client.login.is_some(),
        }
    }
}
