//! HTTPS for the collector: the certificate it serves, the client CA agents may be held to, and
//! reloading both without a restart.
//!
//! The files named in `[tls]` are read once at start-up (a problem there stops the collector
//! with the reason) and again on SIGHUP or when one of their modification times changes (checked
//! every [`POLL_EVERY`]). A reload builds a whole new rustls `ServerConfig` and swaps it in for
//! the connections accepted after it; connections already open keep the one they shook hands
//! with. A reload that fails (a key that does not match the certificate, a half-written file)
//! keeps serving the old configuration and logs why; the next change of a file tries again.
//!
//! Handshakes run in tasks of their own, each bounded by [`HANDSHAKE_TIMEOUT`], so one slow or
//! silent client never holds up the accept loop; axum only sees connections whose handshake
//! completed, and serves (and drains at shutdown) them as it does plain TCP ones.
//!
//! Mutual TLS: with `client_ca_file` the handshake asks for a client certificate and refuses one
//! not signed by that CA, but lets a client without any certificate through, and the HTTP layer
//! decides per endpoint ([`require_client_certificate`]): the agents' endpoints (enrolment,
//! reports, speed test) need a certificate; `/metrics` (guarded by `metrics_token_file` instead),
//! `/healthz`, `/readyz` and the people's API and web UI do not, so Prometheus, load balancers
//! and browsers keep working without a certificate each. Requiring it in the handshake for
//! everything was the alternative rejected for that reason.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use crate::config::TlsConfig;
use crate::http::{ApiError, AppState};
use crate::metrics::Outcome;

/// How often the files' modification times are compared with those of the last load.
pub const POLL_EVERY: Duration = Duration::from_secs(30);

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the configured files do not make a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("[tls]: {0}")]
    Config(String),
}

fn file_error(path: &Path) -> impl Fn(String) -> TlsError + '_ {
    |reason| TlsError::File {
        path: path.to_path_buf(),
        reason,
    }
}

