//! `smtpgate hold`: the anomaly holds from the command line — list them,
//! hold an identity by hand, release one.

use crate::anomaly::{Anomaly, Hold};
use crate::app::App;
use crate::store::StoreError;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `smtpgate hold list | hold IDENTITY [--for 2h] | hold release IDENTITY`.
#[derive(Debug, Clone, clap::Args)]
#[command(subcommand_precedence_over_arg = true)]
pub struct HoldArgs {
    /// Configuration file (default: $SMTPGATE_CONFIG, else config/gateway.toml).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub action: Option<HoldAction>,
    /// Hold IDENTITY now (an AUTH login or a client IP).
    pub identity: Option<String>,
    /// How long (default: [anomaly] hold_for), e.g. 2h, 30m, 3d.
    #[arg(long = "for", value_name = "SPAN")]
    pub span: Option<String>,
    /// Why, as the 451 will say it (default: "by the abuse desk").
    #[arg(long)]
    pub reason: Option<String>,
}

/// What `smtpgate hold` does besides holding.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum HoldAction {
    /// Lists the identities held now, soonest to end first.
    List {
        /// One JSON array of holds.
        #[arg(long)]
        json: bool,
    },
    /// Releases IDENTITY: its next message goes through.
    Release {
        /// The AUTH login or client IP.
        identity: String,
    },
}

/// One line per hold: identity, until, by, reference, reason.
pub fn line(h: &Hold) -> String {
    let until = crate::smtp::received::rfc5322_date(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(h.until),
    );
    format!(
        "{}  until {until}  by {}  ref={}  {}",
        h.identity, h.by, h.reference, h.reason
    )
}

/// `smtpgate hold …`: 0 done, 1 release of an identity not held, 2 usage
/// or configuration error, 75 the store failed. With the memory store the
/// holds live inside the running gateway: the tool asks its API
/// (`/api/holds`, `[http] listen`).
pub fn run(path: &Path, args: &HoldArgs) -> ExitCode {
    let (app, runtime) = match super::app_and_runtime(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let holds = if app.store.backend() == "memory" {
        Holds::Remote(&app)
    } else {
        Holds::Local(app.anomaly.anomaly(), &runtime)
    };
    let done = match (&args.action, &args.identity) {
        (Some(HoldAction::List { json }), _) => holds.list().map(|holds| {
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&holds).unwrap_or_default()
                );
            } else if holds.is_empty() {
                println!("no identity is held");
            } else {
                for h in &holds {
                    println!("{}", line(h));
                }
            }
            ExitCode::SUCCESS
        }),
        (Some(HoldAction::Release { identity }), _) => holds.release(identity).map(|released| {
            let identity = crate::anomaly::identity(identity);
            if released {
                println!("released {identity}");
                ExitCode::SUCCESS
            } else {
                eprintln!("{identity} is not held");
                ExitCode::FAILURE
            }
        }),
        (None, Some(identity)) => {
            if !app.config.anomaly.enabled {
                eprintln!(
                    "{}: anomaly.enabled is false: a hold would not be enforced",
                    path.display()
                );
                return ExitCode::from(2);
            }
            let span = match crate::anomaly::hold_span(
                args.span.as_deref(),
                app.config.anomaly.hold_for,
            ) {
                Ok(span) => span,
                Err(e) => {
                    eprintln!("--for: {e}");
                    return ExitCode::from(2);
                }
            };
            let reason = args
                .reason
                .as_deref()
                .unwrap_or(crate::anomaly::OPERATOR_REASON);
            holds.hold(identity, span, reason).map(|h| {
                println!("{}", line(&h));
                ExitCode::SUCCESS
            })
        }
        (None, None) => {
            eprintln!(
                "usage: smtpgate hold list | hold IDENTITY [--for 2h] | hold release IDENTITY"
            );
            Ok(ExitCode::from(2))
        }
    };
    done.unwrap_or_else(|code| code)
}

/// Where the holds are: the shared store, or the running gateway's API.
enum Holds<'a> {
    Local(&'a Arc<Anomaly>, &'a tokio::runtime::Runtime),
    Remote(&'a App),
}

fn store_failed(e: StoreError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(75)
}

impl Holds<'_> {
    fn list(&self) -> Result<Vec<Hold>, ExitCode> {
        match self {
            Holds::Local(a, rt) => rt.block_on(a.holds()).map_err(store_failed),
            Holds::Remote(app) => {
                super::remote_json(app, "GET", "/api/holds").map(Option::unwrap_or_default)
            }
        }
    }

    fn hold(&self, identity: &str, span: Duration, reason: &str) -> Result<Hold, ExitCode> {
        match self {
            Holds::Local(a, rt) => rt
                .block_on(a.hold(identity, span, reason))
                .map_err(store_failed),
            Holds::Remote(app) => {
                let path = format!(
                    "/api/holds/{}?for={}s&reason={}",
                    super::encode(identity),
                    span.as_secs(),
                    super::encode(reason)
                );
                super::remote_json(app, "POST", &path)?.ok_or(ExitCode::from(75))
            }
        }
    }

    fn release(&self, identity: &str) -> Result<bool, ExitCode> {
        match self {
            Holds::Local(a, rt) => rt.block_on(a.release(identity)).map_err(store_failed),
            Holds::Remote(app) => {
                let path = format!("/api/holds/{}", super::encode(identity));
                let released: Option<serde_json::Value> = super::remote_json(app, "DELETE", &path)?;
                Ok(released.is_some())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        hold: HoldArgs,
    }

    fn parse(args: &[&str]) -> HoldArgs {
        Cli::try_parse_from(std::iter::once("hold").chain(args.iter().copied()))
            .map(|c| c.hold)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn list_and_release_are_actions_wherever_the_config_is() {
        for args in [
            &["list"][..],
            &["--config", "g.toml", "list"],
            &["list", "--config", "g.toml"],
        ] {
            let h = parse(args);
            assert!(
                matches!(h.action, Some(HoldAction::List { json: false })),
                "{args:?}"
            );
            assert_eq!(h.identity, None, "{args:?}");
        }
        let h = parse(&["--config", "g.toml", "release", "shop@example.test"]);
        assert!(
            matches!(&h.action, Some(HoldAction::Release { identity }) if identity == "shop@example.test")
        );
        let h = parse(&["--config", "g.toml", "shop@example.test", "--for", "2h"]);
        assert!(h.action.is_none());
        assert_eq!(h.identity.as_deref(), Some("shop@example.test"));
        assert_eq!(h.span.as_deref(), Some("2h"));
        assert_eq!(h.config.as_deref(), Some(Path::new("g.toml")));
    }
}
