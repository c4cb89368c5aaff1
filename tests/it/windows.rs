//! The Windows agent, cross-compiled and run under Wine, enrols with a Linux collector on
//! loopback, reports once and is counted in its unit.
//!
//! Which agent: `HATANG_WINDOWS_AGENT`, the path of a `hatang-agent.exe` (`.ci/run` builds it and
//! sets this). When it is not set the test says why on stderr and passes, except under `CI`,
//! where only `HATANG_WINDOWS_SKIPPED` (set by `.ci/run` with its reason, when it could not
//! install the Windows target or Wine) lets it skip; anything else there is a failure, so the
//! Windows path is never dropped from CI silently. The .exe runs through
//! `agent/tests/wine/run`, which puts the test-only ProcessPrng stand-in beside it; Wine's
//! prefix is `WINEPREFIX` (Wine's default when unset).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Collector, eventually, get_as, run_ok, testdata};

/// A commune unit of the Hoà Bình tree: offices are where the Windows PCs are.
const UNIT: &str = "4792";

/// The agent to test, or `None` (said on stderr) when this run may skip it.
fn windows_agent() -> Option<PathBuf> {
    match std::env::var_os("HATANG_WINDOWS_AGENT") {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "HATANG_WINDOWS_AGENT={} does not exist",
                path.display()
            );
            Some(path)
        }
        _ => {
            let why = match std::env::var("HATANG_WINDOWS_SKIPPED") {
                Ok(reason) if !reason.is_empty() => reason,
                _ if std::env::var_os("CI").is_some() => panic!(
                    "CI is set but neither HATANG_WINDOWS_AGENT nor HATANG_WINDOWS_SKIPPED is: \
                     .ci/run builds the Windows agent or says why it could not"
                ),
                _ => {
                    "HATANG_WINDOWS_AGENT is not set (.ci/run builds the agent and sets it)".into()
                }
            };
            eprintln!("skipped: the Windows agent under Wine: {why}");
            None
        }
    }
}

fn wine_runner() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/wine/run")
}

/// A Unix path as the Windows process sees it (Wine maps `/` to `Z:\`).
fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// Wine's own `reg` tool, quiet.
fn wine_reg() -> Command {
    let wine = std::env::var("WINE").unwrap_or_else(|_| "/usr/lib/wine/wine64".into());
    let mut cmd = Command::new(wine);
    cmd.env("WINEDEBUG", "-all").arg("reg");
    cmd
}

/// This Wine prefix's `MachineGuid`, read with Wine's own `reg`.
fn machine_guid() -> String {
    let out = run_ok(wine_reg().args([
        "query",
        r"HKLM\SOFTWARE\Microsoft\Cryptography",
        "/v",
        "MachineGuid",
    ]));
    out.lines()
        .find_map(|l| {
            l.split_once("REG_SZ")
                .map(|(_, v)| v.trim().to_ascii_lowercase())
        })
        .unwrap_or_else(|| panic!("no MachineGuid in {out:?}"))
}

/// Uninstall entries written to the prefix for one test, removed when it ends, passed or not.
struct UninstallEntries(Vec<String>);