/// A `ServerConfig` built from the files, and when its certificate expires (Unix seconds).
#[derive(Debug)]
struct Loaded {
    config: Arc<ServerConfig>,
    not_after: i64,
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(path)(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(path)("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// Reads the files and builds the server configuration they describe.
fn load(files: &TlsConfig) -> Result<Loaded, TlsError> {
    let chain = certificates(&files.cert_file)?;
    // What `openssl req -x509` makes unless told otherwise. Served, every agent would refuse it
    // with only "not trusted" to say.
    if hatang_probe::tls_is_ca(&chain[0]) {
        return Err(file_error(&files.cert_file)(
            "its first certificate is a CA certificate (basicConstraints CA:TRUE), which agents \
             refuse from a server: issue the collector a server certificate (CA:FALSE) for the \
             name agents use, signed by this CA or another, and put it first"
                .into(),
        ));
    }
    let not_after = hatang_probe::tls_not_after(&chain[0])
        .map_err(file_error(&files.cert_file))?
        .unix_timestamp();
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| file_error(&files.key_file)(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca_file)? {
                roots
                    .add(cert)
                    .map_err(|e| file_error(ca_file)(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| file_error(ca_file)(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // Checks that the key belongs to the certificate.
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        TlsError::Config(format!(
            "{} with {}: {e}",
            files.cert_file.display(),
            files.key_file.display()
        ))
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded {
        config: Arc::new(config),
        not_after,
    })
}

/// The modification times of the files, as last seen; `None` for one that cannot be read.
fn modified(files: &TlsConfig) -> Vec<Option<SystemTime>> {
    [
        Some(&files.cert_file),
        Some(&files.key_file),
        files.client_ca_file.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    .collect()
}

/// The server configuration in use, swapped whole on a reload.
#[derive(Debug, Clone)]
pub struct Certificates {
    files: TlsConfig,
    current: Arc<RwLock<Arc<Loaded>>>,
}

impl Certificates {
    /// Loads the files for the first time.
    pub fn load(files: &TlsConfig) -> Result<Self, TlsError> {
        Ok(Self {
            files: files.clone(),
            current: Arc::new(RwLock::new(Arc::new(load(files)?))),
        })
    }

    fn current(&self) -> Arc<Loaded> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// When the certificate being served expires, Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.current().not_after
    }

    /// Reads the files again. On success, connections accepted from now on get the new
    /// configuration; on failure the old one stays. A certificate that has expired does not
    /// replace one that has not (an old file copied back by mistake would cut every agent
    /// off); it is an error, and the one served stays.
    pub fn reload(&self) -> Result<i64, TlsError> {
        let loaded = load(&self.files)?;
        let not_after = loaded.not_after;
        let now = crate::now();
        if not_after <= now && self.not_after() > now {
            return Err(file_error(&self.files.cert_file)(format!(
                "the certificate expired on {} UTC; still serving the one that has not",
                crate::present::when(not_after)
            )));
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        Ok(not_after)
    }

    /// Reloads on SIGHUP and when a file's modification time changes, until dropped.
    /// The expiry of each certificate loaded goes to `state`'s metrics.
    pub fn watch(&self, state: AppState) -> crate::Background {
        state.metrics().tls_certificate_expiry(self.not_after());
        tracing::info!(
            cert_file = %self.files.cert_file.display(),
            expires = %crate::present::when(self.not_after()),
            client_certificates = self.files.client_ca_file.is_some(),
            "serving HTTPS"
        );
        if self.not_after() <= crate::now() {
            tracing::warn!(
                cert_file = %self.files.cert_file.display(),
                expired = %crate::present::when(self.not_after()),
                "the HTTPS certificate has expired: agents refuse it and send nothing until a renewed one is installed"
            );
        }
        // Installed before this returns: a SIGHUP from then on reloads, never terminates.
        #[cfg(unix)]
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .inspect_err(|e| {
                tracing::warn!(error = %e, "no SIGHUP handler; TLS files reload when they change")
            })
            .ok();
        let certificates = self.clone();
        let task = tokio::spawn(async move {
            let mut seen = modified(&certificates.files);
            let mut poll = tokio::time::interval(POLL_EVERY);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            poll.tick().await;
            loop {
                #[cfg(unix)]
                let hangup_received = async {
                    match hangup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let hangup_received = std::future::pending::<Option<()>>();
                let why = tokio::select! {
                    _ = hangup_received => "SIGHUP",
                    _ = poll.tick() => "file changed",
                };
                // Read before loading: a file written after this instant is seen at the next poll.
                let now = modified(&certificates.files);
                if why == "SIGHUP" || now != seen {
                    seen = now;
                    match certificates.reload() {
                        Ok(not_after) => {
                            state.metrics().tls_certificate_expiry(not_after);
                            tracing::info!(trigger = why, expires = %crate::present::when(not_after), "TLS certificate reloaded");
                        }
                        Err(e) => tracing::warn!(
                            trigger = why,
                            error = %e,
                            "TLS reload failed; still serving the previous certificate"
                        ),
                    }
                }
            }
        });
        crate::Background(task)
    }

    /// Wraps a bound listener: accepted connections come out with their handshake done.
    pub fn listener(&self, listener: TcpListener) -> std::io::Result<TlsListener> {
        let local_addr = listener.local_addr()?;
        let (ready, incoming) = mpsc::channel(64);
        let certificates = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                };
                let acceptor =
                    tokio_rustls::TlsAcceptor::from(Arc::clone(&certificates.current().config));
                let ready = ready.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = ready.send((tls, peer)).await;
                        }
                        // Scanners, health probes speaking plain HTTP, clients refusing our
                        // certificate: worth a look when debugging, not a warning each.
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            incoming,
            local_addr,
            _accepting: crate::Background(task),
        })
    }
}

/// As axum's own listener does: errors of one connection are skipped, others (too many open
/// files) wait a second so the loop does not spin.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Connections that completed their TLS handshake, for `axum::serve`.
#[derive(Debug)]
pub struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    _accepting: crate::Background,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(connection) => connection,
            // The accepting task holds the sender until this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

/// Who is at the other end of a TLS connection: its address, and whether it presented a
/// certificate the client CA signed (rustls checked it during the handshake).
pub fn peer(stream: &TlsStream<TcpStream>, addr: SocketAddr) -> crate::server::Peer {
    let (_, session) = stream.get_ref();
    crate::server::Peer {
        addr,
        client_certificate: session.peer_certificates().is_some(),
    }
}

/// Marks a request that came with a verified client certificate.
#[derive(Debug, Clone, Copy)]
pub struct ClientCertificate;

/// Refuses an agent endpoint to a client without a verified certificate: `401
/// client_certificate_required`, counted as that endpoint counts its refusals. 401 rather than
/// 403 because the agent keeps a report refused with 401 (and drops one refused with another
/// 4xx): a machine whose certificate is missing must not lose its evidence.
pub async fn require_client_certificate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.extensions().get::<ClientCertificate>().is_some() {
        return next.run(request).await;
    }
    match request.uri().path() {
        "/api/v1/reports" => state.metrics().report(Outcome::Unauthorized),
        "/api/v1/enroll" => state.metrics().enrolment("refused"),
        _ => {}
    }
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "client_certificate_required",
        "this collector requires agents to present a client certificate signed by its client CA \
         (agent settings client_cert_file and client_key_file)",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for localhost valid `days` more days: (cert PEM, key PEM).
    fn self_signed(days: i64) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        let key = rcgen::KeyPair::generate().unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    fn files(dir: &Path, (cert, key): &(String, String)) -> TlsConfig {
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        TlsConfig {
            cert_file: dir.join("cert.pem"),
            key_file: dir.join("key.pem"),
            client_ca_file: None,
        }
    }

    fn days_from_now(days: i64) -> i64 {
        (time::OffsetDateTime::now_utc() + time::Duration::days(days)).unix_timestamp()
    }

    #[test]
    fn a_failed_reload_keeps_the_certificate_served() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path(), &self_signed(30));
        let certificates = Certificates::load(&files).unwrap();
        assert!((certificates.not_after() - days_from_now(30)).abs() < 60);
        let served = Arc::clone(&certificates.current().config);

        // the key of another certificate: refused, the old configuration stays
        let (cert, _) = self_signed(60);
        std::fs::write(&files.cert_file, cert).unwrap();
        let err = certificates.reload().unwrap_err().to_string();
        assert!(
            err.contains("cert.pem with") && err.contains("key.pem"),
            "{err}"
        );
        assert!(Arc::ptr_eq(&served, &certificates.current().config));

        // a half-written file
        std::fs::write(&files.cert_file, "-----BEGIN CERTIFICATE-----\nMIIB").unwrap();
        let err = certificates.reload().unwrap_err().to_string();
        assert!(err.contains("cert.pem"), "{err}");
        assert!((certificates.not_after() - days_from_now(30)).abs() < 60);

        // an expired pair (an old file copied back) does not replace a valid one
        let _ = self::files(dir.path(), &self_signed(-1));
        let err = certificates.reload().unwrap_err().to_string();
        assert!(
            err.contains("cert.pem: the certificate expired on "),
            "{err}"
        );
        assert!(Arc::ptr_eq(&served, &certificates.current().config));

        // a good pair is swapped in
        let _ = self::files(dir.path(), &self_signed(60));
        let not_after = certificates.reload().unwrap();
        assert!((not_after - days_from_now(60)).abs() < 60);
        assert_eq!(certificates.not_after(), not_after);
        assert!(!Arc::ptr_eq(&served, &certificates.current().config));
    }

    #[test]
    fn missing_or_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = files(dir.path(), &self_signed(30));
        files.client_ca_file = Some(dir.path().join("ca.pem"));
        let err = Certificates::load(&files).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: ", dir.path().join("ca.pem").display())),
            "{err}"
        );
        std::fs::write(dir.path().join("ca.pem"), "not PEM\n").unwrap();
        let err = Certificates::load(&files).unwrap_err().to_string();
        assert!(err.ends_with("ca.pem: no PEM certificate in it"), "{err}");
        // any certificate will do as a CA for the test: the verifier is built
        std::fs::copy(&files.cert_file, dir.path().join("ca.pem")).unwrap();
        Certificates::load(&files).unwrap();
    }

    #[test]
    fn the_expiry_series_exists_only_once_a_certificate_is_served() {
        use crate::metrics::{Endpoint, Metrics};
        let metrics = Metrics::new();
        let rules = crate::figures::Rules {
            equipment_window_secs: 1,
            targets: Default::default(),
            broadband_window_secs: 1,
            broadband_min_bps: 0.0,
        };
        let empty = Arc::new(crate::figures::compute(&[], &[], &rules, 0));
        let name = "hatang_tls_certificate_expiry_timestamp_seconds";
        assert!(
            !metrics
                .render(Endpoint::Metrics, Some(&empty), &[])
                .contains(name)
        );
        metrics.tls_certificate_expiry(1_900_000_000);
        // The same figures: their series come from the cache, the certificate's from now.
        let text = metrics.render(Endpoint::Metrics, Some(&empty), &[]);
        assert!(
            text.lines().any(|l| l == format!("{name} 1900000000")),
            "{text}"
        );
    }

    #[test]
    fn modification_times_cover_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = files(dir.path(), &self_signed(30));
        assert_eq!(modified(&files).len(), 2);
        files.client_ca_file = Some(dir.path().join("absent.pem"));
        let seen = modified(&files);
        assert_eq!(seen.len(), 3);
        assert!(seen[0].is_some() && seen[2].is_none());
    }
}
