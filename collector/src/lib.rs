//! hatang-collector: enrolment, ingest, storage and the coverage figures of a province.
//!
//! `main.rs` only parses the command line; everything else lives here so tests can reach it.

pub mod changes;
pub mod checks;
pub mod commands;
pub mod config;
pub mod coverage;
pub mod evidence;
pub mod figures;
pub mod hosts;
pub mod http;
pub mod metrics;
pub mod secret;
pub mod store;
pub mod units;

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Unix seconds on the collector's clock: the only clock figures are computed with.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Serves the API on an already bound listener until `shutdown` completes, then finishes the
/// requests in flight; the configured service checks run meanwhile. Tests bind port 0 and pass
/// the listener, so nothing waits for readiness.
/// Each connection's peer address reaches the handlers, for the per-address rate limits.
pub async fn serve(
    state: http::AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let _checks_stop_when_dropped =
        checks::spawn(state.config().services.clone(), state.services().clone())?;
    axum::serve(
        listener,
        http::app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
