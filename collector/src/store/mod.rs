//! Storage: one [`Store`] trait, an embedded SQLite implementation (the default) and
//! PostgreSQL (several collector replicas on one database) behind the same trait.
//!
//! The store owns every invariant that must hold across collector replicas: a report is stored
//! at most once (its `report_id` is the primary key), an acknowledged report is committed, secrets
//! are kept as digests only, and a unit import replaces the current tree atomically.

mod postgres;
mod sqlite;

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use hatang_protocol::Report;

use crate::figures::{AgentRow, Role, Speed, UnitRow};
use crate::units::NewUnit;

pub use postgres::{PostgresSettings, PostgresStore};
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("could not apply the database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("database URL {0:?} is not supported (use sqlite://PATH or postgres://USER@HOST/DB)")]
    UnsupportedUrl(String),
    #[error("no connection to {url} within {secs} s (is the server up and the address right?)")]
    ConnectTimeout { url: String, secs: u64 },
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Accepted,
    Duplicate,
}

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
}

/// The columns of [`AgentRecord`], for `SELECT` lists shared by the implementations.
pub(crate) const AGENT_COLUMNS: &str = "id, machine_id, unit_code, role, hostname, enrolled_at, \
     last_report_at, interval_secs, agent_version, lan_up, internet_ok_at, gov_wan_ok_at, \
     datacentre_ok_at, speed_at, download_bps, upload_bps";

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

    /// Replaces the current tree with `units` in one transaction: new codes are added, known
    /// codes updated, codes absent from `units` retired (kept for history, out of the figures).
    async fn import_units(&self, units: &[NewUnit], now: i64) -> Result<ImportSummary, StoreError>;

    /// The current tree in import order.
    async fn units(&self) -> Result<Vec<UnitRow>, StoreError>;

    async fn create_enrol_token(
        &self,
        digest: &[u8],
        unit_code: &str,
        role: Role,
        now: i64,
        expires_at: Option<i64>,
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

    /// Commits one validated report for `agent_id`, or recognises its `report_id` as stored.
    async fn store_report(
        &self,
        agent_id: &str,
        report: &Report,
        body: &str,
        now: i64,
    ) -> Result<Stored, StoreError>;

    async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError>;

    async fn agent(&self, id: &str) -> Result<Option<(AgentRecord, AgentEvidence)>, StoreError>;

    /// How many reports are stored for an agent (`None`: all agents).
    async fn report_count(&self, agent_id: Option<&str>) -> Result<i64, StoreError>;

    /// Every agent with role `server`, with its latest evidence: the data-centre hosts.
    async fn servers(&self) -> Result<Vec<(AgentRecord, AgentEvidence)>, StoreError>;
}

/// Opens (creating if needed) and migrates the database a URL names.
pub async fn open(url: &str) -> Result<Box<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Box::new(SqliteStore::open(url).await?))
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

/// An API token as stored; `role_for` checks the digest again in constant time.
#[derive(Debug, sqlx::FromRow)]
struct ApiTokenRow {
    token_hash: Vec<u8>,
    role: String,
}

impl ApiTokenRow {
    fn role_for(&self, digest: &[u8]) -> Option<ApiRole> {
        crate::secret::same(&self.token_hash, digest)
            .then(|| ApiRole::parse(&self.role))
            .flatten()
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
                retired: 1
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
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://hatang:s3cret@db:5432/hatang"),
            "postgres://hatang:***@db:5432/hatang"
        );
        assert_eq!(redact_url("sqlite://hatang.db"), "sqlite://hatang.db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
