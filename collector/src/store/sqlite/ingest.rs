//! The ingest writer: one OS thread that owns a write connection of its own and commits queued
//! reports in batches (the group commit the parent module describes), and a second thread that
//! makes the commits durable before they are answered.
//!
//! The writer runs every statement itself, through SQLite's C API (rusqlite) with prepared
//! statements kept across batches. Through sqlx each statement was a hand-off to sqlx's SQLite
//! thread and back, about a dozen context switches per report, and that, not SQLite, was where
//! the ingest's CPU went.
//!
//! The thread blocks on its queue, takes whatever is queued (at most [`MAX_BATCH`](batch::MAX_BATCH) reports),
//! writes it in one `BEGIN IMMEDIATE … COMMIT`, hands the batch to the syncer and takes the next;
//! it ends when every sender (every clone of the store) is gone. One failing report leaves the
//! rest of its batch alone (see [`write_batch`]).
//!
//! # Durable before answered, without the writer waiting
//!
//! With `synchronous = FULL` SQLite syncs the WAL inside every `COMMIT`, and the writer, which is
//! one, waited for the disk while the next batch queued behind it: the machine sat a quarter
//! idle at full load. The writer's connection runs with `synchronous = NORMAL` instead, under
//! which SQLite keeps the database consistent across power loss (it syncs the WAL before every
//! checkpoint and the WAL header whenever it starts the log over) but a commit is not yet durable
//! when `COMMIT` returns. The syncer thread makes it so: it takes every batch committed so far,
//! `fdatasync`s the WAL file, and only then answers their requests. A committed batch whose
//! sync has not returned is answered by nobody, exactly like one lost in a crash before its
//! `COMMIT`: the agents resend, and a report that did reach the disk is answered "duplicate".
//! One sync covers every batch committed before it began, so at full load the writer commits
//! the next batch while the disk syncs the last.
//!
//! A failed `fdatasync` is not retried: after one, Linux may have dropped the dirty pages it could
//! not write, so a later sync that succeeds proves nothing about them. Nothing is acknowledged
//! from then on (every answer is an error, logged) until the collector is restarted and SQLite
//! recovers from what is really on disk.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Statement, params};
use tokio::sync::mpsc;

use super::super::batch::{self, Answer, Batch, Job, Prepared};
use super::super::{StoreError, Stored, accepted, inventory_changes_of};

/// The writer's page cache, KiB.
const CACHE_KIB: u32 = 32 * 1024;

/// WAL pages after which a commit checkpoints (32 MiB with the 2 KiB pages of a new file, 64 MiB
/// with the 4 KiB pages of one made before migration 0008).
const CHECKPOINT_PAGES: u32 = 16_384;

/// Opens the writer's connection to the database file at `path` (already migrated) and starts
/// its thread; the returned queue is how reports reach it. With `must_write`, a file SQLite
/// could open only for reading is an error.
pub(super) fn start(path: &Path, must_write: bool) -> Result<mpsc::Sender<Job>, StoreError> {
    let conn = Connection::open(path)?;
    // SQLite opens a file it may not write read-only, without a word; every write then fails.
    if must_write && conn.is_readonly(rusqlite::MAIN_DB)? {
        return Err(StoreError::Conflict(format!(
            "{}: this account cannot write it (its owner or permissions, or a read-only file \
             system); the collector must be able to write the file, the -wal and -shm files \
             beside it and their directory",
            path.display()
        )));
    }
    conn.busy_timeout(Duration::from_secs(10))?;
    let journal: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !journal.eq_ignore_ascii_case("wal") {
        // The syncer below syncs the WAL file, which only exists in WAL mode.
        return Err(StoreError::Conflict(format!(
            "{}: SQLite could not use its WAL journal here (journal_mode is {journal}); \
             put the database on a local file system",
            path.display()
        )));
    }
    // Consistent across power loss; durable once the syncer has synced the WAL (module docs).
    conn.pragma_update(None, "synchronous", "NORMAL")?;
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
    let mut wal = OsString::from(path);
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    let (queue, jobs) = batch::queue();
    let (committed, to_sync) = std_mpsc::channel();
    // The statements are prepared on the writer's thread (they borrow its connection); a
    // failure there fails the start, not every batch after it.
    let (ready, prepared) = std_mpsc::sync_channel(1);
    spawn("hatang-ingest", move || match Statements::prepare(&conn) {
        Ok(statements) => {
            let _ = ready.send(Ok(()));
            run(statements, jobs, committed);
        }
        Err(e) => {
            let _ = ready.send(Err(e));
        }
    })?;
    prepared.recv().map_err(|_| {
        StoreError::Conflict("the ingest writer thread ended before it was ready".into())
    })??;
    spawn("hatang-sync", move || sync(&wal, to_sync))?;
    Ok(queue)
}

