//! The web UI in real headless Chromium: a collector with the Phú Thọ 2025 tree and real
//! agents that reported, and `tests/browser/ui.mjs` (playwright-core driving Debian's
//! `/usr/bin/chromium`) signing in, opening every page, checking its figures against the API,
//! switching language, downloading a CSV and signing out. The screenshots stay in
//! `target/browser-artifacts/` (or `HATANG_BROWSER_ARTIFACTS`).
//!
//! Needs `node`, Chromium (`HATANG_CHROMIUM`, default `/usr/bin/chromium`) and `npm ci` run in
//! `tests/browser`. Without them the test says so and skips; under `CI` it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Agent, Collector, get, run_ok, testdata, units};

/// Machines in a commune (and its level), a provincial department and the data centre.
const COMMUNE_UNIT: &str = "7900";
const PROVINCE_UNIT: &str = "25-SKHCN";
const DATACENTRE_UNIT: &str = "25-TTDL";
const OFFSET: &str = "+07:00";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// What the browser test runs with, or why it cannot run here.
struct Tools {
    node: PathBuf,
    chromium: PathBuf,
}

fn tools() -> Result<Tools, String> {
    let chromium = std::env::var_os("HATANG_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !chromium.exists() {
        return Err(format!(
            "{} is missing (apt-get install -y chromium)",
            chromium.display()
        ));
    }
    let node = PathBuf::from("node");
    match Command::new(&node).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => return Err("node is not on PATH (apt-get install -y nodejs npm)".into()),
    }
    let module = browser_dir().join("node_modules/playwright-core/package.json");
    if !module.exists() {
        return Err(format!(
            "{} is missing (run `npm ci` in tests/browser)",
            module.display()
        ));
    }
    Ok(Tools { node, chromium })
}

/// Where the screenshots go: `HATANG_BROWSER_ARTIFACTS`, else `browser-artifacts/` in the
/// target directory this test was built in.
fn artifacts() -> PathBuf {
    if let Some(dir) = std::env::var_os("HATANG_BROWSER_ARTIFACTS") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/e2e-<hash> → target/
    exe.ancestors()
        .nth(3)
        .expect("target dir")
        .join("browser-artifacts")
}

#[test]
fn the_web_ui_in_headless_chromium_shows_the_apis_figures() {
    let tools = match tools() {
        Ok(t) => t,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("CI is set, and the browser test cannot run: {why}")
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };

    let mut collector = Collector::new();
    let file = testdata("units-phu-tho-2025.csv");
    let tree = units(&file);
    run_ok(collector.cli(&["units", "import"]).arg(&file));
    let config = format!(
        "figures_cache_secs = 0\nutc_offset = \"{OFFSET}\"\n\n[[services]]\nname = \"collector\"\n\
         target = \"http://{}/healthz\"\ninterval_secs = 60\ntimeout_secs = 5\n",
        collector.addr
    );
    collector.start_configured(&config, |c| {
        get(&c.addr, "/healthz").is_ok_and(|(status, _)| status == 200)
    });

    // Two workstations in the commune, one in a department, one server in the data centre.
    let placed = [
        (
            COMMUNE_UNIT,
            "commune",
            "workstation",
            "e2e-browser-commune-1",
        ),
        (
            COMMUNE_UNIT,
            "commune",
            "workstation",
            "e2e-browser-commune-2",
        ),
        (
            PROVINCE_UNIT,
            "province",
            "workstation",
            "e2e-browser-province",
        ),
        (DATACENTRE_UNIT, "province", "server", "e2e-browser-server"),
    ];
    for (unit, level, role, machine) in placed {
        assert_eq!(tree[unit].0, level, "fixture: {unit} is a {level} unit");
        let token = collector.token(&["--unit", unit, "--role", role]);
        let agent = Agent::new(machine);
        agent.enroll(&collector, &token);
        agent.once();
    }
    let viewer = collector.token(&["--role", "viewer"]);

    let artifacts = artifacts();
    let output = Command::new(&tools.node)
        .arg("ui.mjs")
        .current_dir(browser_dir())
        .env("HATANG_URL", collector.url())
        .env("HATANG_TOKEN", &viewer)
        .env("HATANG_UNIT", COMMUNE_UNIT)
        .env("HATANG_UTC_OFFSET", OFFSET)
        .env("HATANG_ARTIFACTS", &artifacts)
        .env("HATANG_CHROMIUM", &tools.chromium)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser checks failed ({}):\n{stdout}\n{stderr}\ncollector log:\n{}",
        output.status,
        collector.log()
    );
    println!("{stdout}");
    eprintln!("browser screenshots: {}", artifacts.display());
}
