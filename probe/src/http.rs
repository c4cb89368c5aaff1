//! HTTP(S) probes: time to the response headers, the status, and the TLS certificate's expiry.
//!
//! Each attempt opens a new connection (no pooling), so every attempt measures what a user's
//! first request meets: name lookup, TCP and TLS handshakes and the server's answer. A 2xx or
//! 3xx answer is a success (a portal redirecting to its login page is up); redirects are not
//! followed. Trust is judged as the rest of the agent judges it (the platform's roots), plus
//! the target's own extra roots (a collector service's `ca_file`).
//!
//! The certificate's expiry comes from one extra TLS handshake that accepts any certificate and
//! sends nothing: an expired or self-signed certificate is exactly what operators need to see
//! the date of, and the trust verdict is the attempts' business.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use time::OffsetDateTime;
use x509_cert::der::Decode;

/// Makes the attempts of one probe and remembers the last status seen.
#[derive(Debug)]
pub(super) struct Prober {
    client: reqwest::Client,
    url: reqwest::Url,
    pub(super) last_status: Option<u16>,
}

impl Prober {
    /// A prober trusting `extra_roots` besides the platform's roots. Fails rather than fall back
    /// to a client without them, whose certificate errors would mislead.
    pub(super) fn new(
        url: reqwest::Url,
        extra_roots: &[CertificateDer<'static>],
    ) -> Result<Self, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let roots = extra_roots
            .iter()
            .map(|der| reqwest::Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| super::root_cause(&e))?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hatang-agent/", env!("CARGO_PKG_VERSION")))
            .tls_certs_merge(roots)
            .build()
            .map_err(|e| super::root_cause(&e))?;
        Ok(Self {
            client,
            url,
            last_status: None,
        })
    }

    /// One GET, finished when the headers arrive (the body is not read).
    pub(super) async fn attempt(&mut self) -> Result<(), String> {
        let response = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| super::root_cause(&e))?;
        let status = response.status();
        self.last_status = Some(status.as_u16());
        if status.is_success() || status.is_redirection() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    }
}

/// The `notAfter` of the certificate `url`'s server presents.
pub(super) async fn certificate_not_after(url: &reqwest::Url) -> Result<OffsetDateTime, String> {
    // An IPv6 host comes bracketed; `ServerName` takes names and bare addresses.
    let host = url
        .host_str()
        .ok_or("the URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let server_name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
    let addr = super::tcp::resolve(host, url.port_or_known_default().unwrap_or(443)).await?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = AnyCertificate(provider.signature_verification_algorithms);
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or("the server sent no certificate")?;
    not_after(leaf)
}

/// Reads `notAfter` from a DER certificate.
pub fn not_after(der: &[u8]) -> Result<OffsetDateTime, String> {
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| format!("certificate: {e}"))?;
    let secs = cert
        .tbs_certificate()
        .validity()
        .not_after
        .to_unix_duration()
        .as_secs();
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| "certificate expiry out of range".to_owned())
}

/// Whether a DER certificate is a CA's (basicConstraints CA:TRUE). webpki, and so every
/// agent, refuses such a certificate as a server's own; one that does not parse is not said to
/// be one.
pub fn is_ca(der: &[u8]) -> bool {
    x509_cert::Certificate::from_der(der)
        .ok()
        .and_then(|cert| {
            cert.tbs_certificate()
                .get_extension::<x509_cert::ext::pkix::BasicConstraints>()
                .ok()
                .flatten()
        })
        .is_some_and(|(_, constraints)| constraints.ca)
}

/// Accepts whatever certificate the server presents, still checking the handshake signatures
/// so the connection is a real TLS session with the holder of that certificate's key.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
