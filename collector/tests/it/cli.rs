//! The command-line actions (`units import`, `token create`, `coverage`) as library calls, and
//! which of them may create a database, through the binary.

use std::path::PathBuf;

use axum::http::StatusCode;
use hatang_collector::commands::{self, Format};

use crate::support::{Harness, TREE_2, TREE_3, report};

impl Harness {
    /// Writes `csv` to a file in the test's directory and runs `units import` on it.
    async fn units_import(&self, name: &str, csv: &str) -> anyhow::Result<String> {
        let path: PathBuf = self.dir.path().join(name);
        std::fs::write(&path, csv).unwrap();
        let mut out = Vec::new();
        commands::units_import(self.store(), Some(self.config()), &path, &mut out).await?;
        Ok(String::from_utf8(out).unwrap())
    }

    async fn token_create(&self, unit: Option<&str>, role: Option<&str>) -> anyhow::Result<String> {
        let mut out = Vec::new();
        let request = hatang_collector::tokens::TokenRequest {
            unit: unit.map(str::to_string),
            role: role.map(str::to_string),
            ..Default::default()
        };
        commands::token_create(self.store(), &request, &mut out).await?;
        Ok(String::from_utf8(out).unwrap())
    }

    async fn coverage(&self, level: Option<&str>, format: Format) -> anyhow::Result<String> {
        let mut out = Vec::new();
        commands::coverage(self.store(), self.config(), level, format, &mut out).await?;
        Ok(String::from_utf8(out).unwrap())
    }
}

#[tokio::test]
async fn units_import_reports_what_changed() {
    let h = Harness::empty().await;
    let out = h.units_import("a.csv", TREE_3).await.unwrap();
    let file = h.dir.path().join("a.csv");
    assert_eq!(
        out,
        format!(
            "imported 5 units from {}: 5 added, 0 updated, 0 unchanged, 0 retired\n",
            file.display()
        )
    );
    let out = h.units_import("b.csv", TREE_2).await.unwrap();
    assert!(
        out.ends_with(": 1 added, 2 updated, 2 unchanged, 1 retired\n"),
        "{out}"
    );

    let mut list = Vec::new();
    commands::units_list(h.store(), &mut list).await.unwrap();
    assert_eq!(
        String::from_utf8(list).unwrap(),
        "17 Tỉnh Hoà Bình [province] staff 0\n  \
         17-SYT Sở Y tế [province] staff 4\n  \
         4351 Phường Tân Hòa [commune] staff 3\n  \
         4352 Xã Hòa Bình [commune] staff 5\n  \
         4360 Xã Tân Lạc [commune] staff 7\n"
    );
}

#[tokio::test]
async fn a_bad_unit_file_changes_nothing() {
    let h = Harness::with_tree(TREE_3).await;
    let tree = h.store().units().await.unwrap();
    let head = "code,name,level,parent_code,staff\n17,Tỉnh,province,,0\n";
    let cases = [
        ("unknown parent", format!("{head}1,A,commune,99,4\n")),
        ("cycle", format!("{head}a,A,commune,b,1\nb,B,commune,a,1\n")),
        (
            "duplicate code",
            format!("{head}1,A,commune,17,4\n1,B,commune,17,4\n"),
        ),
        ("negative staff", format!("{head}1,A,commune,17,-4\n")),
        ("non-numeric staff", format!("{head}1,A,commune,17,bốn\n")),
        (
            "wrong header",
            "code,name,tier,parent_code,staff\n17,P,province,,0\n".to_string(),
        ),
        (
            "header only",
            "code,name,level,parent_code,staff\n".to_string(),
        ),
    ];
    for (why, csv) in cases {
        let err = h
            .units_import("bad.csv", &csv)
            .await
            .expect_err(why)
            .to_string();
        assert!(err.ends_with("; nothing was imported"), "{why}: {err}");
        assert!(err.contains("bad.csv"), "{why}: {err}");
        assert_eq!(h.store().units().await.unwrap(), tree, "{why}");
    }
}

