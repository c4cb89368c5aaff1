//! A collector outage: the agent keeps every report while the collector is down, and when it is
//! back each arrives exactly once, in the order it was made. With the spool full, the oldest are
//! dropped and the count of what was lost arrives with the next report. A collector whose
//! database fails every report is the same outage to the agent; the operator sees it counted
//! and read its cause once in the log.
//!
//! What the collector stored is read three ways: `reports_stored` from the viewer API, the
//! accepted and duplicate counters from `/metrics`, and the `reports` table itself (read-only),
//! the one place that keeps the order reports were committed in and their whole bodies, where the
//! `spool` figures travel. The latest spool figures are also checked where operators see them:
//! the agent in the viewer API and the unit's series in `/metrics`.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::{Agent, Collector, get_as, run_ok, testdata};

/// Starts the collector with the report bodies kept: the test reads them back.
fn start_keeping_bodies(collector: &mut Collector) {
    collector.start_configured("figures_cache_secs = 0\nkeep_report_bodies = true\n", |c| {
        matches!(get_as(&c.addr, "/healthz", None), Ok((200, _)))
    });
}

/// An enrolled agent with its collector, a viewer token and an agent config file.
struct Setup {
    collector: Collector,
    agent: Agent,
    agent_id: String,
    viewer: String,
    config: PathBuf,
}

impl Setup {
    fn new(machine: &str, config: &str) -> Self {
        let mut collector = Collector::new();
        run_ok(
            collector
                .cli(&["units", "import"])
                .arg(testdata("units-hoa-binh-2024.csv")),
        );
        start_keeping_bodies(&mut collector);
        let agent = Agent::new(machine);
        let agent_id = agent.enroll(&collector, &collector.token(&["--unit", "17-SYT"]));
        let viewer = collector.token(&["--role", "viewer"]);
        let config_path = agent.state.path().join("agent.toml");
        std::fs::write(&config_path, config).unwrap();
        Self {
            collector,
            agent,
            agent_id,
            viewer,
            config: config_path,
        }
    }

