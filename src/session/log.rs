//! Postfix-style log lines, under the target `smtpgate::postfix`, so that
//! pflogsumm- and fail2ban-style tools can read them: one
//! `NOQUEUE: reject: RCPT from name[ip]: ...; from=<..> to=<..> proto=ESMTP helo=<..>`
//! line per refusal before DATA, one `REF: reject: END-OF-MESSAGE ...` per
//! refusal at the end of DATA, and one `REF: client=..., status=...` line
//! per recipient of a message we answered 250 to.

use crate::address::Address;
use crate::smtp::reply::Reply;
use std::net::IpAddr;

/// The log target operators filter on.
pub const TARGET: &str = "smtpgate::postfix";

/// The client as Postfix names it.
pub struct Client<'a> {
    /// The client's reverse DNS name, when known ("unknown" otherwise).
    pub name: Option<&'a str>,
    /// The client's address.
    pub ip: IpAddr,
    /// The HELO/EHLO name.
    pub helo: &'a str,
    /// "SMTP" after HELO, "ESMTP" after EHLO.
    pub proto: &'a str,
    /// The SMTP AUTH login.
    pub login: Option<&'a str>,
}

impl Client<'_> {
    fn named(&self) -> String {
        format!("{}[{}]", self.name.unwrap_or("unknown"), self.ip)
    }
}

/// `NOQUEUE: reject: STAGE from name[ip]: REPLY; from=<..> [to=<..>] proto=.. helo=<..>`.
pub fn noqueue_reject(
    client: &Client,
    stage: &str,
    reply: &Reply,
    from: &Address,
    to: Option<&Address>,
) -> String {
    let to = to.map_or(String::new(), |t| format!(" to=<{t}>"));
    format!(
        "NOQUEUE: reject: {stage} from {}: {reply}; from=<{from}>{to} proto={} helo=<{}>",
        client.named(),
        client.proto,
        client.helo
    )
}

/// `REF: reject: END-OF-MESSAGE from name[ip]: REPLY; from=<..> to=<..> proto=.. helo=<..> message-id=<..>`.
pub fn message_reject(
    client: &Client,
    reference: &str,
    reply: &Reply,
    from: &Address,
    to: &[Address],
    message_id: Option<&str>,
) -> String {
    let to: Vec<String> = to.iter().map(|t| format!("<{t}>")).collect();
    format!(
        "{reference}: reject: END-OF-MESSAGE from {}: {reply}; from=<{from}> to={} proto={} helo=<{}> message-id=<{}>",
        client.named(),
        to.join(","),
        client.proto,
        client.helo,
        message_id.unwrap_or("")
    )
}

/// `REF: client=name[ip], sasl_username=.., from=<..>, to=<..>,
/// message-id=<..>, size=N, proto=.., helo=<..>, status=STATUS (REPLY)`:
/// `sent` when the upstream took it (its reply names its queue id),
/// `bounced` when we stopped it and answered 250 (the alert went out).
#[allow(clippy::too_many_arguments)]
pub fn outcome(
    client: &Client,
    reference: &str,
    from: &Address,
    to: &Address,
    message_id: Option<&str>,
    size: usize,
    status: &str,
    reply: &Reply,
) -> String {
    let login = client
        .login
        .map_or(String::new(), |l| format!(" sasl_username={l},"));
    format!(
        "{reference}: client={},{login} from=<{from}>, to=<{to}>, message-id=<{}>, size={size}, proto={}, helo=<{}>, status={status} ({reply})",
        client.named(),
        message_id.unwrap_or(""),
        client.proto,
        client.helo
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client<'static> {
        Client {
            name: None,
            ip: "192.0.2.7".parse().unwrap(),
            helo: "web1.example.test",
            proto: "ESMTP",
            login: None,
        }
    }

    fn addr(s: &str) -> Address {
        crate::address::parse_address(s, false).unwrap()
    }

    #[test]
    fn a_relay_refusal_reads_like_postfix() {
        let reply = Reply::new(554, "5.7.1", "<x@example.net>: Relay access denied");
        assert_eq!(
            noqueue_reject(&client(), "RCPT", &reply, &addr("a@example.test"), Some(&addr("x@example.net"))),
            "NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 554 5.7.1 <x@example.net>: Relay access denied; from=<a@example.test> to=<x@example.net> proto=ESMTP helo=<web1.example.test>"
        );
    }

    #[test]
    fn a_delivery_names_client_ids_and_the_upstream_queue_id() {
        let reply = Reply::new(250, "2.0.0", "Ok: queued as 4F2A1");
        let c = Client {
            login: Some("shop"),
            ..client()
        };
        assert_eq!(
            outcome(&c, "K3F9Q2ZP", &addr("a@example.test"), &addr("b@example.net"), Some("m1@example.test"), 120, "sent", &reply),
            "K3F9Q2ZP: client=unknown[192.0.2.7], sasl_username=shop, from=<a@example.test>, to=<b@example.net>, message-id=<m1@example.test>, size=120, proto=ESMTP, helo=<web1.example.test>, status=sent (250 2.0.0 Ok: queued as 4F2A1)"
        );
    }
}
