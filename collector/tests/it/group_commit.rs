//! Reports committed in batches (group commit): each answer is the one a report would get alone,
//! duplicates are stored once even within a batch, one failing report leaves the rest of its
//! batch stored, and many concurrent senders get every report stored exactly once.

use std::sync::Arc;

use axum::http::StatusCode;
use hatang_collector::store::{Incoming, StoreError, Stored};
use hatang_protocol::Report;
use serde_json::{Value, json};

use crate::support::{Harness, SilentCut, TREE_3, on_every_backend, report};

/// `report` as the store receives it from `agent_id`.
fn incoming(agent_id: &str, report: &Value) -> Incoming {
    let body = report.to_string();
    let report: Report = serde_json::from_str(&body).unwrap();
    Incoming {
        agent_id: agent_id.to_string(),
        key_digest: None,
        report,
        body,
        received_at: hatang_collector::now(),
        waited_secs: None,
    }
}

/// An answer without its error's details, to compare batches' answers.
fn outcome(answer: &Result<Stored, StoreError>) -> String {
    match answer {
        Ok(stored) => format!("{stored:?}"),
        Err(StoreError::Revoked(id)) => format!("revoked {id}"),
        Err(e) => format!("error {e}"),
    }
}

/// A report whose inventory differs from the golden one in memory size and hostname by `n`.
fn inventory_variant(n: u64) -> Value {
    let mut r = report();
    r["inventory"]["memory"]["total_bytes"] = json!((8 + n) << 30);
    r["inventory"]["hostname"] = json!(format!("ub-xa-tan-lac-{n:02}"));
    r
}

/// A report without an inventory whose spool and CPU figures are set by `n`, and without a
/// speed test when `n` is odd: what each leaves on its agent's row differs.
fn plain_variant(n: u64) -> Value {
    let mut r = report();
    let fields = r.as_object_mut().unwrap();
    fields.remove("inventory");
    if n % 2 == 1 {
        fields.remove("speed");
    }
    r["spool"] = json!({"waiting_reports": n, "dropped_reports": n / 2});
    r["sample"]["cpu_usage_ratio"] = json!(n as f64 / 10.0);
    r
}

