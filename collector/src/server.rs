//! The HTTP/1.1 server loop: each accepted connection served by hyper, with the peer's address
//! (and, over TLS, whether it presented a client certificate) handed to the handlers, and the
//! requests in flight finished on shutdown.
//!
//! Written out rather than `axum::serve` for one setting that needs a timer, which axum's loop
//! does not give hyper: [`HEADER_READ_TIMEOUT`]. Without it a client could hold a connection
//! for ever by sending a request's headers a byte at a time, or by opening it and sending
//! nothing; enough such connections use up the collector's file descriptors, and every agent's
//! report is refused at `accept`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt as _;

use crate::tls::ClientCertificate;

/// Who is at the other end of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The client presented a certificate the client CA signed (rustls checked it).
    pub client_certificate: bool,
}

/// Serves `app` on every connection `listener` accepts until `shutdown` completes, then stops
/// accepting and waits for the requests in flight. `peer` says who each connection is from.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    peer: fn(&L::Io, L::Addr) -> Peer,
    header_read_timeout: Option<Duration>,
    shutdown: impl Future<Output = ()>,
) where
    L: axum::serve::Listener,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let connections = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (io, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let peer = peer(&io, addr);
        let service = app
            .clone()
            .map_request(move |request: hyper::Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(peer.addr));
                if peer.client_certificate {
                    request.extensions_mut().insert(ClientCertificate);
                }
                request
            });
        let connection = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::trace!(peer = %peer.addr, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}
