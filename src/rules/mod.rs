//! Loads rules/*.toml into the symbol table: every symbol's score, forced
//! action, description and fix. Files are read in name order; a symbol may be
//! defined once. Errors name `file:line:col`.

use crate::config::{locate_key, parse_toml, ConfigError};
use crate::score::{ForcedAction, Score, SymbolDef, SymbolTable};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One rules file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    symbol: BTreeMap<String, SymbolEntry>,
}

/// One `[symbol.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SymbolEntry {
    score: f64,
    action: Option<ForcedAction>,
    description: String,
    fix: String,
    #[serde(default)]
    group: String,
}

/// The rules files in `dir`, sorted by name.
fn rule_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads every rules file of `dir` into a symbol table.
pub fn load_dir(dir: &Path) -> Result<SymbolTable, ConfigError> {
    let mut table = SymbolTable::default();
    let mut defined_in: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in rule_files(dir)? {
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let file: RulesFile = parse_toml(&path, &text)?;
        for (name, entry) in file.symbol {
            let section = format!("symbol.{name}");
            if let Some(first) = defined_in.get(&name) {
                let (line, col) = locate_key(&text, &section, "score");
                return Err(ConfigError::Invalid {
                    path: path.display().to_string(),
                    line,
                    col,
                    message: format!("symbol {name} is already defined in {}", first.display()),
                });
            }
            if !entry.score.is_finite() {
                let (line, col) = locate_key(&text, &section, "score");
                return Err(ConfigError::Invalid {
                    path: path.display().to_string(),
                    line,
                    col,
                    message: format!("symbol {name}: score must be a finite number"),
                });
            }
            defined_in.insert(name.clone(), path.clone());
            table.insert(
                name,
                SymbolDef {
                    score: Score::from_f64(entry.score),
                    action: entry.action,
                    description: entry.description,
                    fix: entry.fix,
                    group: entry.group,
                },
            );
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("smtpgate-rules-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn loads_symbols_with_actions() {
        let dir = dir_with(&[(
            "00-a.toml",
            "[symbol.X]\nscore = 1.25\naction = \"block\"\ndescription = \"d\"\nfix = \"f\"\n",
        )]);
        let table = load_dir(&dir).unwrap();
        let x = table.get("X").unwrap();
        assert_eq!((x.score, x.action), (Score(125), Some(ForcedAction::Block)));
    }

    #[test]
    fn bad_action_names_file_and_line() {
        let dir = dir_with(&[(
            "00-a.toml",
            "[symbol.X]\nscore = 1.0\naction = \"drop\"\ndescription = \"d\"\nfix = \"f\"\n",
        )]);
        let err = load_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("00-a.toml:3:"), "{err}");
        assert!(err.contains("unknown variant `drop`"), "{err}");
    }

    #[test]
    fn duplicate_symbol_is_an_error() {
        let entry = "[symbol.X]\nscore = 1.0\ndescription = \"d\"\nfix = \"f\"\n";
        let dir = dir_with(&[("00-a.toml", entry), ("10-b.toml", entry)]);
        let err = load_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("10-b.toml:2:") && err.contains("already defined"),
            "{err}"
        );
    }
}
