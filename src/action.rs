//! The one place where symbols become an action (DESIGN §1, §5).

use crate::config::SpamAction;
use crate::score::{Breakdown, ForcedAction, Score, ScoredSymbol};

/// What the operator configured for verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A total at or above this is spam.
    pub threshold: Score,
    /// What to do with spam.
    pub spam_action: SpamAction,
}

/// The outcome for a message (or, before DATA, for a command).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Go on / deliver.
    Pass,
    /// Refuse now because of this symbol (its rule says `reject`, or
    /// `tempfail` when `temporary`); the flow layer turns it into a reply.
    Refuse {
        /// The symbol that refused.
        symbol: crate::score::Hit,
        /// The rule says `tempfail`.
        temporary: bool,
    },
    /// A `block` symbol stopped it, whatever the total.
    Block,
    /// The total reached the threshold: reject or bounce per policy.
    Spam(SpamAction),
}

/// The action forced by symbols found in one phase, if any: the first
/// `reject`/`tempfail` symbol refuses the command, a `block` symbol blocks.
/// Scores alone never act before the end of DATA.
pub fn decide_phase<'a>(found: impl IntoIterator<Item = &'a ScoredSymbol>) -> Action {
    let mut action = Action::Pass;
    for symbol in found {
        match symbol.action {
            Some(ForcedAction::Reject) => {
                return Action::Refuse {
                    symbol: symbol.hit.clone(),
                    temporary: false,
                }
            }
            Some(ForcedAction::Tempfail) => {
                return Action::Refuse {
                    symbol: symbol.hit.clone(),
                    temporary: true,
                }
            }
            Some(ForcedAction::Block) => action = Action::Block,
            None => {}
        }
    }
    action
}

/// The verdict on a whole message at the end of DATA: a blocking symbol
/// stops it; else a total lower than the threshold passes (exactly the
/// threshold is spam).
pub fn decide(breakdown: &Breakdown, policy: &Policy) -> Action {
    match decide_phase(breakdown.symbols()) {
        Action::Pass if breakdown.total() >= policy.threshold => Action::Spam(policy.spam_action),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::{Hit, SymbolDef, SymbolTable};

    fn breakdown(entries: &[(&str, f64, Option<ForcedAction>)]) -> Breakdown {
        let mut table = SymbolTable::default();
        let mut b = Breakdown::default();
        for (name, score, action) in entries {
            let def = SymbolDef {
                score: Score::from_f64(*score),
                action: *action,
                description: String::new(),
                fix: String::new(),
                group: String::new(),
                shadow: false,
            };
            table.insert(name.to_string(), def);
            b.add(&table, Hit::new(name, "x"));
        }
        b
    }

    const POLICY: Policy = Policy {
        threshold: Score(200),
        spam_action: SpamAction::Reject,
    };

    #[test]
    fn threshold_is_inclusive() {
        assert_eq!(
            decide(&breakdown(&[("A", 1.99, None)]), &POLICY),
            Action::Pass
        );
        assert_eq!(
            decide(&breakdown(&[("A", 2.0, None)]), &POLICY),
            Action::Spam(SpamAction::Reject)
        );
        assert_eq!(
            decide(&breakdown(&[("A", 1.0, None), ("B", 1.0, None)]), &POLICY),
            Action::Spam(SpamAction::Reject)
        );
    }

    #[test]
    fn block_wins_whatever_the_total() {
        let b = breakdown(&[
            ("BAD", 0.0, Some(ForcedAction::Block)),
            ("GOOD", -5.0, None),
        ]);
        assert_eq!(decide(&b, &POLICY), Action::Block);
    }

    #[test]
    fn reject_symbol_refuses_naming_the_symbol() {
        let b = breakdown(&[("reject_non_fqdn_sender", 0.0, Some(ForcedAction::Reject))]);
        match decide_phase(b.symbols()) {
            Action::Refuse { symbol, temporary } => {
                assert_eq!(
                    (symbol.name.as_str(), temporary),
                    ("reject_non_fqdn_sender", false)
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
