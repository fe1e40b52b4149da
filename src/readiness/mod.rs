//! The readiness report of one customer domain (issue 19): whether mail
//! From it through this gateway will be judged well by recipients, with
//! the configured egress IPs (`[outbound] egress_ips`) — SPF, DKIM, DMARC,
//! MX, forward-confirmed reverse DNS of the egress IPs, DNSBL listings —
//! and what stopped its mail in the last 7 days. Each line says ok, warn or
//! fail, what is wrong and the exact fix. `smtpgate readiness`, the HTTP
//! API and the console show the same [`Report`].
//!
//! Every area is looked up at once and each is bounded by the `[dns]`
//! timeout, so an unreachable resolver gives clear "not checked" lines in
//! about one lookup's time, never a hang.

mod auth;
mod host;

use crate::app::App;
use crate::history::{Query, Record};
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

/// How far back the stopped messages are counted.
pub const STOPPED_SINCE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Records read at most for the stopped counts.
const STOPPED_LIMIT: usize = 10_000;

/// Tries past `[dns] attempts` one area may wait for: hickory makes one
/// more than `attempts` before it gives up on a name, and an area asks a
/// second name only after the first answered (an SPF include, a PTR then its
/// A record, a DMARC record then its parent's).
const AREA_EXTRA_TRIES: u32 = 2;

/// What a line found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// Works, but could be better, or could not be checked.
    Warn,
    /// Mail will suffer: fix it.
    Fail,
}

impl Status {
    /// `ok`, `warn`, `fail`.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    /// `spf`, `dkim`, `dmarc`, `mx`, `fcrdns` or `dnsbl`.
    pub area: &'static str,
    /// Ok, warn or fail.
    pub status: Status,
    /// What was found (and, for warn and fail, what is wrong).
    pub what: String,
    /// The exact fix (a record to publish, a key to set), for warn and fail.
    pub fix: Option<String>,
}

impl Line {
    /// Nothing to do.
    pub fn ok(area: &'static str, what: impl Into<String>) -> Line {
        Line {
            area,
            status: Status::Ok,
            what: what.into(),
            fix: None,
        }
    }

    /// Could be better, or could not be checked.
    pub fn warn(area: &'static str, what: impl Into<String>, fix: impl Into<String>) -> Line {
        Line {
            area,
            status: Status::Warn,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }

    /// Mail will suffer.
    pub fn fail(area: &'static str, what: impl Into<String>, fix: impl Into<String>) -> Line {
        Line {
            area,
            status: Status::Fail,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }
}

/// How many of the domain's messages one symbol stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoppedCount {
    /// The symbol (or, for a transaction stopped without one, its action).
    pub symbol: String,
    /// Transactions it was part of.
    pub count: u64,
    /// What it means (rules/*.toml).
    pub description: String,
    /// Its fix hint for the sender.
    pub fix: String,
}

/// The readiness of one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The domain, lower case.
    pub domain: String,
    /// `[outbound] egress_ips`.
    pub egress_ips: Vec<String>,
    /// Every finding, in area order.
    pub checks: Vec<Line>,
    /// The domain's stopped transactions of the last 7 days by symbol,
    /// most first.
    pub stopped: Vec<StoppedCount>,
    /// Why `stopped` is not the history's count, when it is not (the store
    /// failed; the memory store seen from another process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
}

impl Report {
    /// The worst status of the lines (ok when there are none).
    pub fn worst(&self) -> Status {
        self.checks
            .iter()
            .map(|l| l.status)
            .max()
            .unwrap_or(Status::Ok)
    }
}

/// `domain` as the report takes it: lower case, without a trailing dot; an
/// error saying why for what cannot be a domain name.
pub fn parse_domain(text: &str) -> Result<String, String> {
    let domain = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if labels.len() < 2 || domain.len() > 253 || !labels.iter().all(label_ok) {
        return Err(format!(
            "not a domain name: {text:?} (expected a name like example.com)"
        ));
    }
    Ok(domain)
}

/// The line of an IP-based area when `[outbound] egress_ips` is empty:
/// the IPs recipients will see are not known, so nothing is guessed.
pub(super) fn no_egress(area: &'static str) -> Line {
    Line::warn(
        area,
        "no [outbound] egress_ips configured: set the MTA's public IPs",
        "[outbound] egress_ips = [\"<the MTA's public IP>\", ...] in the gateway configuration",
    )
}

