//! The paged lists for viewers: `GET /api/v1/agents` and `GET /api/v1/units`, as JSON, and as
//! CSV for spreadsheets (`/api/v1/agents.csv`, `/api/v1/units.csv`).
//!
//! Filters: agents by `unit`, `role` (workstation, server), `state` (online, stale, offline) and
//! `q` (part of the hostname, ASCII letters in either case); units by `level` and `parent` (the
//! code of their parent unit). An empty parameter is no filter; an unknown parameter, a bad value
//! or a `limit` outside 1..=1000 is a 400.
//!
//! Pages are keyset pages: up to `limit` (default 100) items after the cursor `after`, and
//! `next`, the cursor of the following page (`null` on the last one). Agents page by id (UUIDv7,
//! so machines enrolled while someone pages come after those already listed, and none is listed
//! twice or skipped); units in the tree's order, the cursor being the code of the last unit
//! seen. A CSV without `limit` is the whole list, an export; with `limit` it is one page and the
//! next cursor is in the `X-Next-Cursor` header, percent-encoded as it goes into `after=`.

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{Viewer, agent_json, query};
use super::{ApiError, AppState};
use crate::figures::{AgentState, Role, UnitFigures, agent_state};
use crate::store::{AgentFilter, AgentRecord};

/// Items in a page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;
/// The largest `limit` a request may ask for.
pub const MAX_LIMIT: u32 = 1000;
/// The longest text filter or cursor accepted.
const MAX_PARAM_LEN: usize = 255;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/agents.csv", get(agents_csv))
        .route("/api/v1/units", get(units))
        .route("/api/v1/units.csv", get(units_csv))
}

fn invalid(message: String) -> ApiError {
    ApiError::bad_request("invalid_parameter", message)
}

