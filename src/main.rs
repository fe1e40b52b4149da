//! The `smtpgate` command line: `serve` and `check-config` (DESIGN §3).

use anyhow::Context;
use clap::{Parser, Subcommand};
use smtpgate::address::parse_typed;
use smtpgate::app::App;
use smtpgate::cli::{self, shared_store_app};
use smtpgate::config::LogFormat;
use smtpgate::notify::notify;
use smtpgate::server::{Handle, Server};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Layer, Registry};

/// mimalloc: fewer instructions per allocation than glibc's malloc on the
/// per-message path (parsed messages, replies, store keys).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run one message through the same phases as `serve`: print the client
    /// assumed, the breakdown, the action and the reply. Exit status as
    /// `spamc -c`: 0 pass, 1 spam/blocked/refused, 75 tempfail, 2 usage or
    /// configuration error.
    Check(CheckArgs),
    /// The known-bad recipients list: import FILE, list, remove ADDR.
    BadRecipients {
        /// Configuration file (default: $SMTPGATE_CONFIG, else config/gateway.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: BadAction,
    },
    /// Search the message history (every transaction, kept [history] keep).
    History {
        /// Configuration file (default: $SMTPGATE_CONFIG, else config/gateway.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        args: smtpgate::cli::history::HistoryArgs,
    },
    /// Re-decide the history's transactions under proposed scores, rules or
    /// threshold: how many verdicts flip, by identity and by symbol. Exit
    /// status 0 nothing flips, 1 something does, 2 usage, 75 store failure.
    Replay {
        /// Configuration file (default: $SMTPGATE_CONFIG, else config/gateway.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        args: smtpgate::cli::replay::ReplayArgs,
    },
    /// The readiness of a customer domain with the egress IPs: SPF, DKIM,
    /// DMARC, MX, FCrDNS, DNSBL (each ok/warn/fail with its fix) and its
    /// stopped mail of 7 days. Exit status 0 ok or warn, 1 fail, 2 usage.
    Readiness {
        /// Configuration file (default: $SMTPGATE_CONFIG, else config/gateway.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The domain, e.g. example.com.
        domain: String,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a transaction's story (breakdown, reply) from its reference
    /// (in its alert, 5xx or 250 reply).
    Why {
        /// Configuration file (default: $SMTPGATE_CONFIG, else config/gateway.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The reference, e.g. K3F9Q2ZP.
        reference: String,
    },
    /// The anomaly holds: list, hold IDENTITY [--for 2h], release IDENTITY.
    Hold(smtpgate::cli::hold::HoldArgs),
}

#[derive(Subcommand)]
enum BadAction {
    /// Adds the addresses of FILE (one per line, `#` comments).
    Import {
        /// The file.
        file: PathBuf,
    },
    /// Lists the known-bad recipients.
    List,
    /// Forgets ADDR.
    Remove {
        /// The address.
        address: String,
    },
}

#[derive(clap::Args)]
struct CheckArgs {
    /// Configuration file (default: $SMTPGATE_CONFIG, else config/gateway.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Envelope sender (default: the From header's address).
    #[arg(long)]
    from: Option<String>,
    /// Envelope recipient (repeatable; default: the To and Cc addresses).
    #[arg(long)]
    rcpt: Vec<String>,
    /// Client IP address.
    #[arg(long, default_value = smtpgate::cli::check::DEFAULT_IP)]
    ip: std::net::IpAddr,
    /// HELO name.
    #[arg(long, default_value = smtpgate::cli::check::DEFAULT_HELO)]
    helo: String,
    /// SMTP AUTH login.
    #[arg(long)]
    login: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// The message (RFC 5322 file), or - for standard input.
    file: PathBuf,
}