#[tokio::test]
async fn a_missing_unit_file_is_an_error() {
    let h = Harness::with_tree(TREE_3).await;
    let mut out = Vec::new();
    let err = commands::units_import(
        h.store(),
        Some(h.config()),
        &h.dir.path().join("none.csv"),
        &mut out,
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").starts_with("cannot open "), "{err:#}");
    assert!(out.is_empty());
}

#[tokio::test]
async fn token_create_for_a_unit_prints_one_enrolment_token() {
    let h = Harness::with_tree(TREE_3).await;
    let out = h.token_create(Some("4351"), None).await.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].starts_with("hte_") && lines[0].len() == 4 + 64,
        "{out}"
    );
    let enrolled = h.enroll(lines[0], "m").await.json(StatusCode::CREATED);
    assert_eq!(
        (&enrolled["unit"], &enrolled["role"]),
        (&"4351".into(), &"workstation".into())
    );

    let server = h
        .token_create(Some("17-SYT"), Some("server"))
        .await
        .unwrap();
    let enrolled = h
        .enroll(server.trim_end(), "s")
        .await
        .json(StatusCode::CREATED);
    assert_eq!(enrolled["role"], "server");
}

#[tokio::test]
async fn token_create_for_the_api_prints_a_viewer_or_admin_token() {
    let h = Harness::with_tree(TREE_3).await;
    for role in ["viewer", "admin"] {
        let out = h.token_create(None, Some(role)).await.unwrap();
        let token = out.trim_end();
        assert!(token.starts_with("htu_") && !token.contains('\n'), "{out}");
        let reply = h.get("/api/v1/units", Some(token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{role}");
    }
}

#[tokio::test]
async fn token_create_refuses_what_it_cannot_make() {
    let h = Harness::with_tree(TREE_3).await;
    let cases = [
        (None, None, "say what the token is for"),
        (
            Some("4351"),
            Some("viewer"),
            "must be workstation or server",
        ),
        (None, Some("server"), "must be viewer or admin"),
        (Some("9999"), None, "unit 9999 is not in the current tree"),
    ];
    for (unit, role, expected) in cases {
        let err = h.token_create(unit, role).await.unwrap_err().to_string();
        assert!(err.contains(expected), "{unit:?} {role:?}: {err}");
    }
    h.import(TREE_2).await;
    let err = h.token_create(Some("148"), None).await.unwrap_err();
    assert!(err.to_string().contains("not in the current tree"), "{err}");
}

/// One workstation reporting in commune 4351 of [`TREE_3`].
async fn one_equipped_commune() -> Harness {
    let h = Harness::with_tree(TREE_3).await;
    let agent = h.enrolled(&h.enrol_token("4351", None).await, "m").await;
    h.report(&agent.key, &report())
        .await
        .json(StatusCode::ACCEPTED);
    h
}

#[tokio::test]
async fn coverage_as_csv() {
    let h = one_equipped_commune().await;
    assert_eq!(
        h.coverage(Some("commune"), Format::Csv).await.unwrap(),
        "\u{feff}level,code,name,parent_code,staff,active_workstations,equipped_staff,equipment_ratio,target_ratio,lan,broadband,scope,units\n\
         commune,,,,8,,1,0.1250,0.8800,1,0,level,2\n\
         commune,4351,Phường Tân Hòa,148,3,1,1,0.3333,0.8800,1,0,unit,1\n\
         commune,4352,Xã Hòa Bình,148,5,0,0,0.0000,0.8800,0,0,unit,1\n"
    );
    let all = h.coverage(None, Format::Csv).await.unwrap();
    assert_eq!(
        all.lines().count(),
        1 + 3 + 5,
        "a header, three levels, five units"
    );
}

#[tokio::test]
async fn coverage_as_json() {
    let h = one_equipped_commune().await;
    let doc: serde_json::Value =
        serde_json::from_str(&h.coverage(None, Format::Json).await.unwrap()).unwrap();
    let levels: Vec<(&str, f64)> = doc["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["level"].as_str().unwrap(),
                l["equipment_ratio"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        levels,
        [("province", 0.0), ("district", 0.0), ("commune", 0.125)]
    );
    assert_eq!(doc["units"].as_array().unwrap().len(), 5);
    let commune: serde_json::Value =
        serde_json::from_str(&h.coverage(Some("commune"), Format::Json).await.unwrap()).unwrap();
    assert_eq!(commune["levels"][0]["staff"], 8);
    assert_eq!(commune["levels"][0]["equipped_staff"], 1);
    assert_eq!(commune["units"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn coverage_as_a_table_and_for_an_unknown_level() {
    let h = one_equipped_commune().await;
    let table = h.coverage(None, Format::Table).await.unwrap();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["LEVEL", "UNITS", "STAFF", "EQUIPPED", "RATIO", "TARGET"],
            vec!["province", "1", "4", "0", "0.0%", "98.0%"],
            vec!["district", "1", "10", "0", "0.0%", "91.0%"],
            vec!["commune", "2", "8", "1", "12.5%", "88.0%"],
        ]
    );
    let err = h.coverage(Some("ward"), Format::Table).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "no level \"ward\" in the unit tree (levels: province, district, commune)"
    );
}

/// A reorganisation imported while `serve` is not running (so nobody took today's snapshot)
/// still leaves today's figures as they stood under the old tree.
#[tokio::test]
async fn an_import_keeps_todays_figures_under_the_tree_it_replaces() {
    use hatang_collector::history;

    let h = Harness::empty().await;
    let today = time::OffsetDateTime::now_utc()
        .to_offset(h.config().utc_offset)
        .date();
    h.units_import("a.csv", TREE_3).await.unwrap();
    assert!(
        history::figures_at(h.store(), today)
            .await
            .unwrap()
            .is_err(),
        "no tree before the first import: nothing to keep, the date stays free"
    );
    h.units_import("b.csv", TREE_2).await.unwrap();
    let kept = history::figures_at(h.store(), today)
        .await
        .unwrap()
        .expect("today's snapshot, taken before the reorganisation");
    let levels: Vec<&str> = kept.levels.iter().map(|l| l.level.as_str()).collect();
    assert_eq!(levels, ["province", "district", "commune"]);
    assert!(kept.units.iter().any(|u| u.code == "148"));
}

#[tokio::test]
async fn units_import_without_the_serve_config_keeps_no_snapshot() {
    // With the serve configuration the import first keeps today's figures under the old tree;
    // without one it does not, rather than write a permanent snapshot with default targets.
    for (config, kept) in [(false, false), (true, true)] {
        let h = Harness::with_tree(TREE_3).await;
        let today = hatang_collector::history::format_date(hatang_collector::history::date_of(
            hatang_collector::now(),
            h.config().utc_offset,
        ));
        let path = h.dir.path().join("b.csv");
        std::fs::write(&path, TREE_2).unwrap();
        let mut out = Vec::new();
        commands::units_import(h.store(), config.then_some(h.config()), &path, &mut out)
            .await
            .unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .starts_with("imported 5 units")
        );
        let snapshot = h.store().snapshot(&today).await.unwrap();
        assert_eq!(snapshot.is_some(), kept, "with the serve config: {config}");
    }
}

/// Runs `hatang-collector ARGS` in `dir`, without the caller's `HATANG_*` settings.
fn collector(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hatang-collector"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HATANG_") {
            cmd.env_remove(name);
        }
    }
    cmd.args(args).current_dir(dir).output().unwrap()
}

