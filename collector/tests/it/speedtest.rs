//! The speed-test endpoints: exact sizes, random bytes, agent keys only, bounded.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use crate::support::{Agent, Harness, TREE_3, gzip};

async fn one_agent() -> (Harness, Agent) {
    let h = Harness::with_tree(TREE_3).await;
    let token = h.enrol_token("4351", None).await;
    let agent = h.enrolled(&token, "m-speed").await;
    (h, agent)
}

fn bearer(agent: &Agent) -> String {
    format!("Bearer {}", agent.key)
}

#[tokio::test]
async fn download_sends_exactly_the_bytes_asked_for_and_they_do_not_compress() {
    let (h, agent) = one_agent().await;
    for (query, expected) in [
        ("?bytes=0", 0),
        ("?bytes=1", 1),
        ("?bytes=100000", 100_000),
        ("", 4 << 20),
    ] {
        let reply = h
            .get(
                &format!("/api/v1/speedtest/download{query}"),
                Some(&agent.key),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{query}");
        assert_eq!(reply.body.len(), expected, "{query}");
        assert_eq!(
            reply.header(header::CONTENT_LENGTH),
            expected.to_string(),
            "{query}"
        );
        assert_eq!(
            reply.header(header::CONTENT_TYPE),
            "application/octet-stream"
        );
        if expected >= 100_000 {
            let packed = gzip(&reply.body).len();
            assert!(
                packed as f64 > expected as f64 * 0.99,
                "{expected} bytes gzip to {packed}: not random"
            );
        }
    }
}

#[tokio::test]
async fn download_refuses_more_than_the_cap_and_nonsense() {
    let (h, agent) = one_agent().await;
    let reply = h
        .get(
            &format!("/api/v1/speedtest/download?bytes={}", (32 << 20) + 1),
            Some(&agent.key),
        )
        .await;
    let message = reply.error(StatusCode::BAD_REQUEST, "too_many_bytes");
    assert!(message.contains("33554432"), "{message}");
    let reply = h
        .get("/api/v1/speedtest/download?bytes=lots", Some(&agent.key))
        .await;
    reply.error(StatusCode::BAD_REQUEST, "invalid_query");
}

#[tokio::test]
async fn both_endpoints_want_a_known_agent_key() {
    let (h, _agent) = one_agent().await;
    let viewer = h.api_token("viewer").await;
    for key in [None, Some("hta_not_a_key"), Some(viewer.as_str())] {
        let reply = h.get("/api/v1/speedtest/download?bytes=10", key).await;
        reply.error(StatusCode::UNAUTHORIZED, "unauthorized");
        let mut headers = Vec::new();
        let auth = key.map(|k| format!("Bearer {k}"));
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let reply = h
            .post("/api/v1/speedtest/upload", &headers, vec![0; 10])
            .await;
        reply.error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn upload_counts_what_arrived_beyond_the_usual_body_limit() {
    let (h, agent) = one_agent().await;
    let auth = bearer(&agent);
    for len in [0, 1, 3 << 20] {
        let reply = h
            .post(
                "/api/v1/speedtest/upload",
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/octet-stream"),
                ],
                vec![7; len],
            )
            .await;
        let body = reply.json(StatusCode::OK);
        assert_eq!(body["bytes"], len, "{body}");
        let seconds = body["seconds"].as_f64().unwrap();
        assert!((0.0..5.0).contains(&seconds), "{body}");
    }
}

#[tokio::test]
async fn upload_refuses_more_than_the_cap() {
    let (h, agent) = one_agent().await;
    let request = Request::post("/api/v1/speedtest/upload")
        .header("authorization", bearer(&agent))
        .body(Body::from(vec![0u8; (32 << 20) + 1]))
        .unwrap();
    let reply = h.send(request).await;
    reply.error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    // Nothing is left over for the next test: the router still answers.
    let reply = h
        .post(
            "/api/v1/speedtest/upload",
            &[("authorization", &bearer(&agent))],
            vec![1; 5],
        )
        .await;
    assert_eq!(reply.json(StatusCode::OK)["bytes"], 5);
}
