//! `POST /api/v1/reports`: acknowledged means committed, stored once, and every refusal leaves
//! the database as it was and is counted under its outcome.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{
    Agent, Backend, Harness, TREE_3, gzip, on_every_backend, report, report_request, send,
};

/// A collector with the three-tier tree and one workstation enrolled in commune 4351.
async fn one_agent() -> (Harness, Agent) {
    one_agent_on(&Backend::Sqlite).await
}

/// [`one_agent`] on `backend`.
async fn one_agent_on(backend: &Backend) -> (Harness, Agent) {
    let h = Harness::with_tree_on(backend, TREE_3).await;
    let token = h.enrol_token("4351", None).await;
    let agent = h.enrolled(&token, "m-1").await;
    (h, agent)
}

fn bearer(agent: &Agent) -> String {
    format!("Bearer {}", agent.key)
}

/// `report` serialised and padded with JSON whitespace to exactly `len` bytes.
fn padded(len: usize) -> Vec<u8> {
    let mut body = serde_json::to_vec(&report()).unwrap();
    assert!(body.len() <= len);
    body.resize(len, b' ');
    body
}

on_every_backend! {
    #[tokio::test]
    async fn a_report_is_accepted_once_then_answered_as_duplicate(db) {
        let (h, agent) = one_agent_on(&db).await;
        let r = report();
        let before = h.snapshot().await;

        let body = h.report(&agent.key, &r).await.json(StatusCode::ACCEPTED);
        assert_eq!(body, json!({"status": "accepted"}));
        let body = h.report(&agent.key, &r).await.json(StatusCode::OK);
        assert_eq!(body, json!({"status": "duplicate"}));

        assert_eq!(h.store().report_count(None).await.unwrap(), 1);
        assert_eq!(h.store().report_count(Some(&agent.id)).await.unwrap(), 1);
        let after = h.snapshot().await;
        assert_eq!(
            after.outcomes["accepted"],
            before.outcomes["accepted"] + 1.0
        );
        assert_eq!(
            after.outcomes["duplicate"],
            before.outcomes["duplicate"] + 1.0
        );
        assert_eq!(after.outcomes["rejected"], 0.0);

        let record = &h.store().agents().await.unwrap()[0];
        assert_eq!(record.interval_secs, Some(60));
        assert_eq!(record.agent_version.as_deref(), Some("0.1.0"));
        let last = record.last_report_at.expect("last report time recorded");
        assert!((hatang_collector::now() - last).abs() <= 5);
    }
}

#[tokio::test]
async fn a_gzip_body_is_accepted() {
    let (h, agent) = one_agent().await;
    let r = report();
    let body = gzip(&serde_json::to_vec(&r).unwrap());
    let reply = h
        .post_report(Some(&bearer(&agent)), Some("gzip"), body.clone())
        .await;
    assert_eq!(
        reply.json(StatusCode::ACCEPTED),
        json!({"status": "accepted"})
    );
    let plain = serde_json::to_vec(&report()).unwrap();
    let reply = h
        .post_report(Some(&bearer(&agent)), Some("identity"), plain)
        .await;
    assert_eq!(
        reply.json(StatusCode::ACCEPTED),
        json!({"status": "accepted"})
    );
    // the first report again, compressed the same way, is recognised
    let reply = h
        .post_report(Some(&bearer(&agent)), Some("GZip"), body)
        .await;
    assert_eq!(reply.json(StatusCode::OK), json!({"status": "duplicate"}));
    assert_eq!(h.store().report_count(Some(&agent.id)).await.unwrap(), 2);
}

#[tokio::test]
async fn a_report_larger_than_the_default_body_limit_but_within_max_report_bytes_is_accepted() {
    let (h, agent) = one_agent().await;
    let reply = h
        .post_report(Some(&bearer(&agent)), None, padded(200 * 1024))
        .await;
    assert_eq!(
        reply.json(StatusCode::ACCEPTED),
        json!({"status": "accepted"})
    );
    let exactly_max = padded(h.config().max_report_bytes);
    let reply = h
        .post_report(Some(&bearer(&agent)), None, exactly_max)
        .await;
    assert_eq!(
        reply.json(StatusCode::ACCEPTED),
        json!({"status": "accepted"})
    );
}

