//! The speed-test endpoints agents measure their link to the data centre with.
//!
//! `GET /api/v1/speedtest/download?bytes=N` streams N random bytes (default [`DEFAULT_BYTES`],
//! at most [`MAX_BYTES`]); `POST /api/v1/speedtest/upload` reads and discards up to
//! [`MAX_BYTES`] and answers `{"bytes": n, "seconds": s}`, the time from the request's arrival to
//! its last byte. Both take the agent key, as report ingest does: only enrolled machines may make
//! the collector move megabytes. Random bytes, generated as they are sent, so neither end holds
//! the whole transfer in memory and no compressing middlebox can flatter a link.
//!
//! At most [`MAX_CONCURRENT`] tests run at once in one collector process; beyond that the
//! answer is 503 with `Retry-After`, so a province's agents starting together after a power cut
//! cannot saturate the data centre's uplink. Agents measure again at their next interval.

use std::convert::Infallible;
use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ApiError, AppState, ClientAddr};

/// The most one test moves each way.
pub const MAX_BYTES: u64 = 32 << 20;
/// What a download without `bytes` sends.
pub const DEFAULT_BYTES: u64 = 4 << 20;
/// Tests running at once in this process.
pub const MAX_CONCURRENT: usize = 16;
/// Size of each generated piece of a download.
const CHUNK: usize = 64 << 10;

static SLOTS: std::sync::LazyLock<std::sync::Arc<Semaphore>> =
    std::sync::LazyLock::new(|| std::sync::Arc::new(Semaphore::new(MAX_CONCURRENT)));

#[derive(Debug, Deserialize)]
pub(super) struct DownloadQuery {
    bytes: Option<u64>,
}

pub(super) async fn download(
    State(state): State<AppState>,
    address: ClientAddr,
    headers: HeaderMap,
    query: Result<Query<DownloadQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (agent, _) = super::ingest::authenticate(&state, address, &headers).await?;
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let bytes = query.bytes.unwrap_or(DEFAULT_BYTES);
    if bytes > MAX_BYTES {
        return Err(ApiError::bad_request(
            "too_many_bytes",
            format!("bytes must be at most {MAX_BYTES}"),
        ));
    }
    let permit = slot()?;
    tracing::debug!(agent = %agent, bytes, "speed test download");
    let chunks = (0..bytes.div_ceil(CHUNK as u64)).map(move |i| {
        let len = (bytes - i * CHUNK as u64).min(CHUNK as u64) as usize;
        Ok::<_, Infallible>(random(len))
    });
    // The permit goes with the stream: the slot is free when the last byte has been sent or
    // the agent hung up.
    let stream = futures_util::stream::iter(chunks).map(move |chunk| {
        let _held = &permit;
        chunk
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, bytes.to_string()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

pub(super) async fn upload(
    State(state): State<AppState>,
    address: ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let (agent, _) = super::ingest::authenticate(&state, address, &headers).await?;
    let _permit = slot()?;
    let mut stream = body.into_data_stream();
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("unreadable_body", format!("upload cut off: {e}"))
        })?;
        bytes += chunk.len() as u64;
        if bytes > MAX_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("an upload may carry at most {MAX_BYTES} bytes"),
            ));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    tracing::debug!(agent = %agent, bytes, seconds, "speed test upload");
    Ok(Json(json!({"bytes": bytes, "seconds": seconds})))
}

/// A place among the tests running now, or the 503 that says to come back later.
fn slot() -> Result<OwnedSemaphorePermit, ApiError> {
    std::sync::Arc::clone(&SLOTS)
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!("{MAX_CONCURRENT} speed tests are running; try again later"),
            )
        })
}

fn random(len: usize) -> Bytes {
    let mut buf = vec![0u8; len];
    // The OS generator does not fail once the process is running; zeros would still measure
    // the link, only a compressing middlebox could flatter them.
    if let Err(e) = getrandom::fill(&mut buf) {
        tracing::warn!(error = %e, "no random bytes for the speed test; sending zeros");
    }
    Bytes::from(buf)
}
