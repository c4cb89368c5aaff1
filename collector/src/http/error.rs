//! The one error type of the HTTP layer and its JSON body.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// Characters of what was not found that a 404 names; a unit code or an agent id is far shorter.
const MAX_NAMED: usize = 200;

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

    /// `404 not_found` naming `what`, cut to [`MAX_NAMED`] characters: it often quotes what the
    /// caller gave (a path segment, a filter), which is not echoed back (or logged) whole.
    pub fn not_found(what: impl Into<String>) -> Self {
        let mut what = what.into();
        if let Some((at, _)) = what.char_indices().nth(MAX_NAMED) {
            what.truncate(at);
            what.push('…');
        }
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
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
                log_storage_failure(&other);
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the collector could not use its database; try again later",
                )
            }
        }
    }
}

/// How often at most a storage failure is said at ERROR. In an outage every request fails
/// alike: a line for each (hundreds a second at a province's load) would bury everything else,
/// and journald drops lines beyond its rate limit, the first ones among them.
const STORAGE_FAILURE_EVERY: Duration = Duration::from_secs(10);

/// The storage failures not said since the last one that was (at most one each
/// [`STORAGE_FAILURE_EVERY`]).
static STORAGE_FAILURES: Mutex<Throttle> = Mutex::new(Throttle::new(STORAGE_FAILURE_EVERY));

fn log_storage_failure(e: &StoreError) {
    let said = STORAGE_FAILURES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .admit(Instant::now());
    match said {
        // The failures since the last one logged went to DEBUG only.
        Some(held_back) => tracing::error!(
            error = %e,
            not_logged_since_last = held_back,
            "storage failure"
        ),
        None => {
            tracing::debug!(error = %e, "storage failure");
        }
    }
}

/// Lets one event through per interval and counts those held back.
#[derive(Debug)]
struct Throttle {
    every: Duration,
    /// When the last event was let through.
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    const fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            held_back: 0,
        }
    }

    /// An event at `now`: `Some(held back since the last one let through)` to let it through,
    /// `None` to hold it back.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lets_one_event_through_per_interval_and_counts_the_rest() {
        let mut t = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(t.admit(at(0)), Some(0));
        assert_eq!(t.admit(at(1)), None);
        assert_eq!(t.admit(at(9)), None);
        assert_eq!(t.admit(at(10)), Some(2));
        assert_eq!(t.admit(at(15)), None);
        assert_eq!(t.admit(at(30)), Some(1));
        assert_eq!(t.admit(at(41)), Some(0));
    }
}