impl UninstallEntries {
    /// The registry path of the entry `sub`.
    fn key(sub: &str) -> String {
        format!(r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\{sub}")
    }

    /// `name` as Apps & features lists it, and `name component` hidden as a SystemComponent.
    fn add(name: &str, version: &str) -> Self {
        let entries = Self(vec![format!("{name}-shown"), format!("{name}-hidden")]);
        let set = |sub: &str, value: &str, kind: &str, data: &str| {
            run_ok(wine_reg().args([
                "add",
                &Self::key(sub),
                "/v",
                value,
                "/t",
                kind,
                "/d",
                data,
                "/f",
            ]));
        };
        set(&entries.0[0], "DisplayName", "REG_SZ", name);
        set(&entries.0[0], "DisplayVersion", "REG_SZ", version);
        set(
            &entries.0[1],
            "DisplayName",
            "REG_SZ",
            &format!("{name} component"),
        );
        set(&entries.0[1], "SystemComponent", "REG_DWORD", "1");
        entries
    }
}

impl Drop for UninstallEntries {
    fn drop(&mut self) {
        for sub in &self.0 {
            let _ = wine_reg().args(["delete", &Self::key(sub), "/f"]).output();
        }
    }
}

/// A collector on the Hoà Bình tree, started, and an enrolment token for [`UNIT`].
fn collector_with_token() -> (Collector, String) {
    let mut collector = Collector::new();
    run_ok(
        collector
            .cli(&["units", "import"])
            .arg(testdata("units-hoa-binh-2024.csv")),
    );
    collector.start(0);
    let token = collector.token(&["--unit", UNIT]);
    (collector, token)
}

/// `hatang-agent.exe ARGS` under Wine with its own state directory, talking to loopback only.
fn windows_agent_cmd(exe: &Path, state: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(wine_runner());
    cmd.arg(exe)
        .args(args)
        .env("HATANG_STATE_DIR", windows_path(state))
        // The identity must come from the registry: nothing overrides it here.
        .env_remove("HATANG_MACHINE_ID")
        .env("HATANG_GATEWAY_PROBE", "false")
        .env("HATANG_LOG", "warn");
    cmd
}

#[test]
fn windows_agent_under_wine_enrols_reports_and_is_counted() {
    let Some(exe) = windows_agent() else {
        return;
    };
    let (collector, token) = collector_with_token();
    let viewer = collector.token(&["--role", "viewer"]);
    let state = tempfile::tempdir().unwrap();
    let agent = |args: &[&str]| windows_agent_cmd(&exe, state.path(), args);
    // The software list is read from the prefix's Uninstall keys, which a fresh prefix leaves
    // empty (Wine installs Mono and Gecko only on demand): one program is installed here.
    let program = format!("hatang smoke test {}", std::process::id());
    let _installed = UninstallEntries::add(&program, "4.5.6");
    let config = state.path().join("agent.toml");
    std::fs::write(&config, "inventory_software = true\n").unwrap();

    run_ok(&mut agent(&[
        "enroll",
        "--collector",
        &collector.url(),
        "--token",
        &token,
    ]));
    let sent = run_ok(&mut agent(&["--config", &windows_path(&config), "once"]));
    assert!(sent.contains("sent 1 report(s)"), "{sent}");

    let metrics = collector.metrics();
    assert_eq!(
        metrics.get("hatang_unit_equipped_staff", &[("unit", UNIT)]),
        Some(1.0),
        "the Windows PC is counted in its unit"
    );
    assert_eq!(metrics.sum("hatang_agents", &[]), 1.0);

    let enrolment: Value =
        serde_json::from_str(&std::fs::read_to_string(state.path().join("agent.json")).unwrap())
            .unwrap();
    let id = enrolment["agent_id"].as_str().expect("agent_id");
    let (status, body) = get_as(
        &collector.addr,
        &format!("/api/v1/agents/{id}"),
        Some(&viewer),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let agent: Value = serde_json::from_str(&body).unwrap();
    // The MachineGuid, joined by a digest of the SMBIOS UUID or serial where Wine has one
    // (agent/src/identity.rs).
    let guid = machine_guid();
    let id = agent["machine_id"].as_str().unwrap();
    assert!(
        id == guid || id.starts_with(&format!("{guid}.")),
        "machine id {id} is not built on the MachineGuid {guid}"
    );
    assert_eq!(agent["unit"], UNIT);

    // What Wine really provides: the host's name, CPU and memory, and (from the direct API
    // calls, as sysinfo lists none under Wine) a drive, a physical disk and a network adapter.
    let inventory = &agent["inventory"];
    let host = |file: &str| std::fs::read_to_string(file).expect("the Linux host's /proc");
    let hostname = host("/proc/sys/kernel/hostname");
    assert_eq!(agent["hostname"], hostname.trim());
    assert_eq!(inventory["hostname"], hostname.trim());
    assert_eq!(inventory["os"]["family"], "windows");
    assert!(
        inventory["os"]["name"]
            .as_str()
            .is_some_and(|n| n.contains("Windows")),
        "{inventory}"
    );
    let cpuinfo = host("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, m)| m.trim());
    assert_eq!(inventory["cpu"]["model"].as_str(), model, "{inventory}");
    let processors = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    assert_eq!(inventory["cpu"]["threads"], processors);
    let mem_total_kib: f64 = host("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemTotal");
    let reported = inventory["memory"]["total_bytes"].as_f64().expect("memory");
    // Wine rounds to its page accounting: within 1 % of the host's figure.
    assert!(
        (reported / 1024.0 - mem_total_kib).abs() < mem_total_kib / 100.0,
        "{reported} bytes against MemTotal {mem_total_kib} kB"
    );
    let filesystems = inventory["filesystems"].as_array().expect("filesystems");
    assert!(
        filesystems
            .iter()
            .any(|f| f["mount_point"] == "C:\\" && f["total_bytes"].as_u64() > Some(0)),
        "{filesystems:?}"
    );
    // Wine answers the storage queries for its PhysicalDrive0 with a size, no model or serial.
    let disks = inventory["disks"].as_array().expect("disks");
    assert!(
        disks
            .iter()
            .any(|d| d["name"] == "PhysicalDrive0" && d["size_bytes"].as_u64() > Some(0)),
        "{disks:?}"
    );
    let software = inventory["software"].as_array().expect("software");
    let ours: Vec<&Value> = software
        .iter()
        .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with(&program)))
        .collect();
    assert_eq!(
        ours,
        [&serde_json::json!({"name": program, "version": "4.5.6"})],
        "the SystemComponent entry is hidden: {software:?}"
    );
    let interfaces = inventory["interfaces"].as_array().expect("interfaces");
    assert!(
        interfaces.iter().any(|i| i["loopback"] == true
            && i["addresses"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a == "127.0.0.1/8"))),
        "{interfaces:?}"
    );
    assert!(
        interfaces
            .iter()
            .any(|i| i["loopback"] == false && i["mac"].is_string()),
        "an adapter with a MAC: {interfaces:?}"
    );
    let sample = &agent["sample"];
    assert!(
        sample["filesystems"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["mount_point"] == "C:\\")),
        "{sample}"
    );
}

