//! The collector's HTTP interface: [`app`] builds the router over an [`AppState`].
//!
//! Every error a caller can cause is a 4xx with the body
//! `{"error": {"code": "...", "message": "..."}}`; a 5xx says nothing internal and the cause is
//! logged instead. The web UI's pages answer HTML, their errors too, and so does a path no route
//! takes when a browser asks for it as a page outside `/api/`.

mod admin;
mod api;
mod enroll;
mod error;
mod gzip;
mod history;
mod ingest;
mod keys;
mod limit;
mod listing;
mod speedtest;
mod web;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Mutex;

pub use error::ApiError;
pub use limit::{ClientAddr, Limits};
pub use web::{ROUTES as WEB_ROUTES, SESSION_SECS};

use crate::checks::ServiceStatus;
use crate::config::Config;
use crate::figures::{self, Figures, Rules};
use crate::hosts::HostEvidence;
use crate::metrics::{Endpoint, Metrics};
use crate::store::{ApiRole, Store, StoreError};

/// Shared by every request: the store, the configuration, the metrics and the figures cache.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Box<dyn Store>,
    /// Agent keys the store accepted, for the ingest path.
    known_keys: keys::KnownKeys,
    config: Config,
    metrics: Metrics,
    limits: Limits,
    services: ServiceStatus,
    figures: Mutex<Option<(Instant, Arc<Figures>)>>,
    /// When figures were last asked for (Unix seconds), so the refresher works only while
    /// somebody reads them.
    figures_wanted_at: AtomicI64,
}

impl AppState {
    pub fn new(store: Box<dyn Store>, config: Config) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits: Limits::new(&config.limits),
                store,
                known_keys: keys::KnownKeys::default(),
                config,
                metrics: Metrics::new(),
                services: ServiceStatus::default(),
                figures: Mutex::new(None),
                figures_wanted_at: AtomicI64::new(i64::MIN),
            }),
        }
    }

    /// The latest result of each configured service check.
    pub fn services(&self) -> &ServiceStatus {
        &self.inner.services
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

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The figures, recomputed from the database when the cached ones are older than
    /// `figures_cache_secs`. Concurrent callers wait for one computation instead of each
    /// running their own.
    pub async fn figures(&self) -> Result<Arc<Figures>, StoreError> {
        self.inner
            .figures_wanted_at
            .store(crate::now(), Ordering::Relaxed);
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

    /// Recomputes the figures (and writes their metric series) every half `figures_cache_secs`
    /// while they were asked for in the last [`REFRESH_WHILE_WANTED_SECS`], so a reader (a
    /// Prometheus scrape every 15 s, a page) finds them ready; an idle collector does not
    /// compute, and a refresh that takes long spaces the next one out. With
    /// `figures_cache_secs = 0` every reader computes its own and this does nothing. Stops when
    /// the returned guard is dropped.
    pub fn spawn_figures_refresher(&self) -> Option<crate::Background> {
        let ttl = Duration::from_secs(self.inner.config.figures_cache_secs);
        if ttl.is_zero() {
            return None;
        }
        let state = self.clone();
        Some(crate::Background::spawn(async move {
            let mut took = Duration::ZERO;
            loop {
                // At most a quarter of a core: at national scale (100,000 agents) a refresh
                // takes a good part of the half period. Readers that find the figures older
                // than `figures_cache_secs` compute their own.
                tokio::time::sleep((ttl / 2).max(took * 4)).await;
                let wanted_at = state.inner.figures_wanted_at.load(Ordering::Relaxed);
                if crate::now().saturating_sub(wanted_at) > REFRESH_WHILE_WANTED_SECS {
                    continue;
                }
                let started = Instant::now();
                // Computed outside the lock: readers keep getting the previous figures meanwhile.
                match compute_figures(state.store(), state.config()).await {
                    Ok(fresh) => {
                        let fresh = Arc::new(fresh);
                        // The scrape that comes next finds the exposition written too.
                        state.metrics().prerender(&fresh);
                        took = started.elapsed();
                        *state.inner.figures.lock().await = Some((Instant::now(), fresh));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "refreshing the figures failed; readers compute their own")
                    }
                }
            }
        }))
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

/// How long after the last read the figures are still kept fresh in the background.
const REFRESH_WHILE_WANTED_SECS: i64 = 300;

/// Reads the units and agents and computes the figures at this instant.
pub async fn compute_figures(store: &dyn Store, config: &Config) -> Result<Figures, StoreError> {
    let units = store.units().await?;
    let rules = Rules {
        equipment_window_secs: config.equipment_window_secs,
        targets: config.targets.clone(),
        broadband_window_secs: config.broadband_window_secs,
        broadband_min_bps: config.broadband_min_bps,
    };
    let now = crate::now();
    let groups = store.agent_groups(&rules, now).await?;
    let mut figures = figures::compute(&units, &groups, &rules, now);
    let servers: Vec<_> = store
        .servers()
        .await?
        .into_iter()
        .map(|(record, evidence)| {
            // Stored documents were validated at ingest; one that no longer parses (written by
            // a future version) shows the host without its sample rather than failing the scrape.
            let parsed = HostEvidence {
                inventory: evidence
                    .inventory
                    .and_then(|d| serde_json::from_str(&d).ok()),
                sample: evidence.sample.and_then(|d| serde_json::from_str(&d).ok()),
            };
            (record, parsed)
        })
        .collect();
    figures.hosts = crate::hosts::compute(&servers, now);
    Ok(figures)
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
    // What agents call. With mutual TLS only over a connection that presented a client
    // certificate; people's endpoints, /metrics and the health checks stay open to clients
    // without one (see `crate::tls`).
    let mut agents = Router::new()
        .route("/api/v1/enroll", post(enroll::enroll))
        .route(
            "/api/v1/reports",
            post(ingest::ingest).layer(DefaultBodyLimit::max(max_body)),
        )
        // The upload handler streams the raw body and enforces its own 32 MiB cap; the 64 KiB
        // `DefaultBodyLimit` below applies only to buffering extractors, not to a streamed body
        // (the speedtest tests upload 3 MiB through this router to show it).
        .route("/api/v1/speedtest/download", get(speedtest::download))
        .route("/api/v1/speedtest/upload", post(speedtest::upload));
    if state.config().requires_client_certificate() {
        agents = agents.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::tls::require_client_certificate,
        ));
    }
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/metrics/detail", get(metrics_detail))
        .merge(agents)
        .merge(api::routes())
        .merge(admin::routes())
        .merge(listing::routes())
        .merge(history::routes())
        .merge(web::routes())
        // Without this, a wrong method gets axum's bare 405 with an empty body; the contract
        // says every error the caller caused is the JSON error body.
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method (see the Allow header)",
            )
        })
        .fallback(web::no_such_path)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(state)
}

