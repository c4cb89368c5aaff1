//! `POST /api/v1/enroll`: tokens in, agent keys out; one record per machine.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{Harness, TREE_2, TREE_3, report};

#[tokio::test]
async fn a_valid_token_enrols_a_machine_into_its_unit() {
    let h = Harness::with_tree(TREE_3).await;
    let token = h.enrol_token("4351", Some("server")).await;
    let body = h.enroll(&token, "m-1").await.json(StatusCode::CREATED);
    let id = body["agent_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{body}");
    let key = body["agent_key"].as_str().unwrap();
    assert!(key.starts_with("hta_") && key.len() == 4 + 64, "{body}");
    assert_eq!(body["unit"], "4351");
    assert_eq!(body["role"], "server");

    let agents = h.store().agents().await.unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(
        (
            agents[0].id.as_str(),
            agents[0].machine_id.as_str(),
            agents[0].unit_code.as_str(),
            agents[0].role.as_str(),
            agents[0].hostname.as_str()
        ),
        (id, "m-1", "4351", "server", "host-m-1")
    );
    // the key it got is the key that reports
    h.report(key, &report()).await.json(StatusCode::ACCEPTED);
}

#[tokio::test]
async fn one_token_enrols_many_machines() {
    let h = Harness::with_tree(TREE_3).await;
    let token = h.enrol_token("148", None).await;
    let a = h.enrolled(&token, "m-a").await;
    let b = h.enrolled(&token, "m-b").await;
    assert_ne!(a.id, b.id);
    assert_ne!(a.key, b.key);
    assert_eq!(h.store().agents().await.unwrap().len(), 2);
}

#[tokio::test]
async fn an_unknown_token_is_401_with_a_json_error() {
    let h = Harness::with_tree(TREE_3).await;
    let unknown = hatang_collector::secret::generate(hatang_collector::secret::Kind::Enrol)
        .unwrap()
        .plain;
    let message = h
        .enroll(&unknown, "m-1")
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(message, "unknown enrolment token");
    assert!(h.store().agents().await.unwrap().is_empty());
    let m = h.metrics().await;
    assert_eq!(
        m.value("hatang_enrolments_total", &[("outcome", "refused")]),
        1.0
    );
    assert_eq!(
        m.value("hatang_enrolments_total", &[("outcome", "enrolled")]),
        0.0
    );
}

#[tokio::test]
async fn a_token_of_another_kind_is_401_and_says_which_kind_is_needed() {
    let h = Harness::with_tree(TREE_3).await;
    let api = h.api_token("admin").await;
    for token in [api.as_str(), "hta_0123", "not-a-token", ""] {
        let message = h
            .enroll(token, "m-1")
            .await
            .error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(message.contains("hte_"), "{message}");
    }
    assert!(h.store().agents().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_machine_id_is_400() {
    let h = Harness::with_tree(TREE_3).await;
    let token = h.enrol_token("148", None).await;
    let message = h
        .enroll_raw(&format!(r#"{{"token": "{token}", "hostname": "pc"}}"#))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_json");
    assert!(message.contains("machine_id"), "{message}");
    for blank in ["", "   "] {
        let message = h
            .enroll(&token, blank)
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_enrolment");
        assert_eq!(message, "machine_id is empty");
    }
    let message = h
        .enroll(&token, "has space")
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_enrolment");
    assert!(message.starts_with("machine_id "), "{message}");
    assert!(h.store().agents().await.unwrap().is_empty());
}

#[tokio::test]
async fn malformed_json_is_400() {
    let h = Harness::with_tree(TREE_3).await;
    for body in [
        "{",
        "",
        "[]",
        r#"{"token": 5, "machine_id": "m", "hostname": "h"}"#,
    ] {
        let message = h
            .enroll_raw(body)
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_json");
        assert!(message.starts_with("request body: "), "{message}");
    }
}

#[tokio::test]
async fn reenrolling_a_machine_keeps_its_id_and_retires_its_old_key() {
    let h = Harness::with_tree(TREE_3).await;
    let token = h.enrol_token("4351", None).await;
    let first = h.enrolled(&token, "m-1").await;
    h.report(&first.key, &report())
        .await
        .json(StatusCode::ACCEPTED);

    let second = h.enrolled(&token, "m-1").await;
    assert_eq!(second.id, first.id);
    assert_ne!(second.key, first.key);
    assert_eq!(h.store().agents().await.unwrap().len(), 1);

    h.report(&second.key, &report())
        .await
        .json(StatusCode::ACCEPTED);
    let message = h
        .report(&first.key, &report())
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(message.contains("enrol this machine again"), "{message}");
    assert_eq!(h.store().report_count(Some(&first.id)).await.unwrap(), 2);
    assert_eq!(
        h.metrics()
            .await
            .value("hatang_enrolments_total", &[("outcome", "reenrolled")]),
        1.0
    );
}

#[tokio::test]
async fn reenrolling_with_another_units_token_moves_the_agent() {
    let h = Harness::with_tree(TREE_3).await;
    let first = h.enrolled(&h.enrol_token("4351", None).await, "m-1").await;
    let second = h
        .enrolled(&h.enrol_token("17-SYT", Some("server")).await, "m-1")
        .await;
    assert_eq!(first.id, second.id);
    let agents = h.store().agents().await.unwrap();
    assert_eq!(
        (agents[0].unit_code.as_str(), agents[0].role.as_str()),
        ("17-SYT", "server")
    );
}

#[tokio::test]
async fn a_token_of_a_retired_unit_is_403_unit_retired() {
    let h = Harness::with_tree(TREE_3).await;
    let token = h.enrol_token("148", None).await;
    h.import(TREE_2).await; // the district is gone
    let message = h
        .enroll(&token, "m-1")
        .await
        .error(StatusCode::FORBIDDEN, "unit_retired");
    assert!(message.contains("no longer in the unit tree"), "{message}");
    assert!(h.store().agents().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_expired_enrolment_token_is_403_token_expired() {
    let h = Harness::with_tree(TREE_3).await;
    let token = hatang_collector::secret::generate(hatang_collector::secret::Kind::Enrol).unwrap();
    let now = hatang_collector::now();
    h.store()
        .create_enrol_token(
            &token.digest,
            "4351",
            hatang_collector::figures::Role::Workstation,
            now - 7200,
            Some(now - 1),
            None,
        )
        .await
        .unwrap();
    h.enroll(&token.plain, "m-1")
        .await
        .error(StatusCode::FORBIDDEN, "token_expired");
    assert!(h.store().agents().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_enrolment_body_over_64_kib_is_413_json() {
    let h = Harness::with_tree(TREE_3).await;
    let token = h.enrol_token("4351", None).await;
    let mut body = json!({"token": token, "machine_id": "m", "hostname": "h"}).to_string();
    body.push_str(&" ".repeat(64 * 1024));
    h.enroll_raw(&body)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    assert!(h.store().agents().await.unwrap().is_empty());
}
