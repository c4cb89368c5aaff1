//! Storage: one [`Store`] trait, an embedded SQLite implementation (the default) and
//! PostgreSQL (several collector replicas on one database) behind the same trait.
//!
//! The store owns every invariant that must hold across collector replicas: a report is stored
//! at most once (its `report_id` is the primary key), an acknowledged report is committed, secrets
//! are kept as digests only, and a unit import replaces the current tree atomically.

mod batch;
mod postgres;
mod sql;
mod sqlite;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use async_trait::async_trait;
use hatang_protocol::{Inventory, Report};

use crate::Background;
use crate::changes::{Change, ChangeKind};
use crate::figures::{AgentGroup, AgentRow, AgentState, Role, Rules, Speed, UnitRow};
use crate::units::{NewUnit, UnitFile};

pub use postgres::{PostgresSettings, PostgresStore};
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    // The cause in the message, not as `source`: most of these are logged with `error = %e`
    // (retention, snapshots, readiness, the web UI), where a bare "database error" told the
    // operator nothing; and sqlx's own errors repeat their message in their source, which
    // printed it twice in a command's error chain.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// From the SQLite store's ingest writer, which runs its statements without sqlx.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error("could not apply the database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("database URL {0:?} is not supported (use sqlite://PATH or postgres://USER@HOST/DB)")]
    UnsupportedUrl(String),
    #[error("no connection to {url} within {secs} s (is the server up and the address right?)")]
    ConnectTimeout { url: String, secs: u64 },
    /// The SQLite file is not there and [`Missing::Refuse`] said not to create it.
    #[error("no database at {}", .0.display())]
    Missing(std::path::PathBuf),
    /// The ingest queue is full: the report was not taken and nothing was written; the agent
    /// keeps it in its spool and tries again later.
    #[error("the ingest queue is full")]
    Busy,
    /// The agent's key was revoked or replaced (or its record removed) after its request was
    /// authenticated and before its report was committed: the report was not stored.
    #[error("agent {0} is revoked")]
    Revoked(String),
    /// The transaction that held this report did not commit (the same failure answers every
    /// report of its batch).
    #[error("the batch holding this report was not committed: {0}")]
    Batch(Arc<StoreError>),
    /// The batch committed but could not be made durable (the SQLite store's sync of its WAL
    /// failed, now or earlier): it is not acknowledged, and the agent resends it.
    #[error("{0}")]
    NotDurable(String),
    /// The database did not answer the PostgreSQL store's ingest writer within its write
    /// timeout; the writer gave up that session. Nothing of the batch is acknowledged.
    #[error("the database did not answer within {secs} s")]
    WriteTimeout { secs: u64 },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

impl StoreError {
    /// PostgreSQL refused a text value holding a NUL character (SQLSTATE 22021), which no
    /// `TEXT` column there can hold (SQLite stores it). Such a value can only have come from the
    /// request (a `%00` in a path or query, a `\u0000` in a JSON body; reports are refused one
    /// at validation): the caller's mistake, not a failing database.
    pub fn is_nul_in_text(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.code().as_deref() == Some("22021"))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

/// Who an API token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ApiRole {
    Viewer,
    Admin,
}

impl ApiRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiRole::Viewer => "viewer",
            ApiRole::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<ApiRole> {
        match s {
            "viewer" => Some(ApiRole::Viewer),
            "admin" => Some(ApiRole::Admin),
            _ => None,
        }
    }
}

/// What an import changed in the current tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportSummary {
    pub added: u32,
    pub updated: u32,
    pub unchanged: u32,
    pub retired: u32,
    /// Retired units the file says were merged into another, and the agents that moved with them.
    pub merged: u32,
    pub agents_moved: u64,
}

/// An agent as its key names it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentIdentity {
    pub id: String,
    pub unit_code: String,
    pub key_hash: Vec<u8>,
}

/// The result of an enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub agent_id: String,
    pub unit_code: String,
    pub role: Role,
    /// The machine id was already known: its record was reused.
    pub reused: bool,
}

/// Why an enrolment token was not accepted. Kept apart from [`StoreError`] because the HTTP
/// layer answers each differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrolRefusal {
    UnknownToken,
    Expired,
    Revoked,
    UnitRetired,
    /// The token's `max_uses` enrolments have all been made.
    UsedUp,
}

/// What storing a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Committed, with the inventory changes it recorded as (component, kind), in the order
    /// [`crate::changes::diff`] found them: what `hatang_inventory_changes_total` counts.
    Accepted {
        changes: Vec<(&'static str, ChangeKind)>,
    },
    /// The `report_id` was already stored; nothing was written.
    Duplicate,
}

/// A validated report on its way to the store.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The agent its key names.
    pub agent_id: String,
    /// The digest of the key the report came with: the report is stored only while the agent
    /// still has that key, so a key replaced by a later enrolment of the same machine (on this
    /// collector or on another replica) stores nothing even if it was known good a moment ago.
    /// `None` where no key came with the report: [`Store::store_report`] and the tests.
    pub key_digest: Option<Vec<u8>>,
    pub report: Report,
    /// The report's JSON text as received, or empty when bodies are not kept
    /// (`keep_report_bodies`).
    pub body: String,
    /// When it arrived (Unix seconds, the collector's clock).
    pub received_at: i64,
    /// How long it waited in the agent's spool, by the agent's own clock (its
    /// `Hatang-Report-Age` header); `None` when the agent did not say.
    pub waited_secs: Option<u64>,
}

/// One entry of an agent's inventory change log.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct InventoryChange {
    /// Orders the log: a later change has a higher id. The cursor of `?before=`.
    pub id: i64,
    /// The report that brought the new inventory.
    pub report_id: String,
    /// When that report was received (Unix seconds, the collector's clock).
    pub at: i64,
    /// One of [`crate::changes::COMPONENTS`].
    pub component: String,
    pub key: String,
    /// `added`, `removed` or `changed`.
    pub kind: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// The columns of [`InventoryChange`], in `SELECT` lists shared by the implementations.
pub(crate) const CHANGE_COLUMNS: &str = "id, report_id, at, component, key, kind, before, after";

