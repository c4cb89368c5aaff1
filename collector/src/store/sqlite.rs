//! The embedded SQLite store: one file, WAL journal, `synchronous = FULL`.
//!
//! Writes go through a pool of exactly one connection and every write transaction starts with
//! `BEGIN IMMEDIATE`, so writers queue instead of failing with `SQLITE_BUSY` halfway through, and
//! other processes (a `units import` next to a running `serve`) wait on the busy timeout. Reads
//! use a separate pool and never block the writer (WAL). `synchronous = FULL` makes a commit
//! durable across power loss, not just a process crash: that is what "acknowledged" promises.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use hatang_protocol::Report;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, SqlitePool};

use super::{
    AGENT_COLUMNS, AgentEvidence, AgentIdentity, AgentRecord, ApiRole, ApiTokenRow, CHANGE_COLUMNS,
    EnrolRefusal, EnrolTokenRow, Enrolled, ImportSummary, InventoryChange, SNAPSHOT_COLUMNS,
    SnapshotRow, Store, StoreError, Stored, StoredUnit, accepted, bind_change, bind_snapshot_row,
    evidence_of, import_summary, inventory_changes_of,
};
use super::{
    AgentFilter, Revoked, TOKENS_SQL, TokenInfo, TokenRow, agent_revocation, agents_page_query,
    revoke_agent_sql, token_by_fingerprint,
};
use crate::figures::{Role, UnitRow};
use crate::units::UnitFile;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens `sqlite://PATH`, creating the file if needed, and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&writer).await.map_err(StoreError::Migrate)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { writer, reader })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn import_units(&self, file: &UnitFile, now: i64) -> Result<ImportSummary, StoreError> {
        let units = &file.units;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let current: Vec<StoredUnit> = sqlx::query_as(
            "SELECT code, name, level, parent_code, staff, depth FROM units WHERE retired_at IS NULL",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut summary = import_summary(current, units);
        sqlx::query("UPDATE units SET retired_at = ? WHERE retired_at IS NULL")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for (position, u) in units.iter().enumerate() {
            sqlx::query(
                "INSERT INTO units (code, name, level, parent_code, staff, depth, position, imported_at, retired_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)
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
        for merge in &file.merges {
            let moved = sqlx::query("UPDATE agents SET unit_code = ? WHERE unit_code = ?")
                .bind(&merge.into)
                .bind(&merge.code)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("UPDATE enrol_tokens SET unit_code = ? WHERE unit_code = ?")
                .bind(&merge.into)
                .bind(&merge.code)
                .execute(&mut *tx)
                .await?;
            summary.merged += 1;
            summary.agents_moved += moved;
        }
        tx.commit().await?;
        Ok(summary)
    }

    async fn units(&self) -> Result<Vec<UnitRow>, StoreError> {
        let rows: Vec<StoredUnit> = sqlx::query_as(
            "SELECT code, name, level, parent_code, staff, depth FROM units
             WHERE retired_at IS NULL ORDER BY position",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(StoredUnit::into_row).collect())
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let known = sqlx::query("SELECT 1 FROM units WHERE code = ? AND retired_at IS NULL")
            .bind(unit_code)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Err(StoreError::NotFound(format!("unit {unit_code}")));
        }
        sqlx::query(
            "INSERT INTO enrol_tokens (token_hash, unit_code, role, created_at, expires_at, max_uses)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(digest)
        .bind(unit_code)
        .bind(role.as_str())
        .bind(now)
        .bind(expires_at)
        .bind(max_uses.map(i64::from))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_api_token(
        &self,
        digest: &[u8],
        role: ApiRole,
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, role, created_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(digest)
        .bind(role.as_str())
        .bind(now)
        .bind(expires_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn api_token_role(&self, digest: &[u8], now: i64) -> Result<Option<ApiRole>, StoreError> {
        let row: Option<ApiTokenRow> = sqlx::query_as(
            "SELECT token_hash, role FROM api_tokens WHERE token_hash = ?
             AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(digest)
        .bind(now)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.and_then(|r| r.role_for(digest)))
    }

    async fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let rows: Vec<TokenRow> = sqlx::query_as(TOKENS_SQL).fetch_all(&self.reader).await?;
        Ok(rows.into_iter().map(TokenRow::into_info).collect())
    }

    async fn revoke_token(
        &self,
        fingerprint: &str,
        now: i64,
    ) -> Result<Revoked<TokenInfo>, StoreError> {
        let rows: Vec<TokenRow> = sqlx::query_as(TOKENS_SQL).fetch_all(&self.writer).await?;
        let row = token_by_fingerprint(rows, fingerprint)?;
        sqlx::query(sqlx::AssertSqlSafe(row.revoke_sql(|_| "?".to_string())))
            .bind(now)
            .bind(row.id)
            .execute(&self.writer)
            .await?;
        Ok(row.into_revoked(now))
    }

    async fn revoke_agent(&self, id: &str, now: i64) -> Result<Revoked<AgentRecord>, StoreError> {
        let updated = sqlx::query(sqlx::AssertSqlSafe(revoke_agent_sql(|_| "?".to_string())))
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await?
            .rows_affected();
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?");
        let record: Option<AgentRecord> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.writer)
            .await?;
        agent_revocation(record, updated, id)
    }

    async fn agents_page(
        &self,
        filter: &AgentFilter,
        limit: u32,
        now: i64,
    ) -> Result<Vec<AgentRecord>, StoreError> {
        Ok(agents_page_query(filter, limit, now, |_| "?".to_string())
            .fetch_all(&self.reader)
            .await?)
    }

    async fn enroll(
        &self,
        token_digest: &[u8],
        machine_id: &str,
        hostname: &str,
        key_digest: &[u8],
        now: i64,
    ) -> Result<Result<Enrolled, EnrolRefusal>, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let token: Option<EnrolTokenRow> = sqlx::query_as(
            "SELECT t.id, t.token_hash, t.unit_code, t.role, t.expires_at, t.revoked_at,
                    u.retired_at AS unit_retired_at
             FROM enrol_tokens t JOIN units u ON u.code = t.unit_code
             WHERE t.token_hash = ?",
        )
        .bind(token_digest)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(token) = token else {
            return Ok(Err(EnrolRefusal::UnknownToken));
        };
        let (unit_code, role) = match token.grant(token_digest, now) {
            Ok(granted) => granted,
            Err(refusal) => return Ok(Err(refusal)),
        };
        // The use is claimed first; nothing is written if it is refused (the transaction is
        // dropped). PostgreSQL needs the condition in the UPDATE itself; here the single
        // writer would do, but one statement keeps the two stores alike.
        let claimed = sqlx::query(
            "UPDATE enrol_tokens SET uses = uses + 1
             WHERE id = ? AND (max_uses IS NULL OR uses < max_uses)",
        )
        .bind(token.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(Err(EnrolRefusal::UsedUp));
        }
        let existing: Option<String> =
            sqlx::query_scalar("SELECT id FROM agents WHERE machine_id = ?")
                .bind(machine_id)
                .fetch_optional(&mut *tx)
                .await?;
        let reused = existing.is_some();
        let agent_id = match existing {
            Some(id) => {
                sqlx::query(
                    "UPDATE agents SET unit_code = ?, role = ?, hostname = ?, key_hash = ?,
                       revoked_at = NULL
                     WHERE id = ?",
                )
                .bind(&unit_code)
                .bind(role.as_str())
                .bind(hostname)
                .bind(key_digest)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                let id = uuid::Uuid::now_v7().to_string();
                sqlx::query(
                    "INSERT INTO agents (id, machine_id, unit_code, role, hostname, key_hash, enrolled_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&id)
                .bind(machine_id)
                .bind(&unit_code)
                .bind(role.as_str())
                .bind(hostname)
                .bind(key_digest)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        tx.commit().await?;
        Ok(Ok(Enrolled {
            agent_id,
            unit_code,
            role,
            reused,
        }))
    }

    async fn agent_by_key(&self, key_digest: &[u8]) -> Result<Option<AgentIdentity>, StoreError> {
        let row: Option<AgentIdentity> = sqlx::query_as(
            "SELECT id, unit_code, key_hash FROM agents WHERE key_hash = ? AND revoked_at IS NULL",
        )
        .bind(key_digest)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.filter(|a| crate::secret::same(&a.key_hash, key_digest)))
    }

    async fn store_report(
        &self,
        agent_id: &str,
        report: &Report,
        body: &str,
        now: i64,
    ) -> Result<Stored, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let inserted = sqlx::query(
            "INSERT INTO reports (report_id, agent_id, received_at, agent_time, body)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (report_id) DO NOTHING",
        )
        .bind(report.report_id.to_string())
        .bind(agent_id)
        .bind(now)
        .bind(report.agent_time.unix_timestamp())
        .bind(body)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(Stored::Duplicate);
        }
        let changes = if report.inventory.is_some() {
            let stored: Option<Option<String>> =
                sqlx::query_scalar("SELECT inventory FROM agents WHERE id = ?")
                    .bind(agent_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            inventory_changes_of(stored.flatten().as_deref(), report)
        } else {
            Vec::new()
        };
        let report_id = report.report_id.to_string();
        for change in &changes {
            let insert = sqlx::query(
                "INSERT INTO inventory_changes (agent_id, report_id, at, component, key, kind, before, after)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            );
            bind_change(insert, agent_id, &report_id, now, change)
                .execute(&mut *tx)
                .await?;
        }
        let evidence = evidence_of(report);
        let links = crate::evidence::of(report, now);
        // COALESCE(MAX(col, ?), ?, col): the later of the stored and the new success time,
        // whichever exists (SQLite's two-argument MAX is NULL if either argument is).
        sqlx::query(
            "UPDATE agents SET last_report_at = ?, interval_secs = ?, agent_version = ?,
               inventory = COALESCE(?, inventory), sample = COALESCE(?, sample),
               probes = COALESCE(?, probes), lan_up = COALESCE(?, lan_up),
               internet_ok_at = COALESCE(MAX(internet_ok_at, ?), ?, internet_ok_at),
               gov_wan_ok_at = COALESCE(MAX(gov_wan_ok_at, ?), ?, gov_wan_ok_at),
               datacentre_ok_at = COALESCE(MAX(datacentre_ok_at, ?), ?, datacentre_ok_at)
             WHERE id = ?",
        )
        .bind(now)
        .bind(i64::from(report.interval_secs))
        .bind(&report.agent_version)
        .bind(evidence.inventory)
        .bind(evidence.sample)
        .bind(evidence.probes)
        .bind(links.lan_up)
        .bind(links.internet_ok_at)
        .bind(links.internet_ok_at)
        .bind(links.gov_wan_ok_at)
        .bind(links.gov_wan_ok_at)
        .bind(links.datacentre_ok_at)
        .bind(links.datacentre_ok_at)
        .bind(agent_id)
        .execute(&mut *tx)
        .await?;
        if let Some(speed) = links.speed {
            sqlx::query(
                "UPDATE agents SET speed_at = ?, download_bps = ?, upload_bps = ? WHERE id = ?",
            )
            .bind(speed.at)
            .bind(speed.download_bps)
            .bind(speed.upload_bps)
            .bind(agent_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(accepted(&changes))
    }

    async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY unit_code, hostname, id");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.reader)
            .await?)
    }

    async fn agent(&self, id: &str) -> Result<Option<(AgentRecord, AgentEvidence)>, StoreError> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?");
        let record: Option<AgentRecord> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        let Some(record) = record else {
            return Ok(None);
        };
        let evidence: AgentEvidence =
            sqlx::query_as("SELECT inventory, sample, probes FROM agents WHERE id = ?")
                .bind(id)
                .fetch_one(&self.reader)
                .await?;
        Ok(Some((record, evidence)))
    }

    async fn report_count(&self, agent_id: Option<&str>) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM reports WHERE ? IS NULL OR agent_id = ?")
                .bind(agent_id)
                .bind(agent_id)
                .fetch_one(&self.reader)
                .await?,
        )
    }

    async fn servers(&self) -> Result<Vec<(AgentRecord, AgentEvidence)>, StoreError> {
        let sql = format!(
            "SELECT {AGENT_COLUMNS}, inventory, sample, probes FROM agents
             WHERE role = 'server' ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.reader)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((AgentRecord::from_row(r)?, AgentEvidence::from_row(r)?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn inventory_changes(
        &self,
        agent_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InventoryChange>, StoreError> {
        let sql = format!(
            "SELECT {CHANGE_COLUMNS} FROM inventory_changes
             WHERE agent_id = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(agent_id)
            .bind(before)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?)
    }

    async fn write_snapshot(
        &self,
        date: &str,
        taken_at: i64,
        rows: &[SnapshotRow],
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let claimed = sqlx::query(
            "INSERT INTO figure_snapshot_dates (date, taken_at) VALUES (?, ?)
             ON CONFLICT (date) DO NOTHING",
        )
        .bind(date)
        .bind(taken_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let sql = format!(
            "INSERT INTO figure_snapshots ({SNAPSHOT_COLUMNS})
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (date, scope, code) DO NOTHING"
        );
        for row in rows {
            bind_snapshot_row(sqlx::query(sqlx::AssertSqlSafe(sql.clone())), row)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn snapshot(&self, date: &str) -> Result<Option<(i64, Vec<SnapshotRow>)>, StoreError> {
        let taken_at: Option<i64> =
            sqlx::query_scalar("SELECT taken_at FROM figure_snapshot_dates WHERE date = ?")
                .bind(date)
                .fetch_optional(&self.reader)
                .await?;
        let Some(taken_at) = taken_at else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM figure_snapshots WHERE date = ?
             ORDER BY scope, position"
        );
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(date)
            .fetch_all(&self.reader)
            .await?;
        Ok(Some((taken_at, rows)))
    }

    async fn snapshot_dates_around(
        &self,
        date: &str,
    ) -> Result<(Option<String>, Option<String>), StoreError> {
        Ok(sqlx::query_as(
            "SELECT (SELECT MAX(date) FROM figure_snapshot_dates WHERE date < ?),
                    (SELECT MIN(date) FROM figure_snapshot_dates WHERE date > ?)",
        )
        .bind(date)
        .bind(date)
        .fetch_one(&self.reader)
        .await?)
    }

    async fn level_history(
        &self,
        level: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<SnapshotRow>, StoreError> {
        let sql = format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM figure_snapshots
             WHERE scope = 'level' AND (? IS NULL OR level = ?)
               AND (? IS NULL OR date >= ?) AND (? IS NULL OR date <= ?)
             ORDER BY date, position"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(level)
            .bind(level)
            .bind(from)
            .bind(from)
            .bind(to)
            .bind(to)
            .fetch_all(&self.reader)
            .await?)
    }
}
