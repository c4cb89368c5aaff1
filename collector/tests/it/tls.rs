//! `serve` over TLS in process: a request in flight when shutdown begins is still answered (and
//! its report committed) over the TLS connection, as over plain TCP.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use hatang_collector::config::TlsConfig;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::support::{Harness, TREE_3, report};

/// A self-signed certificate for 127.0.0.1 written to `dir`; returns the `[tls]` files and the
/// certificate to trust.
fn certificate(dir: &std::path::Path) -> (TlsConfig, CertificateDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let files = TlsConfig {
        cert_file: dir.join("cert.pem"),
        key_file: dir.join("key.pem"),
        client_ca_file: None,
    };
    (files, cert.der().clone())
}

/// On one connection: a whole `GET /healthz` (so the server surely holds the connection), then
/// `head` and the first half of `body`; says so on `sent`, waits for `go`, sends the rest and
/// returns the whole answer.
fn slow_request(
    addr: SocketAddr,
    trusted: CertificateDer<'static>,
    head: String,
    body: Vec<u8>,
    sent: std::sync::mpsc::Sender<()>,
    go: std::sync::mpsc::Receiver<()>,
) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let session = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    let mut tls = rustls::StreamOwned::new(session, tcp);
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: collector\r\n\r\n")
        .unwrap();
    let mut healthz = Vec::new();
    let mut byte = [0u8];
    while !healthz.ends_with(b"\r\n\r\nok\n") {
        tls.read_exact(&mut byte).unwrap();
        healthz.push(byte[0]);
    }
    let (first, rest) = body.split_at(body.len() / 2);
    tls.write_all(head.as_bytes()).unwrap();
    tls.write_all(first).unwrap();
    tls.flush().unwrap();
    sent.send(()).unwrap();
    go.recv().unwrap();
    tls.write_all(rest).unwrap();
    let mut answer = Vec::new();
    match tls.read_to_end(&mut answer) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
        done => {
            done.unwrap();
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn shutdown_over_tls_finishes_the_request_in_flight() {
    let certs = tempfile::tempdir().unwrap();
    let (files, trusted) = certificate(certs.path());
    let h = Harness::with_config(|c| c.tls = Some(files)).await;
    h.import(TREE_3).await;
    let token = h.enrol_token("17-SYT", None).await;
    let agent = h.enrolled(&token, "m-1").await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hatang_collector::serve(h.state.clone(), listener, async {
        let _ = stopped.await;
    }));

    let body = serde_json::to_vec(&report()).unwrap();
    let head = format!(
        "POST /api/v1/reports HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        agent.key,
        body.len()
    );
    let (sent_tx, sent) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel();
    let client =
        std::thread::spawn(move || slow_request(addr, trusted, head, body, sent_tx, go_rx));
    tokio::task::spawn_blocking(move || sent.recv().unwrap())
        .await
        .unwrap();
    // Time for the server to read the request's head: from then on it is in flight.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    // Shutdown has begun: the server waits for this request rather than cutting it off.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !server.is_finished(),
        "serve returned with a request in flight"
    );
    go.send(()).unwrap();
    let answer = tokio::task::spawn_blocking(move || client.join().unwrap())
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    assert!(answer.contains("\"accepted\""), "{answer}");
    server.await.unwrap().unwrap();
    let m = h.metrics().await;
    assert_eq!(
        m.get("hatang_reports_received_total", &[("outcome", "accepted")]),
        Some(1.0)
    );
    assert!(
        m.get("hatang_tls_certificate_expiry_timestamp_seconds", &[])
            .is_some()
    );
}