/// The line of an area whose lookup failed (`why` says which and how).
pub(super) fn not_checked(area: &'static str, why: &str) -> Line {
    Line::warn(
        area,
        format!("not checked: {why}"),
        "run the report again; if it persists, check [dns] nameservers and the domain's nameservers",
    )
}

/// The fix that publishes TXT `value` at `name`.
pub(super) fn txt_fix(name: &str, value: &str) -> String {
    format!("TXT record at {name}: {value}")
}

/// The `[outbound] egress_ips` of `app`.
fn egress_ips(app: &App) -> Vec<IpAddr> {
    app.config
        .outbound
        .as_ref()
        .map(|o| o.egress_ips.clone())
        .unwrap_or_default()
}

/// The longest one area may take: `[dns]` timeout × (attempts + 2), about
/// one lookup's worst case (every area, every IP and every zone is asked
/// at once, so the report takes no longer).
fn area_budget(app: &App) -> Duration {
    let dns = &app.config.dns;
    let tries = u32::try_from(dns.attempts.max(1))
        .unwrap_or(u32::MAX)
        .saturating_add(AREA_EXTRA_TRIES);
    dns.timeout.0.saturating_mul(tries)
}

/// `future`, or `None` when it takes longer than `budget`.
async fn bounded<T>(budget: Duration, future: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(budget, future).await.ok()
}

/// Runs `futures` at once; their outputs in order.
pub(super) async fn all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// The line of an area DNS did not answer for in time.
fn timed_out(area: &'static str, budget: Duration) -> Line {
    Line::warn(
        area,
        format!(
            "not checked: DNS did not answer within {}s",
            budget.as_secs_f64()
        ),
        "check [dns] nameservers (or the system resolver), then run the report again",
    )
}

/// The readiness report of `domain` (see the module doc). Never fails: a
/// lookup that did not answer is a warn line saying so.
pub async fn report(app: &App, domain: &str) -> Report {
    let domain = parse_domain(domain).unwrap_or_else(|_| domain.trim().to_ascii_lowercase());
    let ips = egress_ips(app);
    let budget = area_budget(app);
    let (spf, dkim, dmarc, mx, fcrdns, dnsbl, stopped) = tokio::join!(
        bounded(budget, auth::spf(app, &domain, &ips)),
        bounded(budget, auth::dkim(app, &domain)),
        bounded(budget, auth::dmarc_record(app, &domain)),
        bounded(budget, host::mx(app, &domain)),
        bounded(budget, host::fcrdns(app, &ips)),
        bounded(budget, host::dnsbl(app, &domain, &ips)),
        stopped(app, &domain),
    );
    let spf = spf.unwrap_or_else(|| auth::Found::unknown(timed_out("spf", budget)));
    let dkim = dkim.unwrap_or_else(|| auth::Found::unknown(timed_out("dkim", budget)));
    let dmarc = match dmarc {
        Some(record) => auth::dmarc(&domain, &ips, record, spf.aligned, dkim.aligned.as_deref()),
        None => timed_out("dmarc", budget),
    };
    let mut checks = vec![spf.line, dkim.line, dmarc];
    checks.push(mx.unwrap_or_else(|| timed_out("mx", budget)));
    checks.extend(fcrdns.unwrap_or_else(|| vec![timed_out("fcrdns", budget)]));
    checks.extend(dnsbl.unwrap_or_else(|| vec![timed_out("dnsbl", budget)]));
    let (stopped, history) = stopped;
    Report {
        domain,
        egress_ips: ips.iter().map(ToString::to_string).collect(),
        checks,
        stopped,
        history,
    }
}

/// The domain's stopped transactions of the last 7 days, grouped by
/// symbol; the note says why there are none to count when the store
/// failed.
async fn stopped(app: &App, domain: &str) -> (Vec<StoppedCount>, Option<String>) {
    let query = Query {
        from: Some(format!("@{domain}")),
        since: Some(STOPPED_SINCE),
        limit: STOPPED_LIMIT,
        ..Default::default()
    };
    match app.history.query(&query).await {
        Ok(records) => (count_stopped(app, domain, &records), None),
        Err(e) => (Vec::new(), Some(format!("history unavailable: {e}"))),
    }
}

