//! The statements both stores run alike: one SQL text and one body serve SQLite and PostgreSQL.
//!
//! The SQL uses PostgreSQL's `$N` placeholders, which sqlx-sqlite binds by number too (SQLite's
//! named parameters), so a parameter used twice is bound once. What differs between the engines
//! in these statements is a [`Dialect`] constant; a difference in what a method does (SQLite's
//! `BEGIN IMMEDIATE`, PostgreSQL's `LOCK TABLE` and one-statement unit import, each engine's
//! pruning of reports) stays in the store, which passes in the pool, or the transaction it
//! began.
//!
//! Rejected: `sqlx::Any` (no timestamps, UUIDs or JSON), and a macro stamping these bodies out
//! once per store (its errors and documentation would point into the macro). The bounds sqlx
//! needs of a database are written once, on [`Sql`]'s `impl`.

use std::marker::PhantomData;

use sqlx::{
    ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Transaction, Type,
};

use super::{
    AGENT_COLUMNS, AGENT_GROUPS_SQL, AgentEvidence, AgentFilter, AgentIdentity, AgentRecord,
    ApiRole, CHANGE_COLUMNS, EnrolRefusal, EnrolTokenRow, Enrolled, GroupRow, HashedRole,
    ImportSummary, InventoryChange, REVOKE_AGENT_SQL, Revoked, SNAPSHOT_COLUMNS, SnapshotRow,
    StoreError, StoredUnit, TOKENS_SQL, TokenInfo, TokenRow, agent_revocation, agents_page_query,
    bind_group_params, bind_snapshot_row, groups_of, import_summary, token_by_fingerprint,
    unknown_merge,
};
use crate::figures::{AgentGroup, Role, Rules, UnitRow};
use crate::units::{Merge, NewUnit};

/// What the shared statements need to know of an engine.
pub(super) trait Dialect: sqlx::Database {
    /// Follows a text column in `ORDER BY` so it sorts by bytes, as SQLite does by default:
    /// PostgreSQL's would follow the server's collation (en_US, vi_VN…), and that must not change
    /// what the API lists first.
    const BYTE_ORDER: &'static str;
    /// The agents joined to wherever their evidence is kept, and [`AgentEvidence`]'s columns
    /// there.
    const AGENTS_WITH_EVIDENCE: &'static str;
    const EVIDENCE_COLUMNS: &'static str;
    /// Whether a read in a write transaction must lock the rows the write relies on (`FOR
    /// SHARE`): PostgreSQL's transactions run side by side, while SQLite's write transaction
    /// holds the whole database from its `BEGIN IMMEDIATE`.
    const LOCKS_ROWS: bool;