/// One row of a daily figure snapshot (`figure_snapshots`): a level's figures or a unit's, as
/// [`crate::history`] turns [`crate::figures::Figures`] into rows and back.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SnapshotRow {
    /// `YYYY-MM-DD` in the collector's `utc_offset`.
    pub date: String,
    /// `level` or `unit`.
    pub scope: String,
    /// The level's name or the unit's code.
    pub code: String,
    pub position: i64,
    pub level: String,
    pub name: String,
    pub parent_code: Option<String>,
    /// Level rows: units with staff > 0. Unit rows: 1 when staff > 0, else 0.
    pub units: i64,
    pub staff: i64,
    pub equipped_staff: i64,
    pub active_workstations: Option<i64>,
    pub servers: Option<i64>,
    pub equipment_ratio: Option<f64>,
    pub target_ratio: Option<f64>,
    /// Unit rows: 1 or 0. Level rows: how many of the level's units with staff > 0 have it.
    pub lan: i64,
    pub broadband: i64,
    pub internet: i64,
    pub gov_wan: i64,
    pub datacentre: i64,
    pub download_bps: Option<f64>,
}

/// The columns of [`SnapshotRow`] in table order, for `SELECT` and `INSERT` lists.
pub(crate) const SNAPSHOT_COLUMNS: &str = "date, scope, code, position, level, name, \
     parent_code, units, staff, equipped_staff, active_workstations, servers, equipment_ratio, \
     target_ratio, lan, broadband, internet, gov_wan, datacentre, download_bps";

/// One agent with what the API shows of it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AgentRecord {
    pub id: String,
    pub machine_id: String,
    pub unit_code: String,
    pub role: String,
    pub hostname: String,
    pub enrolled_at: i64,
    pub last_report_at: Option<i64>,
    pub interval_secs: Option<i64>,
    pub agent_version: Option<String>,
    pub lan_up: Option<bool>,
    pub internet_ok_at: Option<i64>,
    pub gov_wan_ok_at: Option<i64>,
    pub datacentre_ok_at: Option<i64>,
    pub speed_at: Option<i64>,
    pub download_bps: Option<f64>,
    pub upload_bps: Option<f64>,
    /// The agent's spool as its latest report with spool figures told it.
    pub spool_waiting: Option<i64>,
    pub spool_dropped: Option<i64>,
    /// When an admin revoked the agent's key; enrolling the machine again clears it.
    pub revoked_at: Option<i64>,
}

/// The columns of [`AgentRecord`], for `SELECT` lists shared by the implementations.
pub(crate) const AGENT_COLUMNS: &str = "id, machine_id, unit_code, role, hostname, enrolled_at, \
     last_report_at, interval_secs, agent_version, lan_up, internet_ok_at, gov_wan_ok_at, \
     datacentre_ok_at, speed_at, download_bps, upload_bps, spool_waiting, spool_dropped, \
     revoked_at";

impl AgentRecord {
    pub fn figures_row(&self) -> AgentRow {
        let speed = match (self.speed_at, self.download_bps) {
            (Some(at), Some(download_bps)) => Some(Speed { at, download_bps }),
            _ => None,
        };
        AgentRow {
            unit_code: self.unit_code.clone(),
            role: Role::parse(&self.role).unwrap_or(Role::Workstation),
            last_report_at: self.last_report_at,
            interval_secs: self.interval_secs.and_then(|i| u32::try_from(i).ok()),
            lan_up: self.lan_up,
            class_ok_at: [
                self.internet_ok_at,
                self.gov_wan_ok_at,
                self.datacentre_ok_at,
            ],
            speed,
            spool: match (self.spool_waiting, self.spool_dropped) {
                (Some(waiting), Some(dropped)) => Some(hatang_protocol::SpoolStats {
                    waiting_reports: u64::try_from(waiting).unwrap_or(0),
                    dropped_reports: u64::try_from(dropped).unwrap_or(0),
                }),
                _ => None,
            },
            revoked: self.revoked_at.is_some(),
        }
    }
}

/// The latest evidence an agent sent, as stored JSON documents.
#[derive(Debug, Clone, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct AgentEvidence {
    pub inventory: Option<String>,
    pub sample: Option<String>,
    pub probes: Option<String>,
}

