//! `hatang-agent enroll` against the fake collector's `/api/v1/enroll`.

use hatang_agent::state::{self, Enrolment};
use serde_json::json;

use crate::support::{Answer, FakeCollector, agent, closed_port_url, enrol, run};

#[tokio::test]
async fn enrolment_stores_the_key_and_sends_the_machine_id() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let server = FakeCollector::answering(vec![Answer::json(
        201,
        json!({"agent_id": "a-17", "agent_key": "hta_enrolled_key", "unit": "17-SYT", "role": "server"}),
    )])
    .await;

    let out = run(agent(&state_dir)
        .env("HATANG_MACHINE_ID", "it-machine-enroll")
        .args(["enroll", "--collector", &format!("{}/", server.url)])
        .args(["--token", " hte_token \n"]))
    .await;

    assert!(out.success, "{out:?}");
    assert!(
        out.stdout
            .contains("enrolled as agent a-17 in unit 17-SYT (server)"),
        "{out:?}"
    );
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/api/v1/enroll");
    assert_eq!(received[0].body["token"], "hte_token");
    assert_eq!(received[0].body["machine_id"], "it-machine-enroll");
    assert!(!received[0].body["hostname"].as_str().unwrap().is_empty());

    let stored = state::load(&state_dir).unwrap();
    assert_eq!(
        stored,
        Enrolment {
            collector: server.url.clone(),
            agent_id: "a-17".into(),
            agent_key: "hta_enrolled_key".into(),
            unit: Some("17-SYT".into()),
            role: Some("server".into()),
            machine_id: Some("it-machine-enroll".into()),
            tls: Default::default(),
        }
    );
    assert!(!format!("{stored:?}").contains("hta_enrolled_key"));
    assert!(!out.stderr.contains("hta_enrolled_key"), "{}", out.stderr);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state_dir.join("agent.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn a_refused_enrolment_says_why_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeCollector::answering(vec![Answer::json(
        401,
        json!({"error": {"code": "unauthorized", "message": "enrolment token expired"}}),
    )])
    .await;

    let out = run(agent(dir.path())
        .args(["enroll", "--collector", &server.url])
        .args(["--token", "hte_old"]))
    .await;

    assert!(!out.success, "{out:?}");
    let line = out.error_line();
    assert!(line.contains("enrolment token expired"), "{line}");
    assert!(line.contains("401"), "{line}");
    assert_eq!(server.received().len(), 1);
    assert!(!dir.path().join("agent.json").exists());
}

#[cfg(target_os = "linux")]
fn enrolled_answer() -> Answer {
    Answer::json(
        201,
        json!({"agent_id": "a-1", "agent_key": "hta_k", "unit": "17-SYT", "role": "workstation"}),
    )
}

