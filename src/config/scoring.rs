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
/// Anything else (an unknown key, an empty table, a string) is an error at
/// its line.
#[derive(Debug, Clone, Copy, PartialEq)]
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

impl<'de> Deserialize<'de> for ScoreOverride {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OverrideVisitor)
    }
}

struct OverrideVisitor;

fn finite<E: serde::de::Error>(v: f64) -> Result<f64, E> {
    match v.is_finite() {
        true => Ok(v),
        false => Err(E::custom("a score must be a finite number")),
    }
}

impl<'de> serde::de::Visitor<'de> for OverrideVisitor {
    type Value = ScoreOverride;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a score (NAME = 3.0) or { score = 3.0, shadow = true }")
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ScoreOverride, E> {
        finite(v).map(ScoreOverride::Score)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ScoreOverride, E> {
        Ok(ScoreOverride::Score(v as f64))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ScoreOverride, E> {
        Ok(ScoreOverride::Score(v as f64))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<ScoreOverride, A::Error> {
        use serde::de::Error;
        let (mut score, mut shadow) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "score" if score.is_none() => score = Some(finite::<A::Error>(map.next_value()?)?),
                "shadow" if shadow.is_none() => shadow = Some(map.next_value::<bool>()?),
                "score" | "shadow" => return Err(A::Error::duplicate_field("score or shadow")),
                other => return Err(A::Error::unknown_field(other, &["score", "shadow"])),
            }
        }
        if score.is_none() && shadow.is_none() {
            return Err(A::Error::custom(
                "an empty override: give score = 3.0 and/or shadow = true",
            ));
        }
        Ok(ScoreOverride::Full { score, shadow })
    }
}

#[cfg(test)]
mod tests {
    use super::ScoreOverride;
    use std::collections::BTreeMap;

    fn parse(text: &str) -> Result<BTreeMap<String, ScoreOverride>, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_score_or_a_table_with_score_and_shadow() {
        let v =
            parse("A = 3.0\nB = 2\nC = { score = 1.5, shadow = true }\nD = { shadow = true }\n")
                .unwrap();
        assert_eq!(v["A"], ScoreOverride::Score(3.0));
        assert_eq!(v["B"], ScoreOverride::Score(2.0));
        assert_eq!(
            v["C"],
            ScoreOverride::Full {
                score: Some(1.5),
                shadow: Some(true)
            }
        );
        assert_eq!((v["D"].score(), v["D"].shadow()), (None, Some(true)));
    }

    #[test]
    fn unknown_keys_empty_tables_and_strings_are_errors() {
        let e = parse("A = { scor = 3.0 }\n").unwrap_err();
        assert!(
            e.contains("line 1")
                && e.contains("unknown field `scor`, expected `score` or `shadow`"),
            "{e}"
        );
        let e = parse("A = {}\n").unwrap_err();
        assert!(
            e.contains("an empty override: give score = 3.0 and/or shadow = true"),
            "{e}"
        );
        let e = parse("A = \"high\"\n").unwrap_err();
        assert!(
            e.contains("expected a score (NAME = 3.0) or { score = 3.0, shadow = true }"),
            "{e}"
        );
        let e = parse("A = nan\n").unwrap_err();
        assert!(e.contains("a score must be a finite number"), "{e}");
        let e = parse("A = { score = inf }\n").unwrap_err();
        assert!(e.contains("a score must be a finite number"), "{e}");
        let e = parse("A = { shadow = \"yes\" }\n").unwrap_err();
        assert!(e.contains("expected a boolean"), "{e}");
    }
}
