//! `smtpgate readiness DOMAIN`: the readiness report of a customer domain
//! (see [`crate::readiness`]) from the command line.

use crate::app::App;
use crate::readiness::{self, Status};
use std::path::Path;
use std::process::ExitCode;

/// What the report says when the history is the memory store of another
/// process: the counts live in the running gateway only.
pub const MEMORY_HISTORY: &str = "in the running gateway only (memory store); see the console/API";

/// `smtpgate readiness`: the report as text (or `--json`); exit status 0
/// when every line is ok or warn, 1 when one fails, 2 on a usage or
/// configuration error.
pub fn run(path: &Path, domain: &str, json: bool) -> ExitCode {
    let domain = match readiness::parse_domain(domain) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let app = match App::load(path, None) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = super::small_runtime() else {
        return ExitCode::from(2);
    };
    let mut report = runtime.block_on(readiness::report(&app, &domain));
    if app.store.backend() == "memory" {
        // This process's own history is empty: say where the counts are.
        report.stopped.clear();
        report.history = Some(MEMORY_HISTORY.to_string());
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", readiness::text(&report));
    }
    match report.worst() {
        Status::Fail => ExitCode::FAILURE,
        Status::Ok | Status::Warn => ExitCode::SUCCESS,
    }
}