#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Answers when the database is reachable.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Starts claiming, for this process, the publishing of the figure series, and writes into
    /// `held` whether it has the claim: where several collectors share the database only one
    /// may serve the figures, or Prometheus, scraping each, would count every figure once per
    /// collector. The first attempt is made before this returns; the claim is kept, or sought
    /// again, until the returned task is dropped. A store one process owns (SQLite) needs no
    /// claim: `None`, and `held` is left alone.
    async fn claim_figures(&self, _held: Arc<AtomicBool>) -> Option<Background> {
        None
    }

    /// Replaces the current tree with `units` in one transaction: new codes are added, known
    /// codes updated, codes absent from `units` retired (kept for history, out of the figures).
    /// Merged units hand their agents and enrolment tokens to the unit that absorbed them.
    async fn import_units(&self, file: &UnitFile, now: i64) -> Result<ImportSummary, StoreError>;

    /// The current tree in import order.
    async fn units(&self) -> Result<Vec<UnitRow>, StoreError>;

    /// `max_uses`: how many enrolments the token allows (`None`: any number).
    async fn create_enrol_token(
        &self,
        digest: &[u8],
        unit_code: &str,
        role: Role,
        now: i64,
        expires_at: Option<i64>,
        max_uses: Option<u32>,
    ) -> Result<(), StoreError>;

    async fn create_api_token(
        &self,
        digest: &[u8],
        role: ApiRole,
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<(), StoreError>;

    /// The role of a valid (known, unexpired, unrevoked) API token.
    async fn api_token_role(&self, digest: &[u8], now: i64) -> Result<Option<ApiRole>, StoreError>;

    /// Every enrolment and API token, oldest first, by fingerprint (never a secret or digest).
    async fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError>;

    /// Revokes the token (of either kind) with this fingerprint, from now on everywhere: it is
    /// checked in the database on every use. Revoking again keeps the first time.
    /// `NotFound` for no such token, `Conflict` if two tokens share the fingerprint.
    async fn revoke_token(
        &self,
        fingerprint: &str,
        now: i64,
    ) -> Result<Revoked<TokenInfo>, StoreError>;

    /// Revokes an agent's key: its next report (or speed test) is refused with 401. Enrolling
    /// the machine again issues a new key and lifts the revocation. Revoking again keeps the
    /// first time. `NotFound` for no such agent.
    async fn revoke_agent(&self, id: &str, now: i64) -> Result<Revoked<AgentRecord>, StoreError>;

    /// Up to `limit` agents matching `filter`, in id order, after the id `filter.after`.
    async fn agents_page(
        &self,
        filter: &AgentFilter,
        limit: u32,
        now: i64,
    ) -> Result<Vec<AgentRecord>, StoreError>;

    /// Exchanges an enrolment token for an agent record keyed by `key_digest`. A machine id the
    /// store already knows keeps its agent id; its old key stops working.
    async fn enroll(
        &self,
        token_digest: &[u8],
        machine_id: &str,
        hostname: &str,
        key_digest: &[u8],
        now: i64,
    ) -> Result<Result<Enrolled, EnrolRefusal>, StoreError>;

    async fn agent_by_key(&self, key_digest: &[u8]) -> Result<Option<AgentIdentity>, StoreError>;

    /// Commits a batch of validated reports, or recognises their `report_id`s as stored: one
    /// answer per report, in the batch's order. A report whose `report_id` is already stored,
    /// or appears earlier in the same batch, is [`Stored::Duplicate`]; a report that fails (its
    /// agent revoked meanwhile, a constraint) gets its own error and leaves the others of the
    /// batch alone. The outer error is for a batch that could not be committed at all: then no
    /// report of it is stored. Reports are applied in the batch's order, so an agent's reports
    /// change its record and its inventory change log in the order they arrived.
    async fn store_reports(
        &self,
        batch: &[Incoming],
    ) -> Result<Vec<Result<Stored, StoreError>>, StoreError>;

    /// Commits one report through the store's ingest writer (its group commit): the answer
    /// comes once the transaction holding it committed. [`StoreError::Busy`] when the queue in
    /// front of the writer is full.
    async fn ingest(&self, incoming: Incoming) -> Result<Stored, StoreError>;

    /// Commits one validated report for `agent_id`, or recognises its `report_id` as stored:
    /// [`Store::ingest`] with borrowed parts.
    async fn store_report(
        &self,
        agent_id: &str,
        report: &Report,
        body: &str,
        now: i64,
    ) -> Result<Stored, StoreError> {
        self.ingest(Incoming {
            agent_id: agent_id.to_string(),
            key_digest: None,
            report: report.clone(),
            body: body.to_string(),
            received_at: now,
            waited_secs: None,
        })
        .await
    }

    async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError>;

    /// The agents reduced per unit and role by the figure rules at `now`: what
    /// [`crate::figures::group`] computes from every agent row, in one aggregate query.
    async fn agent_groups(&self, rules: &Rules, now: i64) -> Result<Vec<AgentGroup>, StoreError>;

    async fn agent(&self, id: &str) -> Result<Option<(AgentRecord, AgentEvidence)>, StoreError>;

    /// How many reports are stored for an agent (`None`: all agents).
    async fn report_count(&self, agent_id: Option<&str>) -> Result<i64, StoreError>;

    /// Deletes at most `limit` of the reports that arrived before `received_before` (Unix
    /// seconds), in one short transaction; returns how many went. Callers repeat it until it
    /// returns less than `limit`, so ingest never waits behind one long delete.
    async fn prune_reports(&self, received_before: i64, limit: u32) -> Result<u64, StoreError>;

    /// Every agent with role `server`, with its latest evidence: the data-centre hosts.
    async fn servers(&self) -> Result<Vec<(AgentRecord, AgentEvidence)>, StoreError>;

    /// An agent's inventory changes, newest first: at most `limit`, only those with an id below
    /// `before` when given (the next page starts below the last id of this one).
    async fn inventory_changes(
        &self,
        agent_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InventoryChange>, StoreError>;

    /// Writes `rows` as the snapshot of `date` unless that date already has one (another
    /// replica's, or an earlier run's): a snapshot is written once and never changed. Whether
    /// this call wrote it.
    async fn write_snapshot(
        &self,
        date: &str,
        taken_at: i64,
        rows: &[SnapshotRow],
    ) -> Result<bool, StoreError>;

    /// The snapshot of `date` as (when it was taken, its rows: levels then units, each in their
    /// order), or `None` when none was taken that day.
    async fn snapshot(&self, date: &str) -> Result<Option<(i64, Vec<SnapshotRow>)>, StoreError>;

    /// The nearest dates before and after `date` that have a snapshot.
    async fn snapshot_dates_around(
        &self,
        date: &str,
    ) -> Result<(Option<String>, Option<String>), StoreError>;

    /// The level rows of every snapshot from `from` to `to` (inclusive, either open), of one
    /// level or all, by date and then level order.
    async fn level_history(
        &self,
        level: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<SnapshotRow>, StoreError>;

    /// Stores a web session: the digest of its random id, the digest of the API token that
    /// signed in, and when it ends. Expired sessions are deleted on the way.
    async fn create_session(
        &self,
        session_digest: &[u8],
        token_digest: &[u8],
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError>;

    /// The role of a live session: unexpired, and signed in with an API token that is still
    /// valid (known, unexpired, unrevoked) now. Revoking the token ends its sessions at once.
    async fn session_role(
        &self,
        session_digest: &[u8],
        now: i64,
    ) -> Result<Option<ApiRole>, StoreError>;

    /// Ends a session (sign-out); ending one that does not exist is not an error.
    async fn delete_session(&self, session_digest: &[u8]) -> Result<(), StoreError>;
}

/// A stored secret's digest (an API token's or a sign-in session's) with the role it grants;
/// `role_for` checks the digest again in constant time.
#[derive(Debug, sqlx::FromRow)]
struct HashedRole {
    hash: Vec<u8>,
    role: String,
}

impl HashedRole {
    fn role_for(&self, digest: &[u8]) -> Option<ApiRole> {
        crate::secret::same(&self.hash, digest)
            .then(|| ApiRole::parse(&self.role))
            .flatten()
    }
}

/// The valid (unexpired, unrevoked) API token with this digest, as a [`HashedRole`]; bound
/// (token digest, now).
const API_TOKEN_ROLE_SQL: &str = "SELECT token_hash AS hash, role FROM api_tokens
     WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)";

/// The live session with this digest joined to a still-valid API token, as a [`HashedRole`];
/// bound (session digest, now).
const SESSION_ROLE_SQL: &str = "SELECT s.session_hash AS hash, t.role FROM sessions s
     JOIN api_tokens t ON t.token_hash = s.token_hash
     WHERE s.session_hash = $1 AND s.expires_at > $2
       AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)";

/// What opening a SQLite database whose file does not exist does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Creates it: `serve`, and the commands that set a new database up.
    Create,
    /// Fails with [`StoreError::Missing`] and creates nothing: for commands that only read or
    /// change what is there, where a missing file is a mistyped path, and an empty database
    /// made in its place would answer "nothing" and be left behind.
    Refuse,
}

