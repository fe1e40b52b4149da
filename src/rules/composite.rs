//! Composites: boolean expressions over symbol names (`A & !(B | C)`),
//! parsed with bounded nesting and length, applied after every check ran.

use crate::score::{Breakdown, Hit, ScoredSymbol, SymbolTable};
use std::collections::HashSet;

/// A boolean expression over symbol names.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// The symbol is present.
    Symbol(String),
    /// Negation.
    Not(Box<Expr>),
    /// Both.
    And(Box<Expr>, Box<Expr>),
    /// Either.
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    /// Parses `A & !(B | C)`.
    pub fn parse(text: &str) -> Result<Expr, String> {
        let tokens = tokenize(text)?;
        if tokens.len() > MAX_TOKENS {
            return Err(format!(
                "expression too long ({} tokens, at most {MAX_TOKENS})",
                tokens.len()
            ));
        }
        let mut pos = 0;
        let expr = parse_or(&tokens, &mut pos, 0)?;
        if pos != tokens.len() {
            return Err(format!("unexpected `{}` in expression", tokens[pos]));
        }
        Ok(expr)
    }

    /// True when the expression holds for `present`.
    pub fn eval(&self, present: &HashSet<&str>) -> bool {
        match self {
            Expr::Symbol(s) => present.contains(s.as_str()),
            Expr::Not(e) => !e.eval(present),
            Expr::And(a, b) => a.eval(present) && b.eval(present),
            Expr::Or(a, b) => a.eval(present) || b.eval(present),
        }
    }

    /// Every symbol named, and whether it appears un-negated.
    pub fn atoms(&self, positive: bool, out: &mut Vec<(String, bool)>) {
        match self {
            Expr::Symbol(s) => out.push((s.clone(), positive)),
            Expr::Not(e) => e.atoms(!positive, out),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.atoms(positive, out);
                b.atoms(positive, out);
            }
        }
    }
}

/// Tokens of one expression at most (evaluation recurses over the tree).
const MAX_TOKENS: usize = 1_000;
/// Nesting of `(` and `!` at most.
const MAX_NESTING: usize = 32;

fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if "&|!()".contains(c) {
            tokens.push(c.to_string());
            chars.next();
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let mut ident = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    ident.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(ident);
        } else {
            return Err(format!("unexpected character `{c}` in expression (expected symbol names, &, |, !, parentheses)"));
        }
    }
    Ok(tokens)
}

fn parse_or(t: &[String], pos: &mut usize, depth: usize) -> Result<Expr, String> {
    let mut left = parse_and(t, pos, depth)?;
    while t.get(*pos).is_some_and(|s| s == "|") {
        *pos += 1;
        left = Expr::Or(Box::new(left), Box::new(parse_and(t, pos, depth)?));
    }
    Ok(left)
}

fn parse_and(t: &[String], pos: &mut usize, depth: usize) -> Result<Expr, String> {
    let mut left = parse_unary(t, pos, depth)?;
    while t.get(*pos).is_some_and(|s| s == "&") {
        *pos += 1;
        left = Expr::And(Box::new(left), Box::new(parse_unary(t, pos, depth)?));
    }
    Ok(left)
}

fn parse_unary(t: &[String], pos: &mut usize, depth: usize) -> Result<Expr, String> {
    if depth > MAX_NESTING {
        return Err(format!(
            "expression nested too deeply (at most {MAX_NESTING} levels of `(` and `!`)"
        ));
    }
    let tok = t.get(*pos).ok_or("expression ends too early")?;
    *pos += 1;
    match tok.as_str() {
        "!" => Ok(Expr::Not(Box::new(parse_unary(t, pos, depth + 1)?))),
        "(" => {
            let e = parse_or(t, pos, depth + 1)?;
            if t.get(*pos).is_none_or(|s| s != ")") {
                return Err("missing `)` in expression".into());
            }
            *pos += 1;
            Ok(e)
        }
        "&" | "|" | ")" => Err(format!("unexpected `{tok}` in expression")),
        name => Ok(Expr::Symbol(name.to_string())),
    }
}

/// The composites, applied in file order after all checks ran.
#[derive(Debug, Clone, Default)]
pub struct Composites {
    rules: Vec<(String, Expr)>,
}

impl Composites {
    /// Adds a composite.
    pub fn push(&mut self, symbol: String, expr: Expr) {
        self.rules.push((symbol, expr));
    }