/// Enrols `state_dir` as a machine without `HATANG_MACHINE_ID` would be; the identity it sent.
#[cfg(target_os = "linux")]
async fn enrol_unpinned(state_dir: &std::path::Path) -> String {
    let server = FakeCollector::answering(vec![enrolled_answer()]).await;
    let out = run(agent(state_dir).env_remove("HATANG_MACHINE_ID").args([
        "enroll",
        "--collector",
        &server.url,
        "--token",
        "hte_t",
    ]))
    .await;
    assert!(out.success, "{out:?}");
    server.received()[0].body["machine_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// What the OS says this machine is, when it says anything.
#[cfg(target_os = "linux")]
fn os_machine_id() -> Option<String> {
    let id = std::fs::read_to_string("/etc/machine-id").ok()?;
    Some(id.trim().to_ascii_lowercase()).filter(|id| !id.is_empty())
}

// The Linux rule (/etc/machine-id and its hardware evidence); Windows's MachineGuid rule is
// shown by tests/it/windows.rs under Wine.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn without_a_pinned_id_the_identity_adds_hardware_and_is_stored() {
    let Some(os_id) = os_machine_id() else {
        eprintln!("skipped: no /etc/machine-id here");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sent = enrol_unpinned(dir.path()).await;

    // The machine id first; hardware evidence after it where this machine has any (this VM's
    // virtio card has a permanent address).
    assert!(sent.starts_with(&os_id), "{sent}");
    let hardware = sent.strip_prefix(&os_id).unwrap();
    if let Some(hardware) = hardware.strip_prefix('.') {
        let (kind, digits) = hardware.split_once('-').unwrap();
        assert!(["uuid", "serial", "mac"].contains(&kind), "{sent}");
        assert_eq!(digits.len(), 16, "{sent}");
    } else {
        assert_eq!(hardware, "", "{sent}");
    }
    let stored = state::load(dir.path()).unwrap();
    assert_eq!(stored.machine_id.as_deref(), Some(sent.as_str()));
}

// The Linux rule (/etc/machine-id and its hardware evidence); Windows's MachineGuid rule is
// shown by tests/it/windows.rs under Wine.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn an_agent_enrolled_before_the_hardware_rule_keeps_its_identity() {
    let Some(os_id) = os_machine_id() else {
        eprintln!("skipped: no /etc/machine-id here");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // agent.json as agents before the stored identity wrote it.
    std::fs::write(
        dir.path().join("agent.json"),
        r#"{"collector": "http://127.0.0.1:9", "agent_id": "a-1", "agent_key": "hta_old"}"#,
    )
    .unwrap();
    assert_eq!(enrol_unpinned(dir.path()).await, os_id);
    assert_eq!(
        state::load(dir.path()).unwrap().machine_id.as_deref(),
        Some(os_id.as_str()),
        "stored now, so the next enrolment keeps it too"
    );
}

#[tokio::test]
async fn check_fails_when_the_state_was_enrolled_as_another_machine() {
    let dir = tempfile::tempdir().unwrap();
    enrol(dir.path(), "http://127.0.0.1:9");

    let same = run(agent(dir.path()).arg("check")).await;
    let line = |out: &crate::support::Run| check_line(out, "identity");
    let identity = line(&same);
    assert!(
        identity.contains(" ok ") && identity.ends_with("machine id it-machine"),
        "{identity}"
    );

    // The same state directory on a clone whose identity differs.
    let clone = run(agent(dir.path())
        .env("HATANG_MACHINE_ID", "it-machine-clone")
        .arg("check"))
    .await;

    // (Both runs fail overall: no collector answers at port 9. The identity line is the point.)
    let identity = line(&clone);
    assert!(identity.contains("FAIL"), "{identity}");
    assert!(
        identity.contains("enrolled as it-machine: a cloned disk image or replaced hardware"),
        "{identity}"
    );
}

#[tokio::test]
async fn check_says_when_the_collector_refuses_the_key() {
    // /healthz answers whatever the key; only a request with the key tells a revoked one.
    let dir = tempfile::tempdir().unwrap();
    let server = FakeCollector::start([202]).await;
    enrol(dir.path(), &server.url);
    let key_line = |out: &crate::support::Run| check_line(out, "key");
    let accepted = run(agent(dir.path()).arg("check")).await;
    let line = key_line(&accepted);
    assert!(
        line.contains(" ok ") && line.contains("accepts this agent's key"),
        "{line}"
    );

    let mut revoked = state::load(dir.path()).unwrap();
    revoked.agent_key = "hta_revoked".into();
    state::save(dir.path(), &revoked).unwrap();
    let refused = run(agent(dir.path()).arg("check")).await;
    let line = key_line(&refused);
    assert!(line.contains("FAIL") && line.contains("refused"), "{line}");
    assert!(!refused.success, "{refused:?}");
}

/// The line of `check`'s output about `what`.
fn check_line(out: &crate::support::Run, what: &str) -> String {
    out.stdout
        .lines()
        .find(|l| l.starts_with(what))
        .unwrap_or_else(|| panic!("no {what} line: {out:?}"))
        .to_owned()
}

/// A collector URL with a password in it (a proxy's basic authentication) is stored, as it must
/// be to be used, but the log, errors and printed lines show `***` in its place: logs are read
/// by more people than the state directory.
#[tokio::test]
async fn a_password_in_the_collector_url_is_never_shown() {
    let with_password = |url: &str| url.replacen("http://", "http://hatang:s3cret-pw@", 1);
    let dir = tempfile::tempdir().unwrap();
    let server = FakeCollector::answering(vec![
        Answer::json(
            201,
            json!({"agent_id": "a-1", "agent_key": "hta_k", "unit": "17-SYT", "role": "workstation"}),
        ),
        Answer::json(202, json!({"status": "accepted"})),
    ])
    .await;
    let url = with_password(&server.url);
    let enrolled =
        run(agent(dir.path()).args(["enroll", "--collector", &url, "--token", "hte_t"])).await;
    assert!(enrolled.success, "{enrolled:?}");
    let sent = run(agent(dir.path()).arg("once")).await;
    assert!(sent.success, "{sent:?}");
    let checked = run(agent(dir.path()).arg("check")).await;
    let other = tempfile::tempdir().unwrap();
    let refused = run(agent(other.path()).args([
        "enroll",
        "--collector",
        &with_password(&closed_port_url()),
        "--token",
        "hte_t",
    ]))
    .await;
    assert!(!refused.success, "{refused:?}");
    assert!(refused.error_line().contains("hatang:***@"), "{refused:?}");
    for out in [&enrolled, &sent, &checked, &refused] {
        let shown = format!("{}{}", out.stdout, out.stderr);
        assert!(!shown.contains("s3cret-pw"), "{shown}");
    }
    assert_eq!(state::load(dir.path()).unwrap().collector, url);
}
