//! `smtpgate replay`: the history's transactions re-decided under proposed
//! rules, scores or threshold.

use crate::config::{parse_toml, ConfigError, Span};
use crate::replay::{self, Judge};
use crate::score::{Score, SymbolTable};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The flags of `smtpgate replay`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ReplayArgs {
    /// Proposed rules directory (default: the running scoring.rules_dir).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Proposed scores: a TOML file of SYMBOL = score (or
    /// SYMBOL = { score = 3.0, shadow = true }) lines, or a [scores] table,
    /// applied over the running [scores].
    #[arg(long)]
    pub scores: Option<PathBuf>,
    /// Proposed threshold.
    #[arg(long)]
    pub threshold: Option<f64>,
    /// The period replayed (default 7d; at most [history] keep).
    #[arg(long, default_value = "7d")]
    pub since: String,
    /// The report as JSON (fields: docs/api.md).
    #[arg(long)]
    pub json: bool,
}

/// A scores file: `NAME = 3.0` lines, or the same under `[scores]`.
fn read_scores(
    path: &Path,
) -> Result<BTreeMap<String, toml::Spanned<crate::config::ScoreOverride>>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
        path: path.display().to_string(),
        line: 1,
        col: 1,
        message: format!("cannot read: {e}"),
    })?;
    #[derive(serde::Deserialize)]
    struct Wrapped {
        scores: BTreeMap<String, toml::Spanned<crate::config::ScoreOverride>>,
    }
    if let Ok(w) = toml::from_str::<Wrapped>(&text) {
        return Ok(w.scores);
    }
    parse_toml(path, &text)
}

/// Applies `scores` onto `table`; an unknown symbol is an error at its line.
fn apply_scores(
    table: &mut SymbolTable,
    scores: &BTreeMap<String, toml::Spanned<crate::config::ScoreOverride>>,
    path: &Path,
    text: &str,
) -> Result<(), ConfigError> {
    for (name, score) in scores {
        let Some(def) = table.get_mut(name) else {
            let (line, col) = crate::config::line_col(text, score.span().start);
            return Err(ConfigError::Invalid {
                path: path.display().to_string(),
                line,
                col,
                message: format!("unknown symbol {name} (expected a symbol of the rules)"),
            });
        };
        score.get_ref().apply(def);
    }
    Ok(())
}

/// `smtpgate replay`: 0 when nothing flips, 1 when something does, 2 on a
/// usage or configuration error, 75 when the store does not answer.
pub fn run(path: &Path, args: &ReplayArgs) -> ExitCode {
    let Some(since) = Span::parse(args.since.trim()) else {
        eprintln!(
            "--since: expected a duration like 2h or 7d, got {:?}",
            args.since
        );
        return ExitCode::from(2);
    };
    let (app, runtime) = match super::shared_store_app(path, "the history lives") {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let proposed = (|| -> Result<_, ConfigError> {
        let dir = args
            .rules
            .clone()
            .unwrap_or_else(|| app.config.scoring.rules_dir.clone());
        let mut rules = crate::rules::load_dir(&dir)?;
        apply_scores(
            &mut rules.symbols,
            &app.config.scores,
            &app.config.source.path,
            &app.config.source.text,
        )?;
        if let Some(file) = &args.scores {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            apply_scores(&mut rules.symbols, &read_scores(file)?, file, &text)?;
        }
        Ok(rules)
    })();
    let proposed = match proposed {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut policy = app.policy;
    if let Some(t) = args.threshold {
        policy.threshold = Score::from_f64(t);
    }
    let before = Judge {
        symbols: &app.symbols,
        caps: app.caps.clone(),
        policy: app.policy,
    };
    let after = Judge {
        symbols: &proposed.symbols,
        caps: proposed.caps.clone(),
        policy,
    };
    let report = match runtime.block_on(replay::run(&app.history, since.0, &before, &after)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(75);
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", replay::text(&report));
    }
    if report.now_stopped + report.now_passed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
