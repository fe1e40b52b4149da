//! Counting a batch of transactions into the baseline and finding who
//! crossed a limit. One `incr_many` counts the batch (window counters,
//! per-day messages, "domain seen" markers); a second adds the derived
//! counters (distinct and new domains, active windows); only identities at
//! the floor cost a read of their baseline (one `get_many` for the batch)
//! and, when one crosses a limit, one `incr_many` to decide which node
//! places the hold (the first) and one write of the hold.

use super::{
    domain_of, hold_key, index_op, trip_key, window_key, Anomaly, Hold, Observation, BY_ANOMALY,
    DAY,
};
use crate::store::{Increment, StoreError, WriteOp};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// The per-window counters a release sets back to zero.
pub(super) const WINDOW_COUNTERS: &[&str] = &["m", "r", "x", "s", "dom", "nrd", "nfd"];

/// Which limit an identity crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// More messages than `factor` × its usual per window.
    Volume,
    /// More new recipient domains than `max_new_recipient_domains`.
    NewDomains,
    /// More refused recipients than `max_refused_ratio`.
    Refused,
    /// More spam than `max_spam_ratio`.
    Spam,
}

impl Rule {
    /// The rule's name in metrics labels and the report.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Volume => "volume",
            Rule::NewDomains => "new_domains",
            Rule::Refused => "refused",
            Rule::Spam => "spam",
        }
    }
}

/// What one identity did in the window when it was held, and its usual.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    /// The window, seconds.
    pub window_secs: u64,
    /// Messages in the window.
    pub messages: u64,
    /// Recipients (accepted, or refused as unknown).
    pub recipients: u64,
    /// Recipients refused as unknown (5.1.x).
    pub refused: u64,
    /// Messages stopped as spam.
    pub spam: u64,
    /// Distinct recipient domains.
    pub domains: u64,
    /// Recipient domains the identity had not used within `baseline_days`.
    pub new_recipient_domains: u64,
    /// From domains it had not used within `baseline_days`.
    pub new_from_domains: u64,
    /// Its usual messages per window with mail (none yet: still learning).
    pub usual_per_window: Option<f64>,
    /// Its usual messages per day with mail.
    pub usual_per_day: Option<f64>,
    /// Windows with mail the baseline is made of.
    pub baseline_windows: u64,
    /// The limit crossed.
    pub rule: Rule,
    /// The SMTP AUTH login of the transaction that crossed it.
    pub login: Option<String>,
    /// Its MAIL FROM (the alert's originator when the identity is an IP).
    pub from: String,
}

/// Increments keyed once each, so that a key's result tells whether this
/// batch created it (result == what was added).
#[derive(Default)]
struct Incrs {
    keys: Vec<(String, i64, Duration)>,
    index: HashMap<String, usize>,
}

impl Incrs {
    fn add(&mut self, key: String, by: i64, ttl: Duration) -> usize {
        if let Some(&i) = self.index.get(&key) {
            self.keys[i].1 += by;
            return i;
        }
        self.keys.push((key.clone(), by, ttl));
        self.index.insert(key, self.keys.len() - 1);
        self.keys.len() - 1
    }

    async fn run(&self, anomaly: &Anomaly) -> Result<Vec<i64>, StoreError> {
        if self.keys.is_empty() {
            return Ok(Vec::new());
        }
        let increments: Vec<Increment<'_>> = self
            .keys
            .iter()
            .map(|(key, by, ttl)| Increment {
                key,
                by: *by,
                ttl: *ttl,
            })
            .collect();
        anomaly.store.incr_many(&increments).await
    }
}

/// One identity's transactions of one window in a batch, and where their
/// counters are in the increments.
struct Group<'a> {
    identity: &'a str,
    window: u64,
    obs: Vec<&'a Observation>,
    counters: [usize; 4],
    /// Per observation: the marker keys of its recipient and From domains.
    markers: Vec<Markers>,
    derived: [Option<usize>; 3],
}

