//! The PostgreSQL store: several collector replicas on one database.
//!
//! The invariants are those of the SQLite store, but SQLite gets them from its single writer
//! and PostgreSQL must get them from the database, because replicas do not talk to each other:
//!
//! - a report is stored once: `INSERT … ON CONFLICT (report_id) DO NOTHING`; a second replica
//!   inserting the same id waits on the primary key until the first commits, then inserts
//!   nothing and answers "duplicate". Acknowledged means committed (`synchronous_commit` is the
//!   server's business: leave it on).
//! - a machine has one agent: the enrolment is one `INSERT … ON CONFLICT (machine_id) DO UPDATE
//!   … RETURNING id`, never a read followed by a write, so two replicas enrolling one machine at
//!   once end with one record and the same id.
//! - a unit import replaces the tree atomically: it takes `LOCK TABLE units IN EXCLUSIVE MODE`,
//!   which lets plain reads (the figures) go on against the old tree but waits for, and then
//!   holds off, every other writer of the tree: another import, and enrolments and token
//!   creation, which lock the unit row they rely on `FOR SHARE`. A transaction-level advisory
//!   lock would serialise imports too, but not against the enrolments.
//!
//! Transactions run at READ COMMITTED, the server's default; the locks above are what makes
//! each read-then-write safe. Migrations are embedded; sqlx holds an advisory lock while it
//! applies them, so replicas starting together do not race.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};
use sqlx::{PgPool, Postgres};
use tokio::sync::mpsc;

use super::{
    API_TOKEN_ROLE_SQL, AgentEvidence, AgentFilter, AgentIdentity, AgentRecord, ApiRole,
    EnrolRefusal, Enrolled, ImportSummary, Incoming, InventoryChange, Revoked, SESSION_ROLE_SQL,
    SnapshotRow, Store, StoreError, Stored, TokenInfo, redact_url,
};
use crate::Background;
use crate::figures::{AgentGroup, Role, Rules, UnitRow};
use crate::units::{NewUnit, UnitFile};

mod ingest;
mod publisher;

use super::batch::{self, Job};
use super::sql::Dialect;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The statements this store shares with SQLite's.
type Sql = super::sql::Sql<Postgres>;

impl Dialect for Postgres {
    const BYTE_ORDER: &'static str = " COLLATE \"C\"";
    /// The evidence is kept on the agent's row.
    const AGENTS_WITH_EVIDENCE: &'static str = "agents";
    const EVIDENCE_COLUMNS: &'static str = "inventory, sample, probes";
    const LOCKS_ROWS: bool = true;

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// How the store connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSettings {
    /// Connections the request pool keeps at most (the ingest writer and the figures lock each
    /// hold one session more of their own). Ten serves the readers of a busy collector and
    /// leaves room under PostgreSQL's default `max_connections` (100) for several replicas and
    /// operators.
    pub max_connections: u32,
    /// How long opening the store may take before it gives up: a wrong host or port should
    /// fail at start-up within seconds, not hang.
    pub connect_timeout: Duration,
    /// How long a request waits for a free connection before the collector answers 503 (the
    /// agent keeps the report in its spool and retries).
    pub acquire_timeout: Duration,
    /// How long the ingest writer waits for the database to store one batch. A batch takes
    /// milliseconds; this bounds the wait on a session that a firewall or NAT dropped without a
    /// word, which TCP would keep open for a quarter of an hour while every report queued behind
    /// it. The batch's requests then get 503 (the agents resend it; a report that did reach the
    /// database is answered "duplicate"), and the next batch opens a new session. Shorter than
    /// the agent's own request timeout (15 s by default), so the agent hears the 503.
    pub write_timeout: Duration,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The queue in front of this replica's ingest writer ([`ingest`]).
    ingest: mpsc::Sender<Job>,
}

