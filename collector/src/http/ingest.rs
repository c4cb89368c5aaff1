//! `POST /api/v1/reports`: authenticate, bound, decode, validate, commit, acknowledge.
//!
//! "Acknowledged" means committed: `202 accepted` is sent only after the store's transaction
//! holding the report committed (on SQLite a group commit of whatever reports were queued
//! together, see the SQLite store's module documentation; a full queue answers `503` with
//! `Retry-After` and takes nothing), and a `report_id` already stored gets `200 duplicate`
//! without storing anything, so an agent that resends after a lost answer never creates a second
//! copy. The agent is the one its key names; nothing in the body can claim to be another agent,
//! and a key revoked while its report waited to be committed gets `401`, nothing stored.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use hatang_protocol::{Limits, Report};
use serde_json::{Value, json};

use super::gzip::GunzipError;
use super::{ApiError, AppState, ClientAddr};
use crate::metrics::Outcome;
use crate::store::{Incoming, StoreError, Stored};

pub(super) async fn ingest(
    State(state): State<AppState>,
    address: ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (agent, key_digest) = match admit(&state, address, &headers).await {
        Ok(agent) => agent,
        Err(e) => {
            match e.status() {
                StatusCode::UNAUTHORIZED => state.metrics().report(Outcome::Unauthorized),
                StatusCode::TOO_MANY_REQUESTS => {
                    state.metrics().report(Outcome::RateLimited);
                    tracing::debug!(address = ?address.0, error = %e.message(), "report rate-limited");
                }
                // Looking the key up failed: the database's fault, not the agent's.
                s if s.is_server_error() => state.metrics().report(Outcome::Failed),
                _ => {}
            }
            return Err(e);
        }
    };
    let now = crate::now();
    let decoded = decode(&state, &headers, body)
        .and_then(|(report, text)| check_clock(&state, &report, now).map(|()| (report, text)))
        .map(|(report, text)| (report, kept_body(&state, text)));
    let (report, body) = match decoded {
        Ok(r) => r,
        Err(e) => {
            state.metrics().report(Outcome::Rejected);
            tracing::warn!(agent = %agent, code = e.code(), error = ?e.message(), "report rejected");
            return Err(e);
        }
    };
    let report_id = report.report_id;
    let incoming = Incoming {
        agent_id: agent.clone(),
        key_digest: Some(key_digest.clone()),
        report,
        body,
        received_at: now,
        waited_secs: waited(&headers),
    };
    let stored = match state.store().ingest(incoming).await {
        Ok(stored) => stored,
        Err(StoreError::Busy) => {
            state.metrics().report(Outcome::Busy);
            tracing::debug!(agent = %agent, report = %report_id, "ingest queue full");
            return Err(StoreError::Busy.into());
        }
        Err(e @ StoreError::Revoked(_)) => {
            state.inner.known_keys.forget(&key_digest);
            state.metrics().report(Outcome::Unauthorized);
            tracing::info!(agent = %agent, report = %report_id, "agent revoked while its report was in flight");
            return Err(e.into());
        }
        Err(e) => {
            let e = ApiError::from(e);
            if e.status().is_server_error() {
                state.metrics().report(Outcome::Failed);
            }
            return Err(e);
        }
    };
    match stored {
        Stored::Accepted { changes } => {
            state.metrics().report(Outcome::Accepted);
            for (component, kind) in changes {
                state.metrics().inventory_change(component, kind);
                tracing::info!(agent = %agent, component, kind = kind.as_str(), "inventory changed");
            }
            tracing::debug!(agent = %agent, report = %report_id, "report accepted");
            Ok((StatusCode::ACCEPTED, Json(json!({"status": "accepted"}))))
        }
        Stored::Duplicate => {
            state.metrics().report(Outcome::Duplicate);
            tracing::debug!(agent = %agent, report = %report_id, "duplicate report");
            Ok((StatusCode::OK, Json(json!({"status": "duplicate"}))))
        }
    }
}

/// The agent the bearer key names, within its rate limit, and the key's digest.
async fn admit(
    state: &AppState,
    address: ClientAddr,
    headers: &HeaderMap,
) -> Result<(String, Vec<u8>), ApiError> {
    let (agent, digest) = authenticate(state, address, headers).await?;
    state.limits().agent(&agent)?;
    Ok((agent, digest))
}

