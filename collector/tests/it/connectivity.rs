//! LAN and broadband per unit, from the evidence agents report: interfaces with the default
//! route, probe successes per class, and how old that evidence is.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Harness, TREE_3, on_every_backend, report};

fn rfc3339(offset_secs: i64) -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_secs);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The golden report made `ago_secs` ago on the agent's clock, with these probe results.
fn report_with(ago_secs: i64, probes: Value) -> Value {
    let mut r = report();
    r["agent_time"] = json!(rfc3339(-ago_secs));
    r["probes"] = probes;
    r
}

fn probe(class: &str, successes: u32) -> Value {
    json!({"name": format!("{class}-probe"), "kind": "tcp", "class": class,
           "target": "192.0.2.1:443", "attempts": 4, "successes": successes})
}

on_every_backend! {
    #[tokio::test]
    async fn reported_evidence_becomes_lan_broadband_and_reachability_per_unit(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let token = h.enrol_token("4351", None).await;
        let agent = h.enrolled(&token, "m-linked").await;
        // The golden inventory has enp2s0 up with the default route.
        let r = report_with(10, json!([probe("internet", 3), probe("gov-wan", 0)]));
        h.report(&agent.key, &r).await.json(StatusCode::ACCEPTED);

        let m = h.metrics().await;
        let commune = [("unit", "4351"), ("level", "commune")];
        assert_eq!(m.value("hatang_unit_lan_up", &commune), 1.0);
        assert_eq!(m.value("hatang_unit_broadband_up", &commune), 1.0);
        let class = |c| [("unit", "4351"), ("level", "commune"), ("class", c)];
        let detail = h.metrics_detail().await;
        assert_eq!(detail.value("hatang_unit_reachable", &class("internet")), 1.0);
        assert_eq!(detail.value("hatang_unit_reachable", &class("gov-wan")), 0.0);
        assert_eq!(detail.value("hatang_unit_reachable", &class("datacentre")), 0.0);
        // TREE_3 has two staffed communes; one of them has broadband.
        assert_eq!(
            m.value("hatang_broadband_ratio", &[("level", "commune")]),
            0.5
        );
        assert_eq!(m.value("hatang_lan_ratio", &[("level", "commune")]), 0.5);
        assert_eq!(
            m.value(
                "hatang_unit_lan_up",
                &[("unit", "4352"), ("level", "commune")]
            ),
            0.0
        );

        // A later report without probes keeps the earlier success; one without an inventory
        // keeps the LAN verdict.
        let mut quiet = report_with(5, json!([]));
        quiet.as_object_mut().unwrap().remove("inventory");
        h.report(&agent.key, &quiet)
            .await
            .json(StatusCode::ACCEPTED);
        let m = h.metrics().await;
        assert_eq!(m.value("hatang_unit_lan_up", &commune), 1.0);
        assert_eq!(m.value("hatang_unit_broadband_up", &commune), 1.0);
    }

    #[tokio::test]
    async fn old_or_failed_probes_prove_no_broadband(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let token = h.enrol_token("4352", None).await;
        let stale = h.enrolled(&token, "m-stale").await;
        let failing = h.enrolled(&token, "m-failing").await;
        // A spooled report from two hours ago arrives now: its success is two hours old.
        h.report(
            &stale.key,
            &report_with(7200, json!([probe("internet", 4)])),
        )
        .await
        .json(StatusCode::ACCEPTED);
        h.report(&failing.key, &report_with(0, json!([probe("internet", 0)])))
            .await
            .json(StatusCode::ACCEPTED);
        let m = h.metrics().await;
        let unit = [("unit", "4352"), ("level", "commune")];
        assert_eq!(m.value("hatang_unit_broadband_up", &unit), 0.0);
        assert_eq!(m.value("hatang_unit_lan_up", &unit), 1.0);
    }

    #[tokio::test]
    async fn a_shorter_window_in_the_config_expires_evidence_sooner(db) {
        let h = Harness::on_with_config(&db, |c| c.broadband_window_secs = 60).await;
        h.import(TREE_3).await;
        let token = h.enrol_token("4351", None).await;
        let agent = h.enrolled(&token, "m-window").await;
        h.report(
            &agent.key,
            &report_with(120, json!([probe("datacentre", 2)])),
        )
        .await
        .json(StatusCode::ACCEPTED);
        let m = h.metrics_detail().await;
        assert_eq!(
            m.value(
                "hatang_unit_reachable",
                &[
                    ("unit", "4351"),
                    ("level", "commune"),
                    ("class", "datacentre")
                ]
            ),
            0.0
        );
    }

    #[tokio::test]
    async fn a_slow_speed_test_denies_broadband_and_shows_the_rate(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let token = h.enrol_token("4351", None).await;
        let agent = h.enrolled(&token, "m-speed").await;
        let unit = [("unit", "4351"), ("level", "commune")];
        let mut r = report_with(5, json!([probe("internet", 4)]));
        r["speed"] = json!({"download_bits_per_second": 1.5e6, "upload_bits_per_second": 0.5e6,
                            "bytes": 4194304, "duration_seconds": 22.4});
        h.report(&agent.key, &r).await.json(StatusCode::ACCEPTED);
        let m = h.metrics().await;
        assert_eq!(m.value("hatang_unit_broadband_up", &unit), 0.0, "below 2 Mbit/s");
        let detail = h.metrics_detail().await;
        assert_eq!(detail.value("hatang_unit_download_bytes_per_second", &unit), 1.5e6 / 8.0);

        // The link is upgraded: the next speed test passes.
        let mut r = report_with(1, json!([probe("internet", 4)]));
        r["speed"] = json!({"download_bits_per_second": 2.4e7, "bytes": 4194304, "duration_seconds": 1.4,
                            "error": "upload: timed out"});
        h.report(&agent.key, &r).await.json(StatusCode::ACCEPTED);
        let m = h.metrics().await;
        assert_eq!(m.value("hatang_unit_broadband_up", &unit), 1.0);
        let detail = h.metrics_detail().await;
        assert_eq!(detail.value("hatang_unit_download_bytes_per_second", &unit), 2.4e7 / 8.0);
    }
}

on_every_backend! {
    #[tokio::test]
    async fn a_slow_clock_does_not_age_the_evidence_of_an_agent_that_says_how_long_it_waited(db) {
        // Two offices whose PCs' clocks run two hours slow; each sends a report it just made.
        // The one that says the report waited 0 s in its spool has broadband now; the other,
        // an older agent without the header, is dated by its clock and proves nothing recent.
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let slow = report_with(2 * 3600, json!([probe("internet", 4)]));
        for (unit, age) in [("4351", Some("0")), ("4352", None)] {
            let token = h.enrol_token(unit, None).await;
            let agent = h.enrolled(&token, &format!("slow-{unit}")).await;
            let bearer = format!("Bearer {}", agent.key);
            let mut headers = vec![("content-type", "application/json"), ("authorization", bearer.as_str())];
            headers.extend(age.map(|a| (hatang_protocol::REPORT_AGE_HEADER, a)));
            let mut r = slow.clone();
            r["report_id"] = json!(uuid::Uuid::now_v7().to_string());
            h.post("/api/v1/reports", &headers, serde_json::to_vec(&r).unwrap())
                .await
                .json(StatusCode::ACCEPTED);
        }
        let m = h.metrics().await;
        let unit = |code| [("unit", code), ("level", "commune")];
        assert_eq!(m.value("hatang_unit_broadband_up", &unit("4351")), 1.0);
        assert_eq!(m.value("hatang_unit_broadband_up", &unit("4352")), 0.0);
    }
}
