//! `[scoring]`: the threshold and what happens to spam.

use super::Span;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// What happens to a message scored as spam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpamAction {
    /// Refuse at end of DATA with a one-line 5xx breakdown.
    Reject,
    /// Accept, and send the SPAM alert to the originator instead of the message.
    Bounce,
}

/// `[scoring]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringConfig {
    /// A total at or above this is spam.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Reject or bounce spam.
    #[serde(default = "default_spam_action")]
    pub spam_action: SpamAction,
    /// Directory of rules/*.toml, relative to the working directory.
    #[serde(default = "default_rules_dir")]
    pub rules_dir: PathBuf,
    /// Time one message's content analysis may take; beyond it the message
    /// scores MIME_TOO_COMPLEX on what was found so far.
    #[serde(default = "default_analysis_timeout")]
    pub analysis_timeout: Span,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig {
            threshold: default_threshold(),
            spam_action: default_spam_action(),
            rules_dir: default_rules_dir(),
            analysis_timeout: default_analysis_timeout(),
        }
    }
}

fn default_threshold() -> f64 {
    2.0
}
fn default_spam_action() -> SpamAction {
    SpamAction::Bounce
}
fn default_analysis_timeout() -> Span {
    Span(Duration::from_secs(2))
}
fn default_rules_dir() -> PathBuf {
    PathBuf::from("rules")
}

/// One `[scores]` entry: `NAME = 3.0`, or `NAME = { score = 3.0, shadow = true }`
/// (either key may be left out: `{ shadow = true }` watches a rule at its
/// rules-file score).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ScoreOverride {
    /// A new score.
    Score(f64),
    /// A new score and/or shadow flag.
    Full {
        /// The score, if changed.
        score: Option<f64>,
        /// Recorded but not counted.
        shadow: Option<bool>,
    },
}

impl ScoreOverride {
    /// The score it sets, if any.
    pub fn score(&self) -> Option<f64> {
        match self {
            ScoreOverride::Score(s) => Some(*s),
            ScoreOverride::Full { score, .. } => *score,
        }
    }

    /// The shadow flag it sets, if any.
    pub fn shadow(&self) -> Option<bool> {
        match self {
            ScoreOverride::Score(_) => None,
            ScoreOverride::Full { shadow, .. } => *shadow,
        }
    }

    /// Applies it to a symbol's definition.
    pub fn apply(&self, def: &mut crate::score::SymbolDef) {
        if let Some(s) = self.score() {
            def.score = crate::score::Score::from_f64(s);
        }
        if let Some(shadow) = self.shadow() {
            def.shadow = shadow;
        }
    }
}
