//! `GET /metrics` and `GET /metrics/detail`: the figures as Prometheus series, always agreeing
//! with the database and the API.

use axum::http::{StatusCode, header};

use crate::support::{Harness, Reply, TREE_2, TREE_3, labels_of, on_every_backend, report};

fn owned(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|(l, v)| (l.to_string(), *v)).collect()
}

/// `path` answers 200 with the Prometheus text format.
async fn prometheus_text(h: &Harness, path: &str) -> Reply {
    let reply = h.get(path, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}");
    assert!(
        reply
            .header(header::CONTENT_TYPE)
            .starts_with("text/plain; version=0.0.4"),
        "{path}: {:?}",
        reply.headers
    );
    reply
}

#[tokio::test]
async fn metrics_are_prometheus_text_without_authentication() {
    let h = Harness::empty().await;
    let reply = prometheus_text(&h, "/metrics").await;
    assert!(
        reply
            .text()
            .contains("# TYPE hatang_reports_received_total counter")
    );
    // every outcome is there from the start, so rate() works on the first scrape
    let m = h.metrics().await;
    assert_eq!(
        m.by("hatang_reports_received_total", "outcome"),
        owned(&[
            ("accepted", 0.0),
            ("busy", 0.0),
            ("duplicate", 0.0),
            ("failed", 0.0),
            ("rate_limited", 0.0),
            ("rejected", 0.0),
            ("unauthorized", 0.0)
        ])
    );
    // no tree, no figures: nothing invented
    assert!(m.series("hatang_equipment_ratio").is_empty());
    assert!(m.series("hatang_unit_info").is_empty());
}

on_every_backend! {
    #[tokio::test]
    async fn level_ratios_and_targets_follow_the_fleet(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        h.fleet().await;
        let m = h.metrics().await;
        // province 1/4 (the root has no staff), district 2/10, commune (min(3,5) + 0)/(3+5)
        assert_eq!(
            m.by("hatang_equipment_ratio", "level"),
            owned(&[("commune", 0.375), ("district", 0.2), ("province", 0.25)])
        );
        assert_eq!(
            m.by("hatang_equipment_target_ratio", "level"),
            owned(&[("commune", 0.88), ("district", 0.91), ("province", 0.98)])
        );
    }
}

on_every_backend! {
    #[tokio::test]
    async fn every_unit_has_info_staff_and_equipped_staff(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        h.fleet().await;
        let m = h.metrics().await;
        let info = [
            ("17", "Tỉnh Hoà Bình", "province", ""),
            ("17-SYT", "Sở Y tế", "province", "17"),
            ("148", "Thành phố Hòa Bình", "district", "17"),
            ("4351", "Phường Tân Hòa", "commune", "148"),
            ("4352", "Xã Hòa Bình", "commune", "148"),
        ];
        let mut expected: Vec<_> = info
            .iter()
            .map(|(unit, name, level, parent)| {
                (
                    labels_of(&[
                        ("unit", unit),
                        ("name", name),
                        ("level", level),
                        ("parent", parent),
                    ]),
                    1.0,
                )
            })
            .collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(m.series("hatang_unit_info"), expected);

        // (unit, level, staff, equipped, active workstations)
        let units = [
            ("17", "province", 0.0, 0.0, 0.0),
            ("17-SYT", "province", 4.0, 1.0, 1.0),
            ("148", "district", 10.0, 2.0, 2.0),
            // five computers, three people: equipped is capped at staff
            ("4351", "commune", 3.0, 3.0, 5.0),
            // a server is not a staff computer
            ("4352", "commune", 5.0, 0.0, 0.0),
        ];
        for (unit, level, staff, equipped, active) in units {
            let labels = [("unit", unit), ("level", level)];
            assert_eq!(m.value("hatang_unit_staff", &labels), staff, "{unit}");
            assert_eq!(
                m.value("hatang_unit_equipped_staff", &labels),
                equipped,
                "{unit}"
            );
            assert_eq!(
                m.value("hatang_unit_active_workstations", &labels),
                active,
                "{unit}"
            );
        }
        for name in [
            "hatang_unit_staff",
            "hatang_unit_equipped_staff",
            "hatang_unit_active_workstations",
        ] {
            assert_eq!(m.series(name).len(), units.len(), "{name}");
        }
    }
}