/// The one line a refused command wrote to stderr; it must have failed and said one line only.
fn refused_in_one_line(args: &[&str], out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let [line] = lines[..] else {
        panic!("{args:?}: one line, not {stderr}")
    };
    line.to_string()
}

/// The files in `dir`, by name.
fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `coverage` without `--level` leaves the units out of the table only: CSV and JSON carry
/// them, and its help says so.
#[test]
fn coverage_help_says_which_formats_list_the_units() {
    let dir = tempfile::tempdir().unwrap();
    let out = collector(dir.path(), &["coverage", "--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("per level and unit (the table lists units only with --level)"),
        "{help}"
    );
}

/// What the README says of `units import` is in its `--help` too: the optional `merged_into`
/// column and what `--config` changes.
#[test]
fn units_import_help_names_the_merged_into_column_and_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let out = collector(dir.path(), &["units", "import", "--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8(out.stdout).unwrap();
    for words in ["merged_into", "OLD,,,,,NEW", "--config", "snapshot"] {
        assert!(help.contains(words), "{words:?} missing from:\n{help}");
    }
}

#[test]
fn commands_that_read_refuse_a_missing_database_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("hatang-typo.db");
    let url = format!("sqlite://{}", typo.display());
    let default = dir.path().join("hatang.db");
    for command in [
        &["units", "list"][..],
        &["token", "list"],
        &["token", "revoke", "0123456789ab"],
        &["agent", "list"],
        &["agent", "revoke", "a-1"],
        &["coverage"],
        &["coverage", "--at", "2026-01-01"],
        &["snapshot"],
    ] {
        // Named by --database, and the default sqlite://hatang.db in the working directory.
        for (database, path) in [(Some(&url), &typo), (None, &default)] {
            let mut args = command.to_vec();
            if let Some(url) = database {
                args.extend(["--database", url]);
            }
            let line = refused_in_one_line(&args, &collector(dir.path(), &args));
            assert!(
                line.starts_with("hatang-collector: no database at ")
                    && line.contains(&path.display().to_string())
                    && line.contains("units import"),
                "{args:?}: {line}"
            );
            assert_eq!(files(dir.path()), Vec::<String>::new(), "{args:?}");
        }
    }
}

#[test]
fn commands_that_set_a_database_up_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("units.csv");
    std::fs::write(&csv, TREE_3).unwrap();
    let csv = csv.display().to_string();
    for (name, command) in [
        ("import.db", &["units", "import", csv.as_str()][..]),
        ("token.db", &["token", "create", "--role", "viewer"]),
        ("migrate.db", &["migrate"]),
    ] {
        let url = format!("sqlite://{}", dir.path().join(name).display());
        let mut args = command.to_vec();
        args.extend(["--database", &url]);
        let out = collector(dir.path(), &args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A command that reads takes what was created.
        let out = collector(dir.path(), &["token", "list", "--database", &url]);
        assert!(out.status.success(), "{name}: {out:?}");
        let listed = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            listed.contains("viewer"),
            name == "token.db",
            "{name}: {listed}"
        );
    }
}

