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
pub mod history;
pub mod hosts;
pub mod http;
pub mod metrics;
pub mod present;
pub mod retention;
pub mod secret;
pub mod server;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod units;

use std::future::Future;

use tokio::net::TcpListener;

/// A task running beside the server (checks of certificates, snapshots, the figures refresher),
/// aborted when this is dropped.
#[derive(Debug)]
pub struct Background(tokio::task::JoinHandle<()>);

impl Background {
    pub fn spawn(task: impl Future<Output = ()> + Send + 'static) -> Self {
        Self(tokio::spawn(task))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Unix seconds on the collector's clock: the only clock figures are computed with.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Serves the API on an already bound listener until `shutdown` completes, then finishes the
/// requests in flight; the configured service checks, the daily figure snapshots ([`history`]),
/// the figures refresher ([`http::AppState::spawn_figures_refresher`]), the claim to publish the
/// figure series where replicas share a database ([`store::Store::claim_figures`]) and the
/// deletion of reports past their retention ([`retention`]) run meanwhile. Tests bind port 0 and pass
/// the listener, so nothing waits for readiness.
/// Each connection's peer address reaches the handlers, for the per-address rate limits.
/// With `[tls]` in the configuration it serves HTTPS, reloading the certificate on SIGHUP and
/// when its files change; a certificate that cannot be loaded at start is an error.
pub async fn serve(
    state: http::AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let _checks_stop_when_dropped =
        checks::spawn(state.config().services.clone(), state.services().clone())?;
    let _snapshots_stop_when_dropped = history::spawn(state.clone());
    let _refresh_stops_when_dropped = state.spawn_figures_refresher();
    let _claim_ends_when_dropped = state
        .store()
        .claim_figures(state.metrics().publishing())
        .await;
    let _pruning_stops_when_dropped = retention::spawn(state.clone());
    let header_read_timeout = state.config().limits.header_read_timeout();
    let Some(files) = state.config().tls.clone() else {
        let plain = |_: &tokio::net::TcpStream, addr| server::Peer {
            addr,
            client_certificate: false,
        };
        server::serve(
            listener,
            http::app(state),
            plain,
            header_read_timeout,
            shutdown,
        )
        .await;
        return Ok(());
    };
    // With `[tls]`: the same server over connections whose handshake completed (see [`tls`]).
    let certificates = tls::Certificates::load(&files).map_err(std::io::Error::other)?;
    let _reload_stops_when_dropped = certificates.watch(state.clone());
    server::serve(
        certificates.listener(listener)?,
        http::app(state),
        tls::peer,
        header_read_timeout,
        shutdown,
    )
    .await;
    Ok(())
}