on_every_backend! {
    #[tokio::test]
    async fn a_batch_stores_a_duplicate_pair_once(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let agent = h.enrolled(&h.enrol_token("4351", None).await, "m").await;
        let earlier = report();
        h.report(&agent.key, &earlier).await.json(StatusCode::ACCEPTED);

        let (a, b) = (report(), report());
        let batch = [
            incoming(&agent.id, &a),
            incoming(&agent.id, &a),
            incoming(&agent.id, &earlier),
            incoming(&agent.id, &b),
            incoming(&agent.id, &b),
        ];
        let answers = h.store().store_reports(&batch).await.unwrap();
        let outcomes: Vec<String> = answers.iter().map(outcome).collect();
        let (accepted, duplicate) = (
            outcome(&Ok(Stored::Accepted { changes: vec![] })),
            outcome(&Ok(Stored::Duplicate)),
        );
        assert_eq!(
            outcomes,
            [&accepted, &duplicate, &duplicate, &accepted, &duplicate].map(String::clone)
        );
        assert_eq!(h.store().report_count(Some(&agent.id)).await.unwrap(), 3);
        // the same batch again: every report is already there
        let again = h.store().store_reports(&batch).await.unwrap();
        assert!(again.iter().all(|a| matches!(a, Ok(Stored::Duplicate))), "{again:?}");
        assert_eq!(h.store().report_count(None).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn an_agent_revoked_mid_flight_fails_only_its_own_report(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let token = h.enrol_token("4351", None).await;
        let kept = h.enrolled(&token, "kept").await;
        let revoked = h.enrolled(&token, "revoked").await;
        // both requests were authenticated; then an admin revoked one key
        let batch = [
            incoming(&kept.id, &report()),
            incoming(&revoked.id, &report()),
            incoming(&kept.id, &report()),
        ];
        h.store().revoke_agent(&revoked.id, hatang_collector::now()).await.unwrap();
        let answers = h.store().store_reports(&batch).await.unwrap();
        assert!(matches!(answers[0], Ok(Stored::Accepted { .. })), "{answers:?}");
        assert!(
            matches!(&answers[1], Err(StoreError::Revoked(id)) if *id == revoked.id),
            "{answers:?}"
        );
        assert!(matches!(answers[2], Ok(Stored::Accepted { .. })), "{answers:?}");
        assert_eq!(h.store().report_count(Some(&kept.id)).await.unwrap(), 2);
        assert_eq!(h.store().report_count(Some(&revoked.id)).await.unwrap(), 0);
        let (record, _) = h.store().agent(&revoked.id).await.unwrap().unwrap();
        assert_eq!(record.last_report_at, None, "the revoked agent's record was not touched");

        // an agent the database does not know (a constraint of the reports table)
        let answers = h
            .store()
            .store_reports(&[incoming("no-such-agent", &report()), incoming(&kept.id, &report())])
            .await
            .unwrap();
        assert!(answers[0].is_err(), "{answers:?}");
        assert!(matches!(answers[1], Ok(Stored::Accepted { .. })), "{answers:?}");
        assert_eq!(h.store().report_count(None).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_batch_leaves_the_record_and_change_log_as_one_report_at_a_time_would(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let token = h.enrol_token("4351", None).await;
        let alone = h.enrolled(&token, "alone").await;
        let batched = h.enrolled(&token, "batched").await;
        // the same sequence for each agent, with report ids of its own
        let reports = || -> Vec<Value> { [0, 1, 1, 2, 3].into_iter().map(inventory_variant).collect() };
        let mut one_by_one = Vec::new();
        for r in &reports() {
            let i = incoming(&alone.id, r);
            one_by_one.push(h.store().store_report(&alone.id, &i.report, &i.body, i.received_at).await);
        }
        let batch: Vec<Incoming> = reports().iter().map(|r| incoming(&batched.id, r)).collect();
        let together = h.store().store_reports(&batch).await.unwrap();
        assert_eq!(
            together.iter().map(outcome).collect::<Vec<_>>(),
            one_by_one.iter().map(outcome).collect::<Vec<_>>()
        );
        // the first inventory is not a change; the repeat of 1 changes nothing
        assert_eq!(
            together.iter().map(|a| match a {
                Ok(Stored::Accepted { changes }) => changes.len(),
                other => panic!("{other:?}"),
            }).collect::<Vec<_>>(),
            [0, 2, 0, 2, 2]
        );
        let log = |id: String| {
            let store = h.store();
            async move {
                store
                    .inventory_changes(&id, None, 100)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|c| (c.component, c.key, c.kind, c.before, c.after))
                    .collect::<Vec<_>>()
            }
        };
        let batched_log = log(batched.id.clone()).await;
        assert_eq!(batched_log.len(), 6);
        assert_eq!(batched_log, log(alone.id.clone()).await);
        let (a, ea) = h.store().agent(&alone.id).await.unwrap().unwrap();
        let (b, eb) = h.store().agent(&batched.id).await.unwrap().unwrap();
        assert_eq!((a.last_report_at.is_some(), ea), (b.last_report_at.is_some(), eb));
        assert_eq!(
            (a.internet_ok_at.is_some(), a.speed_at.is_some(), a.download_bps, a.lan_up),
            (b.internet_ok_at.is_some(), b.speed_at.is_some(), b.download_bps, b.lan_up)
        );
    }

    #[tokio::test]
    async fn a_batch_without_inventories_leaves_what_one_report_at_a_time_would(db) {
        // PostgreSQL stores such a batch in one statement; a duplicate of a stored report or a
        // revoked agent sends it back to the locked path, and the answers must not tell.
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let token = h.enrol_token("4351", None).await;
        let alone = h.enrolled(&token, "alone").await;
        let batched = h.enrolled(&token, "batched").await;
        let other = h.enrolled(&token, "other").await;
        let reports: Vec<Value> = [3, 1, 4, 1, 5].into_iter().map(plain_variant).collect();
        for r in &reports {
            let i = incoming(&alone.id, r);
            let answer = h.store().store_report(&alone.id, &i.report, &i.body, i.received_at).await;
            assert!(matches!(answer, Ok(Stored::Accepted { .. })), "{answer:?}");
        }
        // the same reports (new ids) for one agent, another agent's between them, and the third
        // report twice in the batch
        let mut batch: Vec<Incoming> = reports
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r["report_id"] = json!(uuid::Uuid::now_v7().to_string());
                incoming(&batched.id, &r)
            })
            .collect();
        batch.insert(2, incoming(&other.id, &plain_variant(9)));
        let again = batch[3].report.clone();
        batch.push(Incoming { report: again, ..incoming(&batched.id, &report()) });
        let answers = h.store().store_reports(&batch).await.unwrap();
        assert_eq!(
            answers.iter().map(outcome).collect::<Vec<_>>(),
            ["Accepted { changes: [] }"; 6].into_iter().chain(["Duplicate"]).collect::<Vec<_>>()
        );
        let (a, ea) = h.store().agent(&alone.id).await.unwrap().unwrap();
        let (b, eb) = h.store().agent(&batched.id).await.unwrap().unwrap();
        assert_eq!(ea, eb);
        assert_eq!(
            (a.speed_at.is_some(), a.download_bps, a.lan_up, a.spool_waiting, a.spool_dropped),
            (b.speed_at.is_some(), b.download_bps, b.lan_up, b.spool_waiting, b.spool_dropped)
        );
        assert_eq!(b.spool_waiting, Some(5));
        assert_eq!(h.store().report_count(Some(&batched.id)).await.unwrap(), 5);
        assert_eq!(h.store().report_count(Some(&other.id)).await.unwrap(), 1);
        assert_eq!(h.store().report_count(None).await.unwrap(), 11);

        // the whole batch again: every report is a duplicate now, nothing changes
        let answers = h.store().store_reports(&batch).await.unwrap();
        assert!(answers.iter().all(|a| matches!(a, Ok(Stored::Duplicate))), "{answers:?}");
        assert_eq!(h.store().report_count(Some(&batched.id)).await.unwrap(), 5);
        assert_eq!(h.store().report_count(None).await.unwrap(), 11);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_senders_get_every_report_stored_exactly_once(db) {
        const SENDERS: usize = 64;
        const REPORTS: usize = 50;
        let h = Harness::on_with_config(&db, |c| {
            c.limits.reports_per_minute_per_agent = 1_000_000;
            c.limits.requests_per_minute_per_address = 1_000_000;
        })
        .await;
        h.import(TREE_3).await;
        let token = h.enrol_token("4351", None).await;
        let mut agents = Vec::new();
        for i in 0..SENDERS {
            agents.push(h.enrolled(&token, &format!("m-{i}")).await);
        }
        let h = Arc::new(h);
        let before = h.snapshot().await;
        let senders: Vec<_> = agents
            .iter()
            .cloned()
            .map(|agent| {
                let h = h.clone();
                tokio::spawn(async move {
                    let reports: Vec<Value> = (0..REPORTS).map(|_| report()).collect();
                    for r in &reports {
                        h.report(&agent.key, r).await.json(StatusCode::ACCEPTED);
                    }
                    // every resend, after its answer was "lost"
                    for r in &reports {
                        assert_eq!(
                            h.report(&agent.key, r).await.json(StatusCode::OK),
                            json!({"status": "duplicate"})
                        );
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.await.unwrap();
        }
        for agent in &agents {
            assert_eq!(h.store().report_count(Some(&agent.id)).await.unwrap(), REPORTS as i64);
        }
        assert_eq!(h.store().report_count(None).await.unwrap(), (SENDERS * REPORTS) as i64);
        let after = h.snapshot().await;
        let n = (SENDERS * REPORTS) as f64;
        assert_eq!(after.outcomes["accepted"] - before.outcomes["accepted"], n);
        assert_eq!(after.outcomes["duplicate"] - before.outcomes["duplicate"], n);
    }
}

#[test]
fn a_full_queue_is_answered_503_with_retry_after() {
    use axum::response::IntoResponse;
    use hatang_collector::http::ApiError;
    let response = ApiError::from(StoreError::Busy).into_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let response = ApiError::from(StoreError::Revoked("x".into())).into_response();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// The PostgreSQL ingest writer keeps a session of its own. When the server ends it (a restart,
/// an administrator, a network that dropped it), a report that meets the dead session is refused
/// with 503 and not stored, and the writer opens a new session for the next batch: the agent's
/// resend is stored, once.
#[tokio::test]
async fn the_ingest_writer_opens_a_new_session_when_the_server_ends_its_own() {
    use sqlx::Connection as _;
    let Some(db) = crate::support::Backend::postgres() else {
        return;
    };
    let h = Harness::with_tree_on(&db, TREE_3).await;
    let agent = h.enrolled(&h.enrol_token("4351", None).await, "m").await;
    h.report(&agent.key, &report())
        .await
        .json(StatusCode::ACCEPTED);

    let mut admin = sqlx::PgConnection::connect(h.db_url()).await.unwrap();
    let writers = "SELECT pid FROM pg_stat_activity
                   WHERE application_name = 'hatang-collector ingest' AND datname = current_database()";
    let before: Vec<i32> = sqlx::query_scalar(writers)
        .fetch_all(&mut admin)
        .await
        .unwrap();
    assert_eq!(before.len(), 1, "one writer session: {before:?}");
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(before[0])
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(ended);

    // The agent resends what was not acknowledged, as its spool does.
    let next = report();
    let mut answers = Vec::new();
    loop {
        let reply = h.report(&agent.key, &next).await;
        answers.push(reply.status);
        if reply.status != StatusCode::SERVICE_UNAVAILABLE || answers.len() == 3 {
            break;
        }
        assert_eq!(
            h.store().report_count(None).await.unwrap(),
            1,
            "a refused report was stored"
        );
    }
    assert_eq!(answers.last(), Some(&StatusCode::ACCEPTED), "{answers:?}");
    assert_eq!(h.store().report_count(None).await.unwrap(), 2);
    let after: Vec<i32> = sqlx::query_scalar(writers)
        .fetch_all(&mut admin)
        .await
        .unwrap();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, before, "the writer opened a new session");
}

/// A collector and an agent enrolled on it, and a replica of its database whose connections go
/// through a [`SilentCut`] relay, with a writer that gives a batch [`WRITE_TIMEOUT`]; the
/// replica has stored one report of the agent's, so its writer has a session. `None` without
/// a PostgreSQL server to test on.
struct Relayed {
    h: Harness,
    agent: crate::support::Agent,
    replica: Harness,
    cut: SilentCut,
}

async fn reporting_through_a_relay() -> Option<Relayed> {
    use hatang_collector::store::{PostgresSettings, PostgresStore};
    let h = Harness::with_tree_on(&crate::support::Backend::postgres()?, TREE_3).await;
    let agent = h.enrolled(&h.enrol_token("4351", None).await, "m").await;
    let options: sqlx::postgres::PgConnectOptions = h.db_url().parse().unwrap();
    let server = format!("{}:{}", options.get_host(), options.get_port());
    let cut = SilentCut::to(server.clone()).await;
    let relayed = h.db_url().replacen(&server, &cut.addr.to_string(), 1);
    assert_ne!(relayed, h.db_url(), "the test URL names {server}");
    let settings = PostgresSettings {
        write_timeout: WRITE_TIMEOUT,
        ..PostgresSettings::default()
    };
    let store = PostgresStore::open(&relayed, &settings).await.unwrap();
    let replica = h.replica_on(Box::new(store));
    replica
        .report(&agent.key, &report())
        .await
        .json(StatusCode::ACCEPTED);
    Some(Relayed {
        h,
        agent,
        replica,
        cut,
    })
}

const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The ingest writers' sessions on the test's database.
const WRITERS: &str = "SELECT pid FROM pg_stat_activity
                       WHERE application_name = 'hatang-collector ingest' AND datname = current_database()";

/// A firewall or NAT between a replica and PostgreSQL may forget the writer's connection without
/// a word: what the writer sends goes nowhere and no answer ever comes, and TCP would wait a
/// quarter of an hour to say so while every report queued behind the batch. The writer gives up
/// the batch after its write timeout: those reports are refused with 503 and not stored, and the
/// next batch, on a new connection, stores the agent's resend once.
#[tokio::test]
async fn the_ingest_writer_gives_up_a_session_the_network_dropped_silently() {
    use std::time::{Duration, Instant};
    let Some(r) = reporting_through_a_relay().await else {
        return;
    };
    let (h, agent, replica, cut) = (r.h, r.agent, r.replica, r.cut);

    cut.cut();
    let next = report();
    // Without the write timeout this waits for TCP; the bound only keeps a regression from
    // hanging the suite.
    let started = Instant::now();
    let refused = tokio::time::timeout(Duration::from_secs(60), replica.report(&agent.key, &next))
        .await
        .expect("the writer still waits on the dropped session after 60 s");
    let waited = started.elapsed();
    refused.json(StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        waited >= WRITE_TIMEOUT,
        "answered before the write timeout: {waited:?}"
    );
    assert_eq!(
        h.store().report_count(None).await.unwrap(),
        1,
        "the refused report was stored"
    );

    // The agent resends; the writer's next batch opens a new connection, which the relay carries.
    replica
        .report(&agent.key, &next)
        .await
        .json(StatusCode::ACCEPTED);
    assert_eq!(h.store().report_count(None).await.unwrap(), 2);
}

/// The server's side of a dropped session: a writer cut off while its batch waits for an
/// agent's row lock would otherwise get the lock later and sit in its transaction holding it,
/// for as long as the server thinks the session alive, and every other replica's report from
/// that agent would wait behind it. The writer's session asks the server to end a statement or
/// an open transaction after the write timeout, so the session goes and the row is free.
#[tokio::test]
async fn a_writer_session_cut_off_inside_its_transaction_frees_the_agents_row() {
    use sqlx::Connection as _;
    use std::time::{Duration, Instant};
    let Some(r) = reporting_through_a_relay().await else {
        return;
    };
    let (h, agent, replica, cut) = (r.h, r.agent, r.replica, r.cut);
    let mut admin = sqlx::PgConnection::connect(h.db_url()).await.unwrap();
    let writer: Vec<i32> = sqlx::query_scalar(WRITERS)
        .fetch_all(&mut admin)
        .await
        .unwrap();
    assert_eq!(writer.len(), 1, "only the replica has written: {writer:?}");

    // Hold the agent's row, so the replica's next batch (a report with an inventory locks its
    // agent's row first) waits inside its transaction; then cut the replica off.
    let mut holder = sqlx::PgConnection::connect(h.db_url()).await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT 1 FROM agents WHERE id = $1 FOR UPDATE")
        .bind(&agent.id)
        .execute(&mut holder)
        .await
        .unwrap();
    let waits_for_the_row =
        "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'";
    let cut_once_waiting = async {
        let started = Instant::now();
        while sqlx::query_scalar::<_, i64>(waits_for_the_row)
            .bind(writer[0])
            .fetch_one(&mut admin)
            .await
            .unwrap()
            == 0
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the writer never waited for the row"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cut.cut();
    };
    let locking = report();
    let (refused, ()) = tokio::join!(replica.report(&agent.key, &locking), cut_once_waiting);
    refused.json(StatusCode::SERVICE_UNAVAILABLE);

    // The row is still held: only the server's own limits can end the writer's session now.
    let started = Instant::now();
    loop {
        let writers: Vec<i32> = sqlx::query_scalar(WRITERS)
            .fetch_all(&mut admin)
            .await
            .unwrap();
        if !writers.contains(&writer[0]) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the cut-off writer session is still there after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    let stored = tokio::time::timeout(Duration::from_secs(30), h.report(&agent.key, &report()))
        .await
        .expect("a report from the agent still waits for its row");
    stored.json(StatusCode::ACCEPTED);
    assert_eq!(h.store().report_count(None).await.unwrap(), 2);
}

/// A failure that ends SQLite's whole transaction (a full disk, an I/O error: SQLite rolls the
/// transaction back by itself) fails the batch in its own words, which the log shows the
/// operator, not in those of the savepoint the retry then found gone.
#[tokio::test]
async fn a_batch_sqlite_rolled_back_whole_fails_with_its_own_cause() {
    let h = Harness::with_tree(TREE_3).await;
    let agent = h.enrolled(&h.enrol_token("4351", None).await, "m").await;
    let _disk_full = h.fill_the_disk().await;

    let failed = h
        .store()
        .store_reports(&[
            incoming(&agent.id, &report()),
            incoming(&agent.id, &report()),
        ])
        .await
        .unwrap_err();
    assert!(
        failed.to_string().contains("database or disk is full"),
        "{failed}"
    );
    assert_eq!(h.store().report_count(None).await.unwrap(), 0);
}