#[tokio::test]
async fn a_body_over_max_report_bytes_is_413() {
    let (h, agent) = one_agent().await;
    let before = h.snapshot().await;
    let too_big = padded(h.config().max_report_bytes + 1);
    h.post_report(Some(&bearer(&agent)), None, too_big)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    h.assert_refused(&before, "rejected").await;
}

#[tokio::test]
async fn a_gzip_bomb_is_413_and_nothing_is_stored() {
    let (h, agent) = one_agent().await;
    let before = h.snapshot().await;
    let bomb = gzip(&vec![0u8; 50 * 1024 * 1024]);
    assert!(bomb.len() < h.config().max_report_bytes);
    let message = h
        .post_report(Some(&bearer(&agent)), Some("gzip"), bomb)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    assert!(message.contains("decompressed"), "{message}");
    h.assert_refused(&before, "rejected").await;
}

#[tokio::test]
async fn a_decompressed_report_over_max_report_bytes_is_413() {
    let (h, agent) = one_agent().await;
    let before = h.snapshot().await;
    let body = gzip(&padded(h.config().max_report_bytes + 1));
    h.post_report(Some(&bearer(&agent)), Some("gzip"), body)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    h.assert_refused(&before, "rejected").await;
}

#[tokio::test]
async fn a_body_that_is_not_gzip_but_says_so_is_400() {
    let (h, agent) = one_agent().await;
    let before = h.snapshot().await;
    let plain = serde_json::to_vec(&report()).unwrap();
    h.post_report(Some(&bearer(&agent)), Some("gzip"), plain)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_gzip");
    h.assert_refused(&before, "rejected").await;
}

#[tokio::test]
async fn an_unknown_content_encoding_is_415() {
    let (h, agent) = one_agent().await;
    let before = h.snapshot().await;
    let body = serde_json::to_vec(&report()).unwrap();
    let message = h
        .post_report(Some(&bearer(&agent)), Some("br"), body)
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_encoding");
    assert!(message.contains("\"br\""), "{message}");
    h.assert_refused(&before, "rejected").await;
}

#[tokio::test]
async fn a_report_without_authorization_is_401() {
    let (h, _agent) = one_agent().await;
    let before = h.snapshot().await;
    let body = serde_json::to_vec(&report()).unwrap();
    let message = h
        .post_report(None, None, body)
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(message.contains("missing Authorization"), "{message}");
    h.assert_refused(&before, "unauthorized").await;
}

#[tokio::test]
async fn a_report_with_basic_authorization_is_401() {
    let (h, agent) = one_agent().await;
    let before = h.snapshot().await;
    let body = serde_json::to_vec(&report()).unwrap();
    let basic = format!("Basic {}", agent.key);
    let message = h
        .post_report(Some(&basic), None, body)
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(message.contains("Bearer"), "{message}");
    h.assert_refused(&before, "unauthorized").await;
}

#[tokio::test]
async fn a_report_with_a_wrong_key_is_401() {
    let (h, agent) = one_agent().await;
    let viewer = h.api_token("viewer").await;
    let mut wrong = agent.key.clone();
    wrong.replace_range(10..11, if &agent.key[10..11] == "0" { "1" } else { "0" });
    for key in [wrong.as_str(), viewer.as_str(), "hta_", ""] {
        let before = h.snapshot().await;
        h.report(key, &report())
            .await
            .error(StatusCode::UNAUTHORIZED, "unauthorized");
        h.assert_refused(&before, "unauthorized").await;
    }
}

