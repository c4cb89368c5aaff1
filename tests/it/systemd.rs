//! The systemd units in `*/dist/`: what `systemd-analyze verify` says of them, and the
//! collector started the way its unit starts it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{bin, eventually, get};

fn unit_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// `Key=value` of the unit's `[Service]` section, in order (a key may repeat).
fn service_settings(unit: &str) -> Vec<(String, String)> {
    let mut in_service = false;
    let mut settings = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service
            && !line.starts_with('#')
            && let Some((key, value)) = line.split_once('=')
        {
            settings.push((key.to_owned(), value.to_owned()));
        }
    }
    settings
}

/// `systemd-analyze verify` has nothing to say of either unit: no unknown key, no value it
/// would ignore (it says those on stderr and still exits 0, so the test reads stderr). The
/// binary is the one this workspace built, at the path the unit names.
#[test]
fn the_units_verify_cleanly() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is required in CI (Debian's systemd package)"
        );
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    for (path, binary) in [
        ("agent/dist/hatang-agent.service", "hatang-agent"),
        (
            "collector/dist/hatang-collector.service",
            "hatang-collector",
        ),
    ] {
        let text = std::fs::read_to_string(unit_file(path)).unwrap();
        let installed = format!("/usr/local/bin/{binary}");
        assert!(text.contains(&installed), "{path} starts {installed}");
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join(format!("{binary}.service"));
        std::fs::write(
            &copy,
            text.replace(&installed, &bin(binary).display().to_string()),
        )
        .unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && said.trim().is_empty(),
            "{path}:\n{said}"
        );
    }
}

/// The collector as its unit runs it: `serve` with no flag, its configuration named by
/// `HATANG_CONFIG`, in its state directory; the example configuration the unit's comment
/// installs, with the database path it says to set, brings it up.
#[test]
fn the_collector_starts_as_its_unit_starts_it() {
    let unit =
        std::fs::read_to_string(unit_file("collector/dist/hatang-collector.service")).unwrap();
    let settings = service_settings(&unit);
    let setting = |key: &str| {
        settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{key}= in the unit"))
    };
    let args: Vec<&str> = setting("ExecStart").split_whitespace().skip(1).collect();
    assert_eq!(args, ["serve"]);
    let (var, config_path) = setting("Environment").split_once('=').unwrap();
    assert_eq!(
        (var, config_path),
        ("HATANG_CONFIG", "/etc/hatang/collector.toml")
    );

    // The unit's directories, under a temporary root.
    let root = tempfile::tempdir().unwrap();
    let state = root
        .path()
        .join(setting("WorkingDirectory").trim_start_matches('/'));
    std::fs::create_dir_all(&state).unwrap();
    let config = root.path().join(config_path.trim_start_matches('/'));
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let example = Command::new(bin("hatang-collector"))
        .args(["config", "example"])
        .output()
        .unwrap();
    assert!(example.status.success());
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let database = format!("sqlite://{}", state.join("hatang.db").display());
    let text = String::from_utf8(example.stdout)
        .unwrap()
        .replace(
            "listen = \"127.0.0.1:8080\"",
            &format!("listen = \"{listen}\""),
        )
        .replace(
            "database = \"sqlite://hatang.db\"",
            &format!("database = \"{database}\""),
        );
    assert!(text.contains(&database) && text.contains(&listen.to_string()));
    std::fs::write(&config, text).unwrap();

    let mut serve = Command::new(bin("hatang-collector"))
        .args(&args)
        .env("HATANG_CONFIG", &config)
        .env_remove("HATANG_DATABASE")
        .env_remove("HATANG_LISTEN")
        .current_dir(&state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = eventually(Duration::from_secs(20), || {
        assert!(serve.try_wait().unwrap().is_none(), "serve exited");
        get(&listen.to_string(), "/readyz")
            .ok()
            .filter(|(status, _)| *status == 200)
    });
    let _ = serve.kill();
    let _ = serve.wait();
    assert_eq!(ready.1, "ready\n");
    assert!(
        state.join("hatang.db").exists(),
        "the database is in the state directory"
    );
}
