//! The bodies of the command-line tools (`main.rs` holds the argument
//! parsing and one dispatch line each); `check` also builds what the HTTP
//! API answers for `POST /api/check`, so both print the same JSON.

pub mod check;
pub mod history;
pub mod replay;

use crate::app::App;
use std::path::Path;
use std::process::ExitCode;

/// A one-thread runtime for a command-line tool.
pub fn small_runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("cannot start the runtime: {e}"))
        .ok()
}

/// The App of `path` with its runtime, for a tool that reads the shared
/// store; with the memory store the state lives inside the running gateway
/// only, which is said (exit status 2).
pub fn shared_store_app(path: &Path, what: &str) -> Result<(App, tokio::runtime::Runtime), ExitCode> {
    let app = App::load(path, None).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })?;
    if app.store.backend() == "memory" {
        eprintln!(
            "{}: store.backend is \"memory\": {what} inside the running gateway only; \
             use store.backend = \"redis\" to reach it from the command line",
            path.display()
        );
        return Err(ExitCode::from(2));
    }
    let runtime = small_runtime().ok_or(ExitCode::FAILURE)?;
    Ok((app, runtime))
}