/// Starts `work` on a thread called `name`.
fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(work)
        .map(drop)
        .map_err(|e| StoreError::Conflict(format!("cannot start the {name} thread: {e}")))
}

/// A committed batch and its answers, waiting for the WAL to be synced.
type Committed = (Batch, Vec<Answer>);

/// The writer's loop: a batch of whatever is queued, committed and passed on to the syncer (or
/// answered with the error that kept it from committing); until the queue closes.
fn run(
    mut statements: Statements,
    mut queue: mpsc::Receiver<Job>,
    synced: std_mpsc::Sender<Committed>,
) {
    while let Some(first) = queue.blocking_recv() {
        let batch = Batch::gather(first, &mut queue);
        match write_batch(&mut statements, &batch.reports()) {
            Ok(answers) => {
                if let Err(std_mpsc::SendError((batch, _))) = synced.send((batch, answers)) {
                    batch.reply(Err(StoreError::NotDurable(
                        "the WAL sync thread is gone".into(),
                    )));
                }
            }
            Err(e) => batch.reply(Err(e)),
        }
    }
}

/// The syncer's loop: every batch committed so far, the WAL synced once, each batch answered;
/// until the writer is gone.
fn sync(wal: &Path, committed: std_mpsc::Receiver<Committed>) {
    let mut file: Option<File> = None;
    let mut failed: Option<String> = None;
    while let Ok(first) = committed.recv() {
        let batches: Vec<Committed> = std::iter::once(first).chain(committed.try_iter()).collect();
        if failed.is_none()
            && let Err(e) = sync_wal(wal, &mut file)
        {
            let why = format!("syncing {} failed: {e}", wal.display());
            tracing::error!(error = %why, "reports committed but not durable; nothing more is acknowledged until the collector restarts");
            failed = Some(why);
        }
        for (batch, answers) in batches {
            match &failed {
                None => batch.reply(Ok(answers)),
                Some(why) => batch.reply(Err(StoreError::NotDurable(why.clone()))),
            }
        }
    }
}

/// `fdatasync` of the WAL file, opened on first use (it exists once the writer has committed).
fn sync_wal(wal: &Path, file: &mut Option<File>) -> std::io::Result<()> {
    let file = match file {
        Some(file) => file,
        None => file.insert(File::open(wal)?),
    };
    file.sync_data()
}

/// The writer's statements, prepared once for the life of its connection. Through rusqlite's
/// statement cache each use hashed the statement's text and moved it in and out of the cache,
/// and its `Transaction` parsed `BEGIN` and `COMMIT` again for every batch: together about 2 %
/// of the collector's CPU at full load (`perf`).
struct Statements<'c> {
    conn: &'c Connection,
    begin: Statement<'c>,
    commit: Statement<'c>,
    rollback: Statement<'c>,
    savepoint: Statement<'c>,
    release: Statement<'c>,
    rollback_to: Statement<'c>,
    insert_report: Statement<'c>,
    inventory_of: Statement<'c>,
    update_agent: Statement<'c>,
    store_inventory: Statement<'c>,
    insert_change: Statement<'c>,
}