#[tokio::test]
async fn malformed_json_is_400() {
    let (h, agent) = one_agent().await;
    for body in [&b"{\"report_id\": "[..], b"", b"\xff\xfe"] {
        let before = h.snapshot().await;
        h.post_report(Some(&bearer(&agent)), None, body.to_vec())
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_json");
        h.assert_refused(&before, "rejected").await;
    }
    let mut missing = report();
    missing.as_object_mut().unwrap().remove("report_id");
    let before = h.snapshot().await;
    let message = h
        .report(&agent.key, &missing)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_json");
    assert!(message.contains("report_id"), "{message}");
    h.assert_refused(&before, "rejected").await;
}

#[tokio::test]
async fn schema_version_2_is_422_naming_the_field() {
    let (h, agent) = one_agent().await;
    let before = h.snapshot().await;
    let mut r = report();
    r["schema_version"] = json!(2);
    let message = h
        .report(&agent.key, &r)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_report");
    assert!(message.starts_with("schema_version: "), "{message}");
    assert!(message.contains('2'), "{message}");
    h.assert_refused(&before, "rejected").await;
}

#[tokio::test]
async fn every_validation_problem_is_reported_at_once() {
    let (h, agent) = one_agent().await;
    let before = h.snapshot().await;
    let mut r = report();
    r["interval_secs"] = json!(1);
    r["sample"]["cpu_usage_ratio"] = json!(1.5);
    r["report_id"] = json!("00000000-0000-0000-0000-000000000000");
    let message = h
        .report(&agent.key, &r)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_report");
    for field in ["report_id", "interval_secs", "sample.cpu_usage_ratio"] {
        assert!(message.contains(&format!("{field}: ")), "{message}");
    }
    h.assert_refused(&before, "rejected").await;
}

#[tokio::test]
async fn the_key_names_the_agent_whatever_the_body_says() {
    let h = Harness::with_tree(TREE_3).await;
    let a = h.enrolled(&h.enrol_token("4351", None).await, "m-a").await;
    let b = h.enrolled(&h.enrol_token("148", None).await, "m-b").await;
    let mut r = report();
    r["agent_id"] = json!(a.id);
    r["agent"] = json!({"id": a.id, "unit": "4351"});
    h.report(&b.key, &r).await.json(StatusCode::ACCEPTED);

    assert_eq!(h.store().report_count(Some(&b.id)).await.unwrap(), 1);
    assert_eq!(h.store().report_count(Some(&a.id)).await.unwrap(), 0);
    let agents = h.store().agents().await.unwrap();
    let of = |id: &str| agents.iter().find(|x| x.id == id).unwrap();
    assert!(of(&b.id).last_report_at.is_some());
    assert_eq!(of(&a.id).last_report_at, None);

    // A's report with B's id in the body is still A's; B's id cannot be replayed through A.
    let mut r = report();
    r["agent_id"] = json!(b.id);
    h.report(&a.key, &r).await.json(StatusCode::ACCEPTED);
    assert_eq!(h.store().report_count(Some(&a.id)).await.unwrap(), 1);
    assert_eq!(h.store().report_count(Some(&b.id)).await.unwrap(), 1);
}

#[tokio::test]
async fn a_report_id_another_agent_already_used_is_a_duplicate_not_a_second_copy() {
    let h = Harness::with_tree(TREE_3).await;
    let token = h.enrol_token("4351", None).await;
    let a = h.enrolled(&token, "m-a").await;
    let b = h.enrolled(&token, "m-b").await;
    let r = report();
    h.report(&a.key, &r).await.json(StatusCode::ACCEPTED);
    assert_eq!(
        h.report(&b.key, &r).await.json(StatusCode::OK),
        json!({"status": "duplicate"})
    );
    assert_eq!(h.store().report_count(None).await.unwrap(), 1);
    assert_eq!(h.store().report_count(Some(&b.id)).await.unwrap(), 0);
}

