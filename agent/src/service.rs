//! Running as a Windows service: `hatang-agent service install|uninstall|start|stop`, and the
//! `service run` entry point the service control manager (SCM) starts.
//!
//! The service runs `hatang-agent run` as LocalSystem, starting with Windows; its state is
//! under `%ProgramData%\hatang` unless `--state-dir` was given at install, and the `--config`
//! and `--state-dir` given to `install` are passed on to every start. A stop request from the
//! SCM is the same clean stop SIGTERM is on Linux. Logs go to `agent.log` in the state
//! directory (a service has no console), the previous start's kept as `agent.log.1` once it
//! exceeds [`LOG_ROTATE_BYTES`].

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use windows_service::service::{
    ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use crate::commands;
use crate::config::Config;

/// The service's name in the SCM (`sc query hatang-agent`).
pub const NAME: &str = "hatang-agent";
const DISPLAY_NAME: &str = "hatang agent";
const DESCRIPTION: &str = "Reports this computer's inventory, resource use and connectivity to \
                           the province's hatang collector.";

/// Above this size the log of the previous start is kept as `agent.log.1` and a new one begun.
pub const LOG_ROTATE_BYTES: u64 = 8 * 1024 * 1024;

/// The command line the SCM starts the service with.
fn launch_arguments(config: Option<&Path>, state_dir: Option<&Path>) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    if let Some(config) = config {
        args.extend(["--config".into(), config.as_os_str().to_owned()]);
    }
    if let Some(dir) = state_dir {
        args.extend(["--state-dir".into(), dir.as_os_str().to_owned()]);
    }
    args.extend(["service".into(), "run".into()]);
    args
}

fn manager(access: ServiceManagerAccess) -> anyhow::Result<ServiceManager> {
    ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT | access)
        .context("cannot reach the service control manager (run as an administrator)")
}