    /// How many rows a statement changed (sqlx has no engine-neutral accessor).
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

/// `lock` (a `FOR SHARE` clause) where `DB` locks rows, else nothing.
fn share_lock<DB: Dialect>(lock: &'static str) -> &'static str {
    if DB::LOCKS_ROWS { lock } else { "" }
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
    for<'a> bool: Decode<'a, DB> + Type<DB>,
    for<'r> AgentRecord: FromRow<'r, DB::Row>,
    for<'r> AgentEvidence: FromRow<'r, DB::Row>,
    for<'r> AgentIdentity: FromRow<'r, DB::Row>,
    for<'r> EnrolTokenRow: FromRow<'r, DB::Row>,
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

    /// The first step of a unit import in its transaction: what the import changes against the
    /// current tree, which is then retired (the import's own rows bring back the units it keeps).
    pub(super) async fn retire_units(
        conn: &mut DB::Connection,
        units: &[NewUnit],
        now: i64,
    ) -> Result<ImportSummary, StoreError> {
        let current: Vec<StoredUnit> = sqlx::query_as(
            "SELECT code, name, level, parent_code, staff, depth FROM units WHERE retired_at IS NULL",
        )
        .fetch_all(&mut *conn)
        .await?;
        let summary = import_summary(current, units);
        sqlx::query("UPDATE units SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(now)
            .execute(&mut *conn)
            .await?;
        Ok(summary)
    }

    /// The last step of a unit import, once its units are written: each merged unit hands its
    /// agents and enrolment tokens to the unit that absorbed it, counted into `summary`.
    pub(super) async fn merge_units(
        conn: &mut DB::Connection,
        merges: &[Merge],
        summary: &mut ImportSummary,
    ) -> Result<(), StoreError> {
        for merge in merges {
            let known: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM units WHERE code = $1")
                .bind(&merge.code)
                .fetch_one(&mut *conn)
                .await?;
            if known == 0 {
                return Err(unknown_merge(merge));
            }
            let moved = sqlx::query("UPDATE agents SET unit_code = $1 WHERE unit_code = $2")
                .bind(&merge.into)
                .bind(&merge.code)
                .execute(&mut *conn)
                .await?;
            sqlx::query("UPDATE enrol_tokens SET unit_code = $1 WHERE unit_code = $2")
                .bind(&merge.into)
                .bind(&merge.code)
                .execute(&mut *conn)
                .await?;
            summary.merged += 1;
            summary.agents_moved += DB::rows_affected(&moved);
        }
        Ok(())
    }

    /// [`super::Store::create_enrol_token`] in `tx`, the store's write transaction.
    pub(super) async fn create_enrol_token(
        mut tx: Transaction<'_, DB>,
        digest: &[u8],
        unit_code: &str,
        role: Role,
        now: i64,
        expires_at: Option<i64>,
        max_uses: Option<u32>,
    ) -> Result<(), StoreError> {
        // FOR SHARE (PostgreSQL): an import running now finishes first, so the unit is current
        // when the token lands, not retired a moment later by a replica's import.
        let sql = format!(
            "SELECT 1 FROM units WHERE code = $1 AND retired_at IS NULL{}",
            share_lock::<DB>(" FOR SHARE")
        );
        let known = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(unit_code)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Err(StoreError::NotFound(format!("unit {unit_code}")));
        }
        sqlx::query(
            "INSERT INTO enrol_tokens (token_hash, unit_code, role, created_at, expires_at, max_uses)
             VALUES ($1, $2, $3, $4, $5, $6)",
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

    /// [`super::Store::enroll`] in `tx`, the store's write transaction.
    pub(super) async fn enroll(
        mut tx: Transaction<'_, DB>,
        token_digest: &[u8],
        machine_id: &str,
        hostname: &str,
        key_digest: &[u8],
        now: i64,
    ) -> Result<Result<Enrolled, EnrolRefusal>, StoreError> {
        let (unit_code, role) = match Self::claim_enrol_token(&mut tx, token_digest, now).await? {
            Ok(granted) => granted,
            Err(refusal) => return Ok(Err(refusal)),
        };
        // One statement, never a read followed by a write, so two replicas enrolling one machine
        // at once end with one record and the same id. The id is only used if the machine is
        // new: RETURNING gives the stored one, so "reused" is exactly "the id that came back is
        // not the one we proposed".
        let proposed = uuid::Uuid::now_v7().to_string();
        let agent_id: String = sqlx::query_scalar(
            "INSERT INTO agents (id, machine_id, unit_code, role, hostname, key_hash, enrolled_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (machine_id) DO UPDATE SET unit_code = EXCLUDED.unit_code,
               role = EXCLUDED.role, hostname = EXCLUDED.hostname, key_hash = EXCLUDED.key_hash,
               revoked_at = NULL
             RETURNING id",
        )
        .bind(&proposed)
        .bind(machine_id)
        .bind(&unit_code)
        .bind(role.as_str())
        .bind(hostname)
        .bind(key_digest)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(Enrolled {
            reused: agent_id != proposed,
            agent_id,
            unit_code,
            role,
        }))
    }

    /// The first step of an enrolment: the token is read, checked and one of its uses claimed.
    /// The unit and role it grants, or why it does not; on a refusal the caller drops the
    /// transaction, so nothing is written.
    async fn claim_enrol_token(
        conn: &mut DB::Connection,
        token_digest: &[u8],
        now: i64,
    ) -> Result<Result<(String, Role), EnrolRefusal>, StoreError> {
        // The unit row is locked FOR SHARE (see create_enrol_token); the token row is not
        // locked here: two enrolments with one token would both hold a share lock and then
        // deadlock upgrading it for `uses + 1`. The UPDATE below takes its own row lock.
        let sql = format!(
            "SELECT t.id, t.token_hash, t.unit_code, t.role, t.expires_at, t.revoked_at,
                    u.retired_at AS unit_retired_at
             FROM enrol_tokens t JOIN units u ON u.code = t.unit_code
             WHERE t.token_hash = $1{}",
            share_lock::<DB>(" FOR SHARE OF u")
        );
        let token: Option<EnrolTokenRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(token_digest)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(token) = token else {
            return Ok(Err(EnrolRefusal::UnknownToken));
        };
        let granted = match token.grant(token_digest, now) {
            Ok(granted) => granted,
            Err(refusal) => return Ok(Err(refusal)),
        };
        // The use is claimed in one statement that re-checks the limit on the row it updates,
        // so enrolments racing on the last use cannot both get it (on PostgreSQL the second
        // waits for the first's row lock, then sees its count; on SQLite the single writer
        // would do, but one statement keeps the two stores alike).
        // The revocation is checked again here for the same reason: a revoke that committed
        // after the SELECT above read the token (the UPDATE waits for its row lock, then sees
        // its row) must refuse this enrolment, not let it finish after the revoke was answered.
        // (On SQLite nothing can come between, so a use refused there is always used up.)
        let claimed = sqlx::query(
            "UPDATE enrol_tokens SET uses = uses + 1
             WHERE id = $1 AND revoked_at IS NULL AND (max_uses IS NULL OR uses < max_uses)",
        )
        .bind(token.id)
        .execute(&mut *conn)
        .await?;
        if DB::rows_affected(&claimed) == 0 {
            let revoked: bool =
                sqlx::query_scalar("SELECT revoked_at IS NOT NULL FROM enrol_tokens WHERE id = $1")
                    .bind(token.id)
                    .fetch_one(&mut *conn)
                    .await?;
            return Ok(Err(if revoked {
                EnrolRefusal::Revoked
            } else {
                EnrolRefusal::UsedUp
            }));
        }
        Ok(Ok(granted))
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
        let record = Self::agent_record(pool, id).await?;
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

    /// The agent with this id, without its evidence.
    async fn agent_record(pool: &Pool<DB>, id: &str) -> Result<Option<AgentRecord>, StoreError> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(pool)
            .await?)
    }

    pub(super) async fn agent(
        pool: &Pool<DB>,
        id: &str,
    ) -> Result<Option<(AgentRecord, AgentEvidence)>, StoreError> {
        let record = Self::agent_record(pool, id).await?;
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

    /// [`super::Store::write_snapshot`] in `tx`, the store's write transaction.
    pub(super) async fn write_snapshot(
        mut tx: Transaction<'_, DB>,
        date: &str,
        taken_at: i64,
        rows: &[SnapshotRow],
    ) -> Result<bool, StoreError> {
        let claimed = sqlx::query(
            "INSERT INTO figure_snapshot_dates (date, taken_at) VALUES ($1, $2)
             ON CONFLICT (date) DO NOTHING",
        )
        .bind(date)
        .bind(taken_at)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&claimed) == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let sql = format!(
            "INSERT INTO figure_snapshots ({SNAPSHOT_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
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

    pub(super) async fn create_session(
        pool: &Pool<DB>,
        session_digest: &[u8],
        token_digest: &[u8],
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (session_hash, token_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(session_digest)
        .bind(token_digest)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The role the valid secret with this digest grants at `now`: `sql` is
    /// [`super::API_TOKEN_ROLE_SQL`] or [`super::SESSION_ROLE_SQL`]. The digest is compared
    /// again in constant time ([`HashedRole::role_for`]).
    pub(super) async fn secret_role(
        pool: &Pool<DB>,
        sql: &'static str,
        digest: &[u8],
        now: i64,
    ) -> Result<Option<ApiRole>, StoreError> {
        let row: Option<HashedRole> = sqlx::query_as(sql)
            .bind(digest)
            .bind(now)
            .fetch_optional(pool)
            .await?;
        Ok(row.and_then(|r| r.role_for(digest)))
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
