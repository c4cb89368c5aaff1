//! The read API for viewers: coverage figures, one unit, one agent (the paged lists are in
//! `listing.rs`), and the [`Viewer`] and [`Admin`] extractors every protected route takes.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::history::{figures_at, recent_changes};
use super::{ApiError, AppState};
use crate::figures::{Figures, agent_state};
use crate::store::{AgentRecord, ApiRole};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/coverage", get(coverage))
        .route("/api/v1/coverage.csv", get(coverage_csv))
        .route("/api/v1/units/{code}", get(unit))
        .route("/api/v1/agents/{id}", get(agent))
        .route("/api/v1/services", get(services))
}

/// `?level=&at=` on the coverage endpoints. Any other parameter is a 400: a misspelt `at`
/// (`?date=2026-01-01`) would otherwise answer today's figures as if they were that day's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CoverageQuery {
    level: Option<String>,
    at: Option<String>,
}

impl CoverageQuery {
    /// The level asked for, which must be one the current tree has; `?level=` (a form's "all
    /// levels") is none, as on the listing endpoints.
    fn check(&self, figures: &Figures) -> Result<Option<&str>, ApiError> {
        match self.level.as_deref().filter(|l| !l.is_empty()) {
            Some(l) if !figures.levels.iter().any(|x| x.level == l) => {
                Err(ApiError::not_found(format!("level {l}")))
            }
            other => Ok(other),
        }
    }
}

/// A path parameter; one axum cannot decode (`%FF`) gets the JSON error body, not axum's plain
/// text.
pub(super) fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|r| ApiError::new(r.status(), "invalid_path", r.body_text()))
}

/// The query string, or the JSON error for one axum cannot decode.
pub(super) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|r| ApiError::new(r.status(), "invalid_query", r.body_text()))
}

/// A request that carried a valid viewer (or admin) token.
#[derive(Debug)]
pub(super) struct Viewer;

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // The web UI's session cookie reads too, for GET only (its pages' CSV links download
        // here); a request with an Authorization header is judged by that header alone.
        if parts.method == Method::GET
            && !parts.headers.contains_key(header::AUTHORIZATION)
            && super::web::session_role(state, &parts.headers)
                .await?
                .is_some()
        {
            return Ok(Viewer);
        }
        state.authorize(&parts.headers, ApiRole::Viewer).await?;
        Ok(Viewer)
    }
}

/// A request that carried a valid admin token; a viewer token gets 403.
#[derive(Debug)]
pub(super) struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.authorize(&parts.headers, ApiRole::Admin).await?;
        Ok(Admin)
    }
}

async fn coverage(
    State(state): State<AppState>,
    _: Viewer,
    filter: Result<Query<CoverageQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let filter = query(filter)?;
    let f = figures_at(&state, filter.at.as_deref()).await?;
    Ok(Json(crate::coverage::json(&f, filter.check(&f)?)))
}

async fn coverage_csv(
    State(state): State<AppState>,
    _: Viewer,
    filter: Result<Query<CoverageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let filter = query(filter)?;
    let f = figures_at(&state, filter.at.as_deref()).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"hatang-coverage.csv\"",
            ),
        ],
        crate::coverage::csv(&f, filter.check(&f)?),
    )
        .into_response())
}

pub(super) fn agent_json(a: &AgentRecord, now: i64) -> Value {
    let interval = a.interval_secs.and_then(|i| u32::try_from(i).ok());
    json!({
        "id": a.id,
        "machine_id": a.machine_id,
        "unit": a.unit_code,
        "role": a.role,
        "hostname": a.hostname,
        "state": agent_state(a.last_report_at, interval, now),
        "enrolled_at": a.enrolled_at,
        "last_report_at": a.last_report_at,
        "interval_secs": a.interval_secs,
        "agent_version": a.agent_version,
        "revoked_at": a.revoked_at,
        // What the agent's latest report with spool figures said (null before one).
        "spool_waiting_reports": a.spool_waiting,
        "spool_dropped_reports": a.spool_dropped,
    })
}

async fn unit(
    State(state): State<AppState>,
    _: Viewer,
    code: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let code = path(code)?;
    let f = state.figures().await?;
    let unit = f
        .units
        .iter()
        .find(|u| u.code == code)
        .ok_or_else(|| ApiError::not_found(format!("unit {code}")))?;
    let now = crate::now();
    let agents: Vec<Value> = state
        .store()
        .agents()
        .await?
        .iter()
        .filter(|a| a.unit_code == code)
        .map(|a| agent_json(a, now))
        .collect();
    let children: Vec<&str> = f
        .units
        .iter()
        .filter(|u| u.parent_code.as_deref() == Some(code.as_str()))
        .map(|u| u.code.as_str())
        .collect();
    Ok(Json(
        json!({ "unit": unit, "children": children, "agents": agents }),
    ))
}

async fn agent(
    State(state): State<AppState>,
    _: Viewer,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path(id)?;
    let (record, evidence) = state
        .store()
        .agent(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("agent {id}")))?;
    let parse = |doc: Option<String>| -> Value {
        doc.and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or(Value::Null)
    };
    let mut body = agent_json(&record, crate::now());
    body["inventory"] = parse(evidence.inventory);
    body["sample"] = parse(evidence.sample);
    body["probes"] = parse(evidence.probes);
    body["reports_stored"] = state.store().report_count(Some(&id)).await?.into();
    body["changes"] = serde_json::to_value(recent_changes(&state, &id).await?).unwrap_or_default();
    Ok(Json(body))
}

/// The latest check of every configured shared application.
async fn services(State(state): State<AppState>, _: Viewer) -> Json<Value> {
    Json(json!({ "services": state.services().snapshot() }))
}
