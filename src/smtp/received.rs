//! The `Received:` trace header smtpgate prepends (RFC 5321 §4.4, with the
//! RFC 3848 protocol names) and the RFC 5322 date it carries.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the trace header records about one transaction.
#[derive(Debug, Clone)]
pub struct Trace<'a> {
    /// The client's HELO/EHLO name.
    pub helo: &'a str,
    /// The client's address.
    pub client_ip: IpAddr,
    /// Our hostname.
    pub hostname: &'a str,
    /// True after EHLO (ESMTP), false after HELO.
    pub esmtp: bool,
    /// TLS protocol version and cipher suite, when encrypted.
    pub tls: Option<(&'a str, &'a str)>,
    /// The SMTP AUTH login, when authenticated (the protocol says ESMTPA).
    pub login: Option<&'a str>,
    /// Whether the header names the login (`[server] received_login`).
    pub show_login: bool,
    /// The transaction's reference.
    pub reference: &'a str,
    /// The recipient, recorded only when there is exactly one.
    pub single_recipient: Option<String>,
}

impl Trace<'_> {
    /// The header, folded, CRLF-terminated.
    pub fn header(&self, now: SystemTime) -> String {
        let protocol = match (self.esmtp, self.tls.is_some(), self.login.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        };
        let ip = match self.client_ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("IPv6:{v6}"),
        };
        let mut h = format!("Received: from {} ([{}])", self.helo, ip);
        if let Some(login) = self.login.filter(|_| self.show_login) {
            h.push_str(&format!("\r\n\t(Authenticated sender: {login})"));
        }
        if let Some((version, cipher)) = self.tls {
            h.push_str(&format!("\r\n\t(using {version} with cipher {cipher})"));
        }
        h.push_str(&format!(
            "\r\n\tby {} (smtpgate) with {} id {}",
            self.hostname, protocol, self.reference
        ));
        if let Some(rcpt) = &self.single_recipient {
            h.push_str(&format!("\r\n\tfor <{rcpt}>"));
        }
        h.push_str(&format!("; {}\r\n", rfc5322_date(now)));
        h
    }
}

/// `now` as an RFC 5322 date in UTC, e.g. `Mon, 23 Nov 2026 03:06:13 +0000`.
pub fn rfc5322_date(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_403_173);
        assert_eq!(rfc5322_date(t), "Mon, 23 Nov 2026 03:06:13 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc5322_date(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn header_names_tls_and_protocol() {
        let trace = Trace {
            helo: "web1.example.test",
            client_ip: "192.0.2.7".parse().unwrap(),
            hostname: "gw.example.test",
            esmtp: true,
            tls: Some(("TLSv1.3", "TLS13_AES_128_GCM_SHA256")),
            login: None,
            show_login: false,
            reference: "K3F9Q2ZP",
            single_recipient: Some("a@example.net".into()),
        };
        let h = trace.header(UNIX_EPOCH);
        assert_eq!(
            h,
            "Received: from web1.example.test ([192.0.2.7])\r\n\t(using TLSv1.3 with cipher TLS13_AES_128_GCM_SHA256)\r\n\tby gw.example.test (smtpgate) with ESMTPS id K3F9Q2ZP\r\n\tfor <a@example.net>; Thu, 01 Jan 1970 00:00:00 +0000\r\n"
        );
    }

    #[test]
    fn the_login_is_shown_only_when_asked() {
        let mut trace = Trace {
            helo: "web1.example.test",
            client_ip: "192.0.2.7".parse().unwrap(),
            hostname: "gw.example.test",
            esmtp: true,
            tls: None,
            login: Some("alice"),
            show_login: false,
            reference: "K3F9Q2ZP",
            single_recipient: None,
        };
        let hidden = trace.header(UNIX_EPOCH);
        assert_eq!(
            hidden,
            "Received: from web1.example.test ([192.0.2.7])\r\n\tby gw.example.test (smtpgate) with ESMTPA id K3F9Q2ZP; Thu, 01 Jan 1970 00:00:00 +0000\r\n"
        );
        trace.show_login = true;
        assert_eq!(
            trace.header(UNIX_EPOCH),
            "Received: from web1.example.test ([192.0.2.7])\r\n\t(Authenticated sender: alice)\r\n\tby gw.example.test (smtpgate) with ESMTPA id K3F9Q2ZP; Thu, 01 Jan 1970 00:00:00 +0000\r\n"
        );
    }
}
