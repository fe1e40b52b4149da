//! The layering of `src/` (ARCHITECTURE.md), held against the code: every
//! `crate::…` path of every source file is collected, and each top-level
//! module may use only modules of its own layer or the layers above it,
//! with no import circle between two top-level modules. Also: policy never
//! imports the protocol, the session, the app, the upstream or the alert
//! path; adapters never import checks; the session names no store key and
//! writes no header text; every file holds at most 600 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top of the list first: a module may use its own layer and
/// those above it.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves",
        &[
            "config",
            "address",
            "score",
            "reference",
            "metrics",
            "message",
            "base64",
        ],
    ),
    ("protocol", &["smtp"]),
    (
        "adapters",
        &[
            "dns", "store", "mailauth", "passwd", "upstream", "proxy", "notify", "maps",
        ],
    ),
    (
        "policy",
        &[
            "rules",
            "checks",
            "action",
            "lockout",
            "admission",
            "anomaly",
        ],
    ),
    (
        "flow",
        &[
            "pipeline",
            "delivery",
            "bounce",
            "verdict",
            "history",
            "readiness",
            "replay",
            "app",
        ],
    ),
    ("top", &["session", "http", "server", "cli", "main"]),
];

/// What a layer must never use, whatever the list allows.
const NEVER: &[(&str, &[&str])] = &[
    (
        "policy",
        &["smtp", "session", "app", "upstream", "bounce", "pipeline"],
    ),
    ("adapters", &["checks", "rules"]),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/checks/relay.rs` →
/// `checks`, `src/main.rs` → `main`); `None` for lib.rs.
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root().join("src")).ok()?;
    let first = rel
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy()
        .to_string();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib").then_some(name)
}

/// The code of a file without comments and string literals, so that a
/// path in a doc comment or a message is not an import.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            // a char literal like '"'
            i += 3;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn ident_at(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The top-level modules a file's code names through `crate::` (or
/// `smtpgate::` in the binary), including `crate::{a, b::c}` groups.
fn used_modules(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name = ident_at(part.trim());
                if !name.is_empty() {
                    used.insert(name);
                }
            }
        } else {
            let name = ident_at(rest);
            if !name.is_empty() {
                used.insert(name);
            }
        }
    }
    used
}

fn layer_of(module: &str) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, (_, mods))| mods.contains(&module))
        .map(|(i, (name, _))| (i, *name))
}

/// Each file with its module and the modules it uses.
type FileUses = Vec<(PathBuf, String, BTreeSet<String>)>;

/// Every (module → modules it uses), and per file its uses.
fn graph() -> (BTreeMap<String, BTreeSet<String>>, FileUses) {
    let mut files = Vec::new();
    sources(&root().join("src"), &mut files);
    files.sort();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut per_file = Vec::new();
    for path in files {
        let Some(module) = module_of(&path) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("readable");
        let code = code_only(&text);
        let prefix = if module == "main" {
            "smtpgate::"
        } else {
            "crate::"
        };
        let used: BTreeSet<String> = used_modules(&code, prefix)
            .into_iter()
            .filter(|m| *m != module)
            .collect();
        graph
            .entry(module.clone())
            .or_default()
            .extend(used.iter().cloned());
        per_file.push((path, module, used));
    }
    (graph, per_file)
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_module_has_a_layer_and_uses_only_its_own_and_those_above() {
    let (_, per_file) = graph();
    let mut violations = Vec::new();
    for (path, module, used) in &per_file {
        let Some((mine, layer)) = layer_of(module) else {
            violations.push(format!("{}: module {module} is in no layer", rel(path)));
            continue;
        };
        for other in used {
            match layer_of(other) {
                None => {
                    violations.push(format!("{}: uses {other}, which is in no layer", rel(path)))
                }
                Some((theirs, their_layer)) if theirs > mine => violations.push(format!(
                    "{}: {module} ({layer}) uses {other} ({their_layer}), a layer below it",
                    rel(path)
                )),
                _ => {}
            }
            for (never_layer, forbidden) in NEVER {
                if *never_layer == layer && forbidden.contains(&other.as_str()) {
                    violations.push(format!(
                        "{}: {module} ({layer}) must never use {other}",
                        rel(path)
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn no_two_top_level_modules_import_each_other_even_through_others() {
    let (graph, _) = graph();
    let mut circles = Vec::new();
    for start in graph.keys() {
        // Depth-first from each module: reaching it again is a circle.
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, trail)) = stack.pop() {
            for next in graph.get(&at).into_iter().flatten() {
                if next == start {
                    let mut circle = trail.clone();
                    circle.push(start.clone());
                    circles.push(circle.join(" -> "));
                } else if graph.contains_key(next) && seen.insert(next.clone()) {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    stack.push((next.clone(), t));
                }
            }
        }
    }
    circles.sort();
    circles.dedup();
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_session_names_no_store_key_and_writes_no_header_text() {
    let mut files = Vec::new();
    sources(&root().join("src/session"), &mut files);
    let mut violations = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for needle in [
            ".store.",
            "store.get(",
            "store.set(",
            "store.incr(",
            "Authentication-Results:",
            "X-Spamd-Result",
            "DKIM-Signature",
        ] {
            if code.contains(needle) {
                violations.push(format!("{}: {needle}", rel(&path)));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn every_source_file_is_at_most_600_lines() {
    let mut files = Vec::new();
    sources(&root().join("src"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|p| {
            let n = std::fs::read_to_string(p).ok()?.lines().count();
            (n > 600).then(|| format!("{}: {n} lines", rel(p)))
        })
        .collect();
    assert!(long.is_empty(), "{}", long.join("\n"));
}

#[test]
fn lib_rs_lists_every_module_in_layer_order() {
    let text = std::fs::read_to_string(root().join("src/lib.rs")).expect("lib.rs");
    let listed: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.split(';').next().unwrap_or(m).trim().to_string())
        .collect();
    let mut last = 0;
    for m in &listed {
        let (layer, _) = layer_of(m).unwrap_or_else(|| panic!("lib.rs: {m} is in no layer"));
        assert!(
            layer >= last,
            "lib.rs: {m} is listed after a module of a lower layer"
        );
        last = layer;
    }
}