on_every_backend! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_resends_of_one_report_store_it_once(db) {
        let (h, agent) = one_agent_on(&db).await;
        let body = serde_json::to_vec(&report()).unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let request = report_request(Some(&bearer(&agent)), None, body.clone());
            tasks.spawn(send(h.state.clone(), request));
        }
        let mut statuses = Vec::new();
        while let Some(reply) = tasks.join_next().await {
            statuses.push(reply.unwrap().status);
        }
        statuses.sort();
        let mut expected = vec![StatusCode::OK; 15];
        expected.push(StatusCode::ACCEPTED);
        assert_eq!(statuses, expected);
        assert_eq!(h.store().report_count(None).await.unwrap(), 1);
        let m = h.metrics().await;
        assert_eq!(
            m.value("hatang_reports_received_total", &[("outcome", "accepted")]),
            1.0
        );
        assert_eq!(
            m.value("hatang_reports_received_total", &[("outcome", "duplicate")]),
            15.0
        );
    }
}

on_every_backend! {
    /// Two collector replicas behind a load balancer get the same resent report at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_resends_through_two_replicas_store_it_once(db) {
        let (a, agent) = one_agent_on(&db).await;
        let b = a.replica().await;
        let body = serde_json::to_vec(&report()).unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..16 {
            let request = report_request(Some(&bearer(&agent)), None, body.clone());
            let state = if i % 2 == 0 { &a.state } else { &b.state };
            tasks.spawn(send(state.clone(), request));
        }
        let mut statuses = Vec::new();
        while let Some(reply) = tasks.join_next().await {
            statuses.push(reply.unwrap().status);
        }
        statuses.sort();
        let mut expected = vec![StatusCode::OK; 15];
        expected.push(StatusCode::ACCEPTED);
        assert_eq!(statuses, expected);
        assert_eq!(a.store().report_count(None).await.unwrap(), 1);
        assert_eq!(b.store().report_count(None).await.unwrap(), 1);
        // each replica counts what it answered; together, one accepted and fifteen duplicates
        let (ma, mb) = (a.metrics().await, b.metrics().await);
        let outcome = |o: &str| {
            let labels = [("outcome", o)];
            ma.value("hatang_reports_received_total", &labels)
                + mb.value("hatang_reports_received_total", &labels)
        };
        assert_eq!((outcome("accepted"), outcome("duplicate")), (1.0, 15.0));
    }
}

/// `agent_time` `days` away from now (negative: in the past), as the report carries it.
fn agent_time(days: i64) -> serde_json::Value {
    let t = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    json!(
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    )
}

#[tokio::test]
async fn a_skewed_clock_is_recorded_and_an_absurd_one_refused() {
    let (h, agent) = one_agent().await;
    // 20 days behind (a clock that drifted, or a report that waited in a spool): accepted, and
    // the agent counts as reporting now
    let mut r = report();
    r["agent_time"] = agent_time(-20);
    h.report(&agent.key, &r).await.json(StatusCode::ACCEPTED);
    let last = h.store().agents().await.unwrap()[0].last_report_at.unwrap();
    assert!((hatang_collector::now() - last).abs() <= 5);

    // 400 days ahead: refused, nothing stored
    let before = h.snapshot().await;
    let mut r = report();
    r["agent_time"] = agent_time(400);
    let message = h
        .report(&agent.key, &r)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "clock_skew");
    assert!(
        message.starts_with("agent_time: 400 days ahead"),
        "{message}"
    );
    h.assert_refused(&before, "rejected").await;

    // both are in the histogram, each in its bucket
    let m = h.metrics().await;
    let bucket = |le: &str| m.value("hatang_report_clock_skew_seconds_bucket", &[("le", le)]);
    assert_eq!(m.value("hatang_report_clock_skew_seconds_count", &[]), 2.0);
    assert_eq!(bucket("-2592000"), 0.0);
    assert_eq!(bucket("-86400"), 1.0);
    assert_eq!(bucket("31536000"), 1.0);
    assert_eq!(bucket("+Inf"), 2.0);
}