    /// `hatang-agent once` with the config file: (succeeded, stdout, stderr).
    fn once(&self) -> (bool, String, String) {
        let output = self
            .agent
            .cmd(&["once", "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs `once` with the collector down; it must fail, saying how many reports it keeps.
    fn once_offline(&self, waiting: usize) {
        let (ok, _, stderr) = self.once();
        assert!(!ok, "succeeded with the collector down: {stderr}");
        let expected = format!("hatang-agent: report kept in the spool ({waiting} waiting)");
        assert!(stderr.contains(&expected), "{expected:?} not in {stderr}");
    }

    fn once_online(&self, sent: usize) {
        let (ok, stdout, stderr) = self.once();
        assert!(ok, "{stderr}");
        assert!(
            stdout.contains(&format!("sent {sent} report(s)")),
            "{stdout}"
        );
    }

    fn agent(&self) -> Value {
        let path = format!("/api/v1/agents/{}", self.agent_id);
        let (status, body) = get_as(&self.collector.addr, &path, Some(&self.viewer)).unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn reports_stored(&self) -> i64 {
        self.agent()["reports_stored"]
            .as_i64()
            .expect("reports_stored")
    }

    /// Runs `work` on a connection of its own to the collector's database, opened with `query`
    /// (`?mode=ro` to read only).
    fn on_database<T>(
        &self,
        query: &str,
        work: impl AsyncFnOnce(&mut sqlx::SqliteConnection) -> T,
    ) -> T {
        let url = format!("{}{query}", self.collector.database());
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async move {
                let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
                    .await
                    .unwrap();
                work(&mut db).await
            })
    }

    /// The stored reports' bodies, in the order the collector committed them.
    fn stored(&self) -> Vec<Value> {
        let rows: Vec<(String,)> = self.on_database("?mode=ro", async |db| {
            sqlx::query_as("SELECT body FROM reports WHERE agent_id = ? ORDER BY rowid")
                .bind(&self.agent_id)
                .fetch_all(db)
                .await
                .unwrap()
        });
        rows.iter()
            .map(|(body,)| serde_json::from_str(body).unwrap())
            .collect()
    }

    /// Makes the collector's database refuse every report (as a full disk does: the whole
    /// transaction fails) or take them again: a trigger on the `reports` table.
    fn fail_writes(&self, fail: bool) {
        let sql = if fail {
            "CREATE TRIGGER disk_full BEFORE INSERT ON reports
             BEGIN SELECT RAISE(ROLLBACK, 'database or disk is full'); END"
        } else {
            "DROP TRIGGER disk_full"
        };
        self.on_database("", async |db| {
            sqlx::query(sql).execute(db).await.unwrap();
        });
    }

    /// Checks that the collector stored `n` reports, each once, `accepted` of them since it
    /// was last started (its counters start from zero with the process).
    fn assert_stored_once(&self, n: usize, accepted: usize) -> Vec<Value> {
        assert_eq!(self.reports_stored(), n as i64);
        let metrics = self.collector.metrics();
        assert_eq!(
            metrics.get("hatang_reports_received_total", &[("outcome", "accepted")]),
            Some(accepted as f64)
        );
        let duplicates = metrics.get("hatang_reports_received_total", &[("outcome", "duplicate")]);
        assert_eq!(duplicates.unwrap_or(0.0), 0.0, "nothing was sent twice");
        let stored = self.stored();
        assert_eq!(stored.len(), n);
        // Committed in the order they were made: report ids are UUID v7, ordered by time.
        let ids: Vec<&str> = stored
            .iter()
            .map(|r| r["report_id"].as_str().unwrap())
            .collect();
        assert!(ids.is_sorted(), "stored out of order: {ids:?}");
        stored
    }
}

/// `(dropped_reports, waiting_reports)` a stored report carries.
fn spool(report: &Value) -> (u64, u64) {
    let s = &report["spool"];
    (
        s["dropped_reports"].as_u64().expect("dropped_reports"),
        s["waiting_reports"].as_u64().expect("waiting_reports"),
    )
}

#[test]
fn reports_made_while_the_collector_is_down_arrive_once_and_in_order() {
    const OFFLINE: usize = 5;
    let mut s = Setup::new("e2e-outage", "");
    s.once_online(1);

    s.collector.stop();
    for made in 1..=OFFLINE {
        s.once_offline(made);
    }
    start_keeping_bodies(&mut s.collector);
    s.once_online(OFFLINE + 1);

    let stored = s.assert_stored_once(OFFLINE + 2, OFFLINE + 1);
    // Each report says how many older ones were waiting when it was made; none were lost.
    let figures: Vec<(u64, u64)> = stored.iter().map(spool).collect();
    let expected: Vec<(u64, u64)> = [0, 0, 1, 2, 3, 4, 5].map(|w| (0, w)).to_vec();
    assert_eq!(figures, expected);
}

#[test]
fn with_the_spool_full_the_oldest_go_and_the_drop_count_arrives() {
    const CAP: usize = 3;
    const OFFLINE: usize = 6;
    let mut s = Setup::new("e2e-outage-full", &format!("spool_max_reports = {CAP}\n"));
    s.once_online(1);

    s.collector.stop();
    for made in 1..=OFFLINE {
        s.once_offline(made.min(CAP));
    }
    start_keeping_bodies(&mut s.collector);
    // Spooling this one drops the oldest offline report; it carries the 3 drops before it.
    s.once_online(CAP);
    // The next one carries the drop its predecessor caused.
    s.once_online(1);

    let stored = s.assert_stored_once(1 + CAP + 1, CAP + 1);
    let figures: Vec<(u64, u64)> = stored.iter().map(spool).collect();
    assert_eq!(figures, [(0, 0), (1, 3), (2, 3), (3, 3), (4, 0)]);
    // Every report made is either stored or counted as dropped.
    let made = 1 + OFFLINE + 2;
    let (dropped, _) = spool(stored.last().unwrap());
    assert_eq!(stored.len() + dropped as usize, made);
    // The loss is visible without reading the database.
    let agent = s.agent();
    assert_eq!(agent["spool_dropped_reports"], dropped, "{agent}");
    assert_eq!(agent["spool_waiting_reports"], 0, "{agent}");
    assert_eq!(
        s.collector
            .metrics_detail()
            .sum("hatang_unit_spool_dropped_reports", &[("unit", "17-SYT")]),
        dropped as f64
    );
}

#[test]
fn a_database_that_fails_every_report_is_said_once_and_loses_nothing() {
    const FAILING: usize = 5;
    let s = Setup::new("e2e-storage", "");
    s.once_online(1);

    s.fail_writes(true);
    let started = std::time::Instant::now();
    for made in 1..=FAILING {
        s.once_offline(made);
    }
    // Every failure is counted; the log says it at ERROR once per 10 s, with its cause, not
    // once per report (hundreds a second at a province's load).
    let metrics = s.collector.metrics();
    assert_eq!(
        metrics.get("hatang_reports_received_total", &[("outcome", "failed")]),
        Some(FAILING as f64)
    );
    let log = s.collector.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    let allowed = 1 + started.elapsed().as_secs() / 10;
    assert!(
        (1..=allowed as usize).contains(&errors.len()),
        "{} ERROR lines, at most {allowed} expected:\n{}",
        errors.len(),
        errors.join("\n")
    );
    assert!(
        errors[0].contains("database or disk is full"),
        "{}",
        errors[0]
    );

    s.fail_writes(false);
    s.once_online(FAILING + 1);
    s.assert_stored_once(FAILING + 2, FAILING + 2);
}
