//! Symbols and their weights: the symbol table built from rules/*.toml, the
//! per-transaction [`Breakdown`] and its total. Scores are kept in hundredths
//! so that "exactly 2.00 is spam" is exact arithmetic, not floating point.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

/// A score in hundredths of a point (7.30 is `Score(730)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Score(pub i64);

impl Score {
    /// Rounds a score written in a TOML file to hundredths.
    pub fn from_f64(value: f64) -> Score {
        Score((value * 100.0).round() as i64)
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl std::iter::Sum for Score {
    fn sum<I: Iterator<Item = Score>>(iter: I) -> Score {
        Score(iter.map(|s| s.0).sum())
    }
}

/// What a symbol forces regardless of the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForcedAction {
    /// Refuse with a 5xx at the phase where it fired.
    Reject,
    /// Refuse with a 4xx at the phase where it fired.
    Tempfail,
    /// Stop the message (or that recipient) whatever the total.
    Block,
}

/// A symbol's definition from rules/*.toml.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolDef {
    /// The weight added to the total.
    pub score: Score,
    /// A forced action, if any.
    pub action: Option<ForcedAction>,
    /// One line saying what the symbol means.
    pub description: String,
    /// Advice for the sender.
    pub fix: String,
    /// Group name (for caps and reports).
    pub group: String,
    /// A shadow rule: found and recorded (history, logs, metrics, `check`)
    /// but adding nothing to the total and forcing no action.
    pub shadow: bool,
}

/// Why `name` may not be a shadow rule, if it may not: the relay controls
/// (shadowed, the gateway would relay for anyone while it is watched).
pub fn shadow_refused(name: &str) -> Option<String> {
    matches!(name, "reject_unauth_destination" | "reject_routing_trick").then(|| {
        format!("symbol {name} cannot be a shadow rule: it guards the relay, and shadowed it would relay mail for anyone")
    })
}

/// Every known symbol by name.
#[derive(Debug, Clone, Default)]
pub struct SymbolTable {
    defs: HashMap<String, SymbolDef>,
}

impl SymbolTable {
    /// Adds or replaces a definition.
    pub fn insert(&mut self, name: String, def: SymbolDef) {
        self.defs.insert(name, def);
    }

    /// A definition by name.
    pub fn get(&self, name: &str) -> Option<&SymbolDef> {
        self.defs.get(name)
    }

    /// A mutable definition by name (for `[scores]` overrides).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut SymbolDef> {
        self.defs.get_mut(name)
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    /// True when no symbol is defined.
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// All symbol names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.defs.keys().map(String::as_str)
    }
}

/// A symbol a check found, before weighing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The symbol name.
    pub name: String,
    /// Details: the first one is what the symbol is about (HELO name, address).
    pub options: Vec<String>,
    /// Why, where one symbol has several causes that reply differently.
    pub why: Why,
}

/// The cause of a hit where the reply depends on it (a typed field, so the
/// reply never parses a detail string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Why {
    /// The symbol's usual meaning.
    #[default]
    Plain,
    /// The domain publishes a null MX (RFC 7505): it sends no mail.
    NullMx,
    /// The evidence is temporary (a callout got no answer): retry later.
    Temporary,
}

impl Hit {
    /// A hit about `subject`.
    pub fn new(name: &str, subject: impl Into<String>) -> Hit {
        Hit {
            name: name.to_string(),
            options: vec![subject.into()],
            why: Why::Plain,
        }
    }

    /// The same hit with a cause; the cause is also shown as a detail.
    pub fn because(mut self, why: Why) -> Hit {
        match why {
            Why::Plain => {}
            Why::NullMx => self.options.push("null MX".into()),
            Why::Temporary => self.options.push("no answer yet".into()),
        }
        self.why = why;
        self
    }

    /// What the hit is about (its first option), or "".
    pub fn subject(&self) -> &str {
        self.options.first().map_or("", String::as_str)
    }
}

