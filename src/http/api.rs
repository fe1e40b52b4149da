//! The JSON API under `/api/` (docs/api.md names every field): the mail
//! history and one message's breakdown, `check` on a posted message, a
//! domain's readiness, the counts over time, and the anomaly holds.

use super::data;
use super::request::Head;
use super::response::Response;
use crate::app::App;
use crate::cli::check::{self, Given};
use crate::message::Parsed;
use crate::pipeline::into_crlf;

/// The parameters `POST /api/check` takes, as `smtpgate check`'s flags.
const CHECK_PARAMETERS: &[&str] = &["from", "rcpt", "ip", "helo", "login"];

/// Answers `/api/<rest>`.
pub async fn answer(app: &App, head: &Head, rest: &[String], body: Vec<u8>) -> Response {
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let get = matches!(head.method.as_str(), "GET" | "HEAD");
    match rest.as_slice() {
        ["history"] if get => data::history(app, &head.query).await,
        ["messages", reference] if get => data::message(app, reference).await,
        ["readiness", domain] if get => data::readiness(app, domain).await,
        ["stats"] if get => data::stats(app, &head.query).await,
        ["check"] if head.method == "POST" => check(app, &head.query, body).await,
        ["holds"] => super::holds::answer(app, head, None).await,
        ["holds", who] => super::holds::answer(app, head, Some(who)).await,
        ["history"] | ["messages", _] | ["readiness", _] | ["stats"] => {
            Response::method_not_allowed("GET, HEAD")
        }
        ["check"] => Response::method_not_allowed("POST"),
        _ => Response::error(
            404,
            "no such API endpoint: see /api/history, /api/messages/REF, /api/check, \
             /api/readiness/DOMAIN, /api/stats, /api/holds, /api/holds/IDENTITY",
        ),
    }
}

/// `POST /api/check?from=&rcpt=&ip=&helo=&login=` with the message as the
/// body: `smtpgate check --json`'s object.
async fn check(app: &App, query: &[(String, String)], body: Vec<u8>) -> Response {
    let given = match given(query) {
        Ok(given) => given,
        Err(e) => return Response::error(400, &e),
    };
    if body.is_empty() {
        return Response::error(
            400,
            "no message: POST the message (RFC 5322, as a .eml file holds it) as the body",
        );
    }
    let raw = into_crlf(body);
    let envelope = match check::envelope(&given, &Parsed::parse(&raw)) {
        Ok(envelope) => envelope,
        Err(e) => return Response::error(400, &e.to_string()),
    };
    Response::json(200, &check::report(app, &envelope, &raw).await.json)
}

/// The envelope the query gives, with `check`'s defaults.
fn given(query: &[(String, String)]) -> Result<Given, String> {
    let mut given = Given {
        from: None,
        rcpts: Vec::new(),
        ip: check::DEFAULT_IP.parse().map_err(|_| "the default ip")?,
        helo: check::DEFAULT_HELO.to_string(),
        login: None,
    };
    for (name, value) in query {
        match name.as_str() {
            "from" => given.from = Some(value.clone()),
            "rcpt" => given.rcpts.push(value.clone()),
            "ip" => {
                given.ip = value
                    .parse()
                    .map_err(|_| format!("ip={value}: expected an IP address"))?
            }
            "helo" => given.helo = value.clone(),
            "login" => given.login = Some(value.clone()).filter(|l| !l.is_empty()),
            _ => {
                return Err(format!(
                    "unknown parameter `{name}`: expected {}",
                    CHECK_PARAMETERS.join(", ")
                ))
            }
        }
    }
    Ok(given)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn the_check_query_reads_as_the_flags() {
        let g = given(&pairs(&[
            ("from", "a@example.test"),
            ("rcpt", "b@example.org"),
            ("rcpt", "c@example.org"),
            ("ip", "192.0.2.7"),
            ("helo", "mail.example.test"),
            ("login", "alice"),
        ]))
        .unwrap();
        assert_eq!(g.from.as_deref(), Some("a@example.test"));
        assert_eq!(g.rcpts, ["b@example.org", "c@example.org"]);
        assert_eq!(g.ip.to_string(), "192.0.2.7");
        assert_eq!(
            (g.helo.as_str(), g.login.as_deref()),
            ("mail.example.test", Some("alice"))
        );
        let d = given(&[]).unwrap();
        assert_eq!(
            (d.ip.to_string().as_str(), d.helo.as_str()),
            ("127.0.0.1", "localhost.localdomain")
        );
        assert_eq!(
            given(&pairs(&[("ip", "nowhere")])).unwrap_err(),
            "ip=nowhere: expected an IP address"
        );
        assert_eq!(
            given(&pairs(&[("sender", "a@b.test")])).unwrap_err(),
            "unknown parameter `sender`: expected from, rcpt, ip, helo, login"
        );
    }
}