    /// Every composite's symbol and expression.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Expr)> {
        self.rules.iter().map(|(s, e)| (s.as_str(), e))
    }

    /// Number of composites.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Evaluates every composite over the symbols in `breakdown`; a composite
    /// that holds is added, and the symbols it names positively are removed
    /// (rspamd's default), except ones that force an action.
    ///
    /// Shadow rules change no verdict: a shadow symbol's hit counts as absent
    /// (it satisfies no `A`, and `!A` holds), and a shadow composite that
    /// holds is recorded (its options: the symbols it matched) but removes
    /// nothing, so the symbols it names keep counting.
    pub fn apply(&self, breakdown: &mut Breakdown, table: &SymbolTable) {
        // The symbols present are collected once, and again only after a
        // composite changed the breakdown (rules apply in order, each to
        // the breakdown the ones before it left).
        let mut next = 0;
        while let Some((i, consumed)) = self.first_firing(next, breakdown) {
            let composite = ScoredSymbol::weigh(
                table,
                Hit {
                    why: Default::default(),
                    name: self.rules[i].0.clone(),
                    options: consumed,
                },
            );
            if !composite.shadow {
                let consumed = &composite.hit.options;
                breakdown.retain(|s| s.action.is_some() || !consumed.contains(&s.hit.name));
            }
            breakdown.push(composite);
            next = i + 1;
        }
    }

    /// The first rule from `from` on that fires on `breakdown`, with the
    /// present symbols it consumes.
    fn first_firing(&self, from: usize, breakdown: &Breakdown) -> Option<(usize, Vec<String>)> {
        let present: HashSet<&str> = breakdown
            .symbols()
            .iter()
            .filter(|s| !s.shadow)
            .map(|s| s.hit.name.as_str())
            .collect();
        let (i, (_, expr)) =
            self.rules
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, (symbol, expr))| {
                    !present.contains(symbol.as_str()) && expr.eval(&present)
                })?;
        let mut atoms = Vec::new();
        expr.atoms(true, &mut atoms);
        let consumed = atoms
            .into_iter()
            .filter(|(name, positive)| *positive && present.contains(name.as_str()))
            .map(|(name, _)| name)
            .collect();
        Some((i, consumed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::{Score, SymbolDef};

    fn table(shadow: &[&str]) -> SymbolTable {
        let mut t = SymbolTable::default();
        for (name, score) in [("A", 1.0), ("B", 0.5), ("C", 3.0)] {
            let def = SymbolDef {
                score: Score::from_f64(score),
                action: None,
                description: String::new(),
                fix: String::new(),
                group: String::new(),
                shadow: shadow.contains(&name),
            };
            t.insert(name.into(), def);
        }
        t
    }

    fn run(shadow: &[&str], expr: &str, found: &[&str]) -> (Vec<(String, Score, bool)>, Score) {
        let table = table(shadow);
        let mut composites = Composites::default();
        composites.push("C".into(), Expr::parse(expr).unwrap());
        let mut b = Breakdown::default();
        for name in found {
            b.add(&table, Hit::new(name, "x"));
        }
        composites.apply(&mut b, &table);
        let names = b
            .sorted_all()
            .iter()
            .map(|s| (s.hit.name.clone(), s.score, s.shadow))
            .collect();
        (names, b.total())
    }

    #[test]
    fn a_counted_composite_replaces_what_it_names() {
        let (names, total) = run(&[], "A & B", &["A", "B"]);
        assert_eq!(names, [("C".to_string(), Score(300), false)]);
        assert_eq!(total, Score(300));
    }

    #[test]
    fn a_shadow_symbol_satisfies_no_composite_and_negates_as_absent() {
        // Shadowed B: "A & B" does not hold, A keeps its 1.00.
        let (names, total) = run(&["B"], "A & B", &["A", "B"]);
        assert_eq!(
            names,
            [
                ("A".to_string(), Score(100), false),
                ("B".to_string(), Score(50), true)
            ]
        );
        assert_eq!(total, Score(100));
        // "A & !B" holds as it would without the rule B.
        let (names, total) = run(&["B"], "A & !B", &["A", "B"]);
        assert_eq!(
            names,
            [
                ("C".to_string(), Score(300), false),
                ("B".to_string(), Score(50), true)
            ]
        );
        assert_eq!(total, run(&[], "A & !B", &["A"]).1);
    }

    #[test]
    fn a_shadow_composite_is_recorded_but_removes_nothing() {
        let (names, total) = run(&["C"], "A & B", &["A", "B"]);
        assert_eq!(
            names,
            [
                ("A".to_string(), Score(100), false),
                ("B".to_string(), Score(50), false),
                ("C".to_string(), Score(300), true),
            ]
        );
        assert_eq!(total, Score(150), "the total without the composite");
    }
}
