//! The one error type of the HTTP layer and its JSON body.

use std::time::Duration;

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Whole seconds for `Retry-After`, on a 429 or 503 (a 503 without one says 5).
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// `429 rate_limited` with a `Retry-After` of `wait` rounded up to whole seconds (at least
    /// one, so a client never retries at once). `what` is whose allowance ran out.
    pub fn rate_limited(wait: Duration, what: &str) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let secs = secs.max(1);
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests for this {what}; retry in {secs} s"),
        );
        e.retry_after = Some(secs);
        e
    }

    /// The same error with a `Retry-After` of `secs`.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{} not found", what.into()),
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict(why) => ApiError::new(StatusCode::CONFLICT, "conflict", why),
            // The agent keeps the report in its spool and resends it; a second is plenty for a
            // queue that drains in a few commits.
            StoreError::Busy => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the collector is storing as fast as it can; try again shortly",
            )
            .with_retry_after(1),
            StoreError::Revoked(_) => {
                ApiError::unauthorized("unknown or revoked agent key; enrol this machine again")
            }
            e if e.is_nul_in_text() => ApiError::bad_request(
                "invalid_text",
                "a value in this request holds a NUL character (%00 or \\u0000), which no name or id can",
            ),
            other => {
                tracing::error!(error = %other, cause = ?std::error::Error::source(&other), "storage failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the collector could not use its database; try again later",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().unwrap());
        }
        let retry_after = match self.retry_after {
            Some(secs) => Some(secs),
            None if self.status == StatusCode::SERVICE_UNAVAILABLE => Some(5),
            None => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        response
    }
}