#[derive(Default)]
struct Markers {
    window_domains: Vec<usize>,
    known_domains: Vec<usize>,
    from_domain: Option<usize>,
    /// Window domains, recipient domains and From domains this
    /// transaction made new.
    credits: [u64; 3],
}

fn fresh(keys: &Incrs, results: &[i64], i: usize) -> bool {
    results.get(i).copied() == Some(keys.keys[i].1)
}

fn value(results: &[i64], i: usize) -> u64 {
    results.get(i).map_or(0, |v| u64::try_from(*v).unwrap_or(0))
}

impl Anomaly {
    /// Counts `batch` and places the holds it calls for; returns the holds
    /// this node placed (each placed once across every node).
    pub(super) async fn count(&self, batch: &[Observation]) -> Result<Vec<Hold>, StoreError> {
        let (window_ttl, known_ttl, day_ttl) =
            (self.window_ttl(), self.baseline_ttl(), self.day_ttl());
        let mut groups: Vec<Group<'_>> = Vec::new();
        let mut by_key: HashMap<(&str, u64), usize> = HashMap::new();
        for o in batch.iter().filter(|o| !self.is_trusted(&o.identity)) {
            let window = self.window_of(o.time);
            let g = *by_key
                .entry((o.identity.as_str(), window))
                .or_insert_with(|| {
                    groups.push(Group {
                        identity: &o.identity,
                        window,
                        obs: Vec::new(),
                        counters: [0; 4],
                        markers: Vec::new(),
                        derived: [None; 3],
                    });
                    groups.len() - 1
                });
            groups[g].obs.push(o);
        }
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let mut first = Incrs::default();
        for g in &mut groups {
            let (id, w) = (g.identity, g.window);
            let sum = |f: &dyn Fn(&Observation) -> u64| -> i64 {
                g.obs.iter().map(|o| f(o) as i64).sum()
            };
            let totals = [
                g.obs.len() as i64,
                sum(&|o| o.recipients),
                sum(&|o| o.refused),
                sum(&|o| u64::from(o.spam)),
            ];
            for (n, kind) in ["m", "r", "x", "s"].iter().enumerate() {
                g.counters[n] = first.add(window_key(kind, w, id), totals[n], window_ttl);
            }
            for o in &g.obs {
                first.add(format!("anomaly:dm:{}:{id}", o.time / DAY), 1, day_ttl);
                let mut m = Markers::default();
                for d in &o.recipient_domains {
                    m.window_domains.push(first.add(
                        format!("anomaly:wd:{w}:{id}:{d}"),
                        1,
                        window_ttl,
                    ));
                    m.known_domains
                        .push(first.add(format!("anomaly:rd:{id}:{d}"), 1, known_ttl));
                }
                let from = o.from_domain();
                if !from.is_empty() {
                    m.from_domain =
                        Some(first.add(format!("anomaly:fd:{id}:{from}"), 1, known_ttl));
                }
                g.markers.push(m);
            }
        }
        let r1 = first.run(self).await?;
        // What each transaction made new (a domain is new once, to the
        // first transaction naming it), then the derived counters.
        let mut credited = std::collections::HashSet::new();
        for g in &mut groups {
            for m in &mut g.markers {
                let mut credit = |i: usize| u64::from(fresh(&first, &r1, i) && credited.insert(i));
                m.credits[0] = m.window_domains.iter().map(|&i| credit(i)).sum();
                m.credits[1] = m.known_domains.iter().map(|&i| credit(i)).sum();
                m.credits[2] = m.from_domain.map_or(0, &mut credit);
            }
        }
        let floor = self.config.min_messages;
        let mut second = Incrs::default();
        for g in &mut groups {
            let candidate = value(&r1, g.counters[0]) >= floor;
            for (n, kind) in ["dom", "nrd", "nfd"].iter().enumerate() {
                let made: u64 = g.markers.iter().map(|m| m.credits[n]).sum();
                if candidate || made > 0 {
                    g.derived[n] = Some(second.add(
                        window_key(kind, g.window, g.identity),
                        made as i64,
                        window_ttl,
                    ));
                }
            }
            if fresh(&first, &r1, g.counters[0]) {
                let day = g.obs[0].time / DAY;
                second.add(format!("anomaly:dw:{day}:{}", g.identity), 1, day_ttl);
            }
        }
        let r2 = second.run(self).await?;
        let candidates: Vec<usize> = (0..groups.len())
            .filter(|&g| value(&r1, groups[g].counters[0]) >= floor)
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let trips = self.judge(&groups, &candidates, &r1, &r2).await?;
        self.place(trips).await
    }