/// Opens and migrates the database a URL names. A PostgreSQL database must exist; a SQLite
/// file is created or refused as `missing` says.
pub async fn open(url: &str, missing: Missing) -> Result<Box<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Box::new(SqliteStore::open(url, missing).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(
            PostgresStore::open(url, &PostgresSettings::default()).await?,
        ))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

// Pure pieces both implementations share: what differs between them is SQL, not logic.

fn role_of(s: &str) -> Role {
    Role::parse(s).unwrap_or(Role::Workstation)
}

/// A unit of the current tree as stored.
#[derive(Debug, sqlx::FromRow)]
struct StoredUnit {
    code: String,
    name: String,
    level: String,
    parent_code: Option<String>,
    staff: i64,
    depth: i64,
}

impl StoredUnit {
    fn into_row(self) -> UnitRow {
        UnitRow {
            code: self.code,
            name: self.name,
            level: self.level,
            parent_code: self.parent_code,
            staff: u32::try_from(self.staff).unwrap_or(0),
            depth: u32::try_from(self.depth).unwrap_or(0),
        }
    }

    /// Whether an import of `u` leaves this unit as it is (position and depth follow the
    /// file and are not a change anyone asked for).
    fn same_as(&self, u: &NewUnit) -> bool {
        self.name == u.name
            && self.level == u.level
            && self.parent_code == u.parent_code
            && self.staff == i64::from(u.staff)
    }
}

/// What importing `units` over the `current` tree changes.
fn import_summary(current: Vec<StoredUnit>, units: &[NewUnit]) -> ImportSummary {
    let current: HashMap<String, StoredUnit> =
        current.into_iter().map(|u| (u.code.clone(), u)).collect();
    let mut summary = ImportSummary::default();
    let mut kept = 0usize;
    for u in units {
        match current.get(&u.code) {
            None => summary.added += 1,
            Some(old) => {
                kept += 1;
                if old.same_as(u) {
                    summary.unchanged += 1;
                } else {
                    summary.updated += 1;
                }
            }
        }
    }
    summary.retired = u32::try_from(current.len() - kept).unwrap_or(u32::MAX);
    summary
}

/// An enrolment token with the state of its unit, as the enrolment reads it.
#[derive(Debug, sqlx::FromRow)]
struct EnrolTokenRow {
    id: i64,
    token_hash: Vec<u8>,
    unit_code: String,
    role: String,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    unit_retired_at: Option<i64>,
}

impl EnrolTokenRow {
    /// The unit and role this token enrols into at `now`, or why it does not.
    fn grant(&self, digest: &[u8], now: i64) -> Result<(String, Role), EnrolRefusal> {
        if !crate::secret::same(&self.token_hash, digest) {
            return Err(EnrolRefusal::UnknownToken);
        }
        if self.revoked_at.is_some() {
            return Err(EnrolRefusal::Revoked);
        }
        if self.expires_at.is_some_and(|e| e <= now) {
            return Err(EnrolRefusal::Expired);
        }
        if self.unit_retired_at.is_some() {
            return Err(EnrolRefusal::UnitRetired);
        }
        Ok((self.unit_code.clone(), role_of(&self.role)))
    }
}

/// The evidence a report carries, as the JSON documents kept on the agent's record; `None`
/// keeps what the agent sent before.
fn evidence_of(report: &Report) -> AgentEvidence {
    AgentEvidence {
        inventory: report
            .inventory
            .as_ref()
            .and_then(|i| serde_json::to_string(i).ok()),
        sample: report
            .sample
            .as_ref()
            .and_then(|s| serde_json::to_string(s).ok()),
        probes: (!report.probes.is_empty())
            .then(|| serde_json::to_string(&report.probes).ok())
            .flatten(),
    }
}

/// What a report does to its agent's row, or (folded with [`AgentUpdate::then`]) what several
/// do: the columns as one `UPDATE` per report would leave them, `None` where the stored value
/// stays.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AgentUpdate {
    pub(crate) last_report_at: i64,
    pub(crate) interval_secs: i64,
    pub(crate) agent_version: String,
    pub(crate) inventory: Option<String>,
    /// The name the inventory gives the machine: a renamed machine is listed under its new
    /// name (the change log keeps the old one).
    pub(crate) hostname: Option<String>,
    pub(crate) sample: Option<String>,
    pub(crate) probes: Option<String>,
    pub(crate) lan_up: Option<bool>,
    pub(crate) internet_ok_at: Option<i64>,
    pub(crate) gov_wan_ok_at: Option<i64>,
    pub(crate) datacentre_ok_at: Option<i64>,
    /// When, download, upload: set together when a report has a speed test.
    pub(crate) speed: Option<(i64, f64, Option<f64>)>,
    pub(crate) spool_waiting: Option<i64>,
    pub(crate) spool_dropped: Option<i64>,
    /// Reports this update stands for, added to the agent's `reports_stored`.
    pub(crate) reports: i64,
}

