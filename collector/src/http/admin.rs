//! The admin API: tokens (create, list by fingerprint, revoke) and agent revocation. Every
//! route takes an admin token: a viewer token gets 403, no token 401.
//!
//! Revocation is a write to the database and every check of a token or key reads the database
//! (nothing is cached), so it holds at once on every collector replica sharing it.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::api::{Admin, agent_json, path};
use super::{ApiError, AppState};
use crate::secret;
use crate::store::StoreError;
use crate::tokens::{self, TokenError, TokenRequest};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{fingerprint}", delete(revoke_token))
        .route("/api/v1/agents/{id}", delete(revoke_agent))
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Invalid(why) => ApiError::bad_request("invalid_token_request", why),
            e @ TokenError::UnknownUnit(_) => ApiError::bad_request("unknown_unit", e.to_string()),
            TokenError::Random(cause) => {
                tracing::error!(error = %cause, "no randomness for a token");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no_randomness",
                    "try again later",
                )
            }
            TokenError::Store(e) => e.into(),
        }
    }
}

/// `POST /api/v1/tokens` `{unit?, role?, expires_days?, max_uses?}` → `201` with the token,
/// shown this once, and what `GET /api/v1/tokens` will say of it.
async fn create_token(
    State(state): State<AppState>,
    _: Admin,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    super::json_content_type(&headers)?;
    let request: TokenRequest = super::json(&super::body_bytes(body)?)?;
    let created = tokens::create(state.store(), &request, crate::now()).await?;
    let mut body = serde_json::to_value(&created.info).unwrap_or_default();
    body["token"] = created.secret.plain.into();
    Ok((StatusCode::CREATED, Json(body)))
}

/// `GET /api/v1/tokens`: every token by fingerprint, oldest first; never a secret.
async fn list_tokens(State(state): State<AppState>, _: Admin) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "tokens": state.store().tokens().await? })))
}

/// `DELETE /api/v1/tokens/{fingerprint}` → `200` with the revoked token. Only the fingerprint:
/// a token in a URL would end up in proxy and access logs.
async fn revoke_token(
    State(state): State<AppState>,
    _: Admin,
    fingerprint: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let given = path(fingerprint)?;
    let fingerprint = secret::parse_fingerprint(&given).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_fingerprint",
            "a token is named by its fingerprint: 12 hex digits, as GET /api/v1/tokens lists them",
        )
    })?;
    let revoked = state
        .store()
        .revoke_token(&fingerprint, crate::now())
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => ApiError::not_found(format!("token {fingerprint}")),
            other => other.into(),
        })?;
    let token = revoked.item;
    if !revoked.already {
        tracing::info!(fingerprint = %token.fingerprint, kind = token.kind.as_str(), "token revoked");
    }
    Ok(Json(json!({ "token": token })))
}

/// `DELETE /api/v1/agents/{id}` → `200` with the agent: its key is refused from its next report
/// on. Enrolling the machine again issues a new key and lifts the revocation.
async fn revoke_agent(
    State(state): State<AppState>,
    _: Admin,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path(id)?;
    let revoked = state.store().revoke_agent(&id, crate::now()).await?;
    let agent = revoked.item;
    if !revoked.already {
        tracing::info!(agent = %agent.id, unit = %agent.unit_code, "agent key revoked");
    }
    Ok(Json(agent_json(&agent, crate::now())))
}
