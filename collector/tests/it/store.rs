//! The store on its own: imports, the current tree, tokens, reports, and what must hold when
//! several collector replicas share one database.
//!
//! This is the storage conformance suite: every story runs on SQLite (`STORY::sqlite`) and on
//! PostgreSQL (`STORY::postgres`, when `HATANG_TEST_POSTGRES_URL` is set), each on a fresh
//! database, and both stores must tell the same story.

use std::time::{Duration, Instant};

use axum::http::StatusCode;

use hatang_collector::figures::Role;
use hatang_collector::secret::{self, Kind};
use hatang_collector::store::{
    self, ApiRole, EnrolRefusal, ImportSummary, PostgresSettings, PostgresStore, StoreError, Stored,
};
use hatang_protocol::Report;

use crate::support::{Harness, TREE_2, TREE_3, on_every_backend, report};

fn summary(added: u32, updated: u32, unchanged: u32, retired: u32) -> ImportSummary {
    ImportSummary {
        added,
        updated,
        unchanged,
        retired,
        ..ImportSummary::default()
    }
}

fn codes(units: &[hatang_collector::figures::UnitRow]) -> Vec<&str> {
    units.iter().map(|u| u.code.as_str()).collect()
}

on_every_backend! {
    #[tokio::test]
    async fn imports_report_what_they_changed(db) {
        let h = Harness::on(&db).await;
        assert_eq!(h.import(TREE_3).await, summary(5, 0, 0, 0));
        assert_eq!(h.import(TREE_3).await, summary(0, 0, 5, 0));
        // the reform: 148 retired, the communes re-parented, 4360 new
        assert_eq!(h.import(TREE_2).await, summary(1, 2, 2, 1));
        // going back revives 148 and retires 4360
        assert_eq!(h.import(TREE_3).await, summary(1, 2, 2, 1));
        let staff_change = TREE_3.replace(
            "4352,Xã Hòa Bình,commune,148,5",
            "4352,Xã Hòa Bình,commune,148,6",
        );
        assert_eq!(h.import(&staff_change).await, summary(0, 1, 4, 0));
    }

    #[tokio::test]
    async fn the_current_tree_leaves_retired_units_out(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let units = h.store().units().await.unwrap();
        assert_eq!(codes(&units), ["17", "17-SYT", "148", "4351", "4352"]);
        assert_eq!(
            units.iter().map(|u| u.depth).collect::<Vec<_>>(),
            [0, 1, 1, 2, 2]
        );
        assert_eq!(units[1].name, "Sở Y tế");

        h.import(TREE_2).await;
        let units = h.store().units().await.unwrap();
        assert_eq!(codes(&units), ["17", "17-SYT", "4351", "4352", "4360"]);
        let commune = units.iter().find(|u| u.code == "4351").unwrap();
        assert_eq!(
            (commune.parent_code.as_deref(), commune.depth, commune.staff),
            (Some("17"), 1, 3)
        );
    }

    #[tokio::test]
    async fn enrolment_tokens_need_a_current_unit(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        h.import(TREE_2).await;
        let now = hatang_collector::now();
        for unit in ["148", "9999"] {
            let token = secret::generate(Kind::Enrol).unwrap();
            let err = h
                .store()
                .create_enrol_token(&token.digest, unit, Role::Workstation, now, None, None)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, StoreError::NotFound(what) if what == &format!("unit {unit}")),
                "{err:?}"
            );
        }
        let token = secret::generate(Kind::Enrol).unwrap();
        h.store()
            .create_enrol_token(&token.digest, "4360", Role::Server, now, None, None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn enrolment_is_refused_for_the_right_reason(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let now = hatang_collector::now();
        let enrol = |digest: Vec<u8>, machine: &'static str| {
            let key = secret::generate(Kind::Agent).unwrap();
            let store = h.store();
            async move {
                store
                    .enroll(&digest, machine, "pc", &key.digest, now)
                    .await
                    .unwrap()
            }
        };
        let unknown = secret::generate(Kind::Enrol).unwrap();
        assert_eq!(
            enrol(unknown.digest, "m").await,
            Err(EnrolRefusal::UnknownToken)
        );

        let expired = secret::generate(Kind::Enrol).unwrap();
        h.store()
            .create_enrol_token(
                &expired.digest,
                "148",
                Role::Workstation,
                now - 10,
                Some(now),
                None,
            )
            .await
            .unwrap();
        assert_eq!(enrol(expired.digest, "m").await, Err(EnrolRefusal::Expired));

        let good = secret::generate(Kind::Enrol).unwrap();
        h.store()
            .create_enrol_token(&good.digest, "148", Role::Workstation, now, Some(now + 60), None)
            .await
            .unwrap();
        let first = enrol(good.digest.clone(), "m").await.unwrap();
        assert_eq!(
            (first.unit_code.as_str(), first.role, first.reused),
            ("148", Role::Workstation, false)
        );
        let again = enrol(good.digest.clone(), "m").await.unwrap();
        assert_eq!(
            (again.agent_id.as_str(), again.reused),
            (first.agent_id.as_str(), true)
        );

        h.import(TREE_2).await;
        assert_eq!(
            enrol(good.digest, "m2").await,
            Err(EnrolRefusal::UnitRetired)
        );
    }

    #[tokio::test]
    async fn api_tokens_have_a_role_until_they_expire(db) {
        let h = Harness::on(&db).await;
        let now = hatang_collector::now();
        let viewer = secret::generate(Kind::Api).unwrap();
        let admin = secret::generate(Kind::Api).unwrap();
        h.store()
            .create_api_token(&viewer.digest, ApiRole::Viewer, now, Some(now + 60))
            .await
            .unwrap();
        h.store()
            .create_api_token(&admin.digest, ApiRole::Admin, now, None)
            .await
            .unwrap();
        let store = h.store();
        let role =
            |digest: Vec<u8>, at: i64| async move { store.api_token_role(&digest, at).await.unwrap() };
        assert_eq!(
            role(viewer.digest.clone(), now).await,
            Some(ApiRole::Viewer)
        );
        assert_eq!(role(viewer.digest.clone(), now + 60).await, None);
        assert_eq!(
            role(admin.digest.clone(), now + 10_000_000).await,
            Some(ApiRole::Admin)
        );
        assert_eq!(role(secret::digest("htu_unknown"), now).await, None);
        assert!(ApiRole::Viewer < ApiRole::Admin);
    }

    #[tokio::test]
    async fn a_report_is_stored_once_for_the_agent_its_key_names(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let agent = h.enrolled(&h.enrol_token("4351", None).await, "m").await;
        let identity = h
            .store()
            .agent_by_key(&secret::digest(&agent.key))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (identity.id.as_str(), identity.unit_code.as_str()),
            (agent.id.as_str(), "4351")
        );
        assert_eq!(
            h.store()
                .agent_by_key(&secret::digest("hta_x"))
                .await
                .unwrap(),
            None
        );

        let text = report().to_string();
        let parsed: Report = serde_json::from_str(&text).unwrap();
        let now = hatang_collector::now();
        let store = h.store();
        assert_eq!(
            store
                .store_report(&agent.id, &parsed, &text, now)
                .await
                .unwrap(),
            Stored::Accepted { changes: vec![] }
        );
        assert_eq!(
            store
                .store_report(&agent.id, &parsed, &text, now)
                .await
                .unwrap(),
            Stored::Duplicate
        );
        assert_eq!(store.report_count(Some(&agent.id)).await.unwrap(), 1);
        assert_eq!(store.report_count(Some("other")).await.unwrap(), 0);
        let (record, evidence) = store.agent(&agent.id).await.unwrap().unwrap();
        assert_eq!(record.last_report_at, Some(now));
        let inventory: serde_json::Value = serde_json::from_str(&evidence.inventory.unwrap()).unwrap();
        assert_eq!(inventory["os"]["name"], "Debian GNU/Linux");
        assert_eq!(store.agent("nope").await.unwrap(), None);
    }

    #[tokio::test]
    async fn everything_survives_reopening_the_database(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let agent = h.enrolled(&h.enrol_token("4351", None).await, "m").await;
        h.report(&agent.key, &report()).await;
        let reopened = store::open(&h.config().database, store::Missing::Create).await.unwrap();
        reopened.ping().await.unwrap();
        assert_eq!(
            reopened.units().await.unwrap(),
            h.store().units().await.unwrap()
        );
        assert_eq!(
            reopened.agents().await.unwrap(),
            h.store().agents().await.unwrap()
        );
        assert_eq!(reopened.report_count(None).await.unwrap(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_enrolling_one_machine_at_once_make_one_agent(db) {
        let a = Harness::with_tree_on(&db, TREE_3).await;
        let b = a.replica().await;
        let token = secret::generate(Kind::Enrol).unwrap();
        let now = hatang_collector::now();
        a.store()
            .create_enrol_token(&token.digest, "4351", Role::Workstation, now, None, None)
            .await
            .unwrap();
        for round in 0..10 {
            let machine = format!("m-{round}");
            let key_a = secret::generate(Kind::Agent).unwrap();
            let key_b = secret::generate(Kind::Agent).unwrap();
            let (x, y) = tokio::join!(
                a.store().enroll(&token.digest, &machine, "pc", &key_a.digest, now),
                b.store().enroll(&token.digest, &machine, "pc", &key_b.digest, now),
            );
            let (x, y) = (x.unwrap().unwrap(), y.unwrap().unwrap());
            assert_eq!(x.agent_id, y.agent_id, "round {round}");
            assert!(x.reused != y.reused, "one created, one reused: {x:?} {y:?}");
            // the later enrolment's key is the one that works
            let winner = if x.reused { &key_a } else { &key_b };
            let loser = if x.reused { &key_b } else { &key_a };
            let identity = a.store().agent_by_key(&winner.digest).await.unwrap();
            assert_eq!(identity.map(|i| i.id), Some(x.agent_id.clone()));
            assert_eq!(a.store().agent_by_key(&loser.digest).await.unwrap(), None);
        }
        assert_eq!(a.store().agents().await.unwrap().len(), 10);
        assert_eq!(b.store().agents().await.unwrap().len(), 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_storing_one_report_at_once_store_it_once(db) {
        let a = Harness::with_tree_on(&db, TREE_3).await;
        let b = a.replica().await;
        let agent = a.enrolled(&a.enrol_token("4351", None).await, "m").await;
        let now = hatang_collector::now();
        for _ in 0..10 {
            let text = report().to_string();
            let parsed: Report = serde_json::from_str(&text).unwrap();
            let (x, y) = tokio::join!(
                a.store().store_report(&agent.id, &parsed, &text, now),
                b.store().store_report(&agent.id, &parsed, &text, now),
            );
            let mut outcomes = [x.unwrap(), y.unwrap()];
            outcomes.sort_by_key(|o| *o == Stored::Duplicate);
            assert_eq!(outcomes, [Stored::Accepted { changes: vec![] }, Stored::Duplicate]);
        }
        assert_eq!(b.store().report_count(Some(&agent.id)).await.unwrap(), 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn imports_from_two_replicas_at_once_happen_one_after_the_other(db) {
        let a = Harness::with_tree_on(&db, TREE_3).await;
        let b = a.replica().await;
        let tree_2 = hatang_collector::units::parse(TREE_2.as_bytes()).unwrap();
        let tree_3 = hatang_collector::units::parse(TREE_3.as_bytes()).unwrap();
        let reform = summary(1, 2, 2, 1);
        let same = summary(0, 0, 5, 0);
        let mut previous_is_2 = false;
        for round in 0..10 {
            let now = hatang_collector::now();
            let (to_2, to_3) = tokio::join!(
                a.store().import_units(&tree_2, now),
                b.store().import_units(&tree_3, now),
            );
            let (to_2, to_3) = (to_2.unwrap(), to_3.unwrap());
            let current = codes(&a.store().units().await.unwrap())
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>();
            // Whichever came second saw the first one's tree, never the one before both.
            let expected = if current.contains(&"4360".to_string()) {
                // 3 then 2
                assert_eq!(current, ["17", "17-SYT", "4351", "4352", "4360"]);
                (reform, if previous_is_2 { reform } else { same })
            } else {
                assert_eq!(current, ["17", "17-SYT", "148", "4351", "4352"]);
                (if previous_is_2 { same } else { reform }, reform)
            };
            assert_eq!((to_2, to_3), expected, "round {round}");
            previous_is_2 = current.contains(&"4360".to_string());
        }
    }
}

#[tokio::test]
async fn a_wrong_postgres_address_fails_within_seconds_without_its_password() {
    let settings = PostgresSettings {
        connect_timeout: Duration::from_secs(1),
        ..PostgresSettings::default()
    };
    let started = Instant::now();
    // Nothing listens on port 1 of the loopback: the connection is refused, again and again.
    let err = PostgresStore::open("postgres://hatang:s3cret@127.0.0.1:1/hatang", &settings)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, StoreError::ConnectTimeout { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "no connection to postgres://hatang:***@127.0.0.1:1/hatang within 1 s \
         (is the server up and the address right?)"
    );
}

#[tokio::test]
async fn other_databases_are_refused_without_their_password() {
    let err = store::open("mysql://hatang:s3cret@db/hatang", store::Missing::Create)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

on_every_backend! {
    /// The figures read agents through one aggregate query per unit and role; it must say what
    /// the figure rules say of every agent row, at every age of the evidence.
    #[tokio::test]
    async fn agent_groups_agree_with_the_figure_rules_row_by_row(db) {
        use hatang_collector::figures::{self, AgentRow, Rules};
        use serde_json::json;
        use time::format_description::well_known::Rfc3339;

        let h = Harness::with_tree_on(&db, TREE_3).await;
        let tokens = [
            h.enrol_token("4351", Some("workstation")).await,
            h.enrol_token("4351", Some("server")).await,
            h.enrol_token("17-SYT", Some("workstation")).await,
        ];
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for i in 0..30usize {
            let agent = h.enrolled(&tokens[i % 3], &format!("group-{i}")).await;
            if i % 10 == 9 {
                continue; // enrolled, never reported
            }
            let mut r = report();
            r["interval_secs"] = json!([30, 60, 300, 3600][i % 4]);
            // Probe successes count from the report's agent time (a report that waited in a
            // spool proves older connectivity).
            let made = now - [0, 90, 700, 5000, 90_000][i % 5];
            r["agent_time"] = json!(
                time::OffsetDateTime::from_unix_timestamp(made)
                    .unwrap()
                    .format(&Rfc3339)
                    .unwrap()
            );
            r["probes"][0]["class"] = json!(["internet", "gov-wan", "datacentre"][i % 3]);
            r["probes"][1]["class"] = json!(["gov-wan", "internet"][i % 2]);
            if i % 6 == 5 {
                r["probes"][0]["successes"] = json!(0);
                r["probes"][1]["successes"] = json!(0);
            }
            match i % 4 {
                0 => {
                    r.as_object_mut().unwrap().remove("speed");
                }
                1 => r["speed"]["download_bits_per_second"] = json!(1.5e6),
                2 => r["speed"]["download_bits_per_second"] = json!(null),
                _ => {}
            }
            if i % 4 == 1 {
                r.as_object_mut().unwrap().remove("spool");
            } else {
                r["spool"] = json!({"dropped_reports": i, "waiting_reports": 2 * i});
            }
            if i % 7 == 3 {
                for nic in r["inventory"]["interfaces"].as_array_mut().unwrap() {
                    nic["default_route"] = json!(false);
                }
            }
            h.report(&agent.key, &r).await.json(StatusCode::ACCEPTED);
            if i % 8 == 6 {
                // revoked after reporting: counts for nothing
                h.store().revoke_agent(&agent.id, now).await.unwrap();
            }
        }

        let rules = Rules {
            equipment_window_secs: 3600,
            targets: Default::default(),
            broadband_window_secs: 600,
            broadband_min_bps: 2e6,
        };
        let rows: Vec<AgentRow> = h
            .store()
            .agents()
            .await
            .unwrap()
            .iter()
            .map(|a| a.figures_row())
            .collect();
        let mut seen_online = false;
        for at in [now, now + 100, now + 1000, now + 4000, now + 100_000, now + 10_000_000] {
            let expected = figures::group(&rows, &rules, at);
            assert_eq!(expected.len(), 3, "two units, both roles in one");
            seen_online |= expected.iter().any(|g| g.online > 0 && g.broadband);
            assert_eq!(
                h.store().agent_groups(&rules, at).await.unwrap(),
                expected,
                "at now + {}",
                at - now
            );
        }
        assert!(seen_online, "the fleet never showed an online agent with broadband");
    }
}

on_every_backend! {
    #[tokio::test]
    async fn reports_past_retention_are_deleted_in_batches_and_only_those(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let token = h.enrol_token("17-SYT", Some("workstation")).await;
        let agent = h.enrolled(&token, "pruned").await;
        let other = h.enrolled(&token, "pruned-too").await;
        // The last of the agent's reports renames the machine: a change logged against it.
        for i in 0..5 {
            let mut r = report();
            if i == 4 {
                r["inventory"]["hostname"] = serde_json::json!("pruned-renamed");
            }
            h.report(&agent.key, &r).await.json(StatusCode::ACCEPTED);
        }
        for _ in 0..2 {
            h.report(&other.key, &report()).await.json(StatusCode::ACCEPTED);
        }
        let logged = h.store().inventory_changes(&agent.id, None, 100).await.unwrap();
        assert_eq!(logged.len(), 1, "{logged:?}");
        // Each agent's count (kept with its row) adds up to the reports really stored.
        let counts = async || {
            let store = h.store();
            let (a, b) = (store.report_count(Some(&agent.id)), store.report_count(Some(&other.id)));
            let (a, b, all) = (a.await.unwrap(), b.await.unwrap(), store.report_count(None).await.unwrap());
            assert_eq!(a + b, all, "per-agent counts {a} + {b} against {all} stored");
            (a, b)
        };
        assert_eq!(counts().await, (5, 2));
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        // Nothing arrived before an hour ago.
        assert_eq!(
            hatang_collector::retention::prune(h.store(), now - 3600).await.unwrap(),
            0
        );
        assert_eq!(h.store().report_count(None).await.unwrap(), 7);
        // Batches: 3 + 3 + 1, and the last one says it is done.
        assert_eq!(h.store().prune_reports(now + 1, 3).await.unwrap(), 3);
        assert_eq!(h.store().report_count(None).await.unwrap(), 4);
        counts().await;
        assert_eq!(
            hatang_collector::retention::prune(h.store(), now + 1).await.unwrap(),
            4
        );
        assert_eq!(counts().await, (0, 0));
        // The change log outlives the reports it names, and so does the agent's latest state.
        assert_eq!(h.store().inventory_changes(&agent.id, None, 100).await.unwrap(), logged);
        let (record, evidence) = h.store().agent(&agent.id).await.unwrap().unwrap();
        assert!(record.last_report_at.is_some() && evidence.sample.is_some());
    }
}

on_every_backend! {
    #[tokio::test]
    async fn an_upgraded_database_keeps_inventories_report_counts_and_changes(db) {
        // A database as the migrations before 0008 left it: an agent with an inventory in its
        // row, three reports and a change logged against the last, and one without any of it.
        let dir = tempfile::tempdir().unwrap();
        let test_db = db.database(dir.path()).await;
        let (dialect, key, own_id) = match db {
            crate::support::Backend::Sqlite => ("sqlite", "X'01'", ""),
            crate::support::Backend::Postgres(_) => ("postgres", "'\\x01'::bytea", "OVERRIDING SYSTEM VALUE"),
        };
        let before = dir.path().join("before-0008");
        std::fs::create_dir(&before).unwrap();
        let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations").join(dialect);
        for entry in std::fs::read_dir(&all).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if name.as_str() < "0008" {
                std::fs::copy(&path, before.join(name)).unwrap();
            }
        }
        let old = sqlx::migrate::Migrator::new(before.as_path()).await.unwrap();
        let setup = [
            "INSERT INTO units (code, name, level, parent_code, staff, depth, position, imported_at)
             VALUES ('17', 'Tỉnh', 'province', NULL, 10, 0, 0, 0)".to_owned(),
            format!(
                "INSERT INTO agents (id, machine_id, unit_code, role, hostname, key_hash, enrolled_at, inventory)
                 VALUES ('a', 'm-a', '17', 'workstation', 'pc-a', {key}, 0, '{{\"disks\":[]}}')"
            ),
            format!(
                "INSERT INTO agents (id, machine_id, unit_code, role, hostname, key_hash, enrolled_at)
                 VALUES ('b', 'm-b', '17', 'workstation', 'pc-b', {}, 0)",
                key.replace("01", "02")
            ),
            "INSERT INTO reports (report_id, agent_id, received_at, agent_time, body)
             VALUES ('r1', 'a', 1, 1, ''), ('r2', 'a', 2, 2, ''), ('r3', 'a', 3, 3, '')".to_owned(),
            format!(
                "INSERT INTO inventory_changes (id, agent_id, report_id, at, component, key, kind, before, after)
                 {own_id} VALUES (7, 'a', 'r3', 3, 'system', 'hostname', 'changed', 'pc-a', 'pc-a2')"
            ),
        ];
        match db {
            crate::support::Backend::Sqlite => {
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(dir.path().join("t.db"))
                    .create_if_missing(true);
                let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
                old.run(&pool).await.unwrap();
                for sql in setup {
                    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
                }
                pool.close().await;
            }
            crate::support::Backend::Postgres(_) => {
                let pool = sqlx::PgPool::connect(&test_db.url).await.unwrap();
                old.run(&pool).await.unwrap();
                for sql in setup {
                    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
                }
                pool.close().await;
            }
        }

        let store = store::open(&test_db.url, store::Missing::Create).await.unwrap();
        let (_, evidence) = store.agent("a").await.unwrap().unwrap();
        assert_eq!(evidence.inventory.as_deref(), Some(r#"{"disks":[]}"#));
        assert_eq!(store.report_count(Some("a")).await.unwrap(), 3);
        let (_, evidence) = store.agent("b").await.unwrap().unwrap();
        assert_eq!(evidence.inventory, None);
        assert_eq!(store.report_count(Some("b")).await.unwrap(), 0);
        assert_eq!(store.report_count(None).await.unwrap(), 3);
        // The change keeps its id (the log's order and cursor) and outlives the report it names.
        let log = store.inventory_changes("a", None, 10).await.unwrap();
        assert_eq!(
            log.iter().map(|c| (c.id, c.report_id.as_str(), c.after.as_deref())).collect::<Vec<_>>(),
            [(7, "r3", Some("pc-a2"))]
        );
        assert_eq!(hatang_collector::retention::prune(&*store, 4).await.unwrap(), 3);
        assert_eq!(store.inventory_changes("a", None, 10).await.unwrap(), log);
    }
}

on_every_backend! {
    #[tokio::test]
    async fn a_renamed_machine_is_listed_under_its_new_name(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let token = h.enrol_token("17-SYT", Some("workstation")).await;
        let agent = h.enrolled(&token, "renamed").await;
        let hostname = async || h.store().agent(&agent.id).await.unwrap().unwrap().0.hostname;
        assert_eq!(hostname().await, "host-renamed", "as enrolled");
        let mut r = report();
        r["inventory"]["hostname"] = serde_json::json!("ub-xa-02");
        h.report(&agent.key, &r).await.json(StatusCode::ACCEPTED);
        assert_eq!(hostname().await, "ub-xa-02", "as its inventory says");
        // A report without an inventory says nothing of the name.
        let mut r = report();
        r.as_object_mut().unwrap().remove("inventory");
        h.report(&agent.key, &r).await.json(StatusCode::ACCEPTED);
        assert_eq!(hostname().await, "ub-xa-02");
    }
}