impl<'c> Statements<'c> {
    fn prepare(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(Self {
            conn,
            begin: conn.prepare("BEGIN IMMEDIATE")?,
            commit: conn.prepare("COMMIT")?,
            rollback: conn.prepare("ROLLBACK")?,
            savepoint: conn.prepare("SAVEPOINT report")?,
            release: conn.prepare("RELEASE report")?,
            rollback_to: conn.prepare("ROLLBACK TO report")?,
            insert_report: conn.prepare(
                "INSERT INTO reports (report_id, agent_id, received_at, agent_time, body)
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (report_id) DO NOTHING",
            )?,
            inventory_of: conn.prepare("SELECT inventory FROM agent_inventory WHERE agent_id = ?")?,
            // COALESCE(MAX(col, ?), ?, col): the later of the stored and the new success time,
            // whichever exists (SQLite's two-argument MAX is NULL if either argument is). The
            // speed test's columns are set only when the report has one (CASE keeps them
            // otherwise), so this is one statement either way. `revoked_at IS NULL` and the key:
            // a key revoked or replaced after the request was authenticated stores nothing more.
            update_agent: conn.prepare(
                "UPDATE agents SET last_report_at = ?1, interval_secs = ?2, agent_version = ?3,
                   sample = COALESCE(?4, sample), probes = COALESCE(?5, probes),
                   lan_up = COALESCE(?6, lan_up),
                   internet_ok_at = COALESCE(MAX(internet_ok_at, ?7), ?7, internet_ok_at),
                   gov_wan_ok_at = COALESCE(MAX(gov_wan_ok_at, ?8), ?8, gov_wan_ok_at),
                   datacentre_ok_at = COALESCE(MAX(datacentre_ok_at, ?9), ?9, datacentre_ok_at),
                   speed_at = CASE WHEN ?10 THEN ?11 ELSE speed_at END,
                   download_bps = CASE WHEN ?10 THEN ?12 ELSE download_bps END,
                   upload_bps = CASE WHEN ?10 THEN ?13 ELSE upload_bps END,
                   spool_waiting = COALESCE(?14, spool_waiting),
                   spool_dropped = COALESCE(?15, spool_dropped),
                   reports_stored = reports_stored + ?16,
                   hostname = COALESCE(?19, hostname)
                 WHERE id = ?17 AND revoked_at IS NULL AND (?18 IS NULL OR key_hash = ?18)",
            )?,
            store_inventory: conn.prepare(
                "INSERT INTO agent_inventory (agent_id, inventory) VALUES (?, ?)
                 ON CONFLICT (agent_id) DO UPDATE SET inventory = excluded.inventory",
            )?,
            insert_change: conn.prepare(
                "INSERT INTO inventory_changes (agent_id, report_id, at, component, key, kind, before, after)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )?,
        })
    }

    /// `work` inside `BEGIN IMMEDIATE` … `COMMIT`: committed when it returns `Some`, rolled back
    /// (nothing of it stored) when it returns `None` or anything fails, the `COMMIT` included.
    fn transaction<T>(
        &mut self,
        work: impl FnOnce(&mut Self) -> Result<Option<T>, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        self.begin.execute([])?;
        let done = work(self).and_then(|done| {
            if done.is_some() {
                self.commit.execute([])?;
            }
            Ok(done)
        });
        if !self.conn.is_autocommit() {
            // Nothing to do about a failed rollback but what rusqlite's `Transaction` does: the
            // next `BEGIN` reports the state the connection is in.
            let _ = self.rollback.execute([]);
        }
        done
    }
}

/// Writes `batch` in one transaction; the outer error is a transaction that did not commit
/// (then nothing of it is stored).
///
/// The batch is written straight through first. If any report of it fails (its agent revoked
/// while it waited, a constraint), that transaction is rolled back and the batch written again
/// with each report inside its own savepoint, rolled back to when that report fails, so the
/// failure stays the report's own; unless SQLite ended the whole transaction over it, which
/// fails the batch with that report's error. Savepoints on every batch cost the writer a statement pair
/// per report and a copy of every page a report changes first (`perf`: the sub-journal's
/// `memcpy`), for failures that almost never happen.
fn write_batch(s: &mut Statements, batch: &[&Prepared]) -> Result<Vec<Answer>, StoreError> {
    let straight = s.transaction(|s| {
        let mut answers = Vec::with_capacity(batch.len());
        for prepared in batch {
            match write_report(s, prepared) {
                Ok(stored) => answers.push(Ok(stored)),
                Err(_) => return Ok(None),
            }
        }
        Ok(Some(answers))
    })?;
    if let Some(answers) = straight {
        return Ok(answers);
    }
    let isolated = s.transaction(|s| {
        let mut answers = Vec::with_capacity(batch.len());
        for prepared in batch {
            s.savepoint.execute([])?;
            let answer = write_report(s, prepared);
            if answer.is_err() {
                if s.conn.is_autocommit() {
                    // SQLite rolled the whole transaction back itself (a full disk, an I/O
                    // error): the batch failed, and for this report's reason, which is what
                    // the log must say rather than the savepoint the rollback took with it.
                    return answer.map(|_| None);
                }
                s.rollback_to.execute([])?;
            }
            s.release.execute([])?;
            answers.push(answer);
        }
        Ok(Some(answers))
    })?;
    Ok(isolated.expect("the isolated write always commits what it wrote"))
}

/// One report's statements, inside the batch's transaction.
fn write_report(s: &mut Statements, prepared: &Prepared) -> Result<Stored, StoreError> {
    let Prepared { incoming, update } = prepared;
    let agent_id = &incoming.agent_id;
    let report = &incoming.report;
    let now = incoming.received_at;
    let report_id = report.report_id.to_string();
    let inserted = s.insert_report.execute(params![
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
        let stored: Option<Option<String>> = s
            .inventory_of
            .query_row([agent_id], |row| row.get(0))
            .optional()?;
        inventory_changes_of(stored.flatten().as_deref(), report)
    } else {
        Vec::new()
    };
    let updated = s.update_agent.execute(params![
        update.last_report_at,
        update.interval_secs,
        update.agent_version,
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
        update.reports,
        agent_id,
        incoming.key_digest,
        update.hostname
    ])?;
    if updated == 0 {
        return Err(StoreError::Revoked(agent_id.clone()));
    }
    if let Some(inventory) = &update.inventory {
        s.store_inventory.execute(params![agent_id, inventory])?;
    }
    for change in &changes {
        s.insert_change.execute(params![
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
    Ok(accepted(&changes))
}