impl AgentUpdate {
    pub(crate) fn of(incoming: &Incoming) -> Self {
        let Incoming {
            report,
            received_at: now,
            ..
        } = incoming;
        let evidence = evidence_of(report);
        let links = crate::evidence::of(report, *now, incoming.waited_secs);
        let [spool_waiting, spool_dropped] = spool_of(report);
        Self {
            last_report_at: *now,
            interval_secs: i64::from(report.interval_secs),
            agent_version: report.agent_version.clone(),
            inventory: evidence.inventory,
            hostname: report
                .inventory
                .as_ref()
                .map(|i| i.hostname.clone())
                .filter(|h| !h.is_empty()),
            sample: evidence.sample,
            probes: evidence.probes,
            lan_up: links.lan_up,
            internet_ok_at: links.internet_ok_at,
            gov_wan_ok_at: links.gov_wan_ok_at,
            datacentre_ok_at: links.datacentre_ok_at,
            speed: links.speed.map(|s| (s.at, s.download_bps, s.upload_bps)),
            spool_waiting,
            spool_dropped,
            reports: 1,
        }
    }

    /// This update followed by `later`'s: the later report's values where it has them, the
    /// later of the two success times.
    pub(crate) fn then(self, later: Self) -> Self {
        Self {
            inventory: later.inventory.or(self.inventory),
            hostname: later.hostname.or(self.hostname),
            sample: later.sample.or(self.sample),
            probes: later.probes.or(self.probes),
            lan_up: later.lan_up.or(self.lan_up),
            internet_ok_at: later.internet_ok_at.max(self.internet_ok_at),
            gov_wan_ok_at: later.gov_wan_ok_at.max(self.gov_wan_ok_at),
            datacentre_ok_at: later.datacentre_ok_at.max(self.datacentre_ok_at),
            speed: later.speed.or(self.speed),
            spool_waiting: later.spool_waiting.or(self.spool_waiting),
            spool_dropped: later.spool_dropped.or(self.spool_dropped),
            reports: self.reports + later.reports,
            ..later
        }
    }
}

/// The report's spool figures as the agent record's `spool_waiting` and `spool_dropped` columns;
/// `None` keeps what the agent sent before. Validation keeps both within `i64`.
fn spool_of(report: &Report) -> [Option<i64>; 2] {
    report.spool.map_or([None, None], |s| {
        [s.waiting_reports, s.dropped_reports].map(|n| i64::try_from(n).ok())
    })
}

/// What changed between the inventory an agent has on record and the one `report` brings. No
/// inventory in the report, or none on record (an agent's first inventory is not a change): no
/// changes. A stored document that no longer parses (written by a future version) counts as none
/// on record rather than failing the report.
fn inventory_changes_of(stored: Option<&str>, report: &Report) -> Vec<Change> {
    let (Some(stored), Some(new)) = (stored, report.inventory.as_ref()) else {
        return Vec::new();
    };
    match serde_json::from_str::<Inventory>(stored) {
        Ok(old) => crate::changes::diff(&old, new),
        Err(e) => {
            tracing::warn!(error = %e, "stored inventory does not parse; not compared");
            Vec::new()
        }
    }
}

/// The refusal of a unit file that merges a code no import ever had: a typo there would leave
/// the real unit's machines in a retired unit, outside the figures, with "1 merged" printed.
/// The transaction is dropped, so nothing of the file is imported.
pub(crate) fn unknown_merge(merge: &crate::units::Merge) -> StoreError {
    StoreError::Conflict(format!(
        "unit {} (merged into {}) was never imported, so it has no machines to move; \
         check the code on its merged_into row (nothing was imported)",
        merge.code, merge.into
    ))
}

/// A query's arguments, for the binding helpers both implementations share.
type Args<DB> = <DB as sqlx::Database>::Arguments;

/// [`crate::figures::group`] as SQL, bound by [`bind_group_params`]. Every condition mirrors one rule of
/// `figures` (a NULL time satisfies none of them); casts keep each column a 64-bit integer on
/// both databases (PostgreSQL's `SUM` of a `BIGINT` is `NUMERIC`).
pub(crate) const AGENT_GROUPS_SQL: &str = "SELECT unit_code, role,
       CAST(COUNT(*) AS BIGINT) AS agents,
       CAST(SUM(CASE WHEN last_report_at >= $2 THEN 1 ELSE 0 END) AS BIGINT) AS active,
       CAST(SUM(CASE WHEN last_report_at >= $1 - $6 * COALESCE(interval_secs, $7) THEN 1
                     ELSE 0 END) AS BIGINT) AS online,
       CAST(SUM(CASE WHEN last_report_at >= $1 - $6 * COALESCE(interval_secs, $7) THEN 0
                     WHEN last_report_at >= $3 THEN 1 ELSE 0 END) AS BIGINT) AS stale,
       CAST(MAX(CASE WHEN lan_up AND last_report_at >= $2 THEN 1 ELSE 0 END) AS BIGINT) AS lan,
       CAST(MAX(CASE WHEN internet_ok_at >= $4
                      AND (speed_at IS NULL OR download_bps IS NULL OR download_bps >= $5)
                     THEN 1 ELSE 0 END) AS BIGINT) AS broadband,
       CAST(MAX(CASE WHEN internet_ok_at >= $4 THEN 1 ELSE 0 END) AS BIGINT) AS internet,
       CAST(MAX(CASE WHEN gov_wan_ok_at >= $4 THEN 1 ELSE 0 END) AS BIGINT) AS gov_wan,
       CAST(MAX(CASE WHEN datacentre_ok_at >= $4 THEN 1 ELSE 0 END) AS BIGINT) AS datacentre,
       MAX(CASE WHEN speed_at IS NOT NULL THEN download_bps END) AS download_bps,
       CAST(SUM(CASE WHEN spool_dropped IS NOT NULL THEN COALESCE(spool_waiting, 0) ELSE 0 END)
            AS BIGINT) AS spool_waiting,
       CAST(SUM(CASE WHEN spool_waiting IS NOT NULL THEN COALESCE(spool_dropped, 0) ELSE 0 END)
            AS BIGINT) AS spool_dropped
     FROM agents WHERE revoked_at IS NULL GROUP BY unit_code, role";

