//! The collector's HTTP interface: [`app`] builds the router over an [`AppState`].
//!
//! Every error a caller can cause is a 4xx with the body
//! `{"error": {"code": "...", "message": "..."}}`; a 5xx says nothing internal and the cause is
//! logged instead.

mod api;
mod enroll;
mod error;
mod ingest;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Mutex;

pub use error::ApiError;

use crate::config::Config;
use crate::figures::{self, Figures, Rules};
use crate::metrics::Metrics;
use crate::store::{ApiRole, Store, StoreError};

/// Shared by every request: the store, the configuration, the metrics and the figures cache.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Box<dyn Store>,
    config: Config,
    metrics: Metrics,
    figures: Mutex<Option<(Instant, Arc<Figures>)>>,
}

impl AppState {
    pub fn new(store: Box<dyn Store>, config: Config) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                metrics: Metrics::new(),
                figures: Mutex::new(None),
            }),
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The figures, recomputed from the database when the cached ones are older than
    /// `figures_cache_secs`. Concurrent callers wait for one computation instead of each
    /// running their own.
    pub async fn figures(&self) -> Result<Arc<Figures>, StoreError> {
        let ttl = Duration::from_secs(self.inner.config.figures_cache_secs);
        let mut cached = self.inner.figures.lock().await;
        if let Some((at, figures)) = cached.as_ref()
            && at.elapsed() < ttl
        {
            return Ok(Arc::clone(figures));
        }
        let fresh = Arc::new(compute_figures(self.store(), &self.inner.config).await?);
        *cached = Some((Instant::now(), Arc::clone(&fresh)));
        Ok(fresh)
    }

    /// Checks `Authorization: Bearer <api token>` for at least `needed`.
    pub(crate) async fn authorize(
        &self,
        headers: &HeaderMap,
        needed: ApiRole,
    ) -> Result<ApiRole, ApiError> {
        let token = bearer(headers)?;
        let role = self
            .store()
            .api_token_role(&crate::secret::digest(token), crate::now())
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown, expired or revoked token"))?;
        if role < needed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this needs an {} token", needed.as_str()),
            ));
        }
        Ok(role)
    }
}

/// Reads the units and agents and computes the figures at this instant.
pub async fn compute_figures(store: &dyn Store, config: &Config) -> Result<Figures, StoreError> {
    let units = store.units().await?;
    let agents: Vec<_> = store
        .agents()
        .await?
        .iter()
        .map(|a| a.figures_row())
        .collect();
    let rules = Rules {
        equipment_window_secs: config.equipment_window_secs,
        targets: config.targets.clone(),
    };
    Ok(figures::compute(&units, &agents, &rules, crate::now()))
}

/// The bearer token of a request, or the 401 that explains what is missing.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?
        .to_str()
        .map_err(|_| ApiError::unauthorized("Authorization header is not text"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("Authorization must be Bearer <token>"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthorized(
            "Authorization scheme must be Bearer",
        ));
    }
    let token = token.trim();
    if token.is_empty() || token.len() > 256 {
        return Err(ApiError::unauthorized("malformed bearer token"));
    }
    Ok(token)
}

pub fn app(state: AppState) -> Router {
    let max_body = state.config().max_report_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/enroll", post(enroll::enroll))
        .route(
            "/api/v1/reports",
            post(ingest::ingest).layer(DefaultBodyLimit::max(max_body)),
        )
        .merge(api::routes())
        // Without this, a wrong method gets axum's bare 405 with an empty body; the contract
        // says every error the caller caused is the JSON error body.
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method (see the Allow header)",
            )
        })
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.store().ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check: database unreachable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unreachable",
            "the database does not answer",
        )
    })?;
    Ok("ready\n")
}

async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let figures = state.figures().await?;
    let text = state.metrics().render(&figures);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// The request body, or a JSON error for one that could not be read (too large, cut off).
pub(crate) fn body_bytes(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::body::Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "unreadable_body"
        };
        ApiError::new(status, code, rejection.body_text())
    })
}

/// Decodes a JSON body into `T` with a 400 that says where it went wrong.
pub(crate) fn json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("request body: {e}")))
}