impl PostgresStore {
    /// Connects to `postgres://…` (or `postgresql://…`) and applies pending migrations. The
    /// database must exist; creating it is the operator's job (it needs more rights than the
    /// collector should have).
    pub async fn open(url: &str, settings: &PostgresSettings) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("hatang-collector");
        let connect = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options);
        // The pool retries a refused connection until its acquire timeout; the shorter connect
        // timeout bounds start-up. Other failures (authentication, unknown database) come back
        // at once with the server's own message.
        let pool = match tokio::time::timeout(settings.connect_timeout, connect).await {
            Ok(Ok(pool)) => pool,
            Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_) => {
                return Err(StoreError::ConnectTimeout {
                    url: redact_url(url),
                    secs: settings.connect_timeout.as_secs(),
                });
            }
            Ok(Err(e)) => return Err(e.into()),
        };
        MIGRATOR.run(&pool).await.map_err(StoreError::Migrate)?;
        let ingest = ingest::start(PgConnectOptions::clone(&pool.connect_options()), settings);
        Ok(Self { pool, ingest })
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Sql::ping(&self.pool).await
    }

    async fn claim_figures(&self, held: Arc<AtomicBool>) -> Option<Background> {
        let options = PgConnectOptions::clone(&self.pool.connect_options());
        Some(publisher::claim(options, held).await)
    }

    async fn import_units(&self, file: &UnitFile, now: i64) -> Result<ImportSummary, StoreError> {
        let units = &file.units;
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE units IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let mut summary = Sql::retire_units(&mut tx, units, now).await?;
        // One statement for the whole tree (arrays, one element per unit) rather than one
        // round trip per unit: the database may be across the network.
        let column = |f: fn(&NewUnit) -> String| units.iter().map(f).collect::<Vec<_>>();
        let parents: Vec<Option<String>> = units.iter().map(|u| u.parent_code.clone()).collect();
        let numbers =
            |f: fn(&NewUnit) -> u32| units.iter().map(|u| i64::from(f(u))).collect::<Vec<i64>>();
        let positions: Vec<i64> = (0..units.len()).map(|p| p as i64).collect();
        sqlx::query(
            "INSERT INTO units (code, name, level, parent_code, staff, depth, position, imported_at, retired_at)
             SELECT code, name, level, parent_code, staff, depth, position, $8, NULL
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[])
               AS t (code, name, level, parent_code, staff, depth, position)
             ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, level = EXCLUDED.level,
               parent_code = EXCLUDED.parent_code, staff = EXCLUDED.staff, depth = EXCLUDED.depth,
               position = EXCLUDED.position, imported_at = EXCLUDED.imported_at, retired_at = NULL",
        )
        .bind(column(|u| u.code.clone()))
        .bind(column(|u| u.name.clone()))
        .bind(column(|u| u.level.clone()))
        .bind(parents)
        .bind(numbers(|u| u.staff))
        .bind(numbers(|u| u.depth))
        .bind(positions)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Sql::merge_units(&mut tx, &file.merges, &mut summary).await?;
        tx.commit().await?;
        Ok(summary)
    }

    async fn units(&self) -> Result<Vec<UnitRow>, StoreError> {
        Sql::units(&self.pool).await
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
        let tx = self.pool.begin().await?;
        Sql::create_enrol_token(tx, digest, unit_code, role, now, expires_at, max_uses).await
    }

    async fn create_api_token(
        &self,
        digest: &[u8],
        role: ApiRole,
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<(), StoreError> {
        Sql::create_api_token(&self.pool, digest, role, now, expires_at).await
    }

    async fn api_token_role(&self, digest: &[u8], now: i64) -> Result<Option<ApiRole>, StoreError> {
        Sql::secret_role(&self.pool, API_TOKEN_ROLE_SQL, digest, now).await
    }

    async fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        Sql::tokens(&self.pool).await
    }

    async fn revoke_token(
        &self,
        fingerprint: &str,
        now: i64,
    ) -> Result<Revoked<TokenInfo>, StoreError> {
        Sql::revoke_token(&self.pool, fingerprint, now).await
    }

    async fn revoke_agent(&self, id: &str, now: i64) -> Result<Revoked<AgentRecord>, StoreError> {
        Sql::revoke_agent(&self.pool, id, now).await
    }

    async fn agents_page(
        &self,
        filter: &AgentFilter,
        limit: u32,
        now: i64,
    ) -> Result<Vec<AgentRecord>, StoreError> {
        Sql::agents_page(&self.pool, filter, limit, now).await
    }

    async fn enroll(
        &self,
        token_digest: &[u8],
        machine_id: &str,
        hostname: &str,
        key_digest: &[u8],
        now: i64,
    ) -> Result<Result<Enrolled, EnrolRefusal>, StoreError> {
        let tx = self.pool.begin().await?;
        Sql::enroll(tx, token_digest, machine_id, hostname, key_digest, now).await
    }

    async fn agent_by_key(&self, key_digest: &[u8]) -> Result<Option<AgentIdentity>, StoreError> {
        Sql::agent_by_key(&self.pool, key_digest).await
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
        Sql::agents(&self.pool).await
    }

    async fn agent_groups(&self, rules: &Rules, now: i64) -> Result<Vec<AgentGroup>, StoreError> {
        Sql::agent_groups(&self.pool, rules, now).await
    }

    async fn agent(&self, id: &str) -> Result<Option<(AgentRecord, AgentEvidence)>, StoreError> {
        Sql::agent(&self.pool, id).await
    }

    async fn report_count(&self, agent_id: Option<&str>) -> Result<i64, StoreError> {
        Sql::report_count(&self.pool, agent_id).await
    }

    async fn prune_reports(&self, received_before: i64, limit: u32) -> Result<u64, StoreError> {
        // ctid: the row's physical address, the cheapest way to name the rows the subquery found.
        // The agents' counts go down by what was deleted, in the same statement.
        Ok(sqlx::query_scalar::<_, i64>(
            "WITH gone AS (
               DELETE FROM reports WHERE ctid IN
                 (SELECT ctid FROM reports WHERE received_at < $1 LIMIT $2)
               RETURNING agent_id),
             counted AS (SELECT agent_id, COUNT(*) AS n FROM gone GROUP BY agent_id),
             updated AS (
               UPDATE agents a SET reports_stored = a.reports_stored - c.n
               FROM counted c WHERE a.id = c.agent_id)
             SELECT COALESCE(SUM(n), 0)::bigint FROM counted",
        )
        .bind(received_before)
        .bind(i64::from(limit))
        .fetch_one(&self.pool)
        .await?
        .try_into()
        .unwrap_or(0))
    }

    async fn servers(&self) -> Result<Vec<(AgentRecord, AgentEvidence)>, StoreError> {
        Sql::servers(&self.pool).await
    }

    async fn inventory_changes(
        &self,
        agent_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InventoryChange>, StoreError> {
        Sql::inventory_changes(&self.pool, agent_id, before, limit).await
    }

    async fn write_snapshot(
        &self,
        date: &str,
        taken_at: i64,
        rows: &[SnapshotRow],
    ) -> Result<bool, StoreError> {
        let tx = self.pool.begin().await?;
        Sql::write_snapshot(tx, date, taken_at, rows).await
    }

    async fn snapshot(&self, date: &str) -> Result<Option<(i64, Vec<SnapshotRow>)>, StoreError> {
        Sql::snapshot(&self.pool, date).await
    }

    async fn snapshot_dates_around(
        &self,
        date: &str,
    ) -> Result<(Option<String>, Option<String>), StoreError> {
        Sql::snapshot_dates_around(&self.pool, date).await
    }

    async fn level_history(
        &self,
        level: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<SnapshotRow>, StoreError> {
        Sql::level_history(&self.pool, level, from, to).await
    }

    async fn create_session(
        &self,
        session_digest: &[u8],
        token_digest: &[u8],
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        Sql::create_session(&self.pool, session_digest, token_digest, now, expires_at).await
    }

    async fn session_role(
        &self,
        session_digest: &[u8],
        now: i64,
    ) -> Result<Option<ApiRole>, StoreError> {
        Sql::secret_role(&self.pool, SESSION_ROLE_SQL, session_digest, now).await
    }

    async fn delete_session(&self, session_digest: &[u8]) -> Result<(), StoreError> {
        Sql::delete_session(&self.pool, session_digest).await
    }
}
