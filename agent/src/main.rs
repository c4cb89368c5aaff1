//! Command line of hatang-agent; the work is done in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hatang_agent::commands;
use hatang_agent::config::{self, Overrides, RawConfig};
use hatang_agent::tls::TlsFiles;

/// The hatang agent: reports this machine's inventory, resource use and connectivity to the
/// province's hatang collector. Push only; reports wait on disk while the collector is away.
#[derive(Debug, Parser)]
#[command(name = "hatang-agent", version, about, long_about = None)]
struct Cli {
    /// Configuration file (TOML); optional. `hatang-agent config example` prints one.
    #[arg(long, global = true, env = "HATANG_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the agent keeps its key and unsent reports (default /var/lib/hatang-agent).
    #[arg(long, global = true, env = "HATANG_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Exchange an enrolment token for this machine's agent key.
    Enroll {
        /// Collector base URL, e.g. https://hatang.tinh.gov.vn
        #[arg(long, env = "HATANG_COLLECTOR", value_name = "URL")]
        collector: String,
        /// Enrolment token from `hatang-collector token create --unit CODE`.
        #[arg(long, env = "HATANG_TOKEN", hide_env_values = true)]
        token: String,
        /// CA certificate (PEM) the collector's HTTPS certificate must chain to; the only CA
        /// trusted. Stored with the enrolment for `run` and `once`.
        #[arg(long, env = "HATANG_CA_FILE", value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// Client certificate (PEM) for a collector that requires one; stored like --ca-file.
        #[arg(long, value_name = "FILE", requires = "client_key_file")]
        client_cert_file: Option<PathBuf>,
        /// The client certificate's private key (PEM).
        #[arg(long, value_name = "FILE", requires = "client_cert_file")]
        client_key_file: Option<PathBuf>,
    },
    /// Run the agent: a report every interval until stopped (SIGTERM, Ctrl-C).
    Run,
    /// Collect and send one report (with any waiting in the spool).
    Once {
        /// Print the report as JSON on stdout instead of sending it (needs no enrolment).
        #[arg(long)]
        print: bool,
    },
    /// Self-test: identity, enrolment, collector reachable, spool, LAN.
    Check,
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The Windows service: install (starting with Windows), start, stop, uninstall.
    #[cfg(windows)]
    #[command(subcommand)]
    Service(ServiceCommand),
}

#[cfg(windows)]
#[derive(Debug, Subcommand)]
enum ServiceCommand {
    /// Register the service (as an administrator); --config and --state-dir given here are
    /// passed on to every start.
    Install,
    /// Stop the service if it runs and remove it.
    Uninstall,
    Start,
    Stop,
    /// What the service control manager starts; not for the command line.
    #[command(hide = true)]
    Run,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print an annotated example configuration with the defaults.
    Example,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(windows)]
    if let Command::Service(command) = &cli.command {
        return match service(command, &cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hatang-agent: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HATANG_LOG")
                // The certificate verifier's own ERROR line repeats the agent's error.
                .unwrap_or_else(|_| "info,rustls_platform_verifier=off".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hatang-agent: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // `once --print | head` closes the pipe early; not a failure worth a message.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hatang-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    if let Command::Config(ConfigCommand::Example) = cli.command {
        print!("{}", config::EXAMPLE);
        return Ok(true);
    }
    let collector = match &cli.command {
        Command::Enroll { collector, .. } => Some(collector.clone()),
        _ => std::env::var("HATANG_COLLECTOR").ok(),
    };
    let tls = match &cli.command {
        Command::Enroll {
            ca_file,
            client_cert_file,
            client_key_file,
            ..
        } => TlsFiles {
            ca_file: ca_file.clone(),
            client_cert_file: client_cert_file.clone(),
            client_key_file: client_key_file.clone(),
        },
        _ => TlsFiles::default(),
    };
    let config = load_config(cli.config.as_deref(), cli.state_dir, collector, tls)?;
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Enroll { token, .. } => commands::enroll(&config, &token, &mut out).await?,
        Command::Run => {
            let shutdown = shutdown_signal();
            commands::run(&config, shutdown).await?
        }
        Command::Once { print } => commands::once(&config, print, &mut out).await?,
        Command::Check => return commands::check(&config, &mut out).await,
        Command::Config(_) => {}
        #[cfg(windows)]
        Command::Service(_) => unreachable!("handled in main"),
    }
    Ok(true)
}

/// Defaults < file < environment < command line (`--state-dir`, `--collector`, TLS files).
fn load_config(
    file: Option<&std::path::Path>,
    state_dir: Option<PathBuf>,
    collector: Option<String>,
    tls: TlsFiles,
) -> anyhow::Result<config::Config> {
    Ok(RawConfig::load(file)?.check(Overrides {
        state_dir,
        collector,
        gateway_probe: std::env::var("HATANG_GATEWAY_PROBE")
            .ok()
            .map(|v| config::switch("HATANG_GATEWAY_PROBE", &v))
            .transpose()?,
        tls,
    })?)
}

/// `service …`: blocking calls to the service control manager, no runtime needed. `run` logs
/// to `agent.log` in the state directory, as a service has no console.
#[cfg(windows)]
fn service(command: &ServiceCommand, cli: &Cli) -> anyhow::Result<()> {
    use hatang_agent::service;
    match command {
        ServiceCommand::Install => {
            service::install(cli.config.as_deref(), cli.state_dir.as_deref())
        }
        ServiceCommand::Uninstall => service::uninstall(),
        ServiceCommand::Start => service::start(),
        ServiceCommand::Stop => service::stop(),
        ServiceCommand::Run => {
            let config = load_config(
                cli.config.as_deref(),
                cli.state_dir.clone(),
                std::env::var("HATANG_COLLECTOR").ok(),
                TlsFiles::default(),
            )?;
            let log = service::log_file(&config.state_dir)?;
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("HATANG_LOG")
                        .unwrap_or_else(|_| "info,rustls_platform_verifier=off".into()),
                )
                .with_writer(std::sync::Mutex::new(log))
                .with_ansi(false)
                .init();
            service::run(config)
        }
    }
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled, so a signal during start-up is not lost to the default action.
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let interrupt = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = interrupt => {},
                _ = term.recv() => {},
            }
            return;
        }
        let _ = interrupt.await;
    }
}
