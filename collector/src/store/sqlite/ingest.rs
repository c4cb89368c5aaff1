//! The ingest writer: one OS thread that owns a write connection of its own and commits queued
//! reports in batches (the group commit the parent module describes).
//!
//! The writer runs every statement itself, through SQLite's C API (rusqlite) with prepared
//! statements kept across batches. Through sqlx each statement was a hand-off to sqlx's SQLite
//! thread and back, about a dozen context switches per report, and that, not SQLite, was where
//! the ingest's CPU went.
//!
//! The thread blocks on its queue, takes whatever is queued (at most [`MAX_BATCH`](batch::MAX_BATCH) reports),
//! writes it in one `BEGIN IMMEDIATE … COMMIT`, answers every request, and waits again; it ends
//! when every sender (every clone of the store) is gone. Each report is written inside its own
//! `SAVEPOINT`, rolled back to if that report fails, so one failing report leaves the rest of its
//! batch alone; here a savepoint costs two statement steps and no I/O.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::mpsc;

use super::super::batch::{self, Answer, Batch, Job, Prepared};
use super::super::{StoreError, Stored, accepted, inventory_changes_of};

/// The writer's page cache, KiB.
const CACHE_KIB: u32 = 32 * 1024;

/// WAL pages after which a commit checkpoints (64 MiB with 4 KiB pages).
const CHECKPOINT_PAGES: u32 = 16_384;

/// Opens the writer's connection to the database file at `path` (already migrated) and starts
/// its thread; the returned queue is how reports reach it.
pub(super) fn start(path: &Path) -> Result<mpsc::Sender<Job>, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // The same settings as the sqlx connections: durable across power loss at each COMMIT.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Every report rewrites its agent's row: keep the agents' pages and the indexes' right edges
    // in the writer's own cache rather than reading them back from the file (SQLite's default
    // is 2 MiB; the cache grows only as pages are used).
    conn.pragma_update(None, "cache_size", -(CACHE_KIB as i64))?;
    // The commit that fills the WAL to this many pages also copies them into the database file
    // and syncs it, inside the writer's batch. SQLite's default (1,000 pages, 4 MiB) made that
    // every batch or two at full load; an agent's row rewritten by many batches in between is
    // copied once per checkpoint, not once per batch.
    conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)?;
    let (queue, jobs) = batch::queue();
    std::thread::Builder::new()
        .name("hatang-ingest".into())
        .spawn(move || run(conn, jobs))
        .map_err(|e| StoreError::Conflict(format!("cannot start the ingest writer: {e}")))?;
    Ok(queue)
}

/// The writer's loop: a batch of whatever is queued, committed, answered; until the queue closes.
fn run(mut conn: Connection, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.blocking_recv() {
        let batch = Batch::gather(first, &mut queue);
        let result = write_batch(&mut conn, &batch.reports());
        batch.reply(result);
    }
}

/// Writes `batch` in one transaction, each report inside its own savepoint; the outer error is
/// a transaction that did not commit (then nothing of it is stored).
fn write_batch(conn: &mut Connection, batch: &[&Prepared]) -> Result<Vec<Answer>, StoreError> {
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
fn write_report(conn: &Connection, prepared: &Prepared) -> Result<Stored, StoreError> {
    let Prepared { incoming, update } = prepared;
    let agent_id = &incoming.agent_id;
    let report = &incoming.report;
    let now = incoming.received_at;
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
            incoming.body
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
            update.last_report_at,
            update.interval_secs,
            update.agent_version,
            update.inventory,
            update.sample,
            update.probes,
            update.lan_up,
            update.internet_ok_at,
            update.gov_wan_ok_at,
            update.datacentre_ok_at,
            update.speed.is_some(),
            update.speed.map(|s| s.0),
            update.speed.map(|s| s.1),
            update.speed.and_then(|s| s.2),
            update.spool_waiting,
            update.spool_dropped,
            agent_id,
            incoming.key_digest
        ])?;
    if updated == 0 {
        return Err(StoreError::Revoked(agent_id.clone()));
    }
    Ok(accepted(&changes))
}
