//! The embedded SQLite store: one file, WAL journal, durable at every acknowledgement, and the
//! group commit that ingests reports.
//!
//! Writes go through a pool of exactly one connection (and the ingest writer's own, below) and
//! every write transaction starts with `BEGIN IMMEDIATE`, so writers queue instead of failing with `SQLITE_BUSY` halfway through, and
//! other processes (a `units import` next to a running `serve`) wait on the busy timeout. Reads
//! use a separate pool and never block the writer (WAL). `synchronous = FULL` makes a commit
//! durable across power loss, not just a process crash: that is what "acknowledged" promises
//! (the ingest writer keeps the same promise another way, see [`ingest`]).
//!
//! # Group commit
//!
//! A commit costs one `fsync` (about 1 ms on a virtual disk), and one writer committing one
//! report at a time tops out near 1,000 reports/s however many requests wait. So reports are not
//! committed by the requests that bring them: [`Store::ingest`] queues the report for the
//! store's ingest writer, a thread that owns the write side of ingestion, and waits for its
//! answer. The writer takes every report queued at that moment (at most [`MAX_BATCH`](super::batch::MAX_BATCH)),
//! stores them in one `BEGIN IMMEDIATE … COMMIT` transaction, and only after that transaction is
//! on disk (the `COMMIT` returned and a second thread synced the WAL file, see [`ingest`]) is
//! each request answered. When the collector is idle a report is committed on its own at once: nothing waits
//! for a batch to fill, the batch is simply whatever queued up during the previous commit.
//!
//! What each answer means:
//! - `Accepted`: the transaction holding the report committed (durable, as above). A crash before
//!   the `COMMIT` loses the whole batch and every request of it gets no answer, or an error; the
//!   agents resend from their spools.
//! - `Duplicate`: the `report_id` was already stored, by an earlier transaction or earlier in the
//!   same batch (the `INSERT … ON CONFLICT DO NOTHING` sees the batch's own earlier rows), and
//!   nothing was written. A duplicate answered in a batch that then fails to commit gets the
//!   batch's error instead, since the copy it matched was not committed either.
//! - An error of its own (the agent's key revoked since its request was authenticated, a
//!   constraint): only that report is undone, the rest of the batch commits. A batch in which
//!   a report fails is rolled back and written again with each report inside its own
//!   `SAVEPOINT`, rolled back to when it fails. Savepoints were chosen over checking every
//!   report for trouble beforehand, because a pre-check covers only the failures it knows of.
//! - [`StoreError::Busy`]: the queue ([`QUEUE`](super::batch::QUEUE) reports) was full; nothing was taken and
//!   the HTTP layer answers 503 with `Retry-After`, the report stays in the agent's spool.
//!
//! Reports are applied in the order they were queued, one after the other, so an agent's record,
//! its evidence and its inventory change log advance exactly as with one transaction per report.
//! The ingest writer has a connection of its own (see [`ingest`]); other writes (enrolment,
//! revocation, imports) go through the write pool's one connection. SQLite lets one transaction
//! write at a time, so the two take turns: whichever starts its `BEGIN IMMEDIATE` second waits
//! on the busy timeout.
//!
//! Rejected: a fixed batching delay (adds latency to every report when idle) and a batch
//! per HTTP connection (a single agent never has two reports in flight).

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Sqlite, SqlitePool};
use tokio::sync::mpsc;

use super::{
    API_TOKEN_ROLE_SQL, AgentEvidence, AgentFilter, AgentIdentity, AgentRecord, ApiRole,
    EnrolRefusal, Enrolled, ImportSummary, Incoming, InventoryChange, Missing, Revoked,
    SESSION_ROLE_SQL, SnapshotRow, Store, StoreError, Stored, TokenInfo,
};
use crate::figures::{AgentGroup, Role, Rules, UnitRow};
use crate::units::UnitFile;

mod ingest;

use super::batch::{self, Job};
use super::sql::Dialect;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// The statements this store shares with PostgreSQL's.
type Sql = super::sql::Sql<Sqlite>;

