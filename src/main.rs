//! The `smtpgate` command line: `serve` and `check-config` (DESIGN §3).

use anyhow::Context;
use clap::{Parser, Subcommand};
use smtpgate::app::App;
use smtpgate::server::{Handle, Server};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser)]
#[command(name = "smtpgate", version, about = "Outbound SMTP quality gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file (default: $SMTPGATE_CONFIG, else config/gateway.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate the configuration and rules, then exit (2 on error).
    CheckConfig {
        /// Configuration file (default: $SMTPGATE_CONFIG, else config/gateway.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn config_path(given: Option<PathBuf>) -> PathBuf {
    given
        .or_else(|| std::env::var_os("SMTPGATE_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("config/gateway.toml"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SMTPGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    match Cli::parse().command {
        Command::CheckConfig { config } => check_config(&config_path(config)),
        Command::Serve { config } => serve(config_path(config)),
    }
}

fn check_config(path: &Path) -> ExitCode {
    match App::load(path, None) {
        Ok(app) => {
            println!(
                "ok: {} rules, {} symbols",
                app.checks.len(),
                app.symbols.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn serve(path: PathBuf) -> ExitCode {
    let app = match App::load(&path, None) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(app, path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(app: App, path: PathBuf) -> anyhow::Result<()> {
    let server = Server::bind(app).await.context("binding listeners")?;
    for addr in server.local_addrs() {
        tracing::info!(%addr, "listening");
    }
    let handle = server.handle();
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let running = tokio::spawn(server.run());
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&handle, &path),
        }
    }
    tracing::info!("shutting down: no new connections, letting sessions finish");
    handle.shutdown();
    running.await.context("server task")?;
    Ok(())
}

/// SIGHUP: validate and build the new configuration first; keep the running
/// one on any error.
fn reload(handle: &Handle, path: &Path) {
    let current = handle.app();
    match App::load(path, Some(&current)) {
        Ok(app) => {
            handle.reload(app);
            tracing::info!(config = %path.display(), "configuration reloaded");
        }
        Err(e) => tracing::error!(error = %e, "reload failed, keeping the running configuration"),
    }
}