fn config_path(given: Option<PathBuf>) -> PathBuf {
    given
        .or_else(|| std::env::var_os("SMTPGATE_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("config/gateway.toml"))
}

/// The log output: text from the first line, switched to `[log] format`
/// once `serve` has read its configuration.
type LogHandle = reload::Handle<Box<dyn Layer<Registry> + Send + Sync>, Registry>;

/// Lines on standard error in `format`.
fn log_layer(format: LogFormat) -> Box<dyn Layer<Registry> + Send + Sync> {
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match format {
        LogFormat::Text => lines.boxed(),
        LogFormat::Json => lines.json().flatten_event(true).boxed(),
    }
}

/// Text lines filtered by `$SMTPGATE_LOG` (default `info`).
fn init_log() -> LogHandle {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SMTPGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (lines, handle) = reload::Layer::new(log_layer(LogFormat::Text));
    tracing_subscriber::registry()
        .with(lines)
        .with(filter)
        .init();
    handle
}

fn main() -> ExitCode {
    let log = init_log();
    match Cli::parse().command {
        Command::CheckConfig { config } => check_config(&config_path(config)),
        Command::Serve { config } => serve(config_path(config), &log),
        Command::Check(a) => smtpgate::cli::check::run(
            &config_path(a.config),
            smtpgate::cli::check::Given {
                from: a.from,
                rcpts: a.rcpt,
                ip: a.ip,
                helo: a.helo,
                login: a.login,
            },
            a.json,
            a.file,
        ),
        Command::Why { config, reference } => cli::history::why(&config_path(config), &reference),
        Command::History { config, args } => cli::history::run(&config_path(config), &args),
        Command::Replay { config, args } => cli::replay::run(&config_path(config), &args),
        Command::Readiness {
            config,
            domain,
            json,
        } => cli::readiness::run(&config_path(config), &domain, json),
        Command::BadRecipients { config, action } => bad_recipients(&config_path(config), action),
        Command::Hold(args) => cli::hold::run(&config_path(args.config.clone()), &args),
    }
}

fn bad_recipients(path: &Path, action: BadAction) -> ExitCode {
    use smtpgate::checks::envelope::known_bad_key;
    let (app, runtime) = match shared_store_app(path, "the list lives") {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let store = app.store.clone();
    let ttl = app.config.envelope.known_bad_ttl.0;
    let result: Result<(), String> = runtime.block_on(async move {
        match action {
            BadAction::Import { file } => {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                let mut n = 0;
                for (i, line) in text.lines().enumerate() {
                    let addr = line.split('#').next().unwrap_or("").trim();
                    if addr.is_empty() {
                        continue;
                    }
                    let parsed = parse_typed(addr, false).map_err(|e| {
                        format!("{}:{}: not an address: {e}", file.display(), i + 1)
                    })?;
                    store
                        .set(&known_bad_key(&parsed.to_string()), b"imported", ttl)
                        .await
                        .map_err(|e| e.to_string())?;
                    n += 1;
                }
                println!("imported {n} addresses");
            }
            BadAction::List => {
                for key in store
                    .keys("badrcpt:", 1_000_000)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    let why = store
                        .get(&key)
                        .await
                        .map_err(|e| e.to_string())?
                        .unwrap_or_default();
                    println!(
                        "{}\t{}",
                        &key["badrcpt:".len()..],
                        String::from_utf8_lossy(&why)
                    );
                }
            }
            BadAction::Remove { address } => {
                if !store
                    .delete(&known_bad_key(&address))
                    .await
                    .map_err(|e| e.to_string())?
                {
                    return Err(format!("{address} is not on the list"));
                }
                println!("removed {address}");
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: &Path) -> ExitCode {
    match App::load(path, None) {
        Ok(app) => {
            println!(
                "ok: {} rules, {} symbols",
                app.content.len() + app.composites.len(),
                app.symbols.len()
            );
            println!("checks: {}", app.active_checks());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn serve(path: PathBuf, log: &LogHandle) -> ExitCode {
    let app = match App::load(&path, None) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if app.config.log.format != LogFormat::Text {
        if let Err(e) = log.reload(log_layer(app.config.log.format)) {
            eprintln!("cannot switch the log format: {e}");
        }
    }
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
    if let Some(m) = &app.config.metrics {
        let addr = smtpgate::metrics::install(m.listen)
            .await
            .map_err(anyhow::Error::msg)?;
        smtpgate::metrics::symbols(app.symbols.names());
        tracing::info!(%addr, "metrics on /metrics");
    }
    tracing::info!(checks = %app.active_checks(), "active checks, in order");
    let server = Server::bind(app).await.context("binding listeners")?;
    for addr in server.local_addrs() {
        tracing::info!(%addr, "listening");
    }
    if let Some(addr) = server.http_addr() {
        tracing::info!(%addr, "HTTP API on /api/, web console on /");
    }
    let handle = server.handle();
    let addrs: Vec<String> = server
        .local_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    let addrs = addrs.join(", ");
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut running = tokio::spawn(server.run());
    notify(&format!(
        "READY=1\nSTATUS=accepting mail on {addrs}\nMAINPID={}",
        std::process::id()
    ));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&handle, &path),
            // The server ends on its own only when a listener died: it has
            // drained its sessions; exit non-zero for the supervisor.
            ended = &mut running => {
                notify("STOPPING=1\nSTATUS=a listener died");
                return ended.context("server task")?.map_err(anyhow::Error::msg);
            }
        }
    }
    tracing::info!("shutting down: no new connections, letting sessions finish");
    notify("STOPPING=1\nSTATUS=draining sessions");
    handle.shutdown();
    let ran = running.await.context("server task")?;
    ran.map_err(anyhow::Error::msg)
}

/// SIGHUP: validate and build the new configuration first; keep the running
/// one on any error.
fn reload(handle: &Handle, path: &Path) {
    smtpgate::notify::reloading("reloading configuration");
    let result = handle.reload_from(path);
    smtpgate::metrics::reload(result.is_ok());
    let status = match &result {
        Ok(()) => "configuration reloaded".to_string(),
        Err(e) => format!("reload failed, running configuration kept: {e}"),
    };
    notify(&format!("READY=1\nSTATUS={status}"));
    match result {
        Ok(()) => tracing::info!(config = %path.display(), "configuration reloaded"),
        Err(e) => tracing::error!(error = %e, "reload failed, keeping the running configuration"),
    }
}