/// Every route [`app`] serves, as (method, path template): the one list the OpenAPI document
/// (`collector/openapi.json`) is tested against, both ways. A route added to a router above
/// goes here and into the document too; the `openapi` integration tests fail until it does
/// (they check each entry is served, and scan `src/http/` for routes missing here).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/metrics/detail"),
    ("GET", "/api/v1/openapi.json"),
    ("POST", "/api/v1/enroll"),
    ("POST", "/api/v1/reports"),
    ("GET", "/api/v1/speedtest/download"),
    ("POST", "/api/v1/speedtest/upload"),
    ("GET", "/api/v1/coverage"),
    ("GET", "/api/v1/coverage.csv"),
    ("GET", "/api/v1/coverage/history"),
    ("GET", "/api/v1/units"),
    ("GET", "/api/v1/units.csv"),
    ("GET", "/api/v1/units/{code}"),
    ("GET", "/api/v1/agents"),
    ("GET", "/api/v1/agents.csv"),
    ("GET", "/api/v1/agents/{id}"),
    ("DELETE", "/api/v1/agents/{id}"),
    ("GET", "/api/v1/agents/{id}/changes"),
    ("GET", "/api/v1/services"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{fingerprint}"),
];

/// The OpenAPI 3.1 description of this API, written by hand (a derive crate such as utoipa
/// would annotate every handler and pull in a large dependency tree for one static document).
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// `GET /api/v1/openapi.json`, open to anyone: it describes the API, it holds no data.
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
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

/// The exposition of the contract, the per-level figures and the per-unit coverage.
async fn metrics(state: State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    exposition(state, headers, Endpoint::Metrics).await
}

/// The high-cardinality detail (per-unit connectivity, per-server resources), for a scrape job
/// of its own.
async fn metrics_detail(state: State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    exposition(state, headers, Endpoint::Detail).await
}

/// The exposition of `endpoint`; with `metrics_token_file` configured, only for
/// `Authorization: Bearer` that token (compared by digest, in constant time).
async fn exposition(
    State(state): State<AppState>,
    headers: HeaderMap,
    endpoint: Endpoint,
) -> Result<Response, ApiError> {
    if let Some(expected) = &state.config().metrics_token {
        let token = bearer(&headers)?;
        if !crate::secret::same(&crate::secret::digest(token), expected) {
            return Err(ApiError::unauthorized("wrong metrics token"));
        }
    }
    // A replica that leaves the figures to another one does not compute them for a scrape.
    let figures = if state.metrics().publishes_figures() {
        Some(state.figures().await?)
    } else {
        None
    };
    let text = state
        .metrics()
        .render(endpoint, figures.as_ref(), &state.services().snapshot());
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

/// Refuses a body not declared as `Content-Type: application/json` (parameters such as
/// `charset=utf-8` allowed). Both clients we ship declare it; requiring it also keeps out the
/// form and `text/plain` posts a browser may send cross-site without asking first.
pub(crate) fn json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match declared {
        Some(t) if t.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON, sent with Content-Type: application/json",
        )),
    }
}