/// Uninstalls the service when the test ends, passed or not, so the next run can install it.
struct Installed<'a>(&'a dyn Fn(&[&str]) -> Command);

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        let _ = (self.0)(&["service", "uninstall"]).output();
    }
}

#[test]
fn windows_agent_runs_as_a_service_under_wine() {
    let Some(exe) = windows_agent() else {
        return;
    };
    let (collector, token) = collector_with_token();
    let state = tempfile::tempdir().unwrap();
    // The service does not inherit this environment: what it needs is in its files.
    let config = state.path().join("agent.toml");
    std::fs::write(&config, "interval_secs = 5\ngateway_probe = false\n").unwrap();
    let agent = |args: &[&str]| windows_agent_cmd(&exe, state.path(), args);
    run_ok(&mut agent(&[
        "enroll",
        "--collector",
        &collector.url(),
        "--token",
        &token,
    ]));

    let (config, state_dir) = (windows_path(&config), windows_path(state.path()));
    run_ok(&mut agent(&[
        "--config",
        &config,
        "--state-dir",
        &state_dir,
        "service",
        "install",
    ]));
    let _installed = Installed(&agent);
    let again = agent(&["service", "install"]).output().unwrap();
    assert!(!again.status.success(), "installed twice");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("installed already"),
        "{again:?}"
    );
    run_ok(&mut agent(&["service", "start"]));
    let accepted = || {
        collector
            .metrics()
            .get("hatang_reports_received_total", &[("outcome", "accepted")])
            .unwrap_or(0.0)
    };
    // Two reports, 5 s apart: the service runs `run`, not a single `once`.
    eventually(Duration::from_secs(60), || {
        (accepted() >= 2.0).then_some(())
    });
    assert_eq!(
        collector
            .metrics()
            .get("hatang_unit_equipped_staff", &[("unit", UNIT)]),
        Some(1.0)
    );

    run_ok(&mut agent(&["service", "stop"]));
    let log = state.path().join("agent.log");
    eventually(Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("agent stopped"))
    });
    run_ok(&mut agent(&["service", "uninstall"]));
    let gone = agent(&["service", "start"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("not installed"),
        "{gone:?}"
    );
}