/// A weighed hit.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredSymbol {
    /// The hit.
    pub hit: Hit,
    /// Its weight.
    pub score: Score,
    /// Its forced action.
    pub action: Option<ForcedAction>,
    /// Its group (for caps).
    pub group: String,
    /// A shadow rule's hit: its score is what it would add; it adds nothing
    /// and forces nothing.
    pub shadow: bool,
}

impl ScoredSymbol {
    /// Weighs `hit` with `table`. A symbol unknown to the table (a bug the
    /// rules test catches) weighs 0 and forces nothing.
    pub fn weigh(table: &SymbolTable, hit: Hit) -> ScoredSymbol {
        let (score, action, group, shadow) =
            table
                .get(&hit.name)
                .map_or((Score(0), None, String::new(), false), |d| {
                    (
                        d.score,
                        d.action.filter(|_| !d.shadow),
                        d.group.clone(),
                        d.shadow,
                    )
                });
        ScoredSymbol {
            hit,
            score,
            action,
            group,
            shadow,
        }
    }

    /// True for a symbol that stops the message on its own.
    pub fn blocks(&self) -> bool {
        self.action.is_some()
    }
}

fn sort(v: &mut [&ScoredSymbol]) {
    v.sort_by(|a, b| {
        b.blocks()
            .cmp(&a.blocks())
            .then(b.score.cmp(&a.score))
            .then(a.hit.name.cmp(&b.hit.name))
    });
}

/// The symbols of one transaction, weighed: what the SPAM alert lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Breakdown {
    symbols: Vec<ScoredSymbol>,
    caps: Arc<BTreeMap<String, Score>>,
}

impl Breakdown {
    /// An empty breakdown whose total honours per-group caps.
    pub fn with_caps(caps: Arc<BTreeMap<String, Score>>) -> Breakdown {
        Breakdown {
            symbols: Vec::new(),
            caps,
        }
    }

    /// Keeps only the symbols for which `keep` is true.
    pub fn retain(&mut self, keep: impl FnMut(&ScoredSymbol) -> bool) {
        self.symbols.retain(keep);
    }

    /// Weighs `hit` with `table` and records it.
    pub fn add(&mut self, table: &SymbolTable, hit: Hit) {
        self.push(ScoredSymbol::weigh(table, hit));
    }

    /// Records a weighed symbol.
    pub fn push(&mut self, symbol: ScoredSymbol) {
        self.symbols.push(symbol);
    }

    /// The sum of all scores (shadow rules aside); a capped group adds at
    /// most its cap.
    pub fn total(&self) -> Score {
        let counted = self.symbols.iter().filter(|s| !s.shadow);
        if self.caps.is_empty() {
            return counted.map(|s| s.score).sum();
        }
        let mut by_group: BTreeMap<&str, Score> = BTreeMap::new();
        let mut total = Score(0);
        for s in counted {
            if self.caps.contains_key(&s.group) {
                by_group.entry(&s.group).or_default().0 += s.score.0;
            } else {
                total.0 += s.score.0;
            }
        }
        for (group, sum) in by_group {
            let cap = self.caps[group];
            total.0 += if sum > cap { cap.0 } else { sum.0 };
        }
        total
    }

    /// The symbols that count, in report order: blocking first, then
    /// highest score first, then by name (what the sender and the recipient
    /// see: shadow rules left out).
    pub fn sorted(&self) -> Vec<&ScoredSymbol> {
        let mut v: Vec<&ScoredSymbol> = self.symbols.iter().filter(|s| !s.shadow).collect();
        sort(&mut v);
        v
    }

    /// Every symbol, shadow rules included (after the others), for the
    /// operator's views: logs, history, `check`, `why`.
    pub fn sorted_all(&self) -> Vec<&ScoredSymbol> {
        let mut v = self.sorted();
        let mut shadow: Vec<&ScoredSymbol> = self.symbols.iter().filter(|s| s.shadow).collect();
        sort(&mut shadow);
        v.extend(shadow);
        v
    }

