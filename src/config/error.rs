//! Configuration errors that name `file:line:col` and what was expected,
//! and the helpers that find those places.

use serde::de;
use std::path::Path;

/// A configuration or rules file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file says something wrong at a place we can point to.
    #[error("{path}:{line}:{col}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong and what was expected.
        message: String,
    },
    /// Loading hit a bug (a panic was caught); nothing was swapped in.
    #[error("{path}: loading failed on a bug: {message}")]
    Panicked {
        /// The file being loaded.
        path: String,
        /// The panic's message.
        message: String,
    },
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    // An offset inside a character counts as that character's start (a
    // caller's arithmetic must not turn a bad line into a panic).
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

/// Where `key` is set inside `[section]` (or at top level for ""), for
/// errors found after parsing; the section header, else line 1.
pub fn locate_key(text: &str, section: &str, key: &str) -> (usize, usize) {
    let mut current = String::new();
    let mut header_line = 1;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = name.trim_matches(['[', ' ']).to_string();
            if current == section {
                header_line = i + 1;
            }
            continue;
        }
        if current == section {
            if let Some(rest) = line.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return (i + 1, raw.len() - raw.trim_start().len() + 1);
                }
            }
        }
    }
    (header_line, 1)
}

/// Parses TOML text into `T`, turning serde errors into `file:line:col`.
pub fn parse_toml<T: de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        ConfigError::Invalid {
            path: path.display().to_string(),
            line,
            col,
            message: e.message().trim().to_string(),
        }
    })
}
