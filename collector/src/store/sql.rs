//! The statements both stores run alike: one SQL text and one body serve SQLite and PostgreSQL.
//!
//! The SQL uses PostgreSQL's `$N` placeholders, which sqlx-sqlite binds by number too (SQLite's
//! named parameters), so a parameter used twice is bound once. What differs between the engines
//! in these statements is a [`Dialect`] constant; a difference in what a method does (SQLite's
//! `BEGIN IMMEDIATE`, PostgreSQL's one-statement unit import and enrolment) stays in the store,
//! which passes in the pool, or the transaction it began.
//!
//! Rejected: `sqlx::Any` (no timestamps, UUIDs or JSON), and a macro stamping these bodies out
//! once per store (its errors and documentation would point into the macro). The bounds sqlx
//! needs of a database are written once, on [`Sql`]'s `impl`.

use std::marker::PhantomData;

use sqlx::{ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use super::{
    AGENT_COLUMNS, AGENT_GROUPS_SQL, AgentEvidence, AgentFilter, AgentIdentity, AgentRecord,
    ApiRole, CHANGE_COLUMNS, GroupRow, HashedRole, InventoryChange, REVOKE_AGENT_SQL, Revoked,
    SESSION_ROLE_SQL, SNAPSHOT_COLUMNS, SnapshotRow, StoreError, StoredUnit, TOKENS_SQL, TokenInfo,
    TokenRow, agent_revocation, agents_page_query, bind_group_params, groups_of,
    token_by_fingerprint,
};
use crate::figures::{AgentGroup, Rules, UnitRow};

/// What the shared statements need to know of an engine.
pub(super) trait Dialect: sqlx::Database {
    /// Follows a text column in `ORDER BY` so it sorts by bytes, as SQLite does by default:
    /// PostgreSQL's would follow the server's collation (en_US, vi_VN…), and that must not change
    /// what the API lists first.
    const BYTE_ORDER: &'static str;
    /// The agents joined to wherever their evidence is kept, and [`AgentEvidence`]'s columns there.
    const AGENTS_WITH_EVIDENCE: &'static str;
    const EVIDENCE_COLUMNS: &'static str;

    /// How many rows a statement changed (sqlx has no engine-neutral accessor).
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

/// The shared statements of the store on database `DB`: a namespace, never built.
pub(super) struct Sql<DB>(PhantomData<DB>);

impl<DB> Sql<DB>
where
    DB: Dialect,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB>,
    for<'a> &'a [u8]: Encode<'a, DB> + Type<DB>,
    for<'a> String: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Encode<'a, DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    for<'a> f64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<f64>: Encode<'a, DB>,
    for<'r> AgentRecord: FromRow<'r, DB::Row>,
    for<'r> AgentEvidence: FromRow<'r, DB::Row>,
    for<'r> AgentIdentity: FromRow<'r, DB::Row>,
    for<'r> GroupRow: FromRow<'r, DB::Row>,
    for<'r> HashedRole: FromRow<'r, DB::Row>,
    for<'r> InventoryChange: FromRow<'r, DB::Row>,
    for<'r> SnapshotRow: FromRow<'r, DB::Row>,
    for<'r> StoredUnit: FromRow<'r, DB::Row>,
    for<'r> TokenRow: FromRow<'r, DB::Row>,
{
    pub(super) async fn ping(pool: &Pool<DB>) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(pool).await?;
        Ok(())
    }

    pub(super) async fn units(pool: &Pool<DB>) -> Result<Vec<UnitRow>, StoreError> {
        let rows: Vec<StoredUnit> = sqlx::query_as(
            "SELECT code, name, level, parent_code, staff, depth FROM units
             WHERE retired_at IS NULL ORDER BY position",
        )
        .fetch_all(pool)
        .await?;
        Ok(rows.into_iter().map(StoredUnit::into_row).collect())
    }

    pub(super) async fn create_api_token(
        pool: &Pool<DB>,
        digest: &[u8],
        role: ApiRole,
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, role, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(digest)
        .bind(role.as_str())
        .bind(now)
        .bind(expires_at)
        .execute(pool)
        .await?;
        Ok(())
    }

    pub(super) async fn api_token_role(
        pool: &Pool<DB>,
        digest: &[u8],
        now: i64,
    ) -> Result<Option<ApiRole>, StoreError> {
        let row: Option<HashedRole> = sqlx::query_as(
            "SELECT token_hash AS hash, role FROM api_tokens WHERE token_hash = $1
             AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(digest)
        .bind(now)
        .fetch_optional(pool)
        .await?;
        Ok(row.and_then(|r| r.role_for(digest)))
    }

    pub(super) async fn tokens(pool: &Pool<DB>) -> Result<Vec<TokenInfo>, StoreError> {
        let rows: Vec<TokenRow> = sqlx::query_as(TOKENS_SQL).fetch_all(pool).await?;
        Ok(rows.into_iter().map(TokenRow::into_info).collect())
    }

    pub(super) async fn revoke_token(
        pool: &Pool<DB>,
        fingerprint: &str,
        now: i64,
    ) -> Result<Revoked<TokenInfo>, StoreError> {
        let rows: Vec<TokenRow> = sqlx::query_as(TOKENS_SQL).fetch_all(pool).await?;
        let row = token_by_fingerprint(rows, fingerprint)?;
        sqlx::query(sqlx::AssertSqlSafe(row.revoke_sql()))
            .bind(now)
            .bind(row.id)
            .execute(pool)
            .await?;
        Ok(row.into_revoked(now))
    }

    pub(super) async fn revoke_agent(
        pool: &Pool<DB>,
        id: &str,
        now: i64,
    ) -> Result<Revoked<AgentRecord>, StoreError> {
        let result = sqlx::query(REVOKE_AGENT_SQL)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?;
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1");
        let record: Option<AgentRecord> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(pool)
            .await?;
        agent_revocation(record, DB::rows_affected(&result), id)
    }

    pub(super) async fn agents_page(
        pool: &Pool<DB>,
        filter: &AgentFilter,
        limit: u32,
        now: i64,
    ) -> Result<Vec<AgentRecord>, StoreError> {
        Ok(agents_page_query(filter, limit, now)
            .fetch_all(pool)
            .await?)
    }

    pub(super) async fn agent_by_key(
        pool: &Pool<DB>,
        key_digest: &[u8],
    ) -> Result<Option<AgentIdentity>, StoreError> {
        let row: Option<AgentIdentity> = sqlx::query_as(
            "SELECT id, unit_code, key_hash FROM agents WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_digest)
        .fetch_optional(pool)
        .await?;
        Ok(row.filter(|a| crate::secret::same(&a.key_hash, key_digest)))
    }

    pub(super) async fn agents(pool: &Pool<DB>) -> Result<Vec<AgentRecord>, StoreError> {
        let order = DB::BYTE_ORDER;
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM agents
             ORDER BY unit_code{order}, hostname{order}, id{order}"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?)
    }

    pub(super) async fn agent_groups(
        pool: &Pool<DB>,
        rules: &Rules,
        now: i64,
    ) -> Result<Vec<AgentGroup>, StoreError> {
        let query = sqlx::query_as(AGENT_GROUPS_SQL);
        let rows = bind_group_params(query, rules, now).fetch_all(pool).await?;
        Ok(groups_of(rows))
    }

    pub(super) async fn agent(
        pool: &Pool<DB>,
        id: &str,
    ) -> Result<Option<(AgentRecord, AgentEvidence)>, StoreError> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1");
        let record: Option<AgentRecord> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(pool)
            .await?;
        let Some(record) = record else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {} FROM {} WHERE id = $1",
            DB::EVIDENCE_COLUMNS,
            DB::AGENTS_WITH_EVIDENCE
        );
        let evidence: AgentEvidence = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(pool)
            .await?;
        Ok(Some((record, evidence)))
    }

    pub(super) async fn report_count(
        pool: &Pool<DB>,
        agent_id: Option<&str>,
    ) -> Result<i64, StoreError> {
        let count = match agent_id {
            None => sqlx::query_scalar("SELECT COUNT(*) FROM reports"),
            Some(id) => {
                sqlx::query_scalar("SELECT reports_stored FROM agents WHERE id = $1").bind(id)
            }
        };
        Ok(count.fetch_optional(pool).await?.unwrap_or(0))
    }

    pub(super) async fn servers(
        pool: &Pool<DB>,
    ) -> Result<Vec<(AgentRecord, AgentEvidence)>, StoreError> {
        let sql = format!(
            "SELECT {AGENT_COLUMNS}, {} FROM {}
             WHERE role = 'server' ORDER BY id{}",
            DB::EVIDENCE_COLUMNS,
            DB::AGENTS_WITH_EVIDENCE,
            DB::BYTE_ORDER
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((AgentRecord::from_row(r)?, AgentEvidence::from_row(r)?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    pub(super) async fn inventory_changes(
        pool: &Pool<DB>,
        agent_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InventoryChange>, StoreError> {
        // The cast types the parameter for PostgreSQL, which cannot infer it from `IS NULL`.
        let sql = format!(
            "SELECT {CHANGE_COLUMNS} FROM inventory_changes
             WHERE agent_id = $1 AND (CAST($2 AS BIGINT) IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(agent_id)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?)
    }

    pub(super) async fn snapshot(
        pool: &Pool<DB>,
        date: &str,
    ) -> Result<Option<(i64, Vec<SnapshotRow>)>, StoreError> {
        let taken_at: Option<i64> =
            sqlx::query_scalar("SELECT taken_at FROM figure_snapshot_dates WHERE date = $1")
                .bind(date)
                .fetch_optional(pool)
                .await?;
        let Some(taken_at) = taken_at else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM figure_snapshots WHERE date = $1
             ORDER BY scope{}, position",
            DB::BYTE_ORDER
        );
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(date)
            .fetch_all(pool)
            .await?;
        Ok(Some((taken_at, rows)))
    }

    pub(super) async fn snapshot_dates_around(
        pool: &Pool<DB>,
        date: &str,
    ) -> Result<(Option<String>, Option<String>), StoreError> {
        Ok(sqlx::query_as(
            "SELECT (SELECT MAX(date) FROM figure_snapshot_dates WHERE date < $1),
                    (SELECT MIN(date) FROM figure_snapshot_dates WHERE date > $1)",
        )
        .bind(date)
        .fetch_one(pool)
        .await?)
    }

    pub(super) async fn level_history(
        pool: &Pool<DB>,
        level: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<SnapshotRow>, StoreError> {
        // The casts type the parameters for PostgreSQL, as in `inventory_changes`.
        let sql = format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM figure_snapshots
             WHERE scope = 'level' AND (CAST($1 AS TEXT) IS NULL OR level = $1)
               AND (CAST($2 AS TEXT) IS NULL OR date >= $2)
               AND (CAST($3 AS TEXT) IS NULL OR date <= $3)
             ORDER BY date{}, position",
            DB::BYTE_ORDER
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(level)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?)
    }

    pub(super) async fn session_role(
        pool: &Pool<DB>,
        session_digest: &[u8],
        now: i64,
    ) -> Result<Option<ApiRole>, StoreError> {
        let row: Option<HashedRole> = sqlx::query_as(SESSION_ROLE_SQL)
            .bind(session_digest)
            .bind(now)
            .fetch_optional(pool)
            .await?;
        Ok(row.and_then(|r| r.role_for(session_digest)))
    }

    pub(super) async fn delete_session(
        pool: &Pool<DB>,
        session_digest: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE session_hash = $1")
            .bind(session_digest)
            .execute(pool)
            .await?;
        Ok(())
    }
}
