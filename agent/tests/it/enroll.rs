//! `hatang-agent enroll` against the fake collector's `/api/v1/enroll`.

use hatang_agent::state::{self, Enrolment};
use serde_json::json;

use crate::support::{Answer, FakeCollector, agent, run};

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
