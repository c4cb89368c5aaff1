//! The command line itself: help and refusing bad configuration.

use crate::support::{agent, run};

#[tokio::test]
async fn help_lists_the_commands() {
    let dir = tempfile::tempdir().unwrap();

    let out = run(agent(dir.path()).arg("--help")).await;

    assert!(out.success, "{out:?}");
    for command in ["enroll", "run", "once", "check"] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(command)),
            "{command} missing from:\n{}",
            out.stdout
        );
    }
}

#[tokio::test]
async fn an_unknown_config_key_is_named_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "interval_secs = 30\nintervall_secs = 30\n").unwrap();

    let out = run(agent(dir.path())
        .args(["once", "--print", "--config"])
        .arg(&config))
    .await;

    assert!(!out.success, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    let line = out.error_line();
    assert!(
        line.contains("unknown field `intervall_secs`") && line.contains("agent.toml"),
        "{line}"
    );
}

/// A state directory that is a file: the reason is said once. It was said twice, as part of
/// the message and again as its cause ("…: Not a directory (os error 20): Not a directory").
#[cfg(unix)]
#[tokio::test]
async fn a_state_directory_that_is_a_file_is_refused_with_its_reason_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state");
    std::fs::write(&file, "").unwrap();

    let out = run(agent(&file).arg("once")).await;

    assert!(!out.success, "{out:?}");
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    let line = out.error_line();
    assert_eq!(line.matches("Not a directory").count(), 1, "{line}");
}