on_every_backend! {
    #[tokio::test]
    async fn agents_are_counted_by_level_role_and_state(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        h.fleet().await;
        let m = h.metrics().await;
        let series = m.series("hatang_agents");
        // every level × role × state, zeros included, so series never vanish
        assert_eq!(series.len(), 3 * 2 * 3);
        let nonzero: Vec<_> = series.into_iter().filter(|(_, v)| *v != 0.0).collect();
        let mut expected: Vec<_> = [
            ("province", "workstation", "online", 1.0),
            ("district", "workstation", "online", 2.0),
            ("district", "workstation", "offline", 1.0),
            ("commune", "workstation", "online", 5.0),
            ("commune", "server", "online", 1.0),
        ]
        .iter()
        .map(|(level, role, state, n)| {
            (
                labels_of(&[("level", level), ("role", role), ("state", state)]),
                *n,
            )
        })
        .collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(nonzero, expected);
    }
}

#[tokio::test]
async fn ingest_outcomes_are_counted() {
    let h = Harness::with_tree(TREE_3).await;
    let agent = h.enrolled(&h.enrol_token("148", None).await, "m").await;
    let r = report();
    h.report(&agent.key, &r).await;
    h.report(&agent.key, &r).await;
    h.report("hta_nope", &r).await;
    let m = h.metrics().await;
    assert_eq!(
        m.by("hatang_reports_received_total", "outcome"),
        owned(&[
            ("accepted", 1.0),
            ("busy", 0.0),
            ("duplicate", 1.0),
            ("failed", 0.0),
            ("rate_limited", 0.0),
            ("rejected", 0.0),
            ("unauthorized", 1.0)
        ])
    );
    assert_eq!(
        m.value("hatang_enrolments_total", &[("outcome", "enrolled")]),
        1.0
    );
}

on_every_backend! {
    #[tokio::test]
    async fn a_reorganisation_shows_at_once(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let fleet = h.fleet().await;
        assert_eq!(
            h.metrics()
                .await
                .by("hatang_equipment_ratio", "level")
                .len(),
            3
        );

        h.import(TREE_2).await;
        let m = h.metrics().await;
        // the district level is gone; the new commune 4360 (staff 7) joins the commune ratio
        assert_eq!(
            m.by("hatang_equipment_ratio", "level"),
            owned(&[("commune", 3.0 / 15.0), ("province", 0.25)])
        );
        assert_eq!(
            m.by("hatang_equipment_target_ratio", "level"),
            owned(&[("commune", 0.88), ("province", 0.98)])
        );
        assert_eq!(
            m.get(
                "hatang_unit_staff",
                &[("unit", "148"), ("level", "district")]
            ),
            None
        );
        assert_eq!(
            m.value(
                "hatang_unit_info",
                &[
                    ("unit", "4351"),
                    ("name", "Phường Tân Hòa"),
                    ("level", "commune"),
                    ("parent", "17")
                ]
            ),
            1.0
        );
        assert!(
            m.series("hatang_unit_info")
                .iter()
                .all(|(l, _)| l["level"] != "district")
        );
        // the agents of the retired district are still counted, as unassigned, not lost
        assert_eq!(
            m.value(
                "hatang_agents",
                &[
                    ("level", "unassigned"),
                    ("role", "workstation"),
                    ("state", "online")
                ]
            ),
            fleet.district.len() as f64
        );
        assert!(
            m.series("hatang_agents")
                .iter()
                .all(|(l, _)| l["level"] != "district")
        );
    }
}

#[tokio::test]
async fn cached_figures_are_reused_within_figures_cache_secs() {
    let h = Harness::with_config(|c| c.figures_cache_secs = 3600).await;
    h.import(TREE_3).await;
    assert_eq!(h.metrics().await.series("hatang_unit_info").len(), 5);
    h.import(TREE_2).await;
    // the figures computed before the import are served until they are figures_cache_secs old
    assert_eq!(
        h.metrics()
            .await
            .by("hatang_equipment_ratio", "level")
            .into_iter()
            .map(|(l, _)| l)
            .collect::<Vec<_>>(),
        ["commune", "district", "province"]
    );
}

