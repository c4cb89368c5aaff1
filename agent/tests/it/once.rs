//! `hatang-agent once`: print, refuse without enrolment, keep and resend.

use hatang_protocol::Report;

#[cfg(target_os = "linux")]
use crate::support::printed_report;
use crate::support::{AGENT_KEY, FakeCollector, agent, enrol, run, spool_files};

#[tokio::test]
async fn print_writes_one_valid_report_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();

    let out = run(agent(dir.path()).args(["once", "--print"])).await;

    assert!(out.success, "{out:?}");
    let report: Report = serde_json::from_str(&out.stdout).unwrap();
    report.validate(&Default::default()).unwrap();
    let inventory = report.inventory.expect("an inventory");
    assert!(!inventory.hostname.is_empty());
    assert!(report.sample.is_some());
    assert_eq!(report.interval_secs, 60);
    assert!(!dir.path().join("spool").exists(), "--print spooled");
}

#[tokio::test]
async fn without_enrolment_it_says_how_to_enrol() {
    let dir = tempfile::tempdir().unwrap();

    let out = run(agent(dir.path()).arg("once")).await;

    assert!(!out.success, "{out:?}");
    assert!(out.error_line().contains("hatang-agent enroll"), "{out:?}");
    assert_eq!(spool_files(&dir.path().join("spool")), 0);
}

#[tokio::test]
async fn a_report_the_collector_could_not_take_goes_with_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeCollector::start([503, 202]).await;
    enrol(dir.path(), &server.url);

    let first = run(agent(dir.path()).arg("once")).await;

    assert!(!first.success, "{first:?}");
    let line = first.error_line();
    assert!(line.contains("kept") && line.contains("503"), "{line}");
    assert_eq!(spool_files(&dir.path().join("spool")), 1);

    let second = run(agent(dir.path()).arg("once")).await;

    assert!(second.success, "{second:?}");
    assert!(second.stdout.contains("sent 2 report(s)"), "{second:?}");
    assert_eq!(spool_files(&dir.path().join("spool")), 0);
    let ids = server.report_ids();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], ids[1], "the kept report is resent first");
    assert!(ids[1] < ids[2], "oldest first");
    assert_eq!(server.deliveries(), [(ids[1], 1), (ids[2], 1)]);
    let bearer = format!("Bearer {AGENT_KEY}");
    assert!(
        server
            .received()
            .iter()
            .all(|r| r.header("authorization") == Some(bearer.as_str()))
    );
}

// dpkg and /sys: the Linux collection. The Windows agent reports these lists empty.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn print_shows_the_device_fields_and_the_software_switch() {
    let dir = tempfile::tempdir().unwrap();

    let out = run(agent(dir.path()).args(["once", "--print"])).await;

    assert!(out.success, "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let inventory = &json["inventory"];
    // Present even where this machine has none of the hardware (this VM has no DMI tables,
    // monitors or GPU): an empty list, not a missing field.
    for list in ["memory_modules", "monitors", "gpus"] {
        assert!(inventory[list].is_array(), "{list}: {inventory}");
    }
    assert!(inventory["form_factor"].is_string(), "{inventory}");
    assert!(inventory["software"].is_null(), "off by default");

    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "inventory_software = true\n").unwrap();
    let report = printed_report(dir.path(), &config).await;

    let software = report.inventory.unwrap().software;
    if std::path::Path::new("/var/lib/dpkg/status").exists() {
        let software = software.expect("a dpkg system lists its packages");
        assert!(software.iter().any(|s| s.name == "dpkg"), "{software:?}");
        assert!(software.windows(2).all(|w| w[0] <= w[1]), "sorted");
    } else {
        assert_eq!(software, None);
    }
}

/// A spool the agent cannot write (a state directory left to another account, a full disk)
/// fails with the spool's directory named: whoever reads the error knows where to look.
#[cfg(unix)]
#[tokio::test]
async fn a_spool_it_cannot_write_is_named() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let spool = state.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    enrol(&state, &crate::support::closed_port_url());
    let mut cmd = agent(&state);
    // Root writes whatever the permissions say: the agent then runs as nobody, owning the state
    // as a service account does.
    if std::fs::metadata(dir.path()).unwrap().uid() == 0 {
        for path in [&state, &state.join("agent.json"), &spool] {
            chown(path, Some(65534), Some(65534)).unwrap();
        }
        std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
        cmd.uid(65534).gid(65534);
    }
    std::fs::set_permissions(&spool, PermissionsExt::from_mode(0o555)).unwrap();

    let out = run(cmd.arg("once")).await;

    assert!(!out.success, "{out:?}");
    let line = out.error_line();
    assert!(line.contains(&spool.display().to_string()), "{line}");
    assert!(line.contains("Permission denied"), "{line}");
}
