//! `hatang-agent run`: a report every interval, the inventory only when due, a clean stop.

use std::time::Duration;

use crate::support::{Answer, FakeCollector, enrol, running, spool_files, wait_until};

#[tokio::test]
async fn reports_every_interval_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeCollector::start([202]).await;
    enrol(dir.path(), &server.url);
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "interval_secs = 5\n").unwrap();

    let child = running(dir.path(), &config);
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

#[tokio::test]
async fn a_refused_key_is_replaced_by_an_enrolment_made_while_running() {
    let dir = tempfile::tempdir().unwrap();
    // The collector refuses the first report; whatever comes later it takes.
    let server = FakeCollector::start([401, 202]).await;
    enrol(dir.path(), &server.url);
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "interval_secs = 5\n").unwrap();
    let mut child = running(dir.path(), &config);
    wait_until(
        Duration::from_secs(15),
        "the first report was refused",
        || !server.received().is_empty(),
    )
    .await;
    // An operator enrols the machine again, as `hatang-agent enroll` would.
    let mut again = hatang_agent::state::load(dir.path()).unwrap();
    again.agent_key = "hta_enrolled_again".into();
    hatang_agent::state::save(dir.path(), &again).unwrap();
    wait_until(
        Duration::from_secs(30),
        "a report sent with the new key",
        || {
            server
                .received()
                .iter()
                .any(|r| r.header("authorization") == Some("Bearer hta_enrolled_again"))
        },
    )
    .await;
    child.kill().await.unwrap();
    let keys: Vec<Option<String>> = server
        .received()
        .iter()
        .map(|r| r.header("authorization").map(str::to_owned))
        .collect();
    let old = format!("Bearer {}", crate::support::AGENT_KEY);
    assert_eq!(keys[0].as_deref(), Some(old.as_str()), "{keys:?}");
    assert!(
        keys[1..]
            .iter()
            .all(|k| k.as_deref() == Some("Bearer hta_enrolled_again")),
        "after the new enrolment only the new key: {keys:?}"
    );
}

#[tokio::test]
async fn a_retry_after_delays_the_next_attempt_while_reports_are_spooled() {
    const INTERVAL_SECS: u64 = 5;
    const ASKED_SECS: u64 = 12;
    let dir = tempfile::tempdir().unwrap();
    let server = FakeCollector::answering(vec![
        Answer::status(429).retry_after(ASKED_SECS),
        Answer::status(202),
    ])
    .await;
    server.watch_spool(&dir.path().join("spool"));
    enrol(dir.path(), &server.url);
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, format!("interval_secs = {INTERVAL_SECS}\n")).unwrap();

    let mut child = running(dir.path(), &config);
    wait_until(Duration::from_secs(30), "a second delivery attempt", || {
        server.received().len() >= 2
    })
    .await;
    child.start_kill().unwrap();
    let output = child.wait_with_output().await.unwrap();

    let received = server.received();
    let gap = received[1].at - received[0].at;
    assert!(
        gap >= Duration::from_secs(ASKED_SECS),
        "tried again {gap:?} after being asked to wait {ASKED_SECS} s"
    );
    // Collecting went on meanwhile: each cycle waited through spooled its report.
    let spooled = received[1].spooled.unwrap();
    assert!(
        spooled > usize::try_from(ASKED_SECS / INTERVAL_SECS).unwrap(),
        "{spooled} report(s) spooled when sending resumed"
    );
    assert!(received[1].delivered());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let asked: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("asked to wait"))
        .collect();
    assert_eq!(asked.len(), 1, "said once: {stderr}");
    assert!(
        asked[0].contains(&format!("retry_after_secs={ASKED_SECS}")),
        "{}",
        asked[0]
    );
}