/// A name the operator typed with a line break in it (a paste from a spreadsheet cell) is
/// quoted in the reason escaped: the reason stays the one line scripts and logs expect.
#[test]
fn a_reason_that_quotes_a_line_break_stays_one_line() {
    let dir = tempfile::tempdir().unwrap();
    assert!(collector(dir.path(), &["migrate"]).status.success());
    for (args, reason) in [
        (
            &["agent", "revoke", "a-1\nrm -rf /"][..],
            "hatang-collector: no agent a-1\\nrm -rf / (see",
        ),
        (
            &["token", "create", "--unit", "17\n18"],
            "hatang-collector: unit 17\\n18 is not in the current tree",
        ),
    ] {
        let line = refused_in_one_line(args, &collector(dir.path(), args));
        assert!(line.starts_with(reason), "{args:?}: {line}");
    }
}

/// A database URL naming a directory: the driver's reason is said once. sqlx's error repeats
/// its driver's message as its cause, and the reason said it twice.
#[test]
fn a_database_that_cannot_be_opened_is_refused_with_the_reason_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().display());
    let args = ["migrate", "--database", &url];
    let line = refused_in_one_line(&args, &collector(dir.path(), &args));
    assert!(
        line.starts_with("hatang-collector: cannot open database "),
        "{line}"
    );
    assert_eq!(
        line.matches("unable to open database file").count(),
        1,
        "{line}"
    );
}

/// `serve` on a database file its account may only read (left owned by root after a restore,
/// say) refuses to start, naming the file: it used to start, answer /readyz, and fail every
/// report and enrolment.
#[cfg(unix)]
#[test]
fn serve_refuses_a_database_file_it_cannot_write() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hatang.db");
    let url = format!("sqlite://{}", file.display());
    let out = collector(dir.path(), &["migrate", "--database", &url]);
    assert!(out.status.success(), "{out:?}");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hatang-collector"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--database", &url])
        .env_remove("HATANG_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // Root writes whatever the permissions say: the collector then runs as nobody, as a
    // service account that does not own the file.
    if std::fs::metadata(dir.path()).unwrap().uid() == 0 {
        std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
        cmd.uid(65534).gid(65534);
    } else {
        std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o555)).unwrap();
    }
    for name in files(dir.path()) {
        std::fs::set_permissions(dir.path().join(name), PermissionsExt::from_mode(0o444)).unwrap();
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("serve started on a database it cannot write");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said).unwrap();
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
    assert!(!status.success());
    let line = said.lines().last().unwrap_or_default();
    assert!(line.contains(&file.display().to_string()), "{said}");
    assert!(line.contains("cannot write"), "{said}");
}