on_every_backend! {
    #[tokio::test]
    async fn unit_agent_series_follow_each_agents_latest_report(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let token = h.enrol_token("17-SYT", Some("workstation")).await;
        let a = h.enrolled(&token, "spool-a").await;
        let b = h.enrolled(&token, "spool-b").await;
        let unit = [("level", "province"), ("unit", "17-SYT")];

        // The golden report's spool: 3 dropped, 41 waiting. b's agent predates spool figures.
        h.report(&a.key, &report()).await.json(StatusCode::ACCEPTED);
        let mut without_spool = report();
        without_spool.as_object_mut().unwrap().remove("spool");
        h.report(&b.key, &without_spool)
            .await
            .json(StatusCode::ACCEPTED);
        let m = h.metrics_detail().await;
        assert_eq!(m.value("hatang_unit_agents_online", &unit), 2.0);
        assert_eq!(m.value("hatang_unit_spool_waiting_reports", &unit), 41.0);
        assert_eq!(m.value("hatang_unit_spool_dropped_reports", &unit), 3.0);
        assert_eq!(
            m.series("hatang_unit_agents_online").len(),
            1,
            "only the unit with enrolled agents has the series"
        );

        // a caught up; a report without spool figures keeps what b never said.
        let mut caught_up = report();
        caught_up["spool"] = serde_json::json!({"dropped_reports": 3, "waiting_reports": 0});
        h.report(&a.key, &caught_up).await.json(StatusCode::ACCEPTED);
        let mut b_now = report();
        b_now["spool"] = serde_json::json!({"dropped_reports": 5, "waiting_reports": 0});
        h.report(&b.key, &b_now).await.json(StatusCode::ACCEPTED);
        let m = h.metrics_detail().await;
        assert_eq!(
            m.get("hatang_unit_spool_waiting_reports", &unit),
            None,
            "no backlog, no series"
        );
        assert_eq!(m.value("hatang_unit_spool_dropped_reports", &unit), 8.0);
    }
}

