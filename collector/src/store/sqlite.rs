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
    AGENT_COLUMNS, AgentEvidence, AgentIdentity, AgentRecord, ApiRole, ApiTokenRow, EnrolRefusal,
    EnrolTokenRow, Enrolled, ImportSummary, Store, StoreError, Stored, StoredUnit, evidence_of,
    import_summary,
};
use crate::figures::{Role, UnitRow};
use crate::units::NewUnit;

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

    async fn import_units(&self, units: &[NewUnit], now: i64) -> Result<ImportSummary, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let current: Vec<StoredUnit> = sqlx::query_as(
            "SELECT code, name, level, parent_code, staff, depth FROM units WHERE retired_at IS NULL",
        )
        .fetch_all(&mut *tx)
        .await?;
        let summary = import_summary(current, units);
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
            "INSERT INTO enrol_tokens (token_hash, unit_code, role, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(digest)
        .bind(unit_code)
        .bind(role.as_str())
        .bind(now)
        .bind(expires_at)
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
        let existing: Option<String> =
            sqlx::query_scalar("SELECT id FROM agents WHERE machine_id = ?")
                .bind(machine_id)
                .fetch_optional(&mut *tx)
                .await?;
        let reused = existing.is_some();
        let agent_id = match existing {
            Some(id) => {
                sqlx::query(
                    "UPDATE agents SET unit_code = ?, role = ?, hostname = ?, key_hash = ? WHERE id = ?",
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
        sqlx::query("UPDATE enrol_tokens SET uses = uses + 1 WHERE id = ?")
            .bind(token.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(Enrolled {
            agent_id,
            unit_code,
            role,
            reused,
        }))
    }

    async fn agent_by_key(&self, key_digest: &[u8]) -> Result<Option<AgentIdentity>, StoreError> {
        let row: Option<AgentIdentity> =
            sqlx::query_as("SELECT id, unit_code, key_hash FROM agents WHERE key_hash = ?")
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
        Ok(Stored::Accepted)
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
}