#[tokio::test]
async fn max_clock_skew_days_0_accepts_any_clock() {
    let h = Harness::with_config(|c| c.limits.max_clock_skew_days = 0).await;
    h.import(TREE_3).await;
    let agent = h.enrolled(&h.enrol_token("4351", None).await, "m-1").await;
    let mut r = report();
    r["agent_time"] = json!("2009-01-01T00:00:00+07:00");
    h.report(&agent.key, &r).await.json(StatusCode::ACCEPTED);
}

/// The stored bodies of all reports, read straight from the SQLite file.
async fn stored_bodies(h: &Harness) -> Vec<String> {
    let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(h.db_url())
        .await
        .unwrap();
    sqlx::query_scalar("SELECT body FROM reports ORDER BY rowid")
        .fetch_all(&mut db)
        .await
        .unwrap()
}

#[tokio::test]
async fn report_bodies_are_kept_only_when_asked_for() {
    for keep in [false, true] {
        let h = Harness::with_config(|c| c.keep_report_bodies = keep).await;
        h.import(TREE_3).await;
        let token = h.enrol_token("17-SYT", None).await;
        let agent = h.enrolled(&token, "bodies").await;
        let r = report();
        h.report(&agent.key, &r).await.json(StatusCode::ACCEPTED);
        // Kept or not, the record makes the same report a duplicate.
        h.report(&agent.key, &r).await.json(StatusCode::OK);
        let bodies = stored_bodies(&h).await;
        assert_eq!(bodies.len(), 1);
        if keep {
            let stored: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
            assert_eq!(stored["report_id"], r["report_id"]);
        } else {
            assert_eq!(bodies[0], "", "no body unless keep_report_bodies");
        }
    }
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_refused_whether_or_not_it_would_be_stored() {
    for keep in [false, true] {
        let h = Harness::with_config(|c| c.keep_report_bodies = keep).await;
        h.import(TREE_3).await;
        let token = h.enrol_token("17-SYT", None).await;
        let agent = h.enrolled(&token, "bytes").await;
        // An unknown field (tolerated, skipped by the parser) holding bytes that are not UTF-8:
        // not JSON text all the same.
        let mut body = serde_json::to_vec(&report()).unwrap();
        body.pop(); // the closing brace
        let at = body.len() + 17;
        body.extend_from_slice(b",\"future_field\":\"\xff\xfe\"}");
        // Gzipped, the byte is counted in the inflated text, the one the parser saw.
        let gzipped = gzip(&body);
        for (encoding, sent, of) in [
            (None, body, ""),
            (Some("gzip"), gzipped, " of the body inflated from gzip"),
        ] {
            let error = h
                .post_report(Some(&format!("Bearer {}", agent.key)), encoding, sent)
                .await
                .json(StatusCode::BAD_REQUEST);
            assert_eq!(error["error"]["code"], "invalid_json", "{error}");
            assert_eq!(
                error["error"]["message"],
                format!("request body: not UTF-8 text (at byte {at}{of})"),
                "keep_report_bodies = {keep}, {encoding:?}"
            );
        }
        assert!(stored_bodies(&h).await.is_empty(), "nothing stored");
    }
}

/// A report the database cannot take (a full disk, a file this user may not write) is answered
/// 503, which the agent keeps it for, and counted as `failed`. Without that count a collector
/// whose storage fails only looks quiet in /metrics, and /readyz still says ready: the database
/// answers, it just cannot write.
#[tokio::test]
async fn a_report_the_database_cannot_store_is_503_and_counted_as_failed() {
    let (h, agent) = one_agent().await;
    let mut db = h.fill_the_disk().await;
    let before = h.snapshot().await;

    h.report(&agent.key, &report())
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable");
    h.assert_refused(&before, "failed").await;

    sqlx::query("DROP TRIGGER disk_full")
        .execute(&mut db)
        .await
        .unwrap();
    h.report(&agent.key, &report())
        .await
        .json(StatusCode::ACCEPTED);
}