impl Dialect for Sqlite {
    /// SQLite's own order (`BINARY`).
    const BYTE_ORDER: &'static str = "";
    /// The inventory has a table of its own here (migration 0008: every report rewrites its
    /// agent's row, and the inventory made that row several pages).
    const AGENTS_WITH_EVIDENCE: &'static str =
        "agents LEFT JOIN agent_inventory ON agent_inventory.agent_id = agents.id";
    const EVIDENCE_COLUMNS: &'static str = "agent_inventory.inventory, sample, probes";
    /// Every write transaction begins `BEGIN IMMEDIATE`, taking the one write lock.
    const LOCKS_ROWS: bool = false;

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// Database page size of a new file (an existing one keeps its own). Every page a commit changes
/// is written whole to the WAL, and a report changes its agent's row (about 1.5 KB) and a few
/// pages where rows are appended: 2 KiB pages halve what the disk writes per report compared with
/// SQLite's 4 KiB.
const PAGE_SIZE: u32 = 2048;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The queue in front of the ingest writer ([`ingest`]); it stops when every clone of the
    /// store is dropped.
    ingest: mpsc::Sender<Job>,
}

impl SqliteStore {
    /// Opens `sqlite://PATH`, creating the file if it is missing and `missing` allows, and
    /// applies pending migrations.
    pub async fn open(url: &str, missing: Missing) -> Result<Self, StoreError> {
        let create = missing == Missing::Create;
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .page_size(PAGE_SIZE);
        // Checked here for an error that names the file: without `create_if_missing` SQLite
        // would refuse too, but only as "unable to open database file", which a full disk or
        // a permission gives as well. Named absolute: the default `hatang.db` is relative to
        // wherever the command was run.
        let file = options.get_filename();
        if !create {
            let named = || std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
            match file.try_exists() {
                Ok(true) => {}
                Ok(false) => return Err(StoreError::Missing(named())),
                // A directory this user may not enter (the service's 0750 state directory,
                // read by another account) is no missing file.
                Err(e) => {
                    return Err(StoreError::Conflict(format!(
                        "cannot open {}: {e}",
                        named().display()
                    )));
                }
            }
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&writer).await.map_err(StoreError::Migrate)?;
        // The commands that may create the file are those that write it (`serve` above all):
        // a file they cannot write is refused now, not at the first report. The others (a
        // `coverage` run by an account that may only read) take it as it is.
        let ingest = ingest::start(options.get_filename(), create)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            writer,
            reader,
            ingest,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Sql::ping(&self.reader).await
    }