/// The agent the bearer key names, and the key's digest. A refused key counts against the
/// client's address, and an address that has used up its allowance is refused before its key
/// is even looked up, so guessing keys costs the database nothing once it is refused.
///
/// A key the store accepted before is taken from the known keys without a query; the store
/// checks it again when it commits a report (see [`Incoming::key_digest`]). Such a key is not
/// held to its address's allowance: it costs no lookup, and many agents share an address (an
/// office behind NAT, a province behind its load balancer) of which one that keeps sending a
/// revoked key must not stop the others.
pub(super) async fn authenticate(
    state: &AppState,
    address: ClientAddr,
    headers: &HeaderMap,
) -> Result<(String, Vec<u8>), ApiError> {
    let digest = crate::secret::digest(super::bearer(headers)?);
    if let Some(agent) = state.inner.known_keys.agent(&digest) {
        return Ok((agent, digest));
    }
    let limits = state.limits();
    limits.address_allowed(address)?;
    let agent = agent_by_digest(state, &digest).await.inspect_err(|e| {
        if e.status() == StatusCode::UNAUTHORIZED {
            // This attempt gets its 401; the allowance it spent shows on the next one.
            let _ = limits.address(address);
        }
    })?;
    state.inner.known_keys.remember(digest.clone(), &agent);
    Ok((agent, digest))
}

/// Records how far the agent's clock is from the collector's, and refuses a report whose clock
/// is too far off to be believed at all (`[limits] max_clock_skew_days`). Within the bound the
/// report is accepted: the agent is counted by when its report arrived, never by its own clock,
/// so a machine whose clock drifted or was reset is still counted.
fn check_clock(state: &AppState, report: &Report, now: i64) -> Result<(), ApiError> {
    let skew = report.agent_time.unix_timestamp() - now;
    state.metrics().clock_skew(skew);
    match state.config().limits.max_clock_skew_secs() {
        Some(max) if skew.abs() > max => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "clock_skew",
            format!(
                "agent_time: {} days {} the collector's clock (at most {} allowed); set the machine's clock",
                skew.abs() / 86_400,
                if skew > 0 { "ahead of" } else { "behind" },
                max / 86_400,
            ),
        )),
        _ => Ok(()),
    }
}

/// The id of the agent whose key has this digest, from the database.
async fn agent_by_digest(state: &AppState, digest: &[u8]) -> Result<String, ApiError> {
    let agent = state.store().agent_by_key(digest).await?.ok_or_else(|| {
        ApiError::unauthorized("unknown or revoked agent key; enrol this machine again")
    })?;
    Ok(agent.id)
}

/// The wait the agent reported in [`hatang_protocol::REPORT_AGE_HEADER`]. A value that is not a number of seconds is ignored (the
/// report's own time is used, as for an agent that sends none): refusing the report for a
/// header would lose it for good.
fn waited(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(hatang_protocol::REPORT_AGE_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The report's text as stored: all of it with `keep_report_bodies`, else nothing. Without the
/// body the row still makes a resent report a duplicate; what the report says is applied to the
/// agent's state either way.
fn kept_body(state: &AppState, text: String) -> String {
    if state.config().keep_report_bodies {
        text
    } else {
        String::new()
    }
}

/// Body → (report, its JSON text), within the configured size before and after gzip.
fn decode(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Report, String), ApiError> {
    let limit = state.config().max_report_bytes;
    super::json_content_type(headers)?;
    let body = super::body_bytes(body)?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let gzipped = encoding.as_deref() == Some("gzip");
    let raw = match encoding.as_deref() {
        None | Some("identity") => body.to_vec(),
        Some("gzip") => gunzip(&body, limit)?,
        Some(other) => {
            // Echo enough to recognise it, not a header of any size.
            let other: String = other.chars().take(32).collect();
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!("Content-Encoding {other:?} is not supported (use gzip or none)"),
            ));
        }
    };
    let text = String::from_utf8(raw).map_err(|e| super::not_utf8(e.utf8_error(), gzipped))?;
    let report: Report = super::json_text(&text)?;
    report.validate(&Limits::default()).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_report",
            list.join("; "),
        )
    })?;
    Ok((report, text))
}

/// Decompresses at most `limit` bytes; a larger result (a gzip bomb) is refused, not buffered.
/// Every member of a multi-member stream, not just the first: nothing is silently cut off.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    super::gzip::gunzip(body, limit).map_err(|e| match e {
        GunzipError::Invalid(why) => {
            ApiError::bad_request("invalid_gzip", format!("gzip body: {why}"))
        }
        GunzipError::TooLarge => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("decompressed report is larger than {limit} bytes"),
        ),
    })
}