    /// Reads the candidates' baselines and walks their transactions in
    /// order: the first one at which a limit is crossed trips the hold.
    async fn judge(
        &self,
        groups: &[Group<'_>],
        candidates: &[usize],
        r1: &[i64],
        r2: &[i64],
    ) -> Result<Vec<Hold>, StoreError> {
        let days = self.config.baseline_days;
        let mut keys: Vec<String> = Vec::new();
        let mut starts: Vec<usize> = Vec::with_capacity(candidates.len() + 1);
        for &g in candidates {
            let group = &groups[g];
            let today = group.obs.last().map_or(0, |o| o.time / DAY);
            starts.push(keys.len());
            keys.push(hold_key(group.identity));
            // Read with the day counters, in one snapshot: the window's
            // messages as the days count them (another node may have
            // counted more since this node's increment).
            keys.push(window_key("m", group.window, group.identity));
            for day in today.saturating_sub(days)..=today {
                keys.push(format!("anomaly:dm:{day}:{}", group.identity));
                keys.push(format!("anomaly:dw:{day}:{}", group.identity));
            }
        }
        starts.push(keys.len());
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let values = self.store.get_many(&refs).await?;
        let number = |v: &Option<Vec<u8>>| -> u64 {
            v.as_deref()
                .and_then(|b| std::str::from_utf8(b).ok()?.trim().parse::<i64>().ok())
                .map_or(0, |n| u64::try_from(n).unwrap_or(0))
        };
        if values.len() != keys.len() {
            return Err(StoreError(format!(
                "get_many: {} values for {} keys",
                values.len(),
                keys.len()
            )));
        }
        let mut trips = Vec::new();
        for (n, &g) in candidates.iter().enumerate() {
            let group = &groups[g];
            let slice = &values[starts[n]..starts[n + 1]];
            if slice[0].is_some() {
                continue; // held already
            }
            // The baseline leaves out the window being judged, as counted
            // in the same snapshot as the days.
            let mut left = number(&slice[1]).max(value(r1, group.counters[0]));
            let (mut total, mut windows, mut active_days) = (0u64, 0u64, 0u64);
            for pair in slice[2..].chunks(2).rev() {
                let day = number(&pair[0]);
                let mine = day.min(left);
                left -= mine;
                total += day - mine;
                active_days += u64::from(day > mine);
                windows += number(&pair[1]);
            }
            let baseline_windows = windows.saturating_sub(1);
            let usual = Usual {
                per_window: (baseline_windows > 0).then(|| total as f64 / baseline_windows as f64),
                per_day: (active_days > 0).then(|| total as f64 / active_days as f64),
                windows: baseline_windows,
            };
            if let Some(hold) = self.walk(group, r1, r2, &usual) {
                trips.push(hold);
            }
        }
        Ok(trips)
    }

    /// The group's transactions one by one from the counters' values
    /// before the batch: the first crossing, as a hold.
    fn walk(&self, group: &Group<'_>, r1: &[i64], r2: &[i64], usual: &Usual) -> Option<Hold> {
        let sums = [
            group.obs.len() as u64,
            group.obs.iter().map(|o| o.recipients).sum::<u64>(),
            group.obs.iter().map(|o| o.refused).sum::<u64>(),
            group.obs.iter().filter(|o| o.spam).count() as u64,
        ];
        let mut run = [0u64; 7];
        for n in 0..4 {
            run[n] = value(r1, group.counters[n]).saturating_sub(sums[n]);
        }
        for n in 0..3 {
            let total = group.derived[n].map_or(0, |i| value(r2, i));
            let made: u64 = group.markers.iter().map(|m| m.credits[n]).sum();
            run[4 + n] = total.saturating_sub(made);
        }
        let c = &self.config;
        for (o, m) in group.obs.iter().zip(&group.markers) {
            run[0] += 1;
            run[1] += o.recipients;
            run[2] += o.refused;
            run[3] += u64::from(o.spam);
            for n in 0..3 {
                run[4 + n] += m.credits[n];
            }
            let [messages, recipients, refused, spam, _, new_domains, _] = run;
            if messages < c.min_messages {
                continue;
            }
            let rule = if usual
                .per_window
                .is_some_and(|u| messages as f64 > c.factor * u)
            {
                Rule::Volume
            } else if usual.per_window.is_some()
                && c.max_new_recipient_domains > 0
                && new_domains > c.max_new_recipient_domains
            {
                Rule::NewDomains
            } else if recipients > 0 && refused as f64 > c.max_refused_ratio * recipients as f64 {
                Rule::Refused
            } else if spam as f64 > c.max_spam_ratio * messages as f64 {
                Rule::Spam
            } else {
                continue;
            };
            let seen = Seen {
                window_secs: self.window_secs(),
                messages,
                recipients,
                refused,
                spam,
                domains: run[4],
                new_recipient_domains: new_domains,
                new_from_domains: run[6],
                usual_per_window: usual.per_window,
                usual_per_day: usual.per_day,
                baseline_windows: usual.windows,
                rule,
                login: o.login.clone(),
                from: o.from.clone(),
            };
            let since = o.time.max(super::now());
            return Some(Hold {
                identity: group.identity.to_string(),
                reason: super::text::reason(&seen, c),
                reference: o.reference.clone(),
                since,
                until: since + c.hold_for.0.as_secs(),
                by: BY_ANOMALY.to_string(),
                seen: Some(seen),
            });
        }
        None
    }

    /// Places the holds whose trip counter this node raised first.
    async fn place(&self, trips: Vec<Hold>) -> Result<Vec<Hold>, StoreError> {
        if trips.is_empty() {
            return Ok(Vec::new());
        }
        let ttl = self.config.hold_for.0;
        let keys: Vec<String> = trips.iter().map(|h| trip_key(&h.identity)).collect();
        let increments: Vec<Increment<'_>> = keys
            .iter()
            .map(|key| Increment { key, by: 1, ttl })
            .collect();
        let counts = self.store.incr_many(&increments).await?;
        let won: Vec<Hold> = trips
            .into_iter()
            .zip(counts)
            .filter(|(_, n)| *n == 1)
            .map(|(h, _)| h)
            .collect();
        if won.is_empty() {
            return Ok(won);
        }
        let ops: Vec<WriteOp> = won
            .iter()
            .flat_map(|h| {
                [
                    WriteOp::Set(hold_key(&h.identity), h.json(), ttl),
                    index_op(&h.identity, h.since),
                ]
            })
            .collect();
        self.store.batch(&ops).await?;
        for h in &won {
            let rule = h.seen.as_ref().map_or("", |s| s.rule.name());
            crate::metrics::anomaly_hold(rule);
            tracing::warn!(target: "smtpgate::anomaly", identity = %h.identity, reference = %h.reference, reason = %h.reason, "ANOMALY_HOLD: identity held for review");
        }
        Ok(won)
    }
}

/// An identity's usual traffic.
struct Usual {
    per_window: Option<f64>,
    per_day: Option<f64>,
    windows: u64,
}

/// The recipient domains of `recipients`, distinct, lowercase.
pub fn recipient_domains<'a>(recipients: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut domains: Vec<String> = recipients
        .map(domain_of)
        .filter(|d| !d.is_empty())
        .collect();
    domains.sort();
    domains.dedup();
    domains
}