    async fn import_units(&self, file: &UnitFile, now: i64) -> Result<ImportSummary, StoreError> {
        let units = &file.units;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let mut summary = Sql::retire_units(&mut tx, units, now).await?;
        for (position, u) in units.iter().enumerate() {
            sqlx::query(
                "INSERT INTO units (code, name, level, parent_code, staff, depth, position, imported_at, retired_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)
                 ON CONFLICT (code) DO UPDATE SET name = excluded.name, level = excluded.level,
                   parent_code = excluded.parent_code, staff = excluded.staff, depth = excluded.depth,
                   position = excluded.position, imported_at = excluded.imported_at, retired_at = NULL",
            )
            .bind(&u.code)
            .bind(&u.name)
            .bind(&u.level)
            .bind(&u.parent_code)
            .bind(i64::from(u.staff))
            .bind(i64::from(u.depth))
            .bind(position as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        Sql::merge_units(&mut tx, &file.merges, &mut summary).await?;
        tx.commit().await?;
        Ok(summary)
    }

    async fn units(&self) -> Result<Vec<UnitRow>, StoreError> {
        Sql::units(&self.reader).await
    }

    async fn create_enrol_token(
        &self,
        digest: &[u8],
        unit_code: &str,
        role: Role,
        now: i64,
        expires_at: Option<i64>,
        max_uses: Option<u32>,
    ) -> Result<(), StoreError> {
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Sql::create_enrol_token(tx, digest, unit_code, role, now, expires_at, max_uses).await
    }

    async fn create_api_token(
        &self,
        digest: &[u8],
        role: ApiRole,
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<(), StoreError> {
        Sql::create_api_token(&self.writer, digest, role, now, expires_at).await
    }

    async fn api_token_role(&self, digest: &[u8], now: i64) -> Result<Option<ApiRole>, StoreError> {
        Sql::secret_role(&self.reader, API_TOKEN_ROLE_SQL, digest, now).await
    }

    async fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        Sql::tokens(&self.reader).await
    }

    async fn revoke_token(
        &self,
        fingerprint: &str,
        now: i64,
    ) -> Result<Revoked<TokenInfo>, StoreError> {
        Sql::revoke_token(&self.writer, fingerprint, now).await
    }

    async fn revoke_agent(&self, id: &str, now: i64) -> Result<Revoked<AgentRecord>, StoreError> {
        Sql::revoke_agent(&self.writer, id, now).await
    }

    async fn agents_page(
        &self,
        filter: &AgentFilter,
        limit: u32,
        now: i64,
    ) -> Result<Vec<AgentRecord>, StoreError> {
        Sql::agents_page(&self.reader, filter, limit, now).await
    }

    async fn enroll(
        &self,
        token_digest: &[u8],
        machine_id: &str,
        hostname: &str,
        key_digest: &[u8],
        now: i64,
    ) -> Result<Result<Enrolled, EnrolRefusal>, StoreError> {
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Sql::enroll(tx, token_digest, machine_id, hostname, key_digest, now).await
    }

    async fn agent_by_key(&self, key_digest: &[u8]) -> Result<Option<AgentIdentity>, StoreError> {
        Sql::agent_by_key(&self.reader, key_digest).await
    }

    async fn store_reports(
        &self,
        batch: &[Incoming],
    ) -> Result<Vec<Result<Stored, StoreError>>, StoreError> {
        batch::submit(&self.ingest, batch.to_vec()).await
    }

    async fn ingest(&self, incoming: Incoming) -> Result<Stored, StoreError> {
        batch::submit_one(&self.ingest, incoming).await
    }

    async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        Sql::agents(&self.reader).await
    }

    async fn agent_groups(&self, rules: &Rules, now: i64) -> Result<Vec<AgentGroup>, StoreError> {
        Sql::agent_groups(&self.reader, rules, now).await
    }

    async fn agent(&self, id: &str) -> Result<Option<(AgentRecord, AgentEvidence)>, StoreError> {
        Sql::agent(&self.reader, id).await
    }

    async fn report_count(&self, agent_id: Option<&str>) -> Result<i64, StoreError> {
        Sql::report_count(&self.reader, agent_id).await
    }

    async fn prune_reports(&self, received_before: i64, limit: u32) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let gone: Vec<String> = sqlx::query_scalar(
            "DELETE FROM reports WHERE rowid IN
               (SELECT rowid FROM reports WHERE received_at < $1 LIMIT $2)
             RETURNING agent_id",
        )
        .bind(received_before)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        for (agent, reports) in counted(&gone) {
            sqlx::query("UPDATE agents SET reports_stored = reports_stored - $1 WHERE id = $2")
                .bind(reports)
                .bind(agent)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(gone.len() as u64)
    }

    async fn servers(&self) -> Result<Vec<(AgentRecord, AgentEvidence)>, StoreError> {
        Sql::servers(&self.reader).await
    }

    async fn inventory_changes(
        &self,
        agent_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InventoryChange>, StoreError> {
        Sql::inventory_changes(&self.reader, agent_id, before, limit).await
    }

    async fn write_snapshot(
        &self,
        date: &str,
        taken_at: i64,
        rows: &[SnapshotRow],
    ) -> Result<bool, StoreError> {
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Sql::write_snapshot(tx, date, taken_at, rows).await
    }

    async fn snapshot(&self, date: &str) -> Result<Option<(i64, Vec<SnapshotRow>)>, StoreError> {
        Sql::snapshot(&self.reader, date).await
    }

    async fn snapshot_dates_around(
        &self,
        date: &str,
    ) -> Result<(Option<String>, Option<String>), StoreError> {
        Sql::snapshot_dates_around(&self.reader, date).await
    }

    async fn level_history(
        &self,
        level: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<SnapshotRow>, StoreError> {
        Sql::level_history(&self.reader, level, from, to).await
    }

    async fn create_session(
        &self,
        session_digest: &[u8],
        token_digest: &[u8],
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        Sql::create_session(&self.writer, session_digest, token_digest, now, expires_at).await
    }

    async fn session_role(
        &self,
        session_digest: &[u8],
        now: i64,
    ) -> Result<Option<ApiRole>, StoreError> {
        Sql::secret_role(&self.reader, SESSION_ROLE_SQL, session_digest, now).await
    }

    async fn delete_session(&self, session_digest: &[u8]) -> Result<(), StoreError> {
        Sql::delete_session(&self.writer, session_digest).await
    }
}

/// How many times each agent occurs in `agents`.
fn counted(agents: &[String]) -> HashMap<&str, i64> {
    let mut counts = HashMap::new();
    for agent in agents {
        *counts.entry(agent.as_str()).or_default() += 1;
    }
    counts
}