/// The query parameter `name` with an empty value read as absent, at most [`MAX_PARAM_LEN`].
fn text(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.chars().count() > MAX_PARAM_LEN => Err(invalid(format!(
            "{name}: at most {MAX_PARAM_LEN} characters"
        ))),
        Some(v) if v.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// `name`, one of `allowed` (by its text), or absent.
fn one_of<T: Copy>(
    name: &str,
    value: Option<String>,
    parse: fn(&str) -> Option<T>,
    allowed: &str,
) -> Result<Option<T>, ApiError> {
    text(name, value)?
        .map(|v| {
            parse(&v).ok_or_else(|| {
                invalid(format!(
                    "{name}: {:?} is not one of {allowed}",
                    v.chars().take(32).collect::<String>()
                ))
            })
        })
        .transpose()
}

/// `limit` within bounds; `None` when absent and `whole` (a CSV export without a limit).
fn page_size(limit: Option<u32>, whole: bool) -> Result<Option<u32>, ApiError> {
    match limit {
        Some(n) if n == 0 || n > MAX_LIMIT => {
            Err(invalid(format!("limit: from 1 to {MAX_LIMIT}, not {n}")))
        }
        Some(n) => Ok(Some(n)),
        None if whole => Ok(None),
        None => Ok(Some(DEFAULT_LIMIT)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentsQuery {
    unit: Option<String>,
    role: Option<String>,
    state: Option<String>,
    q: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

/// One page of agents and the cursor of the next, or every agent (`limit` `None`).
async fn agent_page(
    state: &AppState,
    q: AgentsQuery,
    whole: bool,
) -> Result<(Vec<AgentRecord>, Option<String>), ApiError> {
    let limit = page_size(q.limit, whole)?;
    let mut filter = AgentFilter {
        unit: text("unit", q.unit)?,
        role: one_of("role", q.role, Role::parse, "workstation, server")?,
        state: one_of(
            "state",
            q.state,
            AgentState::parse,
            "online, stale, offline",
        )?,
        hostname: text("q", q.q)?,
        after: text("after", q.after)?,
    };
    let now = crate::now();
    let store = state.store();
    match limit {
        Some(limit) => {
            // One more than asked says whether there is a next page.
            let mut page = store.agents_page(&filter, limit + 1, now).await?;
            let next = (page.len() > limit as usize).then(|| {
                page.truncate(limit as usize);
                page.last().map(|a| a.id.clone())
            });
            Ok((page, next.flatten()))
        }
        None => {
            let mut all = Vec::new();
            loop {
                let page = store.agents_page(&filter, MAX_LIMIT, now).await?;
                let full = page.len() == MAX_LIMIT as usize;
                filter.after = page.last().map(|a| a.id.clone());
                all.extend(page);
                if !full {
                    return Ok((all, None));
                }
            }
        }
    }
}

async fn agents(
    State(state): State<AppState>,
    _: Viewer,
    q: Result<Query<AgentsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let (page, next) = agent_page(&state, query(q)?, false).await?;
    let now = crate::now();
    let agents: Vec<Value> = page.iter().map(|a| agent_json(a, now)).collect();
    Ok(Json(json!({ "agents": agents, "next": next })))
}

async fn agents_csv(
    State(state): State<AppState>,
    _: Viewer,
    q: Result<Query<AgentsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (page, next) = agent_page(&state, query(q)?, true).await?;
    let now = crate::now();
    let time = |t: Option<i64>| t.map(crate::present::when).unwrap_or_default();
    let header = [
        "id",
        "machine_id",
        "unit",
        "role",
        "hostname",
        "state",
        "enrolled_utc",
        "last_report_utc",
        "interval_secs",
        "agent_version",
        "revoked_utc",
    ];
    let rows = page.iter().map(|a| {
        let interval = a.interval_secs.and_then(|i| u32::try_from(i).ok());
        vec![
            a.id.clone(),
            a.machine_id.clone(),
            a.unit_code.clone(),
            a.role.clone(),
            a.hostname.clone(),
            agent_state(a.last_report_at, interval, now)
                .as_str()
                .to_string(),
            time(Some(a.enrolled_at)),
            time(a.last_report_at),
            a.interval_secs.map(|i| i.to_string()).unwrap_or_default(),
            a.agent_version.clone().unwrap_or_default(),
            time(a.revoked_at),
        ]
    });
    let text = crate::present::spreadsheet_csv(&header, rows);
    Ok(csv_response("hatang-agents.csv", text, next))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitsQuery {
    level: Option<String>,
    parent: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

/// One page of the current tree's units (with their figures) and the next cursor.
fn unit_page(
    units: &[UnitFigures],
    q: UnitsQuery,
    whole: bool,
) -> Result<(Vec<&UnitFigures>, Option<String>), ApiError> {
    let limit = page_size(q.limit, whole)?;
    let level = text("level", q.level)?;
    let parent = text("parent", q.parent)?;
    let after = text("after", q.after)?;
    // An unknown level or parent is a 404, as `coverage?level=` answers.
    if let Some(l) = &level
        && !units.iter().any(|u| &u.level == l)
    {
        return Err(ApiError::not_found(format!("level {l}")));
    }
    if let Some(p) = &parent
        && !units.iter().any(|u| &u.code == p)
    {
        return Err(ApiError::not_found(format!("unit {p}")));
    }
    let matching: Vec<&UnitFigures> = units
        .iter()
        .filter(|u| level.as_ref().is_none_or(|l| &u.level == l))
        .filter(|u| {
            parent
                .as_ref()
                .is_none_or(|p| u.parent_code.as_ref() == Some(p))
        })
        .collect();
    let start = match &after {
        None => 0,
        Some(code) => {
            1 + matching
                .iter()
                .position(|u| &u.code == code)
                .ok_or_else(|| {
                    invalid(format!(
                        "after: unit {code} is not in this list (the tree was re-imported?); start again without after"
                    ))
                })?
        }
    };
    let rest = &matching[start..];
    let take = limit.map_or(rest.len(), |l| rest.len().min(l as usize));
    let page = rest[..take].to_vec();
    let next = (take < rest.len())
        .then(|| page.last().map(|u| u.code.clone()))
        .flatten();
    Ok((page, next))
}

async fn units(
    State(state): State<AppState>,
    _: Viewer,
    q: Result<Query<UnitsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let f = state.figures().await?;
    let (page, next) = unit_page(&f.units, q, false)?;
    Ok(Json(json!({ "units": page, "next": next })))
}

async fn units_csv(
    State(state): State<AppState>,
    _: Viewer,
    q: Result<Query<UnitsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let f = state.figures().await?;
    let (page, next) = unit_page(&f.units, q, true)?;
    let text = crate::coverage::units_csv(&f, page);
    Ok(csv_response("hatang-units.csv", text, next))
}

/// What a cursor may keep as it is in `X-Next-Cursor`: letters, digits and the URL's other
/// unreserved characters (RFC 3986), so a UUID or a GSO code reads as itself.
const CURSOR_KEPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A CSV download; `next` (a page's next cursor) in the `X-Next-Cursor` header, percent-encoded:
/// a header holds only ASCII, and a unit code may not be (`Đ01`), and so encoded it goes into
/// `after=` as it is.
fn csv_response(filename: &str, text: String, next: Option<String>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(next) = next {
        let encoded = utf8_percent_encode(&next, CURSOR_KEPT).to_string();
        // Percent-encoded text is visible ASCII, always a valid header value.
        if let Ok(v) = HeaderValue::from_str(&encoded) {
            headers.insert("x-next-cursor", v);
        }
    }
    (headers, text).into_response()
}