/// The stopped records (action not `delivered`) of `records` by symbol
/// (shadow symbols aside), most first; a record stopped without a symbol
/// counts under its action.
pub fn count_stopped(app: &App, domain: &str, records: &[Record]) -> Vec<StoppedCount> {
    let mut counts: BTreeMap<String, (u64, bool)> = BTreeMap::new();
    for r in records {
        let action = crate::metrics::action_label(&r.action);
        if action == "delivered" {
            continue;
        }
        let mut names: Vec<&str> = r
            .symbols
            .iter()
            .filter(|s| !s.shadow)
            .map(|s| s.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        if names.is_empty() {
            counts.entry(action).or_insert((0, true)).0 += 1;
            continue;
        }
        for name in names {
            counts.entry(name.to_string()).or_insert((0, false)).0 += 1;
        }
    }
    let mut out: Vec<StoppedCount> = counts
        .into_iter()
        .map(|(symbol, (count, bare_action))| {
            let (description, fix) = match app.symbols.get(&symbol) {
                Some(def) if !bare_action => (def.description.clone(), def.fix.clone()),
                _ => (
                    format!("stopped with no symbol (action: {})", symbol.replace('_', " ")),
                    format!(
                        "see the transactions with `smtpgate history --from @{domain} --action {symbol}` \
                         and each one's story with `smtpgate why REF`"
                    ),
                ),
            };
            StoppedCount {
                symbol,
                count,
                description,
                fix,
            }
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.symbol.cmp(&b.symbol)));
    out
}

/// The report as text: one line per finding (`status area what`, the fix
/// indented below), the stopped counts, and the overall status.
pub fn text(report: &Report) -> String {
    let ips = if report.egress_ips.is_empty() {
        "none configured".to_string()
    } else {
        report.egress_ips.join(", ")
    };
    let mut out = format!("readiness of {} (egress IPs: {ips})\n", report.domain);
    for line in &report.checks {
        out.push_str(&format!(
            "{:<4} {:<6} {}\n",
            line.status.label(),
            line.area,
            line.what
        ));
        if let Some(fix) = &line.fix {
            out.push_str(&format!("            fix: {fix}\n"));
        }
    }
    match (&report.history, report.stopped.is_empty()) {
        (Some(note), _) => out.push_str(&format!("history: {note}\n")),
        (None, true) => out.push_str("stopped in the last 7 days: none\n"),
        (None, false) => {
            out.push_str("stopped in the last 7 days, by symbol:\n");
            for s in &report.stopped {
                out.push_str(&format!(
                    "  {:>6}  {}  {}\n",
                    s.count, s.symbol, s.description
                ));
                if !s.fix.is_empty() {
                    out.push_str(&format!("            fix: {}\n", s.fix));
                }
            }
        }
    }
    let count = |status| report.checks.iter().filter(|l| l.status == status).count();
    out.push_str(&format!(
        "result: {} ({} fail, {} warn, {} ok)\n",
        report.worst().label(),
        count(Status::Fail),
        count(Status::Warn),
        count(Status::Ok)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_checked_and_normalised() {
        assert_eq!(parse_domain("Example.TEST.").as_deref(), Ok("example.test"));
        assert_eq!(
            parse_domain(" shop.example.test ").as_deref(),
            Ok("shop.example.test")
        );
        for bad in [
            "",
            "example",
            "user@example.test",
            "a..test",
            "-a.test",
            "ex ample.test",
        ] {
            assert!(parse_domain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn worst_is_the_highest_status() {
        let mut report = Report {
            domain: "example.test".into(),
            egress_ips: Vec::new(),
            checks: Vec::new(),
            stopped: Vec::new(),
            history: None,
        };
        assert_eq!(report.worst(), Status::Ok);
        report.checks.push(Line::ok("spf", "fine"));
        report.checks.push(Line::warn("mx", "meh", "do this"));
        assert_eq!(report.worst(), Status::Warn);
        report.checks.push(Line::fail("dkim", "bad", "do that"));
        assert_eq!(report.worst(), Status::Fail);
        assert_eq!(
            serde_json::to_value(&report.checks[2]).expect("json"),
            serde_json::json!({"area": "dkim", "status": "fail", "what": "bad", "fix": "do that"})
        );
    }
}
