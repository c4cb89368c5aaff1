//! The ingest writer: one OS thread that owns a write connection of its own and commits queued
//! reports in batches (the group commit the parent module describes).
//!
//! The writer runs every statement itself, through SQLite's C API (rusqlite) with prepared
//! statements kept across batches. Through sqlx each statement was a hand-off to sqlx's SQLite
//! thread and back, about a dozen context switches per report, and that, not SQLite, was where
//! the ingest's CPU went.
//!
//! The thread blocks on its queue, takes whatever is queued (at most [`MAX_BATCH`] reports),
//! writes it in one `BEGIN IMMEDIATE … COMMIT`, answers every request, and waits again; it ends
//! when every sender (every clone of the store) is gone. Each report is written inside its own
//! `SAVEPOINT`, rolled back to if that report fails, so one failing report leaves the rest of its
//! batch alone; here a savepoint costs two statement steps and no I/O.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::super::{
    Incoming, StoreError, Stored, accepted, evidence_of, inventory_changes_of, spool_of,
};

/// The most reports one ingest transaction holds. A batch is whatever queued during the previous
/// commit; this bounds how long one commit (and the requests in it) can take.
pub(crate) const MAX_BATCH: usize = 512;

/// Reports that may wait for the ingest writer; one more is refused with [`StoreError::Busy`].
/// Four batches' worth: enough to ride out a slow commit, few enough to bound memory (a queued
/// report holds its parsed form and its text, a few KiB) and the wait of the last one.
pub(crate) const QUEUE: usize = 4 * MAX_BATCH;

/// Reports to commit together, and where their answers go: one answer per report, in order, or
/// the error that kept the whole transaction from committing.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) reports: Vec<Incoming>,
    pub(super) reply: oneshot::Sender<Result<Vec<Answer>, StoreError>>,
}

type Answer = Result<Stored, StoreError>;

/// Opens the writer's connection to the database file at `path` (already migrated) and starts
/// its thread; the returned queue is how reports reach it.
pub(super) fn start(path: &Path) -> Result<mpsc::Sender<Job>, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // The same settings as the sqlx connections: durable across power loss at each COMMIT.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    let (queue, jobs) = mpsc::channel(QUEUE);
    std::thread::Builder::new()
        .name("hatang-ingest".into())
        .spawn(move || run(conn, jobs))
        .map_err(|e| StoreError::Conflict(format!("cannot start the ingest writer: {e}")))?;
    Ok(queue)
}

/// The writer's loop: a batch of whatever is queued, committed, answered; until the queue closes.
fn run(mut conn: Connection, mut queue: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::new();
    while let Some(first) = queue.blocking_recv() {
        let mut reports = first.reports.len();
        jobs.push(first);
        while reports < MAX_BATCH {
            let Ok(job) = queue.try_recv() else { break };
            reports += job.reports.len();
            jobs.push(job);
        }
        let batch: Vec<&Incoming> = jobs.iter().flat_map(|j| &j.reports).collect();
        match write_batch(&mut conn, &batch) {
            Ok(answers) => {
                let mut answers = answers.into_iter();
                for job in jobs.drain(..) {
                    let mine = answers.by_ref().take(job.reports.len()).collect();
                    // The request may have gone (its client hung up): the report is stored
                    // anyway, and the agent's resend is answered "duplicate".
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                tracing::error!(reports = batch.len(), error = %e, cause = ?std::error::Error::source(&e), "ingest batch not committed");
                let e = Arc::new(e);
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(StoreError::Batch(e.clone())));
                }
            }
        }
    }
}

/// Writes `batch` in one transaction, each report inside its own savepoint; the outer error is
/// a transaction that did not commit (then nothing of it is stored).
fn write_batch(conn: &mut Connection, batch: &[&Incoming]) -> Result<Vec<Answer>, StoreError> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut answers = Vec::with_capacity(batch.len());
    for incoming in batch {
        let savepoint = tx.savepoint()?;
        let answer = write_report(&savepoint, incoming);
        if answer.is_ok() {
            savepoint.commit()?;
        }
        // A savepoint dropped without commit rolls back to where it started.
        answers.push(answer);
    }
    tx.commit()?;
    Ok(answers)
}

