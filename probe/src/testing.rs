//! Local servers for tests of code that probes them (enabled by the `testing` feature, which
//! only dev-dependencies turn on): the agent's probe tests and the collector's service checks
//! both need an HTTPS endpoint whose certificate expires when the test says.

use std::net::SocketAddr;
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An HTTPS server on 127.0.0.1 with a self-signed certificate that expires at `not_after`.
pub async fn tls_server(not_after: OffsetDateTime) -> SocketAddr {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = server_params(not_after).self_signed(&key).unwrap();
    serve(cert.der().clone(), key).await
}

/// An HTTPS server on 127.0.0.1 whose certificate, expiring at `not_after`, a CA of the test's
/// own issued (a province's private CA); returns that CA's certificate as PEM too.
pub async fn tls_server_of_private_ca(not_after: OffsetDateTime) -> (SocketAddr, String) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "hatang test CA");
    let ca =
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = server_params(not_after).signed_by(&key, &ca).unwrap();
    (serve(cert.der().clone(), key).await, ca.pem())
}

/// A server certificate for localhost and 127.0.0.1, valid from yesterday to `not_after`.
fn server_params(not_after: OffsetDateTime) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = not_after;
    params
}

/// Serves `cert` (with `key`) on a loopback port, answering every request `200 ok`.
async fn serve(
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rcgen::KeyPair,
) -> SocketAddr {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // Clients that refuse the certificate end the handshake; that is expected.
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut request = [0u8; 1024];
                let _ = tls.read(&mut request).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}