/// While figures are being read, the refresher recomputes them every half cache period, so a
/// reader sees a change before the cached figures would have expired.
#[tokio::test]
async fn the_refresher_keeps_figures_fresh_while_they_are_read() {
    let h = Harness::with_config(|c| c.figures_cache_secs = 10).await;
    h.import(TREE_3).await;
    let _refresher = h.state.spawn_figures_refresher().expect("a refresher");
    let first = h.state.figures().await.unwrap();
    assert!(first.levels.iter().any(|l| l.level == "district"));
    let computed = std::time::Instant::now();
    h.import(TREE_2).await;
    loop {
        let f = h.state.figures().await.unwrap();
        if f.levels.iter().all(|l| l.level != "district") {
            break;
        }
        assert!(
            computed.elapsed() < std::time::Duration::from_secs(9),
            "the 2025 tree did not show within 9 s of a 10 s cache"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn no_refresher_without_a_cache() {
    let h = Harness::with_config(|c| c.figures_cache_secs = 0).await;
    assert!(h.state.spawn_figures_refresher().is_none());
}

/// The families DESIGN.md's contract names: on `/metrics`, whatever else moves.
/// (`hatang_service_up` needs a configured service; the unit tests place it.)
const CONTRACT: [&str; 11] = [
    "hatang_equipment_ratio",
    "hatang_equipment_target_ratio",
    "hatang_unit_info",
    "hatang_unit_staff",
    "hatang_unit_equipped_staff",
    "hatang_unit_lan_up",
    "hatang_unit_broadband_up",
    "hatang_broadband_ratio",
    "hatang_agents",
    "hatang_host_up",
    "hatang_reports_received_total",
];

/// The high-cardinality detail served on `/metrics/detail` only.
const DETAIL: [&str; 20] = [
    "hatang_unit_reachable",
    "hatang_unit_download_bytes_per_second",
    "hatang_unit_agents_online",
    "hatang_unit_workstations",
    "hatang_unit_spool_waiting_reports",
    "hatang_unit_spool_dropped_reports",
    "hatang_host_last_report_timestamp_seconds",
    "hatang_host_uptime_seconds",
    "hatang_host_cpu_usage_ratio",
    "hatang_host_load1",
    "hatang_host_memory_total_bytes",
    "hatang_host_memory_used_bytes",
    "hatang_host_filesystem_size_bytes",
    "hatang_host_filesystem_used_bytes",
    "hatang_host_filesystem_available_bytes",
    "hatang_host_temperature_celsius",
    "hatang_host_network_receive_bytes_total",
    "hatang_host_network_transmit_bytes_total",
    "hatang_host_network_receive_errors_total",
    "hatang_host_network_transmit_errors_total",
];

/// The families of an exposition, from its `# TYPE` lines.
fn families(text: &str) -> std::collections::BTreeSet<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

on_every_backend! {
    #[tokio::test]
    async fn each_family_is_served_on_one_endpoint(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        // The golden report has a speed test, spool figures, filesystems, interfaces and
        // sensors: every family has a sample somewhere.
        h.fleet().await;
        let metrics = prometheus_text(&h, "/metrics").await;
        let detail = prometheus_text(&h, "/metrics/detail").await;
        let (on_metrics, on_detail) = (families(metrics.text()), families(detail.text()));
        for family in CONTRACT {
            assert!(on_metrics.contains(family), "{family} is not on /metrics");
        }
        for family in DETAIL {
            assert!(on_detail.contains(family), "{family} is not on /metrics/detail");
            assert!(!on_metrics.contains(family), "{family} is still on /metrics");
        }
        assert!(
            on_metrics.is_disjoint(&on_detail),
            "on both: {:?}",
            on_metrics.intersection(&on_detail).collect::<Vec<_>>()
        );
        assert_eq!(
            on_detail,
            DETAIL.into_iter().collect(),
            "the detail endpoint has the detail and nothing else"
        );
    }
}

#[tokio::test]
async fn the_detail_endpoint_takes_the_metrics_token_and_no_other() {
    let h = Harness::with_config(|c| {
        c.metrics_token = Some(hatang_collector::secret::digest("scrape-secret"))
    })
    .await;
    h.import(TREE_3).await;
    let admin = h.api_token("admin").await;
    for path in ["/metrics", "/metrics/detail"] {
        h.get(path, None)
            .await
            .error(StatusCode::UNAUTHORIZED, "unauthorized");
        for wrong in ["scrape-secret2", admin.as_str()] {
            h.get(path, Some(wrong))
                .await
                .error(StatusCode::UNAUTHORIZED, "unauthorized");
        }
        let reply = h.get(path, Some("scrape-secret")).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
    }
    let detail = h.get("/metrics/detail", Some("scrape-secret")).await;
    assert!(
        detail.text().contains("\nhatang_unit_reachable{"),
        "{}",
        detail.text()
    );
}

on_every_backend! {
    #[tokio::test]
    async fn both_endpoints_agree_with_the_api(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        h.fleet().await;
        let viewer = h.api_token("viewer").await;
        let coverage = h
            .get("/api/v1/coverage", Some(&viewer))
            .await
            .json(StatusCode::OK);
        let agents = h
            .get("/api/v1/agents", Some(&viewer))
            .await
            .json(StatusCode::OK);
        let (m, detail) = (h.metrics().await, h.metrics_detail().await);
        let units = coverage["units"].as_array().unwrap();
        let mut classes = 0;
        let mut speeds = 0;
        for u in units {
            let (code, level) = (u["code"].as_str().unwrap(), u["level"].as_str().unwrap());
            let unit = [("unit", code), ("level", level)];
            let number = |field: &str| u[field].as_f64().unwrap();
            let flag = |field: &str| f64::from(u8::from(u[field].as_bool().unwrap()));
            assert_eq!(m.value("hatang_unit_staff", &unit), number("staff"), "{code}");
            assert_eq!(m.value("hatang_unit_equipped_staff", &unit), number("equipped_staff"), "{code}");
            assert_eq!(
                m.value("hatang_unit_active_workstations", &unit),
                number("active_workstations"),
                "{code}"
            );
            assert_eq!(m.value("hatang_unit_lan_up", &unit), flag("lan"), "{code}");
            assert_eq!(m.value("hatang_unit_broadband_up", &unit), flag("broadband"), "{code}");
            for (class, up) in u["reachable"].as_object().unwrap() {
                classes += 1;
                assert_eq!(
                    detail.value("hatang_unit_reachable", &[unit[0], unit[1], ("class", class)]),
                    f64::from(u8::from(up.as_bool().unwrap())),
                    "{code} {class}"
                );
            }
            let download = detail.get("hatang_unit_download_bytes_per_second", &unit);
            assert_eq!(download, u["download_bps"].as_f64().map(|bps| bps / 8.0), "{code}");
            speeds += usize::from(download.is_some());
            // Online agents of the unit, as the agent list tells them.
            let listed: Vec<&serde_json::Value> = agents["agents"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["unit"] == code)
                .collect();
            let online = listed.iter().filter(|a| a["state"] == "online").count();
            assert_eq!(
                detail.get("hatang_unit_agents_online", &unit),
                (!listed.is_empty()).then_some(online as f64),
                "{code}"
            );
        }
        assert!(classes > 0 && speeds > 0, "the fleet shows reachability and speeds");
        assert_eq!(detail.series("hatang_unit_reachable").len(), classes, "none invented");
        assert_eq!(detail.series("hatang_unit_download_bytes_per_second").len(), speeds);
    }
}
