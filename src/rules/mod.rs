//! Loads rules/*.toml: every symbol's score, forced action, description,
//! fix and group, the content rules that detect some of them, composites,
//! and per-group score caps. Files are read in name order; a symbol may be
//! defined once. Errors name `file:line:col`.

pub mod composite;
pub mod content;

use crate::config::{locate_key, parse_toml, ConfigError};
use crate::score::{ForcedAction, Score, SymbolDef, SymbolTable};
use content::{Brand, Composites, ContentRules, Expr, RuleKind, RuleSpec};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One rules file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    symbol: BTreeMap<String, SymbolEntry>,
    #[serde(default)]
    group: BTreeMap<String, GroupEntry>,
    #[serde(default)]
    brand: BTreeMap<String, BrandEntry>,
    freemail: Option<FreemailEntry>,
}

/// One `[brand.NAME]` table: names a display name or a link host may show,
/// and the domains that really belong to the brand.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BrandEntry {
    names: Vec<String>,
    #[serde(default)]
    domains: Vec<String>,
}

/// The `[freemail]` table: mailbox providers anyone can sign up at.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FreemailEntry {
    domains: Vec<String>,
}

/// One `[group.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupEntry {
    /// The most this group's symbols add to a total together.
    max_score: f64,
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
    /// Recorded, not counted (watch a new rule before it counts).
    #[serde(default)]
    shadow: bool,
    #[serde(rename = "type")]
    kind: Option<RuleKind>,
    header: Option<String>,
    regex: Option<String>,
    #[serde(default)]
    words: Vec<String>,
    exists: Option<bool>,
    #[serde(default)]
    domains: Vec<String>,
    filename: Option<String>,
    min: Option<usize>,
    max: Option<usize>,
    expression: Option<String>,
}

/// Everything loaded from the rules directory.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Every symbol's definition.
    pub symbols: SymbolTable,
    /// The compiled content rules.
    pub content: Arc<ContentRules>,
    /// Composites, in file order.
    pub composites: Composites,
    /// Per-group caps on the total.
    pub caps: Arc<BTreeMap<String, Score>>,
}

/// Where a symbol was defined, for errors found after loading every file.
struct Origin {
    path: PathBuf,
    text: Arc<String>,
}

