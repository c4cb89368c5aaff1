//! History: the inventory change log of an agent (store, API and counter) and the daily figure
//! snapshots (written once, never rewritten by a later import; `?at=`, the trend, the CLI).

use axum::http::StatusCode;
use hatang_collector::changes::ChangeKind;
use hatang_collector::commands::{self, Format};
use hatang_collector::history::{self, Taken};
use hatang_collector::store::Stored;
use hatang_protocol::Report;
use serde_json::{Value, json};

use crate::support::{Harness, Labels, TREE_2, TREE_3, on_every_backend, report};

/// The golden report with 8 GiB of RAM taken down to half and its disk swapped for another.
fn ram_removed_and_disk_swapped() -> Value {
    let mut r = report();
    r["inventory"]["memory"]["total_bytes"] = json!(4_123_168_768u64);
    r["inventory"]["disks"][0]["serial"] = json!("S6PNNS0T123456");
    r["inventory"]["disks"][0]["model"] = json!("Samsung SSD 870 EVO");
    r
}

/// (component, key, kind, before, after) of each change in `changes`, in order.
fn rows(changes: &Value) -> Vec<(String, String, String, Value, Value)> {
    changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap().to_string();
            (
                s("component"),
                s("key"),
                s("kind"),
                c["before"].clone(),
                c["after"].clone(),
            )
        })
        .collect()
}

/// (component, kind, value) of the change counter's series that are not zero.
fn counted(series: Vec<(Labels, f64)>) -> Vec<(String, String, f64)> {
    series
        .into_iter()
        .filter(|(_, v)| *v != 0.0)
        .map(|(l, v)| (l["component"].clone(), l["kind"].clone(), v))
        .collect()
}

fn change(
    component: &str,
    key: &str,
    kind: &str,
    before: Option<&str>,
    after: Option<&str>,
) -> (String, String, String, Value, Value) {
    (
        component.into(),
        key.into(),
        kind.into(),
        json!(before),
        json!(after),
    )
}