/// Deepest nesting of arrays and objects a request body may have; a report has five levels.
///
/// serde_json stops at 128 levels only where it builds values: fields it skips (unknown ones,
/// which the protocol tolerates for compatibility) it walks to any depth, and a report is stored
/// as sent, so without this a body nested 10 000 deep would be accepted and break whatever parses
/// it later.
const MAX_JSON_DEPTH: usize = 32;

/// Whether `bytes`, read as JSON, nests arrays and objects deeper than `max`. Brackets inside
/// strings do not count; a body that is not JSON at all is left to the parser to refuse.
fn nested_deeper_than(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        match b {
            // A string: on to the quote that closes it, skipping escaped characters. Strings
            // are most of a report's bytes, and memchr crosses them many bytes at a time.
            b'"' => loop {
                let Some(at) = memchr::memchr2(b'"', b'\\', bytes.get(i..).unwrap_or_default())
                else {
                    return false;
                };
                i += at + 1;
                if bytes[i - 1] == b'"' {
                    break;
                }
                i += 1;
            },
            _ if deeper(&mut depth, b, max) => return true,
            _ => {}
        }
    }
    false
}

/// The nesting `depth` after the byte `b` read outside strings; whether it is now over `max`.
fn deeper(depth: &mut usize, b: u8, max: usize) -> bool {
    match b {
        b'[' | b'{' => {
            *depth += 1;
            *depth > max
        }
        b']' | b'}' => {
            *depth = depth.saturating_sub(1);
            false
        }
        _ => false,
    }
}

/// Decodes a JSON body into `T` with a 400 that says where it went wrong.
pub(crate) fn json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    json_text(std::str::from_utf8(bytes).map_err(|e| not_utf8(e, false))?)
}

/// The 400 for a body that is not text. JSON is UTF-8 (RFC 8259), and a body that is not is
/// refused whole, even where the bytes sit in a field the parser would skip. Checked once for
/// the whole body, the parser takes every string as it is instead of checking each one again
/// (`perf`: `from_utf8` on each string was 1.3 % of the collector's CPU at full ingest load).
/// The byte is counted in the text the parser saw: for a gzip body, the inflated one.
pub(crate) fn not_utf8(e: std::str::Utf8Error, gzipped: bool) -> ApiError {
    let of = if gzipped {
        " of the body inflated from gzip"
    } else {
        ""
    };
    ApiError::bad_request(
        "invalid_json",
        format!(
            "request body: not UTF-8 text (at byte {}{of})",
            e.valid_up_to()
        ),
    )
}

/// [`json`] of a body already known to be text.
pub(crate) fn json_text<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    let bytes = text.as_bytes();
    if nested_deeper_than(bytes, MAX_JSON_DEPTH) {
        return Err(ApiError::bad_request(
            "invalid_json",
            format!("request body: nested deeper than {MAX_JSON_DEPTH} levels"),
        ));
    }
    serde_json::from_str(text).map_err(|e| {
        // serde quotes the offending value whole; a megabyte string is not echoed (or logged) back
        let mut said = e.to_string();
        if said.len() > 300 {
            let cut = (0..=200)
                .rev()
                .find(|&i| said.is_char_boundary(i))
                .unwrap_or(0);
            said = format!(
                "{}… at line {} column {}",
                &said[..cut],
                e.line(),
                e.column()
            );
        }
        ApiError::bad_request("invalid_json", format!("request body: {said}"))
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{deeper, nested_deeper_than};

    /// The definition, a byte at a time.
    fn nested_deeper_than_model(bytes: &[u8], max: usize) -> bool {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for &b in bytes {
            if in_string {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            if b == b'"' {
                in_string = true;
            } else if deeper(&mut depth, b, max) {
                return true;
            }
        }
        false
    }

    proptest! {
        #[test]
        fn nesting_agrees_with_its_definition(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), Just(b'['), Just(b']'), Just(b'{'), Just(b'}'), any::<u8>()],
                0..64,
            ),
            max in 0usize..6,
        ) {
            prop_assert_eq!(nested_deeper_than(&bytes, max), nested_deeper_than_model(&bytes, max));
        }
    }

    #[test]
    fn nesting_is_measured_outside_strings() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(!nested_deeper_than(deep(3).as_bytes(), 3));
        assert!(nested_deeper_than(deep(4).as_bytes(), 3));
        assert!(nested_deeper_than(br#"{"a":{"b":[{"c":1}]}}"#, 3));
        // brackets and escaped quotes inside strings are text
        let text = format!(r#"{{"a":"\"{}\\"}}"#, "[".repeat(100));
        assert!(!nested_deeper_than(text.as_bytes(), 1), "{text}");
        assert!(!nested_deeper_than(br#"["\\",["x"]]"#, 2));
        assert!(nested_deeper_than(br#"["\\",[["x"]]]"#, 2));
    }
}