    /// The same breakdown without the shadow rules' hits (what a sender is
    /// shown).
    pub fn counted_only(&self) -> Breakdown {
        Breakdown {
            symbols: self.symbols.iter().filter(|s| !s.shadow).cloned().collect(),
            caps: Arc::clone(&self.caps),
        }
    }

    /// The shadow rules' hits.
    pub fn shadows(&self) -> impl Iterator<Item = &ScoredSymbol> {
        self.symbols.iter().filter(|s| s.shadow)
    }

    /// The symbols in the order they were found.
    pub fn symbols(&self) -> &[ScoredSymbol] {
        &self.symbols
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shadow_hit_adds_nothing_forces_nothing_and_is_listed_apart() {
        let mut table = SymbolTable::default();
        let def = |score: f64, action, shadow| SymbolDef {
            score: Score::from_f64(score),
            action,
            description: String::new(),
            fix: String::new(),
            group: String::new(),
            shadow,
        };
        table.insert("COUNTED".into(), def(1.5, None, false));
        table.insert("WATCHED".into(), def(9.0, Some(ForcedAction::Reject), true));
        let mut b = Breakdown::default();
        b.add(&table, Hit::new("WATCHED", "x"));
        b.add(&table, Hit::new("COUNTED", "y"));
        assert_eq!(b.total(), Score(150));
        assert!(
            b.symbols().iter().all(|s| !s.blocks()),
            "a shadow forces nothing"
        );
        let names =
            |v: Vec<&ScoredSymbol>| v.iter().map(|s| s.hit.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(b.sorted()), ["COUNTED"]);
        assert_eq!(names(b.sorted_all()), ["COUNTED", "WATCHED"]);
        assert_eq!(b.counted_only().symbols().len(), 1);
        assert_eq!(
            b.sorted_all()[1].score,
            Score(900),
            "its would-be score is kept"
        );
    }

    fn table() -> SymbolTable {
        let mut t = SymbolTable::default();
        for (name, score, action) in [
            ("A", 5.0, None),
            ("B", 2.0, None),
            ("C", 0.3, None),
            ("BAD", 0.0, Some(ForcedAction::Block)),
        ] {
            let def = SymbolDef {
                score: Score::from_f64(score),
                action,
                description: String::new(),
                fix: String::new(),
                group: String::new(),
                shadow: false,
            };
            t.insert(name.into(), def);
        }
        t
    }

    #[test]
    fn scores_print_with_two_decimals() {
        assert_eq!(Score::from_f64(7.3).to_string(), "7.30");
        assert_eq!(Score::from_f64(-0.2).to_string(), "-0.20");
        assert_eq!(Score::from_f64(0.0).to_string(), "0.00");
    }

    #[test]
    fn total_is_exact_in_hundredths() {
        let mut b = Breakdown::default();
        let t = table();
        for name in ["C", "C", "C", "A", "B"] {
            b.add(&t, Hit::new(name, ""));
        }
        assert_eq!(b.total(), Score(790));
    }

    #[test]
    fn group_caps_limit_the_total() {
        let mut t = table();
        t.get_mut("A").unwrap().group = "g".into();
        t.get_mut("B").unwrap().group = "g".into();
        let caps = Arc::new(BTreeMap::from([("g".to_string(), Score(300))]));
        let mut b = Breakdown::with_caps(caps);
        for name in ["A", "B", "C"] {
            b.add(&t, Hit::new(name, ""));
        }
        assert_eq!(
            b.total(),
            Score(330),
            "A+B=7.00 capped at 3.00, plus C 0.30"
        );
    }

    #[test]
    fn report_order_is_blocking_then_highest() {
        let t = table();
        let mut b = Breakdown::default();
        for name in ["C", "A", "BAD", "B"] {
            b.add(&t, Hit::new(name, ""));
        }
        let names: Vec<&str> = b.sorted().iter().map(|s| s.hit.name.as_str()).collect();
        assert_eq!(names, ["BAD", "A", "B", "C"]);
    }
}