on_every_backend! {
    #[tokio::test]
    async fn ram_removed_and_disk_swapped_are_logged_once(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let viewer = h.api_token("viewer").await;
        let agent = h.enrolled(&h.enrol_token("4351", None).await, "m").await;
        let detail = format!("/api/v1/agents/{}", agent.id);

        // the first inventory is what the machine is, not a change
        h.report(&agent.key, &report()).await.json(StatusCode::ACCEPTED);
        let body = h.get(&detail, Some(&viewer)).await.json(StatusCode::OK);
        assert_eq!(body["changes"], json!([]));

        let changed = ram_removed_and_disk_swapped();
        h.report(&agent.key, &changed).await.json(StatusCode::ACCEPTED);
        // resent after a lost answer: stored once, logged once
        let again = h.report(&agent.key, &changed).await.json(StatusCode::OK);
        assert_eq!(again["status"], "duplicate");
        // a report without an inventory changes nothing
        let mut sample_only = report();
        sample_only["inventory"] = Value::Null;
        h.report(&agent.key, &sample_only).await.json(StatusCode::ACCEPTED);

        let body = h.get(&detail, Some(&viewer)).await.json(StatusCode::OK);
        // newest first: the rows of one report in reverse order of the comparison
        assert_eq!(
            rows(&body["changes"]),
            [
                change("disk", "S6PNNS0T123456", "added", None, Some("sda Samsung SSD 870 EVO 238.5 GiB")),
                change("disk", "50026B7782A1B2C3", "removed", Some("sda KINGSTON SA400S37240G 238.5 GiB"), None),
                change("memory", "total", "changed", Some("7.7 GiB"), Some("3.8 GiB")),
            ]
        );
        let changes = body["changes"].as_array().unwrap();
        for c in changes {
            assert_eq!(c["report_id"], changed["report_id"], "{c}");
            assert!(c["at"].as_i64().unwrap() >= hatang_collector::now() - 60, "{c}");
        }
        let ids: Vec<i64> = changes.iter().map(|c| c["id"].as_i64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");

        // the counter: exactly these three, every other component × kind at zero
        let series = h.metrics().await.series("hatang_inventory_changes_total");
        assert_eq!(
            series.len(),
            hatang_collector::changes::COMPONENTS.len() * ChangeKind::ALL.len()
        );
        assert_eq!(
            counted(h.metrics().await.series("hatang_inventory_changes_total")),
            [
                ("disk".to_string(), "added".to_string(), 1.0),
                ("disk".to_string(), "removed".to_string(), 1.0),
                ("memory".to_string(), "changed".to_string(), 1.0),
            ]
        );

        // paging: two, then the rest, then nothing
        let page = |query: String| {
            let (h, viewer, id) = (&h, &viewer, &agent.id);
            async move {
                h.get(&format!("/api/v1/agents/{id}/changes{query}"), Some(viewer))
                    .await
                    .json(StatusCode::OK)
            }
        };
        let first = page("?limit=2".into()).await;
        assert_eq!(first["changes"].as_array().unwrap().len(), 2);
        assert_eq!(first["next_before"], json!(ids[1]));
        let second = page(format!("?limit=2&before={}", ids[1])).await;
        assert_eq!(rows(&second["changes"]), rows(&json!([changes[2].clone()])));
        assert_eq!(second["next_before"], Value::Null);
        let all = page(String::new()).await;
        assert_eq!(all["changes"], body["changes"]);
        assert_eq!(all["agent_id"], json!(agent.id));

        for bad in ["?limit=0", "?limit=1001", "?before=x"] {
            h.get(&format!("/api/v1/agents/{}/changes{bad}", agent.id), Some(&viewer))
                .await
                .error(StatusCode::BAD_REQUEST, "invalid_query");
        }
        h.get("/api/v1/agents/nope/changes", Some(&viewer))
            .await
            .error(StatusCode::NOT_FOUND, "not_found");
        h.get(&format!("/api/v1/agents/{}/changes", agent.id), None)
            .await
            .error(StatusCode::UNAUTHORIZED, "unauthorized");

        // the store tells the ingest what to count
        let mut renamed = report();
        renamed["inventory"]["memory"]["total_bytes"] = json!(4_123_168_768u64);
        renamed["inventory"]["disks"] = changed["inventory"]["disks"].clone();
        renamed["inventory"]["hostname"] = json!("ub-xa-tan-lac-02");
        let text = renamed.to_string();
        let parsed: Report = serde_json::from_str(&text).unwrap();
        let now = hatang_collector::now();
        assert_eq!(
            h.store().store_report(&agent.id, &parsed, &text, now).await.unwrap(),
            Stored::Accepted { changes: vec![("system", ChangeKind::Changed)] }
        );
        assert_eq!(
            h.store().store_report(&agent.id, &parsed, &text, now).await.unwrap(),
            Stored::Duplicate
        );
        let log = h.store().inventory_changes(&agent.id, None, 100).await.unwrap();
        assert_eq!(log.len(), 4);
        assert_eq!(
            (log[0].component.as_str(), log[0].key.as_str(), log[0].before.as_deref(), log[0].after.as_deref()),
            ("system", "hostname", Some("ub-xa-tan-lac-01"), Some("ub-xa-tan-lac-02"))
        );
        assert!(h.store().inventory_changes("nope", None, 100).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_memory_module_removed_and_the_monitor_gone_are_logged(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let viewer = h.api_token("viewer").await;
        let agent = h.enrolled(&h.enrol_token("4351", None).await, "m").await;
        let mut before = report();
        let first = before["inventory"]["memory_modules"][0].clone();
        let mut second = first.clone();
        second["locator"] = json!("DIMM2");
        second["serial"] = json!("3A1B2C5E");
        before["inventory"]["memory_modules"] = json!([first, second]);
        h.report(&agent.key, &before).await.json(StatusCode::ACCEPTED);

        let mut after = report();
        after["inventory"]["monitors"] = json!([]);
        after["inventory"]["software"] = json!([{"name": "firefox-esr", "version": "128.5.0esr-1"}]);
        h.report(&agent.key, &after).await.json(StatusCode::ACCEPTED);

        let body = h
            .get(&format!("/api/v1/agents/{}/changes", agent.id), Some(&viewer))
            .await
            .json(StatusCode::OK);
        // newest first; the software update is no inventory change
        assert_eq!(
            rows(&body["changes"]),
            [
                change("monitor", "DEL CFV9N97G0ABL", "removed", Some("DEL DELL P2419H 23.8\""), None),
                change(
                    "memory_module",
                    "DIMM2",
                    "removed",
                    Some("8.0 GiB DDR4 3200 MT/s SK Hynix HMA81GU6DJR8N-XN S/N 3A1B2C5E"),
                    None
                ),
            ]
        );
        assert_eq!(
            counted(h.metrics().await.series("hatang_inventory_changes_total")),
            [
                ("memory_module".to_string(), "removed".to_string(), 1.0),
                ("monitor".to_string(), "removed".to_string(), 1.0),
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_storing_one_change_at_once_log_it_once(db) {
        let a = Harness::with_tree_on(&db, TREE_3).await;
        let b = a.replica().await;
        let agent = a.enrolled(&a.enrol_token("4351", None).await, "m").await;
        a.report(&agent.key, &report()).await.json(StatusCode::ACCEPTED);
        let now = hatang_collector::now();
        for round in 1..=10u64 {
            // two different reports that both bring the same new memory size
            let memory = (8 + round) << 30;
            let texts: Vec<String> = (0..2)
                .map(|_| {
                    let mut r = report();
                    r["inventory"]["memory"]["total_bytes"] = json!(memory);
                    r.to_string()
                })
                .collect();
            let parsed: Vec<Report> = texts.iter().map(|t| serde_json::from_str(t).unwrap()).collect();
            let (x, y) = tokio::join!(
                a.store().store_report(&agent.id, &parsed[0], &texts[0], now),
                b.store().store_report(&agent.id, &parsed[1], &texts[1], now),
            );
            // whichever came second compared with what the first stored
            let mut outcomes = [x.unwrap(), y.unwrap()];
            outcomes.sort_by_key(|o| *o == Stored::Accepted { changes: vec![] });
            assert_eq!(
                outcomes,
                [
                    Stored::Accepted { changes: vec![("memory", ChangeKind::Changed)] },
                    Stored::Accepted { changes: vec![] },
                ],
                "round {round}"
            );
        }
        let log = b.store().inventory_changes(&agent.id, None, 100).await.unwrap();
        let afters: Vec<Option<&str>> = log.iter().map(|c| c.after.as_deref()).collect();
        assert_eq!(
            afters,
            ["18.0 GiB", "17.0 GiB", "16.0 GiB", "15.0 GiB", "14.0 GiB", "13.0 GiB", "12.0 GiB",
             "11.0 GiB", "10.0 GiB", "9.0 GiB"].map(Some)
        );
    }

    #[tokio::test]
    async fn snapshots_keep_each_day_as_it_was(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let viewer = h.api_token("viewer").await;
        h.fleet().await;
        let figures = hatang_collector::http::compute_figures(h.store(), h.config()).await.unwrap();
        let written = history::write(h.store(), "2026-01-01", &figures).await.unwrap();
        assert_eq!(
            written,
            Taken::Written { date: "2026-01-01".into(), levels: 3, units: 5 }
        );

        // the reform: the district goes, a commune comes
        h.import(TREE_2).await;
        let reformed = hatang_collector::http::compute_figures(h.store(), h.config()).await.unwrap();
        // 1 January is taken and stays as it was
        assert_eq!(
            history::write(h.store(), "2026-01-01", &reformed).await.unwrap(),
            Taken::Exists { date: "2026-01-01".into() }
        );
        history::write(h.store(), "2026-01-03", &reformed).await.unwrap();

        let coverage = |at: &'static str| {
            let (h, viewer) = (&h, &viewer);
            async move {
                h.get(&format!("/api/v1/coverage?at={at}"), Some(viewer))
                    .await
                    .json(StatusCode::OK)
            }
        };
        // (level, units with staff, staff, equipped, ratio, target)
        let levels = |body: &Value| -> Vec<(String, u64, u64, u64, f64, f64)> {
            body["levels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    (
                        l["level"].as_str().unwrap().to_string(),
                        l["units"].as_u64().unwrap(),
                        l["staff"].as_u64().unwrap(),
                        l["equipped_staff"].as_u64().unwrap(),
                        l["equipment_ratio"].as_f64().unwrap(),
                        l["target_ratio"].as_f64().unwrap(),
                    )
                })
                .collect()
        };
        let old = coverage("2026-01-01").await;
        // province 1 of 4 (the root has no staff); district 2 of 10; commune min(3, 5) + 0 of 3 + 5
        assert_eq!(
            levels(&old),
            [
                ("province".to_string(), 1, 4, 1, 0.25, 0.98),
                ("district".to_string(), 1, 10, 2, 0.2, 0.91),
                ("commune".to_string(), 2, 8, 3, 0.375, 0.88),
            ]
        );
        assert_eq!(old["at"], json!(figures.at));
        let units: Vec<(&str, &str, u64)> = old["units"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["code"].as_str().unwrap(),
                    u["parent_code"].as_str().unwrap_or(""),
                    u["equipped_staff"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            units,
            [("17", "", 0), ("17-SYT", "17", 1), ("148", "17", 2), ("4351", "148", 3), ("4352", "148", 0)]
        );
        assert_eq!(old["units"][3]["active_workstations"], 5);
        assert_eq!(old["units"][4]["servers"], 1);
        assert_eq!(old["units"][4]["name"], "Xã Hòa Bình");

        let new = coverage("2026-01-03").await;
        // the communes now include 4360 (staff 7, no computer): 3 of 15
        assert_eq!(
            levels(&new),
            [
                ("province".to_string(), 1, 4, 1, 0.25, 0.98),
                ("commune".to_string(), 3, 15, 3, 0.2, 0.88),
            ]
        );
        // and the current figures agree with the newest snapshot
        let now = h.get("/api/v1/coverage", Some(&viewer)).await.json(StatusCode::OK);
        assert_eq!(levels(&now), levels(&new));
        assert_eq!(now["units"], new["units"]);

        // one level of one day, and its CSV with the retired district
        let district = h
            .get("/api/v1/coverage?at=2026-01-01&level=district", Some(&viewer))
            .await
            .json(StatusCode::OK);
        assert_eq!(district["units"].as_array().unwrap().len(), 1);
        h.get("/api/v1/coverage?at=2026-01-03&level=district", Some(&viewer))
            .await
            .error(StatusCode::NOT_FOUND, "not_found");
        let csv = h.get("/api/v1/coverage.csv?at=2026-01-01", Some(&viewer)).await;
        assert_eq!(csv.status, StatusCode::OK);
        assert!(
            csv.text()
                .lines()
                .any(|l| l.starts_with("district,148,Thành phố Hòa Bình,17,10,2,2,0.2000,0.9100,")),
            "{}",
            csv.text()
        );

        // days without a snapshot say which days have one
        for (at, message) in [
            ("2026-01-02", "no figure snapshot for 2026-01-02; the nearest are 2026-01-01 and 2026-01-03"),
            ("2025-12-31", "no figure snapshot for 2025-12-31; the nearest is 2026-01-01"),
            ("2026-02-01", "no figure snapshot for 2026-02-01; the nearest is 2026-01-03"),
        ] {
            let reply = h.get(&format!("/api/v1/coverage?at={at}"), Some(&viewer)).await;
            assert_eq!(reply.error(StatusCode::NOT_FOUND, "not_found"), message);
            let reply = h.get(&format!("/api/v1/coverage.csv?at={at}"), Some(&viewer)).await;
            assert_eq!(reply.error(StatusCode::NOT_FOUND, "not_found"), message);
        }
        h.get("/api/v1/coverage?at=2026-02-30", Some(&viewer))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_query");

        // the trend: (date, level, ratio)
        let trend = |query: &'static str| {
            let (h, viewer) = (&h, &viewer);
            async move {
                let body = h
                    .get(&format!("/api/v1/coverage/history{query}"), Some(viewer))
                    .await
                    .json(StatusCode::OK);
                body["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        (
                            p["date"].as_str().unwrap().to_string(),
                            p["level"].as_str().unwrap().to_string(),
                            p["equipment_ratio"].as_f64().unwrap(),
                        )
                    })
                    .collect::<Vec<_>>()
            }
        };
        let point = |d: &str, l: &str, r: f64| (d.to_string(), l.to_string(), r);
        assert_eq!(
            trend("?level=commune").await,
            [point("2026-01-01", "commune", 0.375), point("2026-01-03", "commune", 0.2)]
        );
        // the district keeps its past after it left the tree
        assert_eq!(trend("?level=district").await, [point("2026-01-01", "district", 0.2)]);
        assert_eq!(
            trend("?from=2026-01-02").await,
            [point("2026-01-03", "province", 0.25), point("2026-01-03", "commune", 0.2)]
        );
        assert_eq!(trend("?to=2026-01-01").await.len(), 3);
        assert_eq!(trend("").await.len(), 5);
        assert!(trend("?level=commune&from=2026-01-04").await.is_empty());
        h.get("/api/v1/coverage/history?from=2026-01-03&to=2026-01-01", Some(&viewer))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_query");
        h.get("/api/v1/coverage/history?from=yesterday", Some(&viewer))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_query");
        let body = h
            .get("/api/v1/coverage/history?level=commune", Some(&viewer))
            .await
            .json(StatusCode::OK);
        let first = &body["points"][0];
        assert_eq!(
            (first["units"].as_u64(), first["staff"].as_u64(), first["target_ratio"].as_f64()),
            (Some(2), Some(8), Some(0.88))
        );
    }

    #[tokio::test]
    async fn todays_snapshot_is_written_once(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let today = history::format_date(history::date_of(
            hatang_collector::now(),
            h.config().utc_offset,
        ));
        assert_eq!(
            history::take_today(h.store(), h.config()).await.unwrap(),
            Taken::Written { date: today.clone(), levels: 3, units: 5 }
        );
        h.import(TREE_2).await;
        assert_eq!(
            history::take_today(h.store(), h.config()).await.unwrap(),
            Taken::Exists { date: today.clone() }
        );
        let (_, rows) = h.store().snapshot(&today).await.unwrap().unwrap();
        assert_eq!(rows.len(), 3 + 5);
        assert!(rows.iter().any(|r| r.code == "148"), "the tree of the morning");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_write_one_snapshot(db) {
        let a = Harness::with_tree_on(&db, TREE_3).await;
        let b = a.replica().await;
        a.fleet().await;
        let figures = hatang_collector::http::compute_figures(a.store(), a.config()).await.unwrap();
        for day in 1..=10 {
            let date = format!("2026-03-{day:02}");
            let (x, y) = tokio::join!(
                history::write(a.store(), &date, &figures),
                history::write(b.store(), &date, &figures),
            );
            let mut outcomes = [x.unwrap(), y.unwrap()];
            outcomes.sort_by_key(|t| matches!(t, Taken::Exists { .. }));
            assert_eq!(
                outcomes,
                [
                    Taken::Written { date: date.clone(), levels: 3, units: 5 },
                    Taken::Exists { date: date.clone() },
                ]
            );
            let (_, rows) = b.store().snapshot(&date).await.unwrap().unwrap();
            assert_eq!(rows.len(), 3 + 5, "{date}");
        }
        assert_eq!(a.store().level_history(None, None, None).await.unwrap().len(), 10 * 3);
    }
}

impl Harness {
    async fn coverage_at(
        &self,
        date: &str,
        level: Option<&str>,
        format: Format,
    ) -> anyhow::Result<String> {
        let mut out = Vec::new();
        commands::coverage_at(self.store(), date, level, format, &mut out).await?;
        Ok(String::from_utf8(out).unwrap())
    }

    async fn snapshot_now(&self) -> String {
        let mut out = Vec::new();
        commands::snapshot(self.store(), self.config(), &mut out)
            .await
            .unwrap();
        String::from_utf8(out).unwrap()
    }
}

#[tokio::test]
async fn cli_coverage_at_reads_the_snapshot_of_that_day() {
    let h = Harness::with_tree(TREE_3).await;
    h.fleet().await;
    let today = history::format_date(history::date_of(
        hatang_collector::now(),
        h.config().utc_offset,
    ));
    assert_eq!(
        h.snapshot_now().await,
        format!("snapshot of {today} written: 3 levels, 5 units\n")
    );
    assert_eq!(
        h.snapshot_now().await,
        format!("snapshot of {today} already taken; left as it was\n")
    );
    h.import(TREE_2).await;

    let table = h.coverage_at(&today, None, Format::Table).await.unwrap();
    assert_eq!(
        table,
        "LEVEL         UNITS    STAFF  EQUIPPED    RATIO   TARGET\n\
         province          1        4         1    25.0%    98.0%\n\
         district          1       10         2    20.0%    91.0%\n\
         commune           2        8         3    37.5%    88.0%\n"
    );
    let district = h
        .coverage_at(&today, Some("district"), Format::Table)
        .await
        .unwrap();
    assert!(
        district.contains("\n148        Thành phố Hòa Bình"),
        "{district}"
    );
    let doc: Value =
        serde_json::from_str(&h.coverage_at(&today, None, Format::Json).await.unwrap()).unwrap();
    assert_eq!(doc["units"].as_array().unwrap().len(), 5);
    let csv = h.coverage_at(&today, None, Format::Csv).await.unwrap();
    assert!(csv.starts_with('\u{feff}'));
    assert_eq!(
        csv.lines().count(),
        1 + 3 + 5,
        "a header, three levels, five units"
    );

    let err = |e: anyhow::Error| format!("{e:#}");
    assert_eq!(
        err(h
            .coverage_at("2020-01-01", None, Format::Table)
            .await
            .unwrap_err()),
        format!("no figure snapshot for 2020-01-01; the nearest is {today}")
    );
    assert_eq!(
        err(h
            .coverage_at("2026-13-01", None, Format::Table)
            .await
            .unwrap_err()),
        "--at \"2026-13-01\" is not a date such as 2026-01-01 (YYYY-MM-DD)"
    );
    assert_eq!(
        err(h
            .coverage_at(&today, Some("ward"), Format::Table)
            .await
            .unwrap_err()),
        format!(
            "no level \"ward\" in the snapshot of {today} (levels: province, district, commune)"
        )
    );
    // the current figures have moved on
    let mut out = Vec::new();
    commands::coverage(h.store(), h.config(), None, Format::Table, &mut out)
        .await
        .unwrap();
    assert!(!String::from_utf8(out).unwrap().contains("district"));
}

#[tokio::test]
async fn cli_coverage_at_without_any_snapshot_says_how_to_take_one() {
    let h = Harness::with_tree(TREE_3).await;
    let e = h
        .coverage_at("2026-01-01", None, Format::Table)
        .await
        .unwrap_err();
    assert_eq!(
        format!("{e:#}"),
        "no figure snapshot for 2026-01-01; no snapshot has been taken yet: \
         `hatang-collector serve` takes one every day, `hatang-collector snapshot` takes today's now"
    );
}

#[tokio::test]
async fn serve_takes_todays_snapshot_at_start_up() {
    let h = Harness::with_tree(TREE_3).await;
    let today = history::format_date(history::date_of(
        hatang_collector::now(),
        h.config().utc_offset,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hatang_collector::serve(
        h.state.clone(),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while h.store().snapshot(&today).await.unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot of {today} after 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let (_, rows) = h.store().snapshot(&today).await.unwrap().unwrap();
    assert_eq!(rows.len(), 3 + 5);
}