/// Registers the service (automatic start, LocalSystem). Paths are made absolute: the SCM
/// starts the service in `%SystemRoot%\System32`.
pub fn install(config: Option<&Path>, state_dir: Option<&Path>) -> anyhow::Result<()> {
    let absolute = |p: &Path| std::path::absolute(p).with_context(|| p.display().to_string());
    let config = config.map(absolute).transpose()?;
    let state_dir = state_dir.map(absolute).transpose()?;
    let info = ServiceInfo {
        name: NAME.into(),
        display_name: DISPLAY_NAME.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: std::env::current_exe().context("cannot find this program's path")?,
        launch_arguments: launch_arguments(config.as_deref(), state_dir.as_deref()),
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let service = manager(ServiceManagerAccess::CREATE_SERVICE)?
        .create_service(&info, ServiceAccess::CHANGE_CONFIG)
        .context("cannot create the service (is it installed already?)")?;
    service
        .set_description(DESCRIPTION)
        .context("cannot describe the service")
}

/// Stops the service if it runs, then removes it.
pub fn uninstall() -> anyhow::Result<()> {
    let service = manager(ServiceManagerAccess::empty())?
        .open_service(
            NAME,
            ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        )
        .context("the service is not installed")?;
    // A service deleted while it runs is only marked for deletion, and its name stays taken
    // until it stops: stop it and wait, so a new install can follow at once.
    if service.query_status()?.current_state != ServiceState::Stopped {
        let _ = service.stop();
        let deadline = std::time::Instant::now() + STOP_WAIT;
        while service.query_status()?.current_state != ServiceState::Stopped {
            if std::time::Instant::now() > deadline {
                anyhow::bail!("the service did not stop within {STOP_WAIT:?}; try again");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    service.delete().context("cannot remove the service")
}

/// How long `uninstall` waits for the service to stop.
const STOP_WAIT: Duration = Duration::from_secs(30);

/// `ERROR_SERVICE_ALREADY_RUNNING`.
const ALREADY_RUNNING: i32 = 1056;

/// Starts the service; one that runs already is left running, not an error.
pub fn start() -> anyhow::Result<()> {
    let started = manager(ServiceManagerAccess::empty())?
        .open_service(NAME, ServiceAccess::START)
        .context("the service is not installed")?
        .start::<&str>(&[]);
    match started {
        Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(ALREADY_RUNNING) => {
            Ok(())
        }
        other => other.context("cannot start the service"),
    }
}

pub fn stop() -> anyhow::Result<()> {
    manager(ServiceManagerAccess::empty())?
        .open_service(NAME, ServiceAccess::STOP)
        .context("the service is not installed")?
        .stop()
        .context("cannot stop the service")?;
    Ok(())
}

/// `agent.log` in the state directory, for appending; the previous one becomes `agent.log.1`
/// when it has grown past [`LOG_ROTATE_BYTES`].
pub fn log_file(state_dir: &Path) -> io::Result<File> {
    crate::state::ensure_dir(state_dir).map_err(io::Error::other)?;
    let path = state_dir.join("agent.log");
    if fs::metadata(&path).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
        fs::rename(&path, state_dir.join("agent.log.1"))?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// The configuration `run` hands to the service's main function, which the SCM calls on
/// another thread without arguments of ours.
static CONFIG: OnceLock<Config> = OnceLock::new();

/// Runs the service until the SCM stops it: blocks, as the dispatcher does. Fails at once
/// when not started by the SCM.
pub fn run(config: Config) -> anyhow::Result<()> {
    let _ = CONFIG.set(config);
    entry::dispatch()
        .context("not started by the service control manager (use `hatang-agent service start`)")
}

mod entry {
    // The macro's generated entry point holds the only `unsafe` here: reading the argument
    // vector the SCM passes, through windows-service's own parser.
    #![allow(unsafe_code)]
    windows_service::define_windows_service!(ffi_service_main, service_main);

    pub(super) fn dispatch() -> windows_service::Result<()> {
        windows_service::service_dispatcher::start(super::NAME, ffi_service_main)
    }

    fn service_main(_arguments: Vec<std::ffi::OsString>) {
        if let Err(e) = super::serve() {
            tracing::error!(error = %format!("{e:#}"), "the service failed");
        }
    }
}

fn status(state: ServiceState, accept: ServiceControlAccept, exit: u32) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: accept,
        exit_code: ServiceExitCode::Win32(exit),
        checkpoint: 0,
        wait_hint: Duration::from_secs(10),
        process_id: None,
    }
}

fn serve() -> anyhow::Result<()> {
    let config = CONFIG.get().context("no configuration")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let handle = service_control_handler::register(NAME, move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            let _ = stop_tx.send(true);
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    })?;
    handle.set_service_status(status(
        ServiceState::Running,
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        0,
    ))?;
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
        .and_then(|runtime| {
            let mut stop_rx = stop_rx;
            runtime.block_on(commands::run(config, async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            }))
        });
    if let Err(e) = &outcome {
        tracing::error!(error = %format!("{e:#}"), "the agent stopped on an error");
    }
    // ERROR_SERVICE_SPECIFIC_ERROR would need a code of ours; 1 (ERROR_INVALID_FUNCTION) says
    // "failed" to the SCM, whose event log then points at agent.log.
    handle.set_service_status(status(
        ServiceState::Stopped,
        ServiceControlAccept::empty(),
        u32::from(outcome.is_err()),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scm_starts_run_with_the_installed_paths() {
        let args = |c: Option<&str>, s: Option<&str>| -> Vec<String> {
            launch_arguments(c.map(Path::new), s.map(Path::new))
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect()
        };
        assert_eq!(args(None, None), ["service", "run"]);
        assert_eq!(
            args(Some(r"C:\hatang\agent.toml"), Some(r"D:\hatang")),
            [
                "--config",
                r"C:\hatang\agent.toml",
                "--state-dir",
                r"D:\hatang",
                "service",
                "run"
            ]
        );
    }

    #[test]
    fn the_log_is_rotated_once_too_large() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("agent.log"),
            vec![b'x'; LOG_ROTATE_BYTES as usize + 1],
        )
        .unwrap();
        drop(log_file(dir.path()).unwrap());
        assert_eq!(fs::metadata(dir.path().join("agent.log")).unwrap().len(), 0);
        assert!(dir.path().join("agent.log.1").exists());
        drop(log_file(dir.path()).unwrap());
        assert!(dir.path().join("agent.log").exists());
    }
}
