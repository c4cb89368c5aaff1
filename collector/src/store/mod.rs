//! Storage: one [`Store`] trait, an embedded SQLite implementation (the default) and, later,
//! PostgreSQL behind the same trait.
//!
//! The store owns every invariant that must hold across collector replicas: a report is stored
//! at most once (its `report_id` is the primary key), an acknowledged report is committed, secrets
//! are kept as digests only, and a unit import replaces the current tree atomically.

mod sqlite;

use std::fmt;

use async_trait::async_trait;
use hatang_protocol::Report;

use crate::figures::{AgentRow, Role, UnitRow};
use crate::units::NewUnit;

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
    #[error("database URL {0:?} is not supported (use sqlite://PATH)")]
    UnsupportedUrl(String),
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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
}

impl AgentRecord {
    pub fn figures_row(&self) -> AgentRow {
        AgentRow {
            unit_code: self.unit_code.clone(),
            role: Role::parse(&self.role).unwrap_or(Role::Workstation),
            last_report_at: self.last_report_at,
            interval_secs: self.interval_secs.and_then(|i| u32::try_from(i).ok()),
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
}

/// Opens (creating if needed) and migrates the database a URL names.
pub async fn open(url: &str) -> Result<Box<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Box::new(SqliteStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
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
    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            super::redact_url("postgres://hatang:s3cret@db:5432/hatang"),
            "postgres://hatang:***@db:5432/hatang"
        );
        assert_eq!(
            super::redact_url("sqlite://hatang.db"),
            "sqlite://hatang.db"
        );
        assert_eq!(super::redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
