//! `hatang-agent run`: a report every interval, the inventory only when due, a clean stop.

use std::process::Stdio;
use std::time::Duration;

use crate::support::{FakeCollector, agent, enrol, spool_files, wait_until};

#[tokio::test]
async fn reports_every_interval_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeCollector::start([202]).await;
    enrol(dir.path(), &server.url);
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "interval_secs = 5\n").unwrap();

    let child = agent(dir.path())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(15), "two reports arrived", || {
        server.received().len() >= 2
    })
    .await;
    let pid = child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = tokio::time::timeout(Duration::from_secs(5), child.wait_with_output())
        .await
        .expect("the agent stopped within 5 s of SIGTERM")
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(stderr.contains("agent stopped"), "{stderr}");
    let reports: Vec<_> = server.received().iter().map(|r| r.report()).collect();
    assert!(reports.iter().all(|r| r.interval_secs == 5));
    assert!(reports.iter().all(|r| r.sample.is_some()));
    assert!(reports[0].inventory.is_some(), "the first report");
    assert!(reports[1].inventory.is_none(), "an unchanged inventory");
    assert!(reports.windows(2).all(|w| w[0].report_id < w[1].report_id));
    assert_eq!(spool_files(&dir.path().join("spool")), 0);
}