/// One row of [`AGENT_GROUPS_SQL`].
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct GroupRow {
    unit_code: String,
    role: String,
    agents: i64,
    active: i64,
    online: i64,
    stale: i64,
    lan: i64,
    broadband: i64,
    internet: i64,
    gov_wan: i64,
    datacentre: i64,
    download_bps: Option<f64>,
    spool_waiting: i64,
    spool_dropped: i64,
}

/// Binds the figure rules at `now` to [`AGENT_GROUPS_SQL`].
pub(crate) fn bind_group_params<'q, DB>(
    query: sqlx::query::QueryAs<'q, DB, GroupRow, Args<DB>>,
    rules: &Rules,
    now: i64,
) -> sqlx::query::QueryAs<'q, DB, GroupRow, Args<DB>>
where
    DB: sqlx::Database,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> f64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    query
        .bind(now)
        .bind(now.saturating_sub(rules.equipment_window_secs))
        .bind(now.saturating_sub(crate::figures::STALE_AFTER_SECS))
        .bind(now.saturating_sub(rules.broadband_window_secs))
        .bind(rules.broadband_min_bps)
        .bind(crate::figures::ONLINE_INTERVALS)
        .bind(i64::from(crate::figures::DEFAULT_INTERVAL_SECS))
}

/// The query's rows as groups, in [`crate::figures::group`]'s order.
pub(crate) fn groups_of(rows: Vec<GroupRow>) -> Vec<AgentGroup> {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut groups: Vec<AgentGroup> = rows
        .into_iter()
        .map(|r| AgentGroup {
            role: Role::parse(&r.role).unwrap_or(Role::Workstation),
            unit_code: r.unit_code,
            agents: count(r.agents),
            active: count(r.active),
            online: count(r.online),
            stale: count(r.stale),
            lan: r.lan > 0,
            broadband: r.broadband > 0,
            reachable: [r.internet > 0, r.gov_wan > 0, r.datacentre > 0],
            download_bps: r.download_bps,
            spool_waiting_reports: count(r.spool_waiting),
            spool_dropped_reports: count(r.spool_dropped),
        })
        .collect();
    groups.sort_by(|a, b| a.unit_code.cmp(&b.unit_code).then(a.role.cmp(&b.role)));
    groups
}

/// Binds `row` to an `INSERT INTO figure_snapshots ({SNAPSHOT_COLUMNS})` with placeholders `$1`
/// to `$20`.
fn bind_snapshot_row<'q, DB>(
    query: sqlx::query::Query<'q, DB, Args<DB>>,
    row: &SnapshotRow,
) -> sqlx::query::Query<'q, DB, Args<DB>>
where
    DB: sqlx::Database,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<String>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<i64>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<f64>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    query
        .bind(row.date.clone())
        .bind(row.scope.clone())
        .bind(row.code.clone())
        .bind(row.position)
        .bind(row.level.clone())
        .bind(row.name.clone())
        .bind(row.parent_code.clone())
        .bind(row.units)
        .bind(row.staff)
        .bind(row.equipped_staff)
        .bind(row.active_workstations)
        .bind(row.servers)
        .bind(row.equipment_ratio)
        .bind(row.target_ratio)
        .bind(row.lan)
        .bind(row.broadband)
        .bind(row.internet)
        .bind(row.gov_wan)
        .bind(row.datacentre)
        .bind(row.download_bps)
}

/// What [`Stored::Accepted`] tells the caller of the `changes` it recorded.
fn accepted(changes: &[Change]) -> Stored {
    Stored::Accepted {
        changes: changes.iter().map(|c| (c.component, c.kind)).collect(),
    }
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Enrols machines into one unit.
    Enrol,
    /// Reads (viewer) or administers (admin) through the API.
    Api,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Enrol => "enrol",
            TokenKind::Api => "api",
        }
    }

    fn table(self) -> &'static str {
        match self {
            TokenKind::Enrol => "enrol_tokens",
            TokenKind::Api => "api_tokens",
        }
    }
}

