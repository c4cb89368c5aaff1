//! Command line of hatang-collector; the work is done in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hatang_collector::commands::{self, Format};
use hatang_collector::config::{self, Overrides, RawConfig};
use hatang_collector::http::AppState;
use hatang_collector::store::Missing;
use hatang_collector::tokens::TokenRequest;

/// mimalloc rather than glibc's allocator: a report is parsed on one thread and freed on the
/// ingest writer's, and glibc's arena locks and chunk consolidation were a tenth of the
/// collector's CPU under load (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The hatang collector: enrolls agents, stores their reports and serves the coverage,
/// connectivity and data-centre figures (HTTP API, Prometheus /metrics).
#[derive(Debug, Parser)]
#[command(name = "hatang-collector", version, about, long_about = None)]
struct Cli {
    /// Configuration file (TOML); `hatang-collector config example` prints an annotated one.
    #[arg(long, global = true, env = "HATANG_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL: sqlite://PATH (embedded; created by serve, migrate, units import and token
    /// create, refused by the other commands when missing) or postgres://USER:PASS@HOST/DB (an
    /// existing database; several collectors may share it). Default: sqlite://hatang.db
    #[arg(long, global = true, env = "HATANG_DATABASE", value_name = "URL")]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on, e.g. 0.0.0.0:8080 (default 127.0.0.1:8080).
        #[arg(long, env = "HATANG_LISTEN", value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// The tree of administrative units.
    #[command(subcommand)]
    Units(UnitsCommand),
    /// Enrolment tokens for machines, API tokens for people.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Enrolled agents and their keys.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Print the equipment coverage per level and unit (the table lists units only with --level).
    Coverage {
        /// Only this level, with its units.
        #[arg(long)]
        level: Option<String>,
        /// The figures as they stood on this day (YYYY-MM-DD, the collector's utc_offset), from
        /// the daily snapshot.
        #[arg(long, value_name = "DATE")]
        at: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Take today's snapshot of the figures now, unless it exists (serve takes one daily;
    /// this is for cron and tests).
    Snapshot,
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
}

impl Command {
    /// Whether the command may create a missing SQLite database: those that set one up or put
    /// in it what a new one starts with. The others only read or change what is there, so a
    /// missing file is a mistyped path, and an empty database made in its place would answer
    /// "nothing" (or "not found") and be left behind.
    fn missing_database(&self) -> Missing {
        match self {
            Command::Serve { .. }
            | Command::Migrate
            | Command::Units(UnitsCommand::Import { .. })
            | Command::Token(TokenCommand::Create { .. }) => Missing::Create,
            Command::Units(UnitsCommand::List)
            | Command::Token(TokenCommand::List | TokenCommand::Revoke { .. })
            | Command::Agent(_)
            | Command::Coverage { .. }
            | Command::Snapshot
            | Command::Config(_) => Missing::Refuse,
        }
    }
}

#[derive(Debug, Subcommand)]
enum UnitsCommand {
    /// Import or re-import the tree from a CSV file (all or nothing).
    ///
    /// The header is code,name,level,parent_code,staff and optionally merged_into: a row
    /// OLD,,,,,NEW says unit OLD was merged into NEW, and its agents and enrolment tokens move
    /// there. Any error is reported with its line and nothing is imported. Units absent from the
    /// file are retired from the current figures. With --config (the file serve uses), today's
    /// figures under the tree being replaced are first kept as today's snapshot.
    Import { file: PathBuf },
    /// Print the current tree.
    List,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a new token (alone on the last line of stdout).
    ///
    /// With --unit: an enrolment token for machines of that unit (--role workstation, the
    /// default, or server). Without: an API token, --role viewer (read) or admin.
    Create {
        #[arg(long, value_name = "CODE")]
        unit: Option<String>,
        #[arg(long, value_parser = ["workstation", "server", "viewer", "admin"])]
        role: Option<String>,
        /// The token stops working after this many days, 1 to 36500 (default: never).
        #[arg(long, value_name = "DAYS")]
        expires_days: Option<u32>,
        /// With --unit: the token enrols at most N machines (default: any number); one more
        /// is refused with 403 token_used_up.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_uses: Option<u32>,
    },
    /// List every token by fingerprint (never the secret): kind, what it is for, created,
    /// expires, uses (and limit), revoked.
    List,
    /// Revoke a token at once, on every collector sharing the database.
    Revoke {
        /// The token's fingerprint (12 hex digits, from `token list`) or the token itself.
        #[arg(value_name = "FINGERPRINT|TOKEN")]
        token: String,
    },
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// List every agent with its unit, role, state and revocation.
    List,
    /// Revoke an agent's key at once: its next report gets 401 and it must be enrolled again
    /// (enrolling it again with a valid token issues a new key and lifts the revocation).
    Revoke {
        #[arg(value_name = "AGENT_ID")]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print an annotated example configuration with the defaults.
    Example,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HATANG_LOG")
                // PostgreSQL's notices ("relation … already exists, skipping" on every
                // migration check) are not news; rustls' certificate verifier logs an ERROR
                // for each refused certificate that the service check reports already.
                .unwrap_or_else(|_| {
                    "info,sqlx::postgres::notice=warn,rustls_platform_verifier=off".into()
                }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hatang-collector: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // `units list | head` closes the pipe early; that is not a failure worth a message.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hatang-collector: {}", one_line(&reason(&e)));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by ": " as `{:#}` joins them, without a cause the one
/// before it already ends with: sqlx's database errors carry their driver's message as their
/// cause too, and an unusable `--database` was refused with the driver's reason twice.
fn reason(e: &anyhow::Error) -> String {
    let mut said: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !said.last().is_some_and(|last| last.ends_with(&text)) {
            said.push(text);
        }
    }
    said.join(": ")
}

/// `reason` on one line, as scripts and logs read it: a line break or other control character
/// it quotes (an argument pasted from a spreadsheet cell) is written escaped, as `\n`.
fn one_line(reason: &str) -> String {
    reason
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Config(ConfigCommand::Example) = cli.command {
        print!("{}", config::EXAMPLE);
        return Ok(());
    }
    let listen = match &cli.command {
        Command::Serve { listen } => listen.clone(),
        _ => None,
    };
    let config = RawConfig::load(cli.config.as_deref())?.check(&Overrides {
        listen,
        database: cli.database.clone(),
    })?;
    let store = commands::open_store(&config, cli.command.missing_database()).await?;
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Serve { .. } => serve(store, config).await,
        Command::Migrate => {
            println!("database is up to date");
            Ok(())
        }
        Command::Units(UnitsCommand::Import { file }) => {
            let serve_config = cli.config.is_some().then_some(&config);
            commands::units_import(store.as_ref(), serve_config, &file, &mut out).await
        }
        Command::Units(UnitsCommand::List) => commands::units_list(store.as_ref(), &mut out).await,
        Command::Token(TokenCommand::Create {
            unit,
            role,
            expires_days,
            max_uses,
        }) => {
            let request = TokenRequest {
                unit,
                role,
                expires_days,
                max_uses,
            };
            commands::token_create(store.as_ref(), &request, &mut out).await
        }
        Command::Token(TokenCommand::List) => commands::token_list(store.as_ref(), &mut out).await,
        Command::Token(TokenCommand::Revoke { token }) => {
            commands::token_revoke(store.as_ref(), &token, &mut out).await
        }
        Command::Agent(AgentCommand::List) => commands::agent_list(store.as_ref(), &mut out).await,
        Command::Agent(AgentCommand::Revoke { id }) => {
            commands::agent_revoke(store.as_ref(), &id, &mut out).await
        }
        Command::Coverage {
            level,
            at: Some(date),
            format,
        } => commands::coverage_at(store.as_ref(), &date, level.as_deref(), format, &mut out).await,
        Command::Coverage {
            level,
            at: None,
            format,
        } => commands::coverage(store.as_ref(), &config, level.as_deref(), format, &mut out).await,
        Command::Snapshot => commands::snapshot(store.as_ref(), &config, &mut out).await,
        Command::Config(_) => Ok(()),
    }
}

async fn serve(
    store: Box<dyn hatang_collector::store::Store>,
    config: config::Config,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    if addr.ip().is_loopback() {
        tracing::info!(%addr, "listening on loopback only; set listen = \"0.0.0.0:8080\" for agents on the network");
    } else {
        tracing::info!(%addr, "listening");
    }
    tracing::info!(
        database = %hatang_collector::store::redact_url(&config.database),
        "serving"
    );
    let state = AppState::new(store, config);
    hatang_collector::serve(state, listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down: finishing requests in flight");
}
