//! The bodies of the command-line commands, so that `main.rs` holds only
//! the argument parsing and one dispatch line per command, and so that the
//! HTTP API can answer with exactly what a command prints.

pub mod check;