impl Origin {
    fn error(&self, symbol: &str, key: &str, message: String) -> ConfigError {
        let (line, col) = locate_key(&self.text, &format!("symbol.{symbol}"), key);
        ConfigError::Invalid {
            path: self.path.display().to_string(),
            line,
            col,
            message,
        }
    }
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

/// Loads every rules file of `dir`.
pub fn load_dir(dir: &Path) -> Result<Rules, ConfigError> {
    let mut table = SymbolTable::default();
    let mut defined_in: BTreeMap<String, Origin> = BTreeMap::new();
    let mut specs: Vec<RuleSpec> = Vec::new();
    let mut composites: Vec<(String, String)> = Vec::new();
    let mut caps = BTreeMap::new();
    let mut brands = Vec::new();
    let mut freemail = Vec::new();
    for path in rule_files(dir)? {
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let file: RulesFile = parse_toml(&path, &text)?;
        let text = Arc::new(text);
        for (_, b) in file.brand {
            brands.push(Brand::new(&b.names, &b.domains));
        }
        if let Some(f) = file.freemail {
            freemail.extend(f.domains);
        }
        for (name, group) in file.group {
            caps.insert(name, Score::from_f64(group.max_score));
        }
        for (name, entry) in file.symbol {
            let section = format!("symbol.{name}");
            if let Some(first) = defined_in.get(&name) {
                let (line, col) = locate_key(&text, &section, "score");
                return Err(ConfigError::Invalid {
                    path: path.display().to_string(),
                    line,
                    col,
                    message: format!(
                        "symbol {name} is already defined in {}",
                        first.path.display()
                    ),
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
            defined_in.insert(
                name.clone(),
                Origin {
                    path: path.clone(),
                    text: Arc::clone(&text),
                },
            );
            if let Some(why) = crate::score::shadow_refused(&name).filter(|_| entry.shadow) {
                return Err(defined_in[&name].error(&name, "shadow", why));
            }
            if entry.kind == Some(RuleKind::Composite) {
                let expr = entry.expression.clone().ok_or_else(|| {
                    defined_in[&name].error(
                        &name,
                        "type",
                        format!("symbol {name}: a composite needs `expression`"),
                    )
                })?;
                composites.push((name.clone(), expr));
            } else if entry.kind.is_some() {
                specs.push(RuleSpec {
                    symbol: name.clone(),
                    kind: entry.kind,
                    header: entry.header.clone(),
                    regex: entry.regex.clone(),
                    words: entry.words.clone(),
                    exists: entry.exists,
                    domains: entry.domains.clone(),
                    filename: entry.filename.clone(),
                    min: entry.min,
                    max: entry.max,
                    expression: None,
                });
            }
            table.insert(
                name,
                SymbolDef {
                    score: Score::from_f64(entry.score),
                    action: entry.action,
                    description: entry.description,
                    fix: entry.fix,
                    group: entry.group,
                    shadow: entry.shadow,
                },
            );
        }
    }
    let mut content =
        ContentRules::compile(&specs).map_err(|e| match defined_in.get(&e.symbol) {
            Some(origin) => origin.error(
                &e.symbol,
                e.key,
                format!("symbol {}: {}", e.symbol, e.message),
            ),
            None => ConfigError::Invalid {
                path: dir.display().to_string(),
                line: 1,
                col: 1,
                message: e.message,
            },
        })?;
    content.set_identity(brands, freemail);
    let mut compiled = Composites::default();
    for (name, text) in composites {
        let origin = &defined_in[&name];
        let expr = Expr::parse(&text)
            .map_err(|m| origin.error(&name, "expression", format!("symbol {name}: {m}")))?;
        let mut atoms = Vec::new();
        expr.atoms(true, &mut atoms);
        if let Some((unknown, _)) = atoms.iter().find(|(a, _)| table.get(a).is_none()) {
            return Err(origin.error(
                &name,
                "expression",
                format!("symbol {name}: unknown symbol {unknown} in expression"),
            ));
        }
        compiled.push(name, expr);
    }
    for (group, _) in caps.iter() {
        if !table
            .names()
            .any(|n| table.get(n).is_some_and(|d| &d.group == group))
        {
            tracing::warn!(
                group,
                "rules: [group.{group}] caps a group no symbol belongs to"
            );
        }
    }
    Ok(Rules {
        symbols: table,
        content: Arc::new(content),
        composites: compiled,
        caps: Arc::new(caps),
    })
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
        let table = load_dir(&dir).unwrap().symbols;
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
    fn bad_regex_and_unknown_composite_atom_name_file_and_line() {
        let dir = dir_with(&[(
            "50-c.toml",
            "[symbol.X]\nscore = 1.0\ndescription = \"d\"\nfix = \"f\"\ntype = \"header\"\nheader = \"Subject\"\nregex = \"(unclosed\"\n",
        )]);
        let err = load_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("50-c.toml:7:1: symbol X: invalid regex"),
            "{err}"
        );
        let dir = dir_with(&[(
            "50-c.toml",
            "[symbol.A]\nscore = 1.0\ndescription = \"d\"\nfix = \"f\"\n\n[symbol.C]\nscore = 1.0\ndescription = \"d\"\nfix = \"f\"\ntype = \"composite\"\nexpression = \"A & !NOPE\"\n",
        )]);
        let err = load_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("50-c.toml:11:1: symbol C: unknown symbol NOPE"),
            "{err}"
        );
    }

    /// Issue 17: hostile composites are file:line errors, not a stack
    /// overflow.
    #[test]
    fn deep_or_long_composites_name_file_and_line() {
        let deep = format!("{}A{}", "(".repeat(20_000), ")".repeat(20_000));
        let nots = format!("{}A", "!".repeat(1_000_000));
        let deep_short = format!("{}A{}", "(".repeat(100), ")".repeat(100));
        for (expr, what) in [
            (deep, "too long"),
            (nots, "too long"),
            (deep_short, "nested too deeply"),
        ] {
            let text = format!("[symbol.A]\nscore = 1.0\ndescription = \"d\"\nfix = \"f\"\n\n[symbol.C]\nscore = 1.0\ndescription = \"d\"\nfix = \"f\"\ntype = \"composite\"\nexpression = \"{expr}\"\n");
            let dir = dir_with(&[("50-c.toml", &text)]);
            let err = load_dir(&dir).unwrap_err().to_string();
            assert!(
                err.contains("50-c.toml:11:1: symbol C: expression"),
                "{}",
                &err[..200.min(err.len())]
            );
            assert!(err.contains(what), "{}", &err[..200.min(err.len())]);
        }
        let nested = format!("{}A{}", "(".repeat(30), ")".repeat(30));
        assert!(Expr::parse(&nested).is_ok());
    }

    #[test]
    fn shadow_is_read_and_refused_for_the_relay_controls() {
        let dir = dir_with(&[(
            "00-a.toml",
            "[symbol.X]\nscore = 3.0\naction = \"reject\"\nshadow = true\ndescription = \"d\"\nfix = \"f\"\n",
        )]);
        let table = load_dir(&dir).unwrap().symbols;
        let x = table.get("X").unwrap();
        assert_eq!(
            (x.score, x.action, x.shadow),
            (Score(300), Some(ForcedAction::Reject), true)
        );
        let dir = dir_with(&[(
            "00-a.toml",
            "[symbol.reject_unauth_destination]\nscore = 0.0\naction = \"reject\"\nshadow = true\ndescription = \"d\"\nfix = \"f\"\n",
        )]);
        let err = load_dir(&dir).unwrap_err().to_string();
        assert!(
            err.ends_with("00-a.toml:4:1: symbol reject_unauth_destination cannot be a shadow rule: it guards the relay, and shadowed it would relay mail for anyone"),
            "{err}"
        );
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
