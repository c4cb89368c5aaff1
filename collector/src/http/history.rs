//! The history API: an agent's inventory change log, and the figures of past days from the daily
//! snapshots ([`crate::history`]): `?at=DATE` on the coverage endpoints and the per-level trend.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{Viewer, path, query};
use super::{ApiError, AppState};
use crate::figures::Figures;
use crate::store::InventoryChange;

/// Changes `GET /api/v1/agents/{id}` shows; older ones are a page of `…/changes` away.
pub(super) const RECENT_CHANGES: u32 = 100;
const MAX_PAGE: u32 = 1000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/agents/{id}/changes", get(changes))
        .route("/api/v1/coverage/history", get(coverage_history))
}

fn date(what: &str, text: &str) -> Result<time::Date, ApiError> {
    crate::history::parse_date(text)
        .map_err(|e| ApiError::bad_request("invalid_query", format!("{what}: {e}")))
}

/// The current figures, or with `at` (`?at=YYYY-MM-DD`) those of that day's snapshot (404
/// naming the nearest days that have one).
pub(super) async fn figures_at(
    state: &AppState,
    at: Option<&str>,
) -> Result<Arc<Figures>, ApiError> {
    let Some(at) = at else {
        return Ok(state.figures().await?);
    };
    let day = date("at", at)?;
    match crate::history::figures_at(state.store(), day).await? {
        Ok(figures) => Ok(Arc::new(figures)),
        Err(message) => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", message)),
    }
}

/// The newest [`RECENT_CHANGES`] changes of an agent, for its detail page.
pub(super) async fn recent_changes(
    state: &AppState,
    agent_id: &str,
) -> Result<Vec<InventoryChange>, ApiError> {
    Ok(state
        .store()
        .inventory_changes(agent_id, None, RECENT_CHANGES)
        .await?)
}

/// `?limit=&before=` of the change log. Here and in [`Range`] an unknown parameter is a 400, as
/// on the lists: a misspelt one is not silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    limit: Option<u32>,
    before: Option<i64>,
}

/// `GET /api/v1/agents/{id}/changes?limit=&before=`: the change log newest first. `next_before`
/// is the `before` of the next (older) page, `null` on the last one.
async fn changes(
    State(state): State<AppState>,
    _: Viewer,
    id: Result<Path<String>, PathRejection>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path(id)?;
    let page = query(page)?;
    let limit = page.limit.unwrap_or(RECENT_CHANGES);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    if state.store().agent(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("agent {id}")));
    }
    let changes = state
        .store()
        .inventory_changes(&id, page.before, limit)
        .await?;
    let next_before = (changes.len() == limit as usize)
        .then(|| changes.last().map(|c| c.id))
        .flatten();
    Ok(Json(json!({
        "agent_id": id,
        "changes": changes,
        "next_before": next_before,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    level: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/v1/coverage/history?level=&from=&to=`: the daily level figures, oldest first, of
/// one level or all (a level gone from the current tree, such as a district after the reform,
/// keeps its past).
async fn coverage_history(
    State(state): State<AppState>,
    _: Viewer,
    range: Result<Query<Range>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let range = query(range)?;
    // `?level=` (a form's "all levels") is no filter, as on the listing endpoints.
    let level = range.level.as_deref().filter(|l| !l.is_empty());
    let from = range.from.as_deref().map(|d| date("from", d)).transpose()?;
    let to = range.to.as_deref().map(|d| date("to", d)).transpose()?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "from must not be after to",
        ));
    }
    let from = from.map(crate::history::format_date);
    let to = to.map(crate::history::format_date);
    let rows = state
        .store()
        .level_history(level, from.as_deref(), to.as_deref())
        .await?;
    let points: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut point = json!({ "date": row.date });
            if let (Value::Object(p), Ok(Value::Object(figures))) = (
                &mut point,
                serde_json::to_value(crate::history::level_figures(row)),
            ) {
                p.extend(figures);
            }
            point
        })
        .collect();
    Ok(Json(json!({
        "level": level,
        "from": from,
        "to": to,
        "points": points,
    })))
}