/// A token as operators see it: named by its fingerprint, never by its secret or digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    /// The first 12 hex digits of the token's SHA-256 digest ([`crate::secret::fingerprint`]).
    pub fingerprint: String,
    pub kind: TokenKind,
    /// The unit an enrolment token enrols into.
    pub unit: Option<String>,
    /// `workstation` or `server` (enrolment), `viewer` or `admin` (API).
    pub role: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    /// Enrolments made with it (enrolment tokens).
    pub uses: Option<i64>,
    /// Enrolments it allows (`None`: any number).
    pub max_uses: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Both kinds of token in one list, oldest first; the same SQL on both engines (no
/// placeholders; typed NULLs so PostgreSQL can type the union).
const TOKENS_SQL: &str = "SELECT 'enrol' AS kind, id, token_hash, unit_code, role, created_at, \
       expires_at, revoked_at, uses, max_uses FROM enrol_tokens \
     UNION ALL \
     SELECT 'api' AS kind, id, token_hash, CAST(NULL AS TEXT), role, created_at, expires_at, \
       revoked_at, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT) FROM api_tokens \
     ORDER BY created_at, kind, id";

/// A row of [`TOKENS_SQL`].
#[derive(Debug, sqlx::FromRow)]
struct TokenRow {
    kind: String,
    id: i64,
    token_hash: Vec<u8>,
    unit_code: Option<String>,
    role: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    uses: Option<i64>,
    max_uses: Option<i64>,
}

impl TokenRow {
    fn kind(&self) -> TokenKind {
        if self.kind == "enrol" {
            TokenKind::Enrol
        } else {
            TokenKind::Api
        }
    }

    fn fingerprint(&self) -> String {
        crate::secret::fingerprint(&self.token_hash)
    }

    fn into_info(self) -> TokenInfo {
        TokenInfo {
            fingerprint: self.fingerprint(),
            kind: self.kind(),
            unit: self.unit_code,
            role: self.role,
            created_at: self.created_at,
            expires_at: self.expires_at,
            uses: self.uses,
            max_uses: self.max_uses,
            revoked_at: self.revoked_at,
        }
    }

    /// The token as it stands once revoked at `now` (or earlier).
    fn into_revoked(self, now: i64) -> Revoked<TokenInfo> {
        let already = self.revoked_at.is_some();
        let at = self.revoked_at.unwrap_or(now);
        Revoked {
            item: TokenInfo {
                revoked_at: Some(at),
                ..self.into_info()
            },
            already,
        }
    }

    /// `UPDATE` that revokes this token (bind the time, then [`Self::id`]); the first
    /// revocation's time is kept.
    fn revoke_sql(&self) -> String {
        format!(
            "UPDATE {} SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
            self.kind().table()
        )
    }
}

/// The one token of `rows` with this fingerprint. The fingerprint is derived, not stored, so
/// the lookup is a scan of the tokens (an operator's action over at most thousands of rows).
fn token_by_fingerprint(rows: Vec<TokenRow>, fingerprint: &str) -> Result<TokenRow, StoreError> {
    let mut hits = rows.into_iter().filter(|r| r.fingerprint() == fingerprint);
    match (hits.next(), hits.next()) {
        (Some(row), None) => Ok(row),
        (None, _) => Err(StoreError::NotFound(format!("token {fingerprint}"))),
        (Some(_), Some(_)) => Err(StoreError::Conflict(format!(
            "two tokens have the fingerprint {fingerprint}; revoke them in the database"
        ))),
    }
}

/// What a revocation left: the token or agent as it now stands, and whether it had been revoked
/// before (then its first revocation time is kept).
#[derive(Debug, Clone, PartialEq)]
pub struct Revoked<T> {
    pub item: T,
    pub already: bool,
}

/// `UPDATE` that revokes an agent's key unless it is revoked already. Binds: the time, the
/// agent id. Then [`agent_revocation`] reads what it did.
const REVOKE_AGENT_SQL: &str =
    "UPDATE agents SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";

/// The outcome of [`REVOKE_AGENT_SQL`] (`updated` rows) with the agent read afterwards.
fn agent_revocation(
    record: Option<AgentRecord>,
    updated: u64,
    id: &str,
) -> Result<Revoked<AgentRecord>, StoreError> {
    let item = record.ok_or_else(|| StoreError::NotFound(format!("agent {id}")))?;
    Ok(Revoked {
        item,
        already: updated == 0,
    })
}

/// Which agents a listing wants; every field narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentFilter {
    pub unit: Option<String>,
    pub role: Option<Role>,
    pub state: Option<AgentState>,
    /// Part of the hostname, ASCII letters in either case.
    pub hostname: Option<String>,
    /// Only agents whose id sorts after this one: the keyset cursor.
    pub after: Option<String>,
}

/// A value to bind, in order, to the SQL [`agents_page_sql`] built.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg {
    Text(String),
    Int(i64),
}

/// The listing query for `filter`, with `$n` placeholders, and the values to bind in order.
///
/// Pages are keyset pages on the agent id (UUIDv7, so agents enrolled while someone pages land
/// after the ones already listed): `id > after ORDER BY id LIMIT n`, never `OFFSET`, so a page
/// costs the same wherever it is and rows added meanwhile cannot shift or repeat one. The id
/// sorts the same in either engine under any collation (fixed-position hyphens and lower-case hex
/// digits), and the comparison and the order use the same one, which is what keyset paging needs.
///
/// The state conditions restate [`crate::figures::agent_state`] in SQL so the database filters
/// before the limit; the paging tests check the two agree.
fn agents_page_sql(filter: &AgentFilter, limit: u32, now: i64) -> (String, Vec<Arg>) {
    use crate::figures::{DEFAULT_INTERVAL_SECS, ONLINE_INTERVALS, STALE_AFTER_SECS};
    let mut args = Vec::new();
    let mut bind = |a: Arg| {
        args.push(a);
        format!("${}", args.len())
    };
    let mut sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE 1 = 1");
    if let Some(unit) = &filter.unit {
        sql += &format!(" AND unit_code = {}", bind(Arg::Text(unit.clone())));
    }
    if let Some(role) = filter.role {
        sql += &format!(" AND role = {}", bind(Arg::Text(role.as_str().into())));
    }
    if let Some(part) = &filter.hostname {
        let escaped = part
            .to_ascii_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = bind(Arg::Text(format!("%{escaped}%")));
        sql += &format!(" AND LOWER(hostname) LIKE {pattern} ESCAPE '\\'");
    }
    if let Some(after) = &filter.after {
        sql += &format!(" AND id > {}", bind(Arg::Text(after.clone())));
    }
    if let Some(state) = filter.state {
        let online_since = format!(
            "{} - {ONLINE_INTERVALS} * COALESCE(interval_secs, {DEFAULT_INTERVAL_SECS})",
            bind(Arg::Int(now))
        );
        let stale_since = bind(Arg::Int(now - STALE_AFTER_SECS));
        sql += &match state {
            AgentState::Online => format!(" AND last_report_at >= {online_since}"),
            AgentState::Stale => {
                format!(" AND last_report_at < {online_since} AND last_report_at >= {stale_since}")
            }
            AgentState::Offline => format!(
                " AND (last_report_at IS NULL OR (last_report_at < {online_since} \
                 AND last_report_at < {stale_since}))"
            ),
        };
    }
    sql += &format!(" ORDER BY id LIMIT {}", bind(Arg::Int(i64::from(limit))));
    (sql, args)
}

/// [`agents_page_sql`] as a query, its values bound.
fn agents_page_query<'q, DB>(
    filter: &AgentFilter,
    limit: u32,
    now: i64,
) -> sqlx::query::QueryAs<'q, DB, AgentRecord, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    for<'r> AgentRecord: sqlx::FromRow<'r, DB::Row>,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let (sql, args) = agents_page_sql(filter, limit, now);
    args.into_iter().fold(
        sqlx::query_as(sqlx::AssertSqlSafe(sql)),
        |q, arg| match arg {
            Arg::Text(t) => q.bind(t),
            Arg::Int(i) => q.bind(i),
        },
    )
}