/// One report's statements, inside the batch's transaction.
fn write_report(conn: &Connection, incoming: &Incoming) -> Result<Stored, StoreError> {
    let Incoming {
        agent_id,
        key_digest,
        report,
        body,
        received_at: now,
    } = incoming;
    let now = *now;
    let report_id = report.report_id.to_string();
    let inserted = conn
        .prepare_cached(
            "INSERT INTO reports (report_id, agent_id, received_at, agent_time, body)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (report_id) DO NOTHING",
        )?
        .execute(params![
            report_id,
            agent_id,
            now,
            report.agent_time.unix_timestamp(),
            body
        ])?;
    if inserted == 0 {
        return Ok(Stored::Duplicate);
    }
    let changes = if report.inventory.is_some() {
        let stored: Option<Option<String>> = conn
            .prepare_cached("SELECT inventory FROM agents WHERE id = ?")?
            .query_row([agent_id], |row| row.get(0))
            .optional()?;
        inventory_changes_of(stored.flatten().as_deref(), report)
    } else {
        Vec::new()
    };
    for change in &changes {
        conn.prepare_cached(
            "INSERT INTO inventory_changes (agent_id, report_id, at, component, key, kind, before, after)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )?
        .execute(params![
            agent_id,
            report_id,
            now,
            change.component,
            change.key,
            change.kind.as_str(),
            change.before,
            change.after
        ])?;
    }
    let evidence = evidence_of(report);
    let spool = spool_of(report);
    let links = crate::evidence::of(report, now);
    let speed = links.speed.as_ref();
    // COALESCE(MAX(col, ?), ?, col): the later of the stored and the new success time,
    // whichever exists (SQLite's two-argument MAX is NULL if either argument is). The speed
    // test's columns are set only when the report has one (CASE keeps them otherwise), so this
    // is one statement either way. `revoked_at IS NULL` and the key: a key revoked or replaced
    // after the request was authenticated stores nothing more.
    let updated = conn
        .prepare_cached(
            "UPDATE agents SET last_report_at = ?1, interval_secs = ?2, agent_version = ?3,
               inventory = COALESCE(?4, inventory), sample = COALESCE(?5, sample),
               probes = COALESCE(?6, probes), lan_up = COALESCE(?7, lan_up),
               internet_ok_at = COALESCE(MAX(internet_ok_at, ?8), ?8, internet_ok_at),
               gov_wan_ok_at = COALESCE(MAX(gov_wan_ok_at, ?9), ?9, gov_wan_ok_at),
               datacentre_ok_at = COALESCE(MAX(datacentre_ok_at, ?10), ?10, datacentre_ok_at),
               speed_at = CASE WHEN ?11 THEN ?12 ELSE speed_at END,
               download_bps = CASE WHEN ?11 THEN ?13 ELSE download_bps END,
               upload_bps = CASE WHEN ?11 THEN ?14 ELSE upload_bps END,
               spool_waiting = COALESCE(?15, spool_waiting),
               spool_dropped = COALESCE(?16, spool_dropped)
             WHERE id = ?17 AND revoked_at IS NULL AND (?18 IS NULL OR key_hash = ?18)",
        )?
        .execute(params![
            now,
            i64::from(report.interval_secs),
            report.agent_version,
            evidence.inventory,
            evidence.sample,
            evidence.probes,
            links.lan_up,
            links.internet_ok_at,
            links.gov_wan_ok_at,
            links.datacentre_ok_at,
            speed.is_some(),
            speed.map(|s| s.at),
            speed.map(|s| s.download_bps),
            speed.and_then(|s| s.upload_bps),
            spool[0],
            spool[1],
            agent_id,
            key_digest
        ])?;
    if updated == 0 {
        return Err(StoreError::Revoked(agent_id.clone()));
    }
    Ok(accepted(&changes))
}