/// The URL with any password replaced, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logged with `error = %e` (retention, snapshots, readiness, the web UI), a storage
    /// failure must say what failed, not just "database error".
    #[test]
    fn a_database_error_says_its_cause() {
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("database or disk is full".into()),
        );
        let said = StoreError::from(full).to_string();
        assert!(said.contains("database or disk is full"), "{said}");
        let said = StoreError::from(sqlx::Error::PoolTimedOut).to_string();
        assert!(said.contains("pool timed out"), "{said}");
        let batch = StoreError::Batch(Arc::new(StoreError::from(sqlx::Error::PoolTimedOut)));
        assert!(batch.to_string().contains("pool timed out"), "{batch}");
    }

    fn new_unit(code: &str, staff: u32) -> NewUnit {
        NewUnit {
            code: code.into(),
            name: format!("unit {code}"),
            level: "commune".into(),
            parent_code: None,
            staff,
            depth: 0,
        }
    }

    fn stored(u: &NewUnit, depth: i64) -> StoredUnit {
        StoredUnit {
            code: u.code.clone(),
            name: u.name.clone(),
            level: u.level.clone(),
            parent_code: u.parent_code.clone(),
            staff: i64::from(u.staff),
            depth,
        }
    }

    fn update(at: i64) -> AgentUpdate {
        AgentUpdate {
            last_report_at: at,
            interval_secs: 60,
            agent_version: format!("0.{at}"),
            inventory: None,
            hostname: None,
            sample: Some(format!("sample {at}")),
            probes: None,
            lan_up: None,
            internet_ok_at: None,
            gov_wan_ok_at: None,
            datacentre_ok_at: None,
            speed: None,
            spool_waiting: None,
            spool_dropped: None,
            reports: 1,
        }
    }

    #[test]
    fn folded_updates_leave_what_one_update_per_report_would() {
        let first = AgentUpdate {
            inventory: Some("inventory 1".into()),
            hostname: Some("pc-1".into()),
            probes: Some("probes 1".into()),
            lan_up: Some(true),
            internet_ok_at: Some(100),
            gov_wan_ok_at: Some(100),
            speed: Some((100, 1e6, None)),
            spool_waiting: Some(3),
            ..update(100)
        };
        let second = AgentUpdate {
            lan_up: Some(false),
            // a success older than the one on record does not move it back
            internet_ok_at: Some(90),
            gov_wan_ok_at: Some(160),
            datacentre_ok_at: Some(160),
            spool_dropped: Some(1),
            ..update(160)
        };
        let folded = first.then(second);
        assert_eq!(
            folded,
            AgentUpdate {
                last_report_at: 160,
                interval_secs: 60,
                agent_version: "0.160".into(),
                inventory: Some("inventory 1".into()),
                hostname: Some("pc-1".into()),
                sample: Some("sample 160".into()),
                probes: Some("probes 1".into()),
                lan_up: Some(false),
                internet_ok_at: Some(100),
                gov_wan_ok_at: Some(160),
                datacentre_ok_at: Some(160),
                speed: Some((100, 1e6, None)),
                spool_waiting: Some(3),
                spool_dropped: Some(1),
                reports: 2,
            }
        );
    }

    #[test]
    fn an_import_summary_counts_against_the_current_tree() {
        let (a, b, c) = (new_unit("a", 1), new_unit("b", 2), new_unit("c", 3));
        // depth alone is not a change; staff is
        let current = vec![stored(&a, 7), stored(&b, 0), stored(&c, 0)];
        let next = [a.clone(), new_unit("b", 5), new_unit("d", 1)];
        assert_eq!(
            import_summary(current, &next),
            ImportSummary {
                added: 1,
                updated: 1,
                unchanged: 1,
                retired: 1,
                ..ImportSummary::default()
            }
        );
        assert_eq!(import_summary(Vec::new(), &[]), ImportSummary::default());
    }

    #[test]
    fn an_enrolment_token_is_refused_for_the_first_reason_that_applies() {
        let digest = crate::secret::digest("hte_x");
        let token = EnrolTokenRow {
            id: 1,
            token_hash: digest.clone(),
            unit_code: "4351".into(),
            role: "server".into(),
            expires_at: Some(100),
            revoked_at: Some(50),
            unit_retired_at: Some(60),
        };
        let other = crate::secret::digest("hte_y");
        assert_eq!(token.grant(&other, 10), Err(EnrolRefusal::UnknownToken));
        assert_eq!(token.grant(&digest, 10), Err(EnrolRefusal::Revoked));
        let token = EnrolTokenRow {
            revoked_at: None,
            ..token
        };
        assert_eq!(token.grant(&digest, 100), Err(EnrolRefusal::Expired));
        assert_eq!(token.grant(&digest, 99), Err(EnrolRefusal::UnitRetired));
        let token = EnrolTokenRow {
            unit_retired_at: None,
            ..token
        };
        assert_eq!(token.grant(&digest, 99), Ok(("4351".into(), Role::Server)));
    }

    #[test]
    fn the_agent_listing_binds_every_value_in_placeholder_order() {
        let filter = AgentFilter {
            unit: Some("4351".into()),
            role: Some(Role::Server),
            state: Some(AgentState::Stale),
            hostname: Some("PC_10%".into()),
            after: Some("0190".into()),
        };
        let (sql, args) = agents_page_sql(&filter, 5, 1000);
        // one placeholder per value, numbered in order; the state's times are each used once
        assert_eq!(sql.matches('$').count(), args.len(), "{sql}");
        assert!(sql.find("$5").unwrap() < sql.find("$6").unwrap(), "{sql}");
        assert_eq!(
            args,
            [
                Arg::Text("4351".into()),
                Arg::Text("server".into()),
                Arg::Text("%pc\\_10\\%%".into()),
                Arg::Text("0190".into()),
                Arg::Int(1000),
                Arg::Int(1000 - 24 * 3600),
                Arg::Int(5),
            ]
        );
        assert!(sql.ends_with("ORDER BY id LIMIT $7"), "{sql}");
        let (sql, args) = agents_page_sql(&AgentFilter::default(), 100, 0);
        assert_eq!((sql.matches('$').count(), args.len()), (1, 1));
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://hatang:s3cret@db:5432/hatang"),
            "postgres://hatang:***@db:5432/hatang"
        );
        assert_eq!(redact_url("sqlite://hatang.db"), "sqlite://hatang.db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
